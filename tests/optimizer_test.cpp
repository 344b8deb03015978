// The optimizer plugins and their SDK helpers: each plugin follows the torch::optim
// optimizer it wraps step for step, reports the update it applied, resumes exactly
// from a checkpoint; schedules, clipping and centralisation give hand-computed values.
#include <cmath>
#include <sstream>

#include <torch/optim.h>

#include "hpt/gradient_clipping.hpp"
#include "hpt/lr_schedule.hpp"
#include "hpt/optimizer.hpp"
#include "plugins/plugin_loader.hpp"
#include "optimizer_state_bytes.hpp"
#include "test_support.hpp"

using ::testing::HasSubstr;

namespace {

using hpt::test::load_bytes;
using hpt::test::save_bytes;

using Overrides = std::map<std::string, hpt::OptionValue>;

// A small non-linear regression: y = tanh(x W^T + b), mean squared error.
struct Problem {
  std::vector<torch::Tensor> params;  // W [3, 4], b [3]
  torch::Tensor x, y;

  static Problem make() {
    torch::manual_seed(7);
    Problem p;
    p.params = {torch::randn({3, 4}).requires_grad_(), torch::randn({3}).requires_grad_()};
    p.x = torch::randn({16, 4});
    p.y = torch::randn({16, 3}).mul_(0.5);
    return p;
  }

  // Same data, parameters copied into fresh tensors.
  Problem copy() const {
    Problem p = *this;
    for (auto& t : p.params) t = t.detach().clone().requires_grad_();
    return p;
  }

  torch::Tensor loss() const { return torch::tanh(x.matmul(params[0].t()) + params[1]).sub(y).square().mean(); }

  hpt::Closure closure() const {
    return [this]() {
      for (const auto& p : params)
        if (p.grad().defined()) p.grad().zero_();
      torch::Tensor l = loss();
      l.backward();
      return l.detach();
    };
  }

  std::vector<torch::Tensor> snapshot() const {
    std::vector<torch::Tensor> out;
    for (const auto& t : params) out.push_back(t.detach().clone());
    return out;
  }
};

double max_abs_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

hpt::host::PluginLoader& loader() {
  static hpt::host::PluginLoader instance({std::string(HPT_BINARY_DIR) + "/plugins"});
  return instance;
}

std::shared_ptr<hpt::Optimizer> make_optimizer(const std::string& name, const Overrides& overrides = {}) {
  auto info = loader().find(hpt::PluginKind::Optimizer, name);
  hpt::Options options = hpt::Options::defaults(info->options);
  for (const auto& [key, value] : overrides) {
    EXPECT_TRUE(options.has(key)) << name << " declares no option '" << key << "'";
    options.set(key, value);
  }
  return loader().create<hpt::Optimizer>(*info, hpt::PluginContext{}, options);
}

// Runs plugin `name` and the reference torch optimizer made by `make_reference` side by
// side on the same problem; both must follow the same path, and last_update() must be
// exactly after minus before.
template <class MakeReference>
void expect_follows_torch(const std::string& name, const Overrides& overrides, MakeReference make_reference,
                          int steps = 6) {
  Problem ours = Problem::make();
  Problem theirs = ours.copy();
  auto optimizer = make_optimizer(name, overrides);
  optimizer->bind(ours.params, /*track_updates=*/true);
  std::unique_ptr<torch::optim::Optimizer> reference = make_reference(theirs.params);
  const auto start = ours.snapshot();
  for (int s = 1; s <= steps; ++s) {
    auto before = ours.snapshot();
    double loss = optimizer->step(ours.closure(), s).item<double>();
    double reference_loss = reference->step(theirs.closure()).item<double>();
    // The same torch operations in the same order: bit-identical.
    EXPECT_EQ(loss, reference_loss) << name << " step " << s;
    EXPECT_EQ(max_abs_diff(ours.snapshot(), theirs.snapshot()), 0.0) << name << " step " << s;
    const auto& update = optimizer->last_update();
    ASSERT_EQ(update.size(), ours.params.size());
    for (std::size_t i = 0; i < update.size(); ++i)
      EXPECT_TRUE(torch::equal(update[i], ours.params[i].detach() - before[i])) << name << " step " << s;
  }
  EXPECT_GT(max_abs_diff(ours.snapshot(), start), 1e-3) << name << " did not move the parameters";
}

TEST(OptimizerPlugins, SgdNesterovWeightDecayFollowsTorch) {
  expect_follows_torch("sgd",
                       {{"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}, {"weight_decay", 1e-2}},
                       [](const std::vector<torch::Tensor>& p) {
                         return std::make_unique<torch::optim::SGD>(
                             p, torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true).weight_decay(1e-2));
                       });
}

TEST(OptimizerPlugins, AdamFollowsTorch) {
  expect_follows_torch("adam",
                       {{"lr", 0.01}, {"betas", std::vector<double>{0.8, 0.99}}, {"weight_decay", 1e-3},
                        {"amsgrad", true}},
                       [](const std::vector<torch::Tensor>& p) {
                         return std::make_unique<torch::optim::Adam>(
                             p, torch::optim::AdamOptions(0.01)
                                    .betas(std::make_tuple(0.8, 0.99))
                                    .weight_decay(1e-3)
                                    .amsgrad(true));
                       });
}

TEST(OptimizerPlugins, AdamWFollowsTorch) {
  expect_follows_torch("adamw", {{"lr", 0.01}}, [](const std::vector<torch::Tensor>& p) {
    return std::make_unique<torch::optim::AdamW>(p, torch::optim::AdamWOptions(0.01).weight_decay(0.01));
  });
}

TEST(OptimizerPlugins, LbfgsStrongWolfeFollowsTorch) {
  expect_follows_torch("lbfgs", {{"history_size", std::int64_t{5}}, {"max_iter", std::int64_t{4}}},
                       [](const std::vector<torch::Tensor>& p) {
                         return std::make_unique<torch::optim::LBFGS>(
                             p, torch::optim::LBFGSOptions(1.0).history_size(5).max_iter(4).line_search_fn(
                                    "strong_wolfe"));
                       });
}

TEST(OptimizerPlugins, WithoutTrackingLastUpdateStaysEmpty) {
  Problem problem = Problem::make();
  auto optimizer = make_optimizer("sgd");
  optimizer->bind(problem.params, /*track_updates=*/false);
  optimizer->step(problem.closure(), 1);
  EXPECT_TRUE(optimizer->last_update().empty());
}


// Three steps, a checkpoint, then three more: a fresh optimizer loaded from the
// checkpoint must take exactly the steps the uninterrupted one takes.
void expect_resumes_exactly(const std::string& name, const Overrides& overrides) {
  Problem uninterrupted = Problem::make();
  auto first = make_optimizer(name, overrides);
  first->bind(uninterrupted.params, true);
  for (int s = 1; s <= 3; ++s) first->step(uninterrupted.closure(), s);
  first->on_evaluation({{"val_loss", 1.0}});
  std::string bytes = save_bytes(*first);

  Problem resumed = uninterrupted.copy();
  auto second = make_optimizer(name, overrides);
  second->bind(resumed.params, true);
  load_bytes(*second, bytes);
  EXPECT_DOUBLE_EQ(second->learning_rate(), first->learning_rate());
  for (int s = 4; s <= 6; ++s) {
    double a = first->step(uninterrupted.closure(), s).item<double>();
    double b = second->step(resumed.closure(), s).item<double>();
    EXPECT_EQ(a, b) << name << " step " << s;
    EXPECT_DOUBLE_EQ(first->learning_rate(), second->learning_rate()) << name << " step " << s;
    for (std::size_t i = 0; i < uninterrupted.params.size(); ++i)
      EXPECT_TRUE(torch::equal(uninterrupted.params[i], resumed.params[i])) << name << " step " << s;
  }
}

TEST(OptimizerPlugins, SgdResumesExactly) {
  expect_resumes_exactly("sgd", {{"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}});
}
TEST(OptimizerPlugins, AdamResumesExactly) { expect_resumes_exactly("adam", {{"lr", 0.01}}); }
TEST(OptimizerPlugins, AdamWResumesExactly) {
  expect_resumes_exactly("adamw", {{"lr", 0.01}, {"schedule", std::string("warmup_cosine")},
                                   {"warmup_steps", std::int64_t{2}}, {"decay_steps", std::int64_t{8}}});
}
TEST(OptimizerPlugins, LbfgsResumesExactly) { expect_resumes_exactly("lbfgs", {{"max_iter", std::int64_t{3}}}); }

TEST(OptimizerPlugins, ResumeKeepsPlateauStateAndLearningRateScale) {
  Overrides overrides = {{"lr", 0.1},
                         {"schedule", std::string("plateau")},
                         {"plateau_patience", std::int64_t{1}},
                         {"plateau_factor", 0.5}};
  Problem problem = Problem::make();
  auto first = make_optimizer("sgd", overrides);
  first->bind(problem.params, true);
  first->scale_learning_rate(0.5);
  for (double v : {1.0, 2.0}) first->on_evaluation({{"val_loss", v}});  // best 1.0, one bad evaluation
  std::string bytes = save_bytes(*first);

  Problem resumed = problem.copy();
  auto second = make_optimizer("sgd", overrides);
  second->bind(resumed.params, true);
  load_bytes(*second, bytes);
  second->on_evaluation({{"val_loss", 3.0}});  // the second bad evaluation in a row: reduce
  second->step(resumed.closure(), 1);
  EXPECT_DOUBLE_EQ(second->learning_rate(), 0.1 * 0.5 * 0.5);
}

TEST(OptimizerPlugins, LoadingAnotherOptimizersCheckpointIsBadInput) {
  Problem problem = Problem::make();
  auto adam = make_optimizer("adam");
  adam->bind(problem.params, false);
  adam->step(problem.closure(), 1);
  std::string bytes = save_bytes(*adam);
  auto sgd = make_optimizer("sgd", {{"schedule", std::string("step")}});
  sgd->bind(problem.params, false);
  EXPECT_THROW(load_bytes(*sgd, bytes), hpt::BadInput);
}

TEST(OptimizerPlugins, LearningRateFollowsScheduleAndScale) {
  Problem problem = Problem::make();
  auto optimizer = make_optimizer("sgd", {{"lr", 0.2},
                                          {"schedule", std::string("warmup_cosine")},
                                          {"warmup_steps", std::int64_t{4}},
                                          {"decay_steps", std::int64_t{12}},
                                          {"min_lr_ratio", 0.1}});
  optimizer->bind(problem.params, false);
  optimizer->step(problem.closure(), 2);
  EXPECT_DOUBLE_EQ(optimizer->learning_rate(), 0.2 * 0.5);
  optimizer->step(problem.closure(), 8);
  EXPECT_DOUBLE_EQ(optimizer->learning_rate(), 0.2 * 0.55);
  optimizer->scale_learning_rate(0.5);
  optimizer->step(problem.closure(), 12);
  EXPECT_DOUBLE_EQ(optimizer->learning_rate(), 0.2 * 0.5 * 0.1);
}

// decay_steps = 0 means the budget (run.max_steps, the context's max_steps): the
// "AdamW with warmup + cosine decay to the budget" baseline (configs/fm16_adamw_cosine.toml).
TEST(OptimizerPlugins, WarmupCosineWithoutDecayStepsEndsAtTheBudget) {
  auto info = loader().find(hpt::PluginKind::Optimizer, "adamw");
  hpt::Options options = hpt::Options::defaults(info->options);
  options.set("lr", 0.2);
  options.set("schedule", std::string("warmup_cosine"));
  options.set("warmup_steps", std::int64_t{4});
  options.set("decay_steps", std::int64_t{0});
  hpt::PluginContext context;
  context.max_steps = 20;
  auto optimizer = loader().create<hpt::Optimizer>(*info, context, options);
  Problem problem = Problem::make();
  optimizer->bind(problem.params, false);
  optimizer->step(problem.closure(), 2);
  EXPECT_DOUBLE_EQ(optimizer->learning_rate(), 0.2 * 0.5);  // warmup: 2/4
  optimizer->step(problem.closure(), 12);
  EXPECT_DOUBLE_EQ(optimizer->learning_rate(), 0.2 * 0.5);  // half way from 4 to 20: cos(pi/2)
  optimizer->step(problem.closure(), 20);
  EXPECT_NEAR(optimizer->learning_rate(), 0.0, 1e-15);  // the budget: min_lr_ratio 0
}

TEST(OptimizerPlugins, ReportsPreClipGradNormAndClipsTheUpdate) {
  for (const char* clip : {"none", "norm", "agc"}) {
    Problem problem = Problem::make();
    Problem raw = problem.copy();
    raw.closure()();
    double raw_norm = std::sqrt(raw.params[0].grad().square().sum().item<double>() +
                                raw.params[1].grad().square().sum().item<double>());

    auto optimizer = make_optimizer("sgd", {{"lr", 0.1}, {"clip", std::string(clip)}, {"clip_norm", 0.01}});
    optimizer->bind(problem.params, true);
    optimizer->step(problem.closure(), 1);
    EXPECT_NEAR(optimizer->last_grad_norm(), raw_norm, 1e-6 * raw_norm) << clip;
    ASSERT_GT(raw_norm, 0.1);

    std::vector<torch::Tensor> grads = {raw.params[0].grad(), raw.params[1].grad()};
    if (std::string(clip) == "norm") {
      double scale = 0.01 / (raw_norm + 1e-6);
      for (std::size_t i = 0; i < grads.size(); ++i)
        EXPECT_TRUE(torch::allclose(optimizer->last_update()[i], -0.1 * scale * grads[i], 1e-4, 1e-6)) << clip;
      EXPECT_NEAR(hpt::global_grad_norm(problem.params), 0.01, 1e-6);  // the gradients the update used
      double update_norm = std::sqrt(optimizer->last_update()[0].square().sum().item<double>() +
                                     optimizer->last_update()[1].square().sum().item<double>());
      EXPECT_NEAR(update_norm, 0.1 * 0.01, 1e-6);
    } else if (std::string(clip) == "none") {
      for (std::size_t i = 0; i < grads.size(); ++i)
        EXPECT_TRUE(torch::allclose(optimizer->last_update()[i], -0.1 * grads[i], 1e-4, 1e-6)) << clip;
    }
  }
}

TEST(OptimizerPlugins, BadOptionsNameTheOption) {
  try {
    make_optimizer("sgd", {{"nesterov", true}});
    FAIL() << "nesterov without momentum was accepted";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("'nesterov'"));
  }
  try {
    make_optimizer("adamw", {{"schedule", std::string("warmup_cosine")}, {"warmup_steps", std::int64_t{10}}});
    FAIL() << "warmup_cosine without decay_steps was accepted";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("'decay_steps'"));
  }
  try {
    make_optimizer("adam", {{"betas", std::vector<double>{0.9}}});
    FAIL() << "one beta was accepted";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("'betas'"));
  }
  try {
    make_optimizer("sgd", {{"clip", std::string("value")}});
    FAIL() << "an unknown clip mode was accepted";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("'clip'"));
  }
}

TEST(OptimizerPlugins, DeclareTheCommonOptionsWithTheirOwnLrDefault) {
  for (auto [name, lr] : std::vector<std::pair<std::string, double>>{
           {"sgd", 0.01}, {"adam", 1e-3}, {"adamw", 1e-3}, {"lbfgs", 1.0}}) {
    auto info = loader().find(hpt::PluginKind::Optimizer, name);
    hpt::Options defaults = hpt::Options::defaults(info->options);
    EXPECT_DOUBLE_EQ(defaults.get_float("lr"), lr) << name;
    EXPECT_EQ(defaults.get_string("schedule"), "constant") << name;
    EXPECT_EQ(defaults.get_string("clip"), "none") << name;
    EXPECT_FALSE(defaults.get_bool("centralize")) << name;
  }
  auto adamw = loader().find(hpt::PluginKind::Optimizer, "adamw");
  EXPECT_DOUBLE_EQ(hpt::Options::defaults(adamw->options).get_float("weight_decay"), 0.01);
}

// --- learning-rate schedules -------------------------------------------------------

hpt::LrSchedule schedule(hpt::LrScheduleConfig::Kind kind, const std::function<void(hpt::LrScheduleConfig&)>& set) {
  hpt::LrScheduleConfig config;
  config.kind = kind;
  set(config);
  return hpt::LrSchedule(config);
}

TEST(LrSchedule, ConstantIsOne) {
  auto s = schedule(hpt::LrScheduleConfig::Kind::Constant, [](auto&) {});
  EXPECT_EQ(s.factor(1), 1.0);
  EXPECT_EQ(s.factor(100000), 1.0);
}

TEST(LrSchedule, WarmupCosineMatchesHandValues) {
  auto s = schedule(hpt::LrScheduleConfig::Kind::WarmupCosine, [](auto& c) {
    c.warmup_steps = 4;
    c.decay_steps = 12;
    c.min_lr_ratio = 0.1;
  });
  EXPECT_DOUBLE_EQ(s.factor(1), 0.25);
  EXPECT_DOUBLE_EQ(s.factor(2), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(3), 0.75);
  EXPECT_DOUBLE_EQ(s.factor(4), 1.0);
  EXPECT_NEAR(s.factor(6), 0.1 + 0.9 * 0.5 * (1.0 + std::sqrt(0.5)), 1e-12);  // a quarter into the decay
  EXPECT_NEAR(s.factor(8), 0.55, 1e-12);                                      // half way
  EXPECT_NEAR(s.factor(12), 0.1, 1e-12);
  EXPECT_NEAR(s.factor(50), 0.1, 1e-12);
}

TEST(LrSchedule, WarmupCosineWithoutWarmupStartsAtOne) {
  auto s = schedule(hpt::LrScheduleConfig::Kind::WarmupCosine, [](auto& c) { c.decay_steps = 10; });
  EXPECT_DOUBLE_EQ(s.factor(0), 1.0);
  EXPECT_NEAR(s.factor(5), 0.5, 1e-12);
  EXPECT_NEAR(s.factor(10), 0.0, 1e-12);
}

TEST(LrSchedule, StepMultipliesByGammaEveryStepSize) {
  auto s = schedule(hpt::LrScheduleConfig::Kind::Step, [](auto& c) {
    c.step_size = 3;
    c.gamma = 0.5;
  });
  EXPECT_DOUBLE_EQ(s.factor(1), 1.0);
  EXPECT_DOUBLE_EQ(s.factor(3), 1.0);
  EXPECT_DOUBLE_EQ(s.factor(4), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(6), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(7), 0.25);
  EXPECT_DOUBLE_EQ(s.factor(10), 0.125);
}

TEST(LrSchedule, PlateauReducesOnlyAfterPatienceBadEvaluations) {
  auto s = schedule(hpt::LrScheduleConfig::Kind::Plateau, [](auto& c) {
    c.plateau_patience = 2;
    c.plateau_factor = 0.5;
    c.plateau_threshold = 0.1;  // better means below 0.9 * best
  });
  auto eval = [&](double v) { s.on_evaluation({{"val_loss", v}, {"val_accuracy", 0.5}}); };
  eval(1.0);  // the first evaluation sets the best
  EXPECT_EQ(s.factor(1), 1.0);
  eval(0.95);  // within the threshold: bad 1
  eval(0.92);  // bad 2 = patience: not yet
  EXPECT_EQ(s.plateau_bad_evaluations(), 2);
  EXPECT_EQ(s.factor(1), 1.0);
  eval(0.91);  // bad 3 > patience: reduce, count restarts
  EXPECT_EQ(s.factor(1), 0.5);
  EXPECT_EQ(s.plateau_bad_evaluations(), 0);
  eval(0.95);
  eval(0.95);
  EXPECT_EQ(s.factor(1), 0.5);
  eval(0.5);  // an improvement resets the count
  EXPECT_EQ(s.plateau_best(), 0.5);
  eval(0.6);
  eval(0.6);
  EXPECT_EQ(s.factor(1), 0.5);
  eval(0.6);
  EXPECT_EQ(s.factor(1), 0.25);
}

TEST(LrSchedule, PlateauMaxModeAndFloor) {
  auto s = schedule(hpt::LrScheduleConfig::Kind::Plateau, [](auto& c) {
    c.plateau_metric = "val_accuracy";
    c.plateau_maximize = true;
    c.plateau_patience = 0;
    c.plateau_factor = 0.1;
    c.plateau_threshold = 0.0;
    c.min_lr_ratio = 0.05;
  });
  auto eval = [&](double v) { s.on_evaluation({{"val_accuracy", v}}); };
  eval(0.5);
  eval(0.6);  // better
  EXPECT_EQ(s.factor(1), 1.0);
  eval(0.6);  // not strictly better: patience 0 reduces at once
  EXPECT_DOUBLE_EQ(s.factor(1), 0.1);
  eval(0.55);  // would be 0.01, held at the floor
  EXPECT_DOUBLE_EQ(s.factor(1), 0.05);
}

TEST(LrSchedule, PlateauOnAMissingMetricIsBadInput) {
  auto s = schedule(hpt::LrScheduleConfig::Kind::Plateau, [](auto&) {});
  try {
    s.on_evaluation({{"val_accuracy", 0.5}});
    FAIL() << "a missing metric was accepted";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("'plateau_metric'"));
    EXPECT_THAT(e.what(), HasSubstr("val_accuracy"));
  }
}

TEST(LrSchedule, StateRoundTripsThroughAnArchive) {
  auto make = [] {
    return schedule(hpt::LrScheduleConfig::Kind::Plateau, [](auto& c) { c.plateau_patience = 0; });
  };
  auto s = make();
  for (double v : {1.0, 2.0, 0.5, 0.7}) s.on_evaluation({{"val_loss", v}});
  torch::serialize::OutputArchive out;
  hpt::StateWriter out_state(out, /*copy=*/true);
  s.save(out_state);
  std::ostringstream os;
  out.save_to(os);
  torch::serialize::InputArchive in;
  std::istringstream is(os.str());
  in.load_from(is);
  auto t = make();
  t.load(in);
  EXPECT_EQ(t.plateau_best(), 0.5);
  EXPECT_EQ(t.plateau_bad_evaluations(), s.plateau_bad_evaluations());
  EXPECT_DOUBLE_EQ(t.factor(1), 0.01);
}

// --- gradient clipping and centralisation -----------------------------------------

torch::Tensor with_grad(torch::Tensor value, torch::Tensor grad) {
  value.requires_grad_();
  value.mutable_grad() = grad;
  return value;
}

TEST(GradientClipping, GlobalNormAndNormClipping) {
  auto a = with_grad(torch::zeros({2}), torch::tensor({3.0f, 4.0f}));
  auto b = with_grad(torch::zeros({1, 1}), torch::tensor({{12.0f}}));
  auto no_grad = torch::zeros({3}).requires_grad_();
  std::vector<torch::Tensor> params = {a, b, no_grad};
  EXPECT_NEAR(hpt::global_grad_norm(params), 13.0, 1e-6);

  EXPECT_NEAR(hpt::clip_grad_norm(params, 20.0), 13.0, 1e-6);  // below the limit: unchanged
  EXPECT_TRUE(torch::equal(a.grad(), torch::tensor({3.0f, 4.0f})));

  EXPECT_NEAR(hpt::clip_grad_norm(params, 6.5), 13.0, 1e-6);  // returns the norm before clipping
  EXPECT_TRUE(torch::allclose(a.grad(), torch::tensor({1.5f, 2.0f}), 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(b.grad(), torch::tensor({{6.0f}}), 1e-6, 1e-6));
  EXPECT_NEAR(hpt::global_grad_norm(params), 6.5, 1e-5);
  EXPECT_FALSE(no_grad.grad().defined());
}

TEST(GradientClipping, AdaptiveClipsUnitWise) {
  // Rows of a 2-d weight are units; a 1-d bias is one unit.
  auto w = with_grad(torch::tensor({{3.0f, 4.0f}, {0.0f, 0.0001f}, {1.0f, 0.0f}}),
                     torch::tensor({{1.0f, 0.0f}, {5.0f, 0.0f}, {0.05f, 0.0f}}));
  auto b = with_grad(torch::tensor({0.0f, 2.0f}), torch::tensor({0.1f, 0.0f}));
  hpt::clip_grad_adaptive({w, b}, 0.1, 1e-3);
  // row 0: |W| = 5, limit 0.5, |G| = 1: scaled to 0.5
  // row 1: |W| = 1e-4 < eps, limit 0.1 * 1e-3 = 1e-4, |G| = 5: scaled to 1e-4
  // row 2: |W| = 1, limit 0.1, |G| = 0.05: unchanged
  auto expected_w = torch::tensor({{0.5f, 0.0f}, {1e-4f, 0.0f}, {0.05f, 0.0f}});
  EXPECT_TRUE(torch::allclose(w.grad(), expected_w, 1e-5, 1e-9)) << w.grad();
  // bias: |b| = 2, limit 0.2, |G| = 0.1: unchanged
  EXPECT_TRUE(torch::equal(b.grad(), torch::tensor({0.1f, 0.0f})));

  auto small = with_grad(torch::tensor({1.0f}), torch::tensor({4.0f}));  // limit 0.1
  hpt::clip_grad_adaptive({small}, 0.1);
  EXPECT_TRUE(torch::allclose(small.grad(), torch::tensor({0.1f}), 1e-5, 1e-9));
}

TEST(GradientClipping, CentralizationSubtractsTheRowMean) {
  auto w = with_grad(torch::zeros({2, 3}), torch::tensor({{1.0f, 2.0f, 3.0f}, {4.0f, 4.0f, 4.0f}}));
  auto conv = with_grad(torch::zeros({2, 2, 1, 1}), torch::tensor({1.0f, 3.0f, 2.0f, 2.0f}).reshape({2, 2, 1, 1}));
  auto bias = with_grad(torch::zeros({2}), torch::tensor({1.0f, 3.0f}));
  hpt::centralize_gradients({w, conv, bias});
  EXPECT_TRUE(torch::equal(w.grad(), torch::tensor({{-1.0f, 0.0f, 1.0f}, {0.0f, 0.0f, 0.0f}})));
  EXPECT_TRUE(torch::equal(conv.grad(), torch::tensor({-1.0f, 1.0f, 0.0f, 0.0f}).reshape({2, 2, 1, 1})));
  EXPECT_TRUE(torch::equal(bias.grad(), torch::tensor({1.0f, 3.0f})));  // 1-d: left alone
}

TEST(OptimizerPlugins, CentralizeAppliesBeforeTheUpdate) {
  Problem problem = Problem::make();
  Problem raw = problem.copy();
  raw.closure()();
  hpt::centralize_gradients(raw.params);
  auto optimizer = make_optimizer("sgd", {{"lr", 0.1}, {"centralize", true}});
  optimizer->bind(problem.params, true);
  optimizer->step(problem.closure(), 1);
  EXPECT_TRUE(torch::allclose(optimizer->last_update()[0], -0.1 * raw.params[0].grad(), 1e-4, 1e-6));
  EXPECT_NEAR(optimizer->last_update()[0].sum(1).abs().max().item<double>(), 0.0, 1e-6);  // rows sum to 0
}

}  // namespace
