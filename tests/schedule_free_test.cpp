// Optimizer "schedule_free" (Schedule-Free AdamW) against its update equations, computed
// here in plain double arithmetic in the explicit form (z, x and y kept apart), on the
// quadratic loss 0.5 * sum(a_i p_i^2) whose gradient is a_i p_i: warmup, weight decay at
// y, the lr_max^2 weighting of the average, the swap to x for evaluation and back, and
// an exact resume from a checkpoint.
#include <cmath>
#include <sstream>

#include "hpt/optimizer.hpp"
#include "optimizer_state_bytes.hpp"
#include "test_support.hpp"

using ::testing::HasSubstr;

namespace {

using hpt::test::load_bytes;
using hpt::test::save_bytes;

const std::vector<double> kCurvature = {1.0, 4.0, 0.25};
const std::vector<double> kStart = {1.0, -0.5, 2.0};

// The parameter (float64, so the comparison is tight) and its quadratic loss.
struct Quadratic {
  torch::Tensor p = torch::tensor(kStart, torch::kFloat64).requires_grad_();

  hpt::Closure closure() {
    return [this]() {
      if (p.grad().defined()) p.grad().zero_();
      torch::Tensor loss = 0.5 * (torch::tensor(kCurvature, torch::kFloat64) * p * p).sum();
      loss.backward();
      return loss.detach();
    };
  }
  std::vector<double> values() const {
    torch::Tensor t = p.detach().contiguous();
    return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  }
};

// Schedule-Free AdamW in the paper's explicit form, one double per coordinate.
struct Reference {
  double lr, beta1, beta2, eps, weight_decay, r = 0.0, weight_lr_power = 2.0;
  std::int64_t warmup_steps;
  std::vector<double> z = kStart, x = kStart, y = kStart, v = std::vector<double>(3, 0.0);
  std::int64_t k = 0;
  double lr_max = -1.0, weight_sum = 0.0, last_lr = 0.0;

  void step() {
    const double rate = lr * (k < warmup_steps ? static_cast<double>(k + 1) / warmup_steps : 1.0);
    last_lr = rate;
    lr_max = std::max(lr_max, rate);
    const double weight = std::pow(k + 1.0, r) * std::pow(lr_max, weight_lr_power);
    weight_sum += weight;
    const double c = weight / weight_sum;
    for (std::size_t i = 0; i < 3; ++i) {
      const double g = kCurvature[i] * y[i];  // the gradient at y
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      const double d = g / (std::sqrt(v[i] / (1 - std::pow(beta2, k + 1.0))) + eps) + weight_decay * y[i];
      z[i] -= rate * d;
      x[i] = (1 - c) * x[i] + c * z[i];
      y[i] = (1 - beta1) * z[i] + beta1 * x[i];
    }
    ++k;
  }
};

hpt::test::Overrides options_of(const Reference& r) {
  return {{"lr", r.lr},
          {"betas", std::vector<double>{r.beta1, r.beta2}},
          {"eps", r.eps},
          {"weight_decay", r.weight_decay},
          {"warmup_steps", r.warmup_steps},
          {"r", r.r},
          {"weight_lr_power", r.weight_lr_power}};
}

std::shared_ptr<hpt::Optimizer> make(const hpt::test::Overrides& overrides) {
  return hpt::test::make_plugin<hpt::Optimizer>(hpt::PluginKind::Optimizer, "schedule_free", overrides);
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << what << " [" << i << "]";
}


TEST(ScheduleFree, FollowsItsEquationsThroughWarmupWithWeightDecay) {
  Reference reference{/*lr=*/0.1, /*beta1=*/0.9, /*beta2=*/0.99, /*eps=*/1e-8, /*weight_decay=*/0.05};
  reference.warmup_steps = 3;
  Quadratic problem;
  auto optimizer = make(options_of(reference));
  optimizer->bind({problem.p}, /*track_updates=*/true);
  EXPECT_DOUBLE_EQ(optimizer->learning_rate(), 0.1 / 3);  // before the first step: step 1's rate
  for (int s = 1; s <= 6; ++s) {
    const std::vector<double> before = problem.values();
    optimizer->step(problem.closure(), s);
    reference.step();
    expect_near(problem.values(), reference.y, "y after step " + std::to_string(s));
    EXPECT_DOUBLE_EQ(optimizer->learning_rate(), reference.last_lr) << "step " << s;
    ASSERT_EQ(optimizer->last_update().size(), 1u);
    torch::Tensor update = optimizer->last_update()[0];
    for (std::size_t i = 0; i < 3; ++i)
      EXPECT_NEAR(update[i].item<double>(), reference.y[i] - before[i], 1e-12) << "update, step " << s;
  }
  // Warmup: rates 1/3, 2/3 and 3/3 of lr, then lr.
  EXPECT_DOUBLE_EQ(reference.last_lr, 0.1);
  // x, z and y differ by now, so the swap below is not trivially the identity.
  ASSERT_GT(std::abs(reference.x[0] - reference.y[0]), 1e-3);

  // Evaluation weights: the parameters become x, in place, and back to y.
  torch::Tensor storage = problem.p;
  optimizer->use_evaluation_weights(true);
  expect_near(problem.values(), reference.x, "x");
  EXPECT_TRUE(problem.p.is_same(storage));
  optimizer->use_evaluation_weights(true);  // a second call changes nothing
  expect_near(problem.values(), reference.x, "x again");
  optimizer->use_evaluation_weights(false);
  expect_near(problem.values(), reference.y, "y again");

  // Training goes on from y.
  optimizer->step(problem.closure(), 7);
  reference.step();
  expect_near(problem.values(), reference.y, "y after step 7");
}

TEST(ScheduleFree, PolynomialWeightingAndLearningRateScale) {
  Reference reference{/*lr=*/0.05, /*beta1=*/0.8, /*beta2=*/0.9, /*eps=*/1e-6, /*weight_decay=*/0.0};
  reference.warmup_steps = 0;
  reference.r = 1.0;
  Quadratic problem;
  auto optimizer = make(options_of(reference));
  optimizer->bind({problem.p}, /*track_updates=*/false);
  optimizer->scale_learning_rate(0.5);
  reference.lr *= 0.5;
  EXPECT_DOUBLE_EQ(optimizer->learning_rate(), 0.025);
  for (int s = 1; s <= 4; ++s) {
    optimizer->step(problem.closure(), s);
    reference.step();
    expect_near(problem.values(), reference.y, "y after step " + std::to_string(s));
  }
  EXPECT_TRUE(optimizer->last_update().empty());
  optimizer->use_evaluation_weights(true);
  expect_near(problem.values(), reference.x, "x");
}

TEST(ScheduleFree, EvaluationWeightsBeforeTheFirstStepAreTheParameters) {
  Quadratic problem;
  auto optimizer = make({});
  optimizer->bind({problem.p}, true);
  optimizer->use_evaluation_weights(true);
  expect_near(problem.values(), kStart, "x before any step");
  optimizer->use_evaluation_weights(false);
  expect_near(problem.values(), kStart, "y before any step");
}

// Three steps, a checkpoint (taken while the parameters hold x, as around a final
// evaluation), then three more: the resumed optimizer takes exactly the same steps.
TEST(ScheduleFree, ResumesExactly) {
  const hpt::test::Overrides options = {{"lr", 0.1}, {"warmup_steps", std::int64_t{4}}, {"weight_decay", 0.01}};
  Quadratic uninterrupted;
  auto first = make(options);
  first->bind({uninterrupted.p}, true);
  for (int s = 1; s <= 3; ++s) first->step(uninterrupted.closure(), s);
  first->scale_learning_rate(0.5);
  first->use_evaluation_weights(true);
  const std::string bytes = save_bytes(*first);

  Quadratic resumed;
  {
    torch::NoGradGuard no_grad;
    resumed.p.copy_(uninterrupted.p);  // the checkpoint's weights: x
  }
  auto second = make(options);
  second->bind({resumed.p}, true);
  load_bytes(*second, bytes);
  EXPECT_DOUBLE_EQ(second->learning_rate(), first->learning_rate());
  for (int s = 4; s <= 6; ++s) {
    first->step(uninterrupted.closure(), s);
    second->step(resumed.closure(), s);
    EXPECT_TRUE(torch::equal(uninterrupted.p, resumed.p)) << "step " << s;
    EXPECT_DOUBLE_EQ(first->learning_rate(), second->learning_rate()) << "step " << s;
  }
  first->use_evaluation_weights(true);
  second->use_evaluation_weights(true);
  EXPECT_TRUE(torch::equal(uninterrupted.p, resumed.p)) << "x after resuming";
}

TEST(ScheduleFree, Beta1OfZeroIsBadInput) {
  try {
    make({{"betas", std::vector<double>{0.0, 0.999}}});
    FAIL() << "beta1 = 0 was accepted";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("'betas'"));
  }
}

}  // namespace
