// Hybrid predictive training: the dynamics model "linear", the correction strategy
// "residual" and the phase controller "adaptive", loaded as plugins and driven with
// synthetic inputs; then through the engine, where a hybrid run reaches its target with
// fewer backward passes than plain full training and leaves the optimizer state alone
// across a predicted phase.
#include <cmath>
#include <sstream>

#include "engine/engine.hpp"
#include "hpt/torch_compat.hpp"
#include "hpt/correction.hpp"
#include "hpt/dynamics.hpp"
#include "hpt/phase.hpp"
#include "config/manifest.hpp"
#include "plugins/plugin_loader.hpp"
#include "test_support.hpp"

namespace {

using hpt::test::make_plugin;
using hpt::test::Overrides;

std::string archive_bytes(const hpt::Plugin& plugin) {
  torch::serialize::OutputArchive archive;
  hpt::StateWriter archive_state(archive, /*copy=*/true);
  plugin.save(archive_state);
  std::ostringstream os;
  archive.save_to(os);
  return os.str();
}

void load_bytes(hpt::Plugin& plugin, const std::string& bytes) {
  torch::serialize::InputArchive archive;
  std::istringstream is(bytes);
  archive.load_from(is);
  plugin.load(archive);
}

// Two groups: "a" = {a.weight [16, 8], a.bias [16]}, "b" = {b.weight [64]}.
hpt::ParameterLayout two_groups() {
  hpt::ParameterLayout l;
  l.names = {"a.weight", "a.bias", "b.weight"};
  l.shapes = {{16, 8}, {16}, {64}};
  l.group_names = {"a", "b"};
  l.groups = {{0, 1}, {2}};
  l.group_of = {0, 0, 1};
  return l;
}

hpt::StepRecord record_of(std::int64_t step, double loss, const std::vector<torch::Tensor>& update) {
  hpt::ParameterLayout l = two_groups();
  hpt::StepRecord r;
  r.step = step;
  r.loss = loss;
  r.update = update;
  r.group_update_norms.assign(l.groups.size(), 0.0);
  for (std::size_t p = 0; p < update.size(); ++p)
    r.group_update_norms[l.group_of[p]] += update[p].square().sum().item<double>();
  for (auto& n : r.group_update_norms) n = std::sqrt(n);
  return r;
}

std::vector<torch::Tensor> constant_update() {
  return {torch::full({16, 8}, 0.01), torch::full({16}, -0.02), torch::linspace(-0.05, 0.05, 64)};
}

std::vector<torch::Tensor> random_update(torch::Generator& gen) {
  return {torch::randn({16, 8}, gen) * 0.01, torch::randn({16}, gen) * 0.01, torch::randn({64}, gen) * 0.01};
}

std::shared_ptr<hpt::DynamicsModel> linear(const Overrides& overrides = {}) {
  auto m = make_plugin<hpt::DynamicsModel>(hpt::PluginKind::DynamicsModel, "linear", overrides);
  m->bind(two_groups());
  return m;
}

double max_abs_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

TEST(LinearDynamics, ConstantUpdatesGiveThatDirectionAtScaleOneWithHighConfidence) {
  auto m = linear();
  for (int t = 1; t <= 30; ++t) m->observe(record_of(t, 2.0 - 0.01 * t, constant_update()));
  hpt::Forecast f = m->forecast(8);
  ASSERT_EQ(f.horizon(), 8);
  EXPECT_LT(max_abs_diff(f.direction, constant_update()), 1e-7);
  for (const auto& step : f.scale)
    for (double s : step) EXPECT_NEAR(s, 1.0, 1e-6);
  EXPECT_GT(f.confidence, 0.95);
  // The loss path continues the line 2.0 - 0.01 t from step 31, with tight bounds.
  for (std::size_t i = 0; i < 8; ++i) {
    EXPECT_NEAR(f.loss[i], 2.0 - 0.01 * static_cast<double>(31 + i), 1e-9);
    EXPECT_LE(f.loss_low[i], f.loss[i]);
    EXPECT_GE(f.loss_high[i], f.loss[i]);
    EXPECT_LT(f.loss_high[i] - f.loss_low[i], 1e-6);
  }
}

TEST(LinearDynamics, RandomUpdatesGiveLowConfidenceAndSmallScales) {
  auto m = linear();
  torch::Generator gen = hpt::make_cpu_generator(3);
  for (int t = 1; t <= 80; ++t) m->observe(record_of(t, 1.0, random_update(gen)));
  hpt::Forecast f = m->forecast(4);
  EXPECT_LT(f.confidence, 0.3);
  for (double s : f.scale.empty() ? std::vector<double>{} : f.scale[0]) EXPECT_LT(s, 0.5);
}

TEST(LinearDynamics, ShrinkingUpdatesDecayTheScaleOverTheHorizon) {
  auto m = linear();
  std::vector<torch::Tensor> u = constant_update();
  for (int t = 1; t <= 40; ++t) {
    std::vector<torch::Tensor> scaled;
    for (const auto& x : u) scaled.push_back(x * std::pow(0.98, t));
    m->observe(record_of(t, 1.0, scaled));
  }
  hpt::Forecast f = m->forecast(5);
  ASSERT_EQ(f.horizon(), 5);
  for (std::size_t g = 0; g < 2; ++g) EXPECT_NEAR(f.scale[1][g] / f.scale[0][g], 0.98, 1e-6);
}

TEST(LinearDynamics, NoConfidenceBeforeMinObservations) {
  auto m = linear({{"min_observations", std::int64_t{10}}});
  for (int t = 1; t <= 9; ++t) m->observe(record_of(t, 1.0, constant_update()));
  EXPECT_EQ(m->confidence(), 0.0);
  EXPECT_EQ(m->forecast(5).confidence, 0.0);
  m->observe(record_of(10, 1.0, constant_update()));
  EXPECT_GT(m->confidence(), 0.0);
  EXPECT_EQ(m->forecast(5).confidence, m->confidence());
}

TEST(LinearDynamics, SaveLoadContinuesBitIdentically) {
  torch::Generator gen = hpt::make_cpu_generator(5);
  std::vector<hpt::StepRecord> stream;
  for (int t = 1; t <= 40; ++t) {
    std::vector<torch::Tensor> u = constant_update();
    std::vector<torch::Tensor> r = random_update(gen);
    for (std::size_t p = 0; p < u.size(); ++p) u[p] = u[p] + 0.5 * r[p];
    stream.push_back(record_of(t, 1.0 / t + 0.01 * std::sin(t), u));
  }
  auto a = linear();
  for (int t = 0; t < 25; ++t) a->observe(stream[t]);
  auto b = linear();
  load_bytes(*b, archive_bytes(*a));
  for (int t = 25; t < 40; ++t) {
    a->observe(stream[t]);
    b->observe(stream[t]);
  }
  hpt::Forecast fa = a->forecast(6), fb = b->forecast(6);
  EXPECT_EQ(fa.scale, fb.scale);
  EXPECT_EQ(fa.loss, fb.loss);
  EXPECT_EQ(fa.loss_high, fb.loss_high);
  EXPECT_EQ(fa.confidence, fb.confidence);
  EXPECT_EQ(max_abs_diff(fa.direction, fb.direction), 0.0);
  EXPECT_EQ(archive_bytes(*a), archive_bytes(*b));
}

// average_decay: a phase starts from the weights' moving average, moved forward by its lag.
TEST(LinearDynamics, NoAverageNoOffset) {
  auto m = linear();
  for (int t = 1; t <= 30; ++t) m->observe(record_of(t, 1.0, constant_update()));
  EXPECT_TRUE(m->forecast(4).offset.empty());
}

TEST(LinearDynamics, ASteadyTrajectoryStartsFromTheWeightsThemselves) {
  auto m = linear({{"average_decay", 0.9}});
  for (int t = 1; t <= 250; ++t) m->observe(record_of(t, 1.0, constant_update()));
  hpt::Forecast f = m->forecast(4);
  ASSERT_EQ(f.offset.size(), 3u);
  for (const auto& o : f.offset) EXPECT_LT(o.abs().max().item<double>(), 1e-6);
  // After a kept phase of 10 steps the model knows the weights are on the average.
  m->observe(record_of(261, 1.0, constant_update()));
  for (const auto& o : m->forecast(4).offset) EXPECT_LT(o.abs().max().item<double>(), 1e-6);
}

TEST(LinearDynamics, ABouncingTrajectoryStartsFromTheMiddle) {
  // Group "a" drifts steadily; group "b" bounces between w and w + a. A phase starts
  // where the average of the recent weights is: for "a" the weights themselves, for "b"
  // 0.9 / 1.9 of the way back from w + a (the direction adds nothing there: its updates
  // have no consistent drift, so its step scale is 0).
  auto m = linear({{"average_decay", 0.9}});
  const std::vector<torch::Tensor> drift = constant_update();
  const torch::Tensor a = torch::linspace(-0.01, 0.01, 64);
  for (int t = 1; t <= 251; ++t) m->observe(record_of(t, 1.0, {drift[0], drift[1], t % 2 == 1 ? a : -a}));
  hpt::Forecast f = m->forecast(4);
  ASSERT_EQ(f.offset.size(), 3u);
  EXPECT_LT(f.offset[0].abs().max().item<double>(), 1e-6);
  EXPECT_LT(f.offset[1].abs().max().item<double>(), 1e-6);
  EXPECT_EQ(f.scale[0][1], 0.0);
  EXPECT_TRUE(torch::allclose(f.offset[2], a * (-0.9 / 1.9), 1e-5, 1e-9));
}

TEST(LinearDynamics, SaveLoadKeepsTheAverage) {
  torch::Generator gen = hpt::make_cpu_generator(7);
  auto a = linear({{"average_decay", 0.9}});
  auto b = linear({{"average_decay", 0.9}});
  for (int t = 1; t <= 30; ++t) a->observe(record_of(t, 1.0, random_update(gen)));
  load_bytes(*b, archive_bytes(*a));
  std::vector<torch::Tensor> u = random_update(gen);
  a->observe(record_of(40, 1.0, u));  // after a kept phase
  b->observe(record_of(40, 1.0, u));
  EXPECT_EQ(max_abs_diff(a->forecast(3).offset, b->forecast(3).offset), 0.0);
  EXPECT_EQ(archive_bytes(*a), archive_bytes(*b));
}

TEST(LinearDynamics, RejectsARecordWithoutUpdates) {
  auto m = linear();
  EXPECT_THROW(m->observe(record_of(1, 1.0, {})), hpt::RunError);
}

// A flat forecast: loss 1.0 after every step, upper bound 1.01, two groups at scale 1.
hpt::Forecast flat_forecast(std::int64_t horizon) {
  hpt::Forecast f;
  f.direction = constant_update();
  f.scale.assign(static_cast<std::size_t>(horizon), {1.0, 1.0});
  f.loss.assign(static_cast<std::size_t>(horizon), 1.0);
  f.loss_low.assign(static_cast<std::size_t>(horizon), 0.99);
  f.loss_high.assign(static_cast<std::size_t>(horizon), 1.01);
  f.confidence = 0.8;
  return f;
}

std::shared_ptr<hpt::CorrectionStrategy> residual(const Overrides& overrides = {}) {
  Overrides o = {{"rollback_tolerance", 0.05}};
  for (const auto& [k, v] : overrides) o[k] = v;
  return make_plugin<hpt::CorrectionStrategy>(hpt::PluginKind::CorrectionStrategy, "residual", o);
}

TEST(ResidualCorrection, ContinuesStopsAndRollsBackAtTheRightProbeLosses) {
  auto c = residual();
  hpt::Forecast f = c->adjust(flat_forecast(10));
  EXPECT_EQ(c->judge(f, 5, 0.99, 1.0), hpt::Verdict::Continue);   // better than before
  EXPECT_EQ(c->judge(f, 5, 1.005, 1.0), hpt::Verdict::Continue);  // worse, inside the bounds
  EXPECT_EQ(c->judge(f, 5, 1.02, 1.0), hpt::Verdict::Stop);       // above the bound, inside the tolerance
  EXPECT_EQ(c->judge(f, 5, 1.06, 1.0), hpt::Verdict::Rollback);   // past the 5 % tolerance
}

TEST(ResidualCorrection, BoundsAreReadRelativeToTheLossBeforeThePhase) {
  auto c = residual();
  hpt::Forecast f = c->adjust(flat_forecast(10));
  // The probe batch sits at 0.5 while the training loss path is at 1.0: only the change counts.
  EXPECT_EQ(c->judge(f, 3, 0.503, 0.5), hpt::Verdict::Continue);
  EXPECT_EQ(c->judge(f, 3, 0.52, 0.5), hpt::Verdict::Stop);
}

TEST(ResidualCorrection, AdjustShrinksScalesAndConfidenceAfterOvershooting) {
  auto c = residual({{"shrink", 0.5}, {"trust_penalty", 0.5}});
  hpt::Forecast before = c->adjust(flat_forecast(4));
  EXPECT_EQ(before.scale[0][0], 1.0);
  EXPECT_DOUBLE_EQ(before.confidence, 0.8);
  EXPECT_EQ(c->judge(before, 4, 1.2, 1.0), hpt::Verdict::Rollback);
  hpt::Forecast after = c->adjust(flat_forecast(4));
  for (const auto& step : after.scale)
    for (double s : step) EXPECT_DOUBLE_EQ(s, 0.5);
  EXPECT_LT(after.confidence, before.confidence);
}

TEST(ResidualCorrection, APhaseThatEndsWorseThanItStartedShrinksTheScales) {
  auto c = residual({{"shrink", 0.5}});
  hpt::Forecast f = c->adjust(flat_forecast(4));
  EXPECT_EQ(c->judge(f, 2, 1.005, 1.0), hpt::Verdict::Continue);  // mid-phase: no change yet
  EXPECT_EQ(c->adjust(flat_forecast(4)).scale[0][0], 1.0);
  EXPECT_EQ(c->judge(f, 4, 1.005, 1.0), hpt::Verdict::Continue);  // the last step, worse than before
  hpt::Forecast next = c->adjust(flat_forecast(4));
  EXPECT_DOUBLE_EQ(next.scale[0][0], 0.5);
  EXPECT_EQ(c->judge(next, 4, 0.99, 1.0), hpt::Verdict::Continue);  // ended better: kept as is
  EXPECT_DOUBLE_EQ(c->adjust(flat_forecast(4)).scale[0][0], 0.5);
}

TEST(ResidualCorrection, RealUpdatesShorterThanTheForecastShrinkTheScales) {
  auto c = residual({{"factor_rate", 0.5}});
  hpt::Forecast f = c->adjust(flat_forecast(4));
  std::vector<torch::Tensor> half;
  for (const auto& d : f.direction) half.push_back(d * 0.5);
  c->observe_real(record_of(10, 1.0, half), f);
  hpt::Forecast next = c->adjust(flat_forecast(4));
  EXPECT_NEAR(next.scale[0][0], 0.75, 1e-9);  // 1 + 0.5 * (0.5 - 1)
  EXPECT_NEAR(next.confidence, 0.8, 1e-9);    // same direction: agreement stays 1
  std::vector<torch::Tensor> opposite;
  for (const auto& d : f.direction) opposite.push_back(-d);
  c->observe_real(record_of(11, 1.0, opposite), next);
  EXPECT_LT(c->adjust(flat_forecast(4)).confidence, 0.8);  // disagreement lowers confidence
}

TEST(ResidualCorrection, SaveLoadRoundTrip) {
  auto a = residual();
  hpt::Forecast f = a->adjust(flat_forecast(4));
  a->judge(f, 2, 1.02, 1.0);
  std::vector<torch::Tensor> u;
  for (const auto& d : f.direction) u.push_back(d * 1.3);
  a->observe_real(record_of(3, 1.0, u), f);
  auto b = residual();
  load_bytes(*b, archive_bytes(*a));
  hpt::Forecast fa = a->adjust(flat_forecast(4)), fb = b->adjust(flat_forecast(4));
  EXPECT_EQ(fa.scale, fb.scale);
  EXPECT_EQ(fa.confidence, fb.confidence);
  EXPECT_EQ(archive_bytes(*a), archive_bytes(*b));
}

TEST(ResidualCorrection, RejectsInconsistentFactorBounds) {
  EXPECT_THROW(residual({{"min_factor", 2.0}, {"max_factor", 1.0}}), hpt::BadInput);
}

std::shared_ptr<hpt::PhaseController> adaptive() {
  return make_plugin<hpt::PhaseController>(hpt::PluginKind::PhaseController, "adaptive",
                                    {{"warmup_steps", std::int64_t{20}},
                                     {"min_real_steps", std::int64_t{3}},
                                     {"initial_horizon", std::int64_t{8}},
                                     {"min_horizon", std::int64_t{2}},
                                     {"max_horizon", std::int64_t{20}},
                                     {"grow", 2.0},
                                     {"shrink", 0.5},
                                     {"confidence_threshold", 0.4}});
}

hpt::TrainingState state_at(std::int64_t real_steps, std::int64_t since_phase, double confidence) {
  hpt::TrainingState s;
  s.real_steps = real_steps;
  s.step = real_steps;
  s.max_steps = 100000;
  s.steps_since_phase = since_phase;
  s.confidence = confidence;
  return s;
}

hpt::PhaseOutcome outcome(std::int64_t planned, std::int64_t applied, bool rolled_back, double after) {
  hpt::PhaseOutcome o;
  o.planned = planned;
  o.applied = applied;
  o.rolled_back = rolled_back;
  o.loss_before = 1.0;
  o.loss_after = after;
  return o;
}

void expect_decision(const hpt::PhaseDecision& d, hpt::PhaseKind kind, std::int64_t length) {
  EXPECT_EQ(d.kind, kind) << hpt::to_string(d.kind);
  EXPECT_EQ(d.length, length);
}

TEST(AdaptivePhase, WarmsUpThenGrowsAndShrinksTheHorizon) {
  auto p = adaptive();
  expect_decision(p->decide(state_at(0, 0, 0.0)), hpt::PhaseKind::Full, 20);
  expect_decision(p->decide(state_at(15, 15, 0.9)), hpt::PhaseKind::Full, 5);
  expect_decision(p->decide(state_at(20, 20, 0.9)), hpt::PhaseKind::Predict, 8);
  p->phase_ended(outcome(8, 8, false, 0.9));  // paid off: 8 -> 16
  // One Correct step since the phase: two more real steps first.
  expect_decision(p->decide(state_at(21, 1, 0.9)), hpt::PhaseKind::Full, 2);
  expect_decision(p->decide(state_at(23, 3, 0.9)), hpt::PhaseKind::Predict, 16);
  p->phase_ended(outcome(16, 16, false, 0.8));  // paid off: 16 -> 32, capped at 20
  expect_decision(p->decide(state_at(26, 3, 0.9)), hpt::PhaseKind::Predict, 20);
  p->phase_ended(outcome(20, 7, false, 0.95));  // stopped early: 20 -> 10
  expect_decision(p->decide(state_at(29, 3, 0.9)), hpt::PhaseKind::Predict, 10);
  p->phase_ended(outcome(10, 10, true, 1.3));  // rolled back: 10 -> 5
  expect_decision(p->decide(state_at(32, 3, 0.9)), hpt::PhaseKind::Predict, 5);
  p->phase_ended(outcome(5, 5, false, 1.01));  // kept, but the loss got worse: 5 -> 2.5
  expect_decision(p->decide(state_at(35, 3, 0.9)), hpt::PhaseKind::Predict, 3);
  p->phase_ended(outcome(3, 0, true, 2.0));  // 2.5 -> 1.25, floored at 2
  expect_decision(p->decide(state_at(38, 3, 0.9)), hpt::PhaseKind::Predict, 2);
}

TEST(AdaptivePhase, PayoffToleranceCountsASmallProbeRiseAsPaidOff) {
  auto p = make_plugin<hpt::PhaseController>(hpt::PluginKind::PhaseController, "adaptive",
                                             {{"warmup_steps", std::int64_t{0}},
                                              {"min_real_steps", std::int64_t{1}},
                                              {"initial_horizon", std::int64_t{8}},
                                              {"max_horizon", std::int64_t{100}},
                                              {"grow", 2.0},
                                              {"shrink", 0.5},
                                              {"confidence_threshold", 0.0},
                                              {"payoff_tolerance", 0.02}});
  p->phase_ended(outcome(8, 8, false, 1.019));  // within 2% of 1.0: paid off, 8 -> 16
  expect_decision(p->decide(state_at(10, 1, 0.5)), hpt::PhaseKind::Predict, 16);
  p->phase_ended(outcome(16, 16, false, 1.021));  // beyond 2%: 16 -> 8
  expect_decision(p->decide(state_at(11, 1, 0.5)), hpt::PhaseKind::Predict, 8);
}

TEST(AdaptivePhase, PredictsOnlyAboveTheConfidenceThreshold) {
  auto p = adaptive();
  expect_decision(p->decide(state_at(20, 20, 0.39)), hpt::PhaseKind::Full, 1);
  expect_decision(p->decide(state_at(21, 21, 0.0)), hpt::PhaseKind::Full, 1);
  expect_decision(p->decide(state_at(22, 22, 0.4)), hpt::PhaseKind::Predict, 8);
}

TEST(AdaptivePhase, SaveLoadRoundTrip) {
  auto a = adaptive();
  a->phase_ended(outcome(8, 8, false, 0.9));
  auto b = adaptive();
  load_bytes(*b, archive_bytes(*a));
  expect_decision(b->decide(state_at(23, 3, 0.9)), hpt::PhaseKind::Predict, 16);
  EXPECT_EQ(archive_bytes(*a), archive_bytes(*b));
}

TEST(AdaptivePhase, RejectsAnInitialHorizonOutsideItsBounds) {
  EXPECT_THROW(make_plugin<hpt::PhaseController>(hpt::PluginKind::PhaseController, "adaptive",
                                          {{"initial_horizon", std::int64_t{500}}, {"max_horizon", std::int64_t{100}}}),
               hpt::BadInput);
}

// ---------------------------------------------------------------------------------
// Through the engine, on the synthetic task.

const char* kSyntheticRun = R"(
[run]
name = "hybrid-test"
seed = 0
max_steps = 4000
eval_every = 20
probe_interval = 5
target = { metric = "val_loss", value = 0.0155 }

[task]
plugin = "synthetic"
inputs = 16
outputs = 4
hidden = [32]
samples = 1024
batch_size = 32
noise = 0.1

[optimizer]
plugin = "adamw"
lr = 2e-3

[backend]
plugin = "cpu"
)";

const char* kHybridSections = R"(
[dynamics]
plugin = "linear"

[correction]
plugin = "residual"

[phase]
plugin = "adaptive"
warmup_steps = 100
)";

std::unique_ptr<hpt::host::Engine> engine_for(const std::string& text) {
  hpt::host::Manifest m = hpt::host::Manifest::parse(text, "hybrid_test.toml");
  hpt::host::EngineOptions options;
  options.write_run_dir = false;
  options.progress = 0;
  auto& loader = hpt::test::built_plugins();
  return std::make_unique<hpt::host::Engine>(hpt::host::resolve(m, loader), loader, options);
}

TEST(HybridEngine, ReachesTheTargetWithFewerBackwardPassesThanFullTraining) {
  hpt::host::RunSummary full = engine_for(kSyntheticRun)->run();
  hpt::host::RunSummary hybrid = engine_for(std::string(kSyntheticRun) + kHybridSections)->run();
  ASSERT_TRUE(full.backward_passes_to_target.has_value()) << "the full run missed its target";
  ASSERT_TRUE(hybrid.backward_passes_to_target.has_value()) << "the hybrid run missed its target";
  EXPECT_GT(hybrid.predicted_steps, 0);
  EXPECT_LT(*hybrid.backward_passes_to_target, *full.backward_passes_to_target);
}

TEST(HybridEngine, APredictedPhaseLeavesTheOptimizerStateAlone) {
  auto engine = engine_for(std::string(kSyntheticRun) + kHybridSections);
  for (int i = 0; i < 60; ++i) engine->real_step(hpt::StepKind::Full);
  const std::string before = archive_bytes(engine->optimizer());
  ASSERT_GT(engine->predicted_phase(10), 0);
  EXPECT_EQ(archive_bytes(engine->optimizer()), before);
}

}  // namespace
