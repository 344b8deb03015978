// LinUcb: the disjoint linear upper-confidence-bound bandit (Li et al., 2010).
// Each arm k keeps A_k = ridge * I + sum x x^T and b_k = sum r x over the contexts x it
// was played in and the rewards r it earned. choose(x) plays the arm with the highest
//   theta_k . x + alpha * sqrt(x^T A_k^-1 x),   theta_k = A_k^-1 b_k
// (the lowest index among equals), so unfamiliar contexts get explored. Arms never
// played are played first, in order: a bound of alpha alone would never beat an arm whose
// rewards exceed alpha, however good the untried arm.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/serialize/archive.h>

#include "hpt/state_writer.hpp"

namespace hpt::bandit {

class LinUcb {
 public:
  // `arms` arms over contexts of `dimension` features. Throws hpt::BadInput when arms or
  // dimension is 0, or ridge is not positive.
  LinUcb(std::size_t arms, std::size_t dimension, double alpha, double ridge = 1.0);

  std::size_t arms() const { return b_.size(); }
  std::size_t dimension() const { return dimension_; }

  // The arm to play in `context` (dimension() values).
  std::size_t choose(const std::vector<double>& context) const;

  // The upper confidence bound of `arm` in `context`.
  double upper_bound(std::size_t arm, const std::vector<double>& context) const;

  // Arm `arm` earned `reward` in `context`.
  void update(std::size_t arm, const std::vector<double>& context, double reward);

  // Times each arm was updated.
  const std::vector<std::int64_t>& plays() const { return plays_; }

  // A, b and the play counts, under keys starting with `prefix`.
  void save(hpt::StateWriter& state, const std::string& prefix) const;
  // Throws hpt::BadInput when the saved bandit has other arms or dimension.
  void load(torch::serialize::InputArchive& archive, const std::string& prefix);

 private:
  std::size_t dimension_;
  double alpha_;
  std::vector<std::vector<double>> a_;  // per arm, dimension x dimension, row-major
  std::vector<std::vector<double>> b_;  // per arm, dimension
  std::vector<std::int64_t> plays_;
};

}  // namespace hpt::bandit
