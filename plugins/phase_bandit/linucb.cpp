#include "linucb.hpp"

#include <algorithm>
#include <cmath>

#include <torch/types.h>

#include "hpt/error.hpp"

namespace hpt::bandit {

namespace {

// Lower-triangular Cholesky factor of the symmetric positive definite n x n matrix `a`.
std::vector<double> cholesky(const std::vector<double>& a, std::size_t n) {
  std::vector<double> l(n * n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j <= i; ++j) {
      double sum = a[i * n + j];
      for (std::size_t k = 0; k < j; ++k) sum -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = i == j ? std::sqrt(sum) : sum / l[j * n + j];
    }
  }
  return l;
}

// Solves L y = v (forward substitution).
std::vector<double> solve_lower(const std::vector<double>& l, const std::vector<double>& v, std::size_t n) {
  std::vector<double> y(n);
  for (std::size_t i = 0; i < n; ++i) {
    double sum = v[i];
    for (std::size_t k = 0; k < i; ++k) sum -= l[i * n + k] * y[k];
    y[i] = sum / l[i * n + i];
  }
  return y;
}

// Solves L^T x = y (back substitution).
std::vector<double> solve_upper(const std::vector<double>& l, const std::vector<double>& y, std::size_t n) {
  std::vector<double> x(n);
  for (std::size_t i = n; i-- > 0;) {
    double sum = y[i];
    for (std::size_t k = i + 1; k < n; ++k) sum -= l[k * n + i] * x[k];
    x[i] = sum / l[i * n + i];
  }
  return x;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

LinUcb::LinUcb(std::size_t arms, std::size_t dimension, double alpha, double ridge)
    : dimension_(dimension), alpha_(alpha), plays_(arms, 0) {
  if (arms == 0 || dimension == 0) throw BadInput("LinUCB needs at least one arm and one context feature");
  if (!(ridge > 0.0)) throw BadInput("LinUCB: ridge must be positive");
  std::vector<double> identity(dimension * dimension, 0.0);
  for (std::size_t i = 0; i < dimension; ++i) identity[i * dimension + i] = ridge;
  a_.assign(arms, identity);
  b_.assign(arms, std::vector<double>(dimension, 0.0));
}

double LinUcb::upper_bound(std::size_t arm, const std::vector<double>& context) const {
  const std::size_t n = dimension_;
  std::vector<double> l = cholesky(a_[arm], n);
  std::vector<double> theta = solve_upper(l, solve_lower(l, b_[arm], n), n);
  std::vector<double> z = solve_lower(l, context, n);  // x^T A^-1 x = |L^-1 x|^2
  return dot(theta, context) + alpha_ * std::sqrt(dot(z, z));
}

std::size_t LinUcb::choose(const std::vector<double>& context) const {
  if (context.size() != dimension_)
    throw RunError("LinUCB: a context has " + std::to_string(context.size()) + " features, expected " +
                   std::to_string(dimension_));
  for (std::size_t k = 0; k < arms(); ++k)
    if (plays_[k] == 0) return k;
  std::size_t best = 0;
  double best_bound = upper_bound(0, context);
  for (std::size_t k = 1; k < arms(); ++k) {
    double bound = upper_bound(k, context);
    if (bound > best_bound) best = k, best_bound = bound;
  }
  return best;
}

void LinUcb::update(std::size_t arm, const std::vector<double>& context, double reward) {
  if (arm >= arms() || context.size() != dimension_) throw RunError("LinUCB: update with a bad arm or context size");
  const std::size_t n = dimension_;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) a_[arm][i * n + j] += context[i] * context[j];
    b_[arm][i] += reward * context[i];
  }
  ++plays_[arm];
}

void LinUcb::save(hpt::StateWriter& state, const std::string& prefix) const {
  const auto k = static_cast<std::int64_t>(arms()), n = static_cast<std::int64_t>(dimension_);
  torch::Tensor a = torch::empty({k, n, n}, torch::kFloat64), b = torch::empty({k, n}, torch::kFloat64);
  for (std::int64_t arm = 0; arm < k; ++arm) {
    std::copy(a_[arm].begin(), a_[arm].end(), a[arm].data_ptr<double>());
    std::copy(b_[arm].begin(), b_[arm].end(), b[arm].data_ptr<double>());
  }
  state.write(prefix + "A", a);
  state.write(prefix + "b", b);
  state.write(prefix + "plays", torch::tensor(plays_, torch::kInt64));
}

void LinUcb::load(torch::serialize::InputArchive& archive, const std::string& prefix) {
  torch::Tensor a, b, plays;
  if (!archive.try_read(prefix + "A", a) || !archive.try_read(prefix + "b", b) || !archive.try_read(prefix + "plays", plays))
    throw BadInput("the checkpoint has no LinUCB state under '" + prefix + "'");
  const auto k = static_cast<std::int64_t>(arms()), n = static_cast<std::int64_t>(dimension_);
  if (a.sizes() != torch::IntArrayRef{k, n, n} || b.sizes() != torch::IntArrayRef{k, n} || plays.numel() != k)
    throw BadInput("the checkpoint's LinUCB has another number of arms or context features (A is " +
                   std::to_string(a.size(0)) + " arms of " + std::to_string(a.dim() > 1 ? a.size(1) : 0) +
                   " features, this one " + std::to_string(k) + " of " + std::to_string(n) + ")");
  a = a.to(torch::kFloat64).contiguous();
  b = b.to(torch::kFloat64).contiguous();
  plays = plays.to(torch::kInt64).contiguous();
  for (std::int64_t arm = 0; arm < k; ++arm) {
    a_[arm].assign(a[arm].data_ptr<double>(), a[arm].data_ptr<double>() + n * n);
    b_[arm].assign(b[arm].data_ptr<double>(), b[arm].data_ptr<double>() + n);
    plays_[static_cast<std::size_t>(arm)] = plays[arm].item<std::int64_t>();
  }
}

}  // namespace hpt::bandit
