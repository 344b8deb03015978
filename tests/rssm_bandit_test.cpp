// The rssm dynamics model, its state-feature encoder and GRU ensemble, the LinUCB core and
// the bandit phase controller: the encoder gives hand-computed features; the ensemble's
// batched step is each member's GRUCell; rssm learns a synthetic
// trajectory (its forecast error falls, its confidence rises, its direction and step
// sizes match, its forecasts have the promised shapes) and resumes bit for bit; LinUCB
// and the bandit plugin converge to the best arm on synthetic rewards.
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include <boost/json.hpp>

#include "hpt/hpt.hpp"
#include "hpt/torch_compat.hpp"
#include "plugins/plugin_loader.hpp"
#include "test_support.hpp"

// The encoder, the GRU ensemble and the LinUCB core live inside plugin libraries, which export only their
// entry point, so they are compiled into this test directly.
#include "../plugins/dynamics_rssm/gru_ensemble.cpp"
#include "../plugins/dynamics_rssm/state_features.cpp"
#include "../plugins/phase_bandit/linucb.cpp"

namespace {

using hpt::test::make_plugin;
using hpt::test::Overrides;

// ---------------------------------------------------------------------------------
// State features

hpt::StepRecord record(double loss, double grad_norm, double lr, std::vector<double> norms,
                       std::vector<torch::Tensor> update, hpt::StepKind kind = hpt::StepKind::Full) {
  hpt::StepRecord r;
  r.loss = loss;
  r.grad_norm = grad_norm;
  r.learning_rate = lr;
  r.group_update_norms = std::move(norms);
  r.update = std::move(update);
  r.kind = kind;
  return r;
}

TEST(StateFeatures, HandMadeRecordsGiveHandComputedFeatures) {
  // Parameters 0 (group 0), 1 and 2 (group 1); moving averages with decay 0.5.
  hpt::rssm::StateFeatures features({0, 1, 1}, 2, 0.5);
  ASSERT_EQ(features.size(), 10u);
  ASSERT_EQ(features.dynamic_size(), 8u);
  std::vector<float> f(features.size());

  features.encode(record(2.0, 4.0, 0.01, {3.0, 4.0},
                         {torch::tensor({3.0f, 0.0f}), torch::tensor({0.0f, 4.0f}), torch::tensor({0.0f})}),
                  f.data());
  for (float v : f) EXPECT_EQ(v, 0.0f);  // the first record is its own reference

  // Group 0's update turns by 90 degrees; group 1's: dot 4 over norms 2 * 4 -> cosine 0.5.
  features.encode(record(1.0, 2.0, 0.005, {6.0, 2.0},
                         {torch::tensor({0.0f, 6.0f}), torch::tensor({0.0f, 1.0f}), torch::tensor({-std::sqrt(3.0f)})},
                         hpt::StepKind::Correct),
                  f.data());
  const float half = std::log(0.5f);
  EXPECT_NEAR(f[hpt::rssm::StateFeatures::kLossLevel], half, 1e-6);
  EXPECT_EQ(f[hpt::rssm::StateFeatures::kLossChange], -4.0f);  // no spread yet: clamped
  EXPECT_NEAR(f[hpt::rssm::StateFeatures::kGradLevel], half, 1e-6);
  EXPECT_NEAR(f[hpt::rssm::StateFeatures::kGradChange], half, 1e-6);
  EXPECT_NEAR(f[features.update_level_index(0)], -half, 1e-6);
  EXPECT_NEAR(f[features.update_level_index(1)], half, 1e-6);
  EXPECT_NEAR(f[features.cosine_index(0)], 0.0f, 1e-6);
  EXPECT_NEAR(f[features.cosine_index(1)], 0.5f, 1e-6);
  EXPECT_NEAR(f[features.learning_rate_index()], half, 1e-6);
  EXPECT_EQ(f[features.phase_index()], 1.0f);

  // After two records: loss mean 1.5, variance 0.25; gradient-norm mean 3.
  features.encode(record(1.25, 3.0, 0.005, {6.0, 2.0},
                         {torch::tensor({0.0f, 6.0f}), torch::tensor({0.0f, 1.0f}), torch::tensor({-std::sqrt(3.0f)})}),
                  f.data());
  EXPECT_NEAR(f[hpt::rssm::StateFeatures::kLossChange], -0.5f, 1e-6);
  EXPECT_NEAR(f[hpt::rssm::StateFeatures::kGradChange], 0.0f, 1e-6);
  EXPECT_NEAR(f[features.cosine_index(0)], 1.0f, 1e-6);
  EXPECT_EQ(f[features.phase_index()], 0.0f);
  EXPECT_DOUBLE_EQ(features.loss_of_level(std::log(0.5)), 1.0);
  EXPECT_EQ(features.count(), 3);
}

TEST(StateFeatures, RefusesRecordsThatDoNotFitTheLayout) {
  hpt::rssm::StateFeatures features({0, 1}, 2);
  std::vector<float> f(features.size());
  EXPECT_THROW(features.encode(record(1.0, 1.0, 0.1, {1.0}, {}), f.data()), hpt::RunError);
}

// ---------------------------------------------------------------------------------
// GRU ensemble

TEST(GruEnsemble, BatchedStepIsEachMembersGruCellAndHead) {
  torch::manual_seed(4);
  hpt::rssm::GruEnsemble ensemble(3, 5, 8, 4);
  torch::NoGradGuard no_grad;
  const hpt::rssm::StackedWeights w = ensemble->stacked();
  torch::Tensor shared = torch::randn({2, 5}), own = torch::randn({3, 2, 5}), hidden = torch::randn({3, 2, 8});
  torch::Tensor from_shared = hpt::rssm::GruEnsembleImpl::step(w, shared, hidden);
  torch::Tensor from_own = hpt::rssm::GruEnsembleImpl::step(w, own, hidden);
  torch::Tensor predicted = hpt::rssm::GruEnsembleImpl::predict(w, hidden);
  ASSERT_EQ(from_shared.sizes(), (std::vector<std::int64_t>{3, 2, 8}));
  ASSERT_EQ(predicted.sizes(), (std::vector<std::int64_t>{3, 2, 4}));
  for (std::size_t m = 0; m < 3; ++m) {
    const auto i = static_cast<std::int64_t>(m);
    EXPECT_TRUE(torch::allclose(from_shared[i], ensemble->cell(m)->forward(shared, hidden[i]), 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(from_own[i], ensemble->cell(m)->forward(own[i], hidden[i]), 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(predicted[i], ensemble->head(m)->forward(hidden[i]), 1e-5, 1e-6));
  }
}

// ---------------------------------------------------------------------------------
// rssm on a synthetic trajectory: loss 2 e^{-0.01 t}; updates 0.01 e^{-0.005 t} along a
// fixed direction; gradient norm e^{-0.005 t}. Groups "a" (a.w, a.b) and "b" (b.w).

struct Trajectory {
  hpt::ParameterLayout layout;
  std::vector<torch::Tensor> direction;

  Trajectory() {
    layout.names = {"a.w", "a.b", "b.w"};
    layout.shapes = {{4, 3}, {4}, {5}};
    layout.group_names = {"a", "b"};
    layout.groups = {{0, 1}, {2}};
    layout.group_of = {0, 0, 1};
    at::Generator gen = hpt::make_cpu_generator(11);
    for (const auto& s : layout.shapes) direction.push_back(torch::randn(s, gen));
  }

  static double loss(std::int64_t t) { return 2.0 * std::exp(-0.01 * static_cast<double>(t)); }
  static double size(std::int64_t t) { return 0.01 * std::exp(-0.005 * static_cast<double>(t)); }

  double group_norm(std::size_t g, std::int64_t t) const {
    double sq = 0.0;
    for (std::size_t p : layout.groups[g]) sq += direction[p].square().sum().item<double>();
    return size(t) * std::sqrt(sq);
  }

  hpt::StepRecord at(std::int64_t t) const {
    hpt::StepRecord r;
    r.step = t;
    r.loss = loss(t);
    r.grad_norm = std::exp(-0.005 * static_cast<double>(t));
    r.learning_rate = 1e-3;
    for (const auto& d : direction) r.update.push_back(d * size(t));
    for (std::size_t g = 0; g < layout.groups.size(); ++g) r.group_update_norms.push_back(group_norm(g, t));
    return r;
  }

  // Mean |log forecast loss - log true loss| over the forecast's horizon, from step t + 1.
  static double loss_error(const hpt::Forecast& f, std::int64_t t) {
    double e = 0.0;
    for (std::size_t i = 0; i < f.loss.size(); ++i)
      e += std::abs(std::log(f.loss[i]) - std::log(loss(t + 1 + static_cast<std::int64_t>(i))));
    return e / static_cast<double>(f.loss.size());
  }
};

std::shared_ptr<hpt::DynamicsModel> make_rssm(const Trajectory& trajectory, std::uint64_t seed = 3) {
  auto model = make_plugin<hpt::DynamicsModel>(hpt::PluginKind::DynamicsModel, "rssm", {}, seed);
  model->bind(trajectory.layout);
  return model;
}

void observe(hpt::DynamicsModel& model, const Trajectory& trajectory, std::int64_t from, std::int64_t to) {
  for (std::int64_t t = from; t <= to; ++t) model.observe(trajectory.at(t));
}

TEST(RssmDynamics, ForecastsNothingBeforeMinObservations) {
  Trajectory trajectory;
  auto model = make_rssm(trajectory);
  observe(*model, trajectory, 1, 10);
  hpt::Forecast f = model->forecast(8);
  EXPECT_EQ(f.confidence, 0.0);
  EXPECT_EQ(f.horizon(), 0);
  EXPECT_EQ(model->confidence(), 0.0);
}

TEST(RssmDynamics, LearnsASyntheticTrajectory) {
  Trajectory trajectory;
  auto model = make_rssm(trajectory);
  const std::int64_t h = 8;

  observe(*model, trajectory, 1, 40);
  hpt::Forecast early = model->forecast(h);
  ASSERT_EQ(early.horizon(), h);
  const double early_error = Trajectory::loss_error(early, 40);

  observe(*model, trajectory, 41, 400);
  hpt::Forecast late = model->forecast(h);
  ASSERT_EQ(late.horizon(), h);
  const double late_error = Trajectory::loss_error(late, 400);
  EXPECT_LT(late_error, 0.5 * early_error) << "early " << early_error << ", late " << late_error;
  EXPECT_LT(late_error, 0.03);
  EXPECT_GT(late.confidence, early.confidence);
  EXPECT_GT(late.confidence, 0.5);
  EXPECT_LE(late.confidence, 1.0);
  // The cheap confidence the engine reads every step bounds the forecast's from above.
  EXPECT_GE(model->confidence(), late.confidence);
  EXPECT_GT(model->confidence(), 0.5);

  // Shapes: [horizon][groups] scales, a loss path with bounds around it, one direction
  // per parameter with its shape, dtype and device.
  ASSERT_EQ(late.scale.size(), static_cast<std::size_t>(h));
  for (const auto& row : late.scale) EXPECT_EQ(row.size(), trajectory.layout.groups.size());
  ASSERT_EQ(late.loss.size(), static_cast<std::size_t>(h));
  ASSERT_EQ(late.loss_low.size(), static_cast<std::size_t>(h));
  ASSERT_EQ(late.loss_high.size(), static_cast<std::size_t>(h));
  for (std::int64_t i = 0; i < h; ++i) {
    EXPECT_LE(late.loss_low[i], late.loss[i]);
    EXPECT_GE(late.loss_high[i], late.loss[i]);
  }
  EXPECT_LT(late.loss.back(), late.loss.front());  // still decaying
  ASSERT_EQ(late.direction.size(), trajectory.direction.size());
  for (std::size_t p = 0; p < late.direction.size(); ++p) {
    const torch::Tensor& d = late.direction[p];
    EXPECT_EQ(d.sizes(), trajectory.direction[p].sizes());
    EXPECT_EQ(d.device(), trajectory.direction[p].device());
    EXPECT_EQ(d.dtype(), trajectory.direction[p].dtype());
    double cosine = (d * trajectory.direction[p]).sum().item<double>() / (d.norm() * trajectory.direction[p].norm()).item<double>();
    EXPECT_GT(cosine, 0.999) << trajectory.layout.names[p];
  }
  // The first predicted step is about as large as the next real update would be.
  for (std::size_t g = 0; g < trajectory.layout.groups.size(); ++g) {
    double sq = 0.0;
    for (std::size_t p : trajectory.layout.groups[g]) sq += late.direction[p].square().sum().item<double>();
    const double predicted = late.scale[0][g] * std::sqrt(sq);
    EXPECT_NEAR(predicted / trajectory.group_norm(g, 401), 1.0, 0.1) << trajectory.layout.group_names[g];
  }
}

void expect_identical(const hpt::Forecast& a, const hpt::Forecast& b) {
  EXPECT_EQ(a.confidence, b.confidence);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.loss_low, b.loss_low);
  EXPECT_EQ(a.loss_high, b.loss_high);
  EXPECT_EQ(a.scale, b.scale);
  ASSERT_EQ(a.direction.size(), b.direction.size());
  for (std::size_t p = 0; p < a.direction.size(); ++p) EXPECT_TRUE(torch::equal(a.direction[p], b.direction[p]));
}

TEST(RssmDynamics, IsDeterministicForASeed) {
  Trajectory trajectory;
  auto a = make_rssm(trajectory, 5), b = make_rssm(trajectory, 5), c = make_rssm(trajectory, 6);
  observe(*a, trajectory, 1, 60);
  observe(*b, trajectory, 1, 60);
  observe(*c, trajectory, 1, 60);
  expect_identical(a->forecast(8), b->forecast(8));
  EXPECT_NE(a->forecast(8).loss, c->forecast(8).loss);
}

TEST(RssmDynamics, ResumesBitIdenticallyFromSaveLoad) {
  Trajectory trajectory;
  auto original = make_rssm(trajectory);
  observe(*original, trajectory, 1, 100);
  std::stringstream bytes;
  {
    torch::serialize::OutputArchive archive;
    hpt::StateWriter archive_state(archive, /*copy=*/true);
    original->save(archive_state);
    archive.save_to(bytes);
  }
  auto resumed = make_rssm(trajectory, 99);  // the weights come from the checkpoint
  {
    torch::serialize::InputArchive archive;
    archive.load_from(bytes);
    resumed->load(archive);
  }
  expect_identical(original->forecast(16), resumed->forecast(16));
  // Training continues the same way: weights, optimizer moments and buffers all came back.
  observe(*original, trajectory, 101, 140);
  observe(*resumed, trajectory, 101, 140);
  expect_identical(original->forecast(16), resumed->forecast(16));
}

TEST(RssmDynamics, RejectsBadOptions) {
  auto info = hpt::test::built_plugins().find(hpt::PluginKind::DynamicsModel, "rssm");
  hpt::Options options = hpt::Options::defaults(info->options);
  options.set("tbptt", std::int64_t{64});
  options.set("history", std::int64_t{64});
  try {
    hpt::test::built_plugins().create<hpt::DynamicsModel>(*info, hpt::PluginContext{}, options);
    FAIL() << "tbptt >= history was accepted";
  } catch (const std::exception& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("tbptt"));
  }
}

// ---------------------------------------------------------------------------------
// LinUCB core

TEST(LinUcb, ConvergesToTheBestArm) {
  hpt::bandit::LinUcb bandit(3, 2, 0.5);
  const double means[] = {0.2, 0.5, 0.9};
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0.0, 0.1);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  int best = 0;
  const int rounds = 600, counted = 300;
  for (int round = 0; round < rounds; ++round) {
    std::vector<double> context = {1.0, unit(rng)};  // a bias and an irrelevant feature
    std::size_t arm = bandit.choose(context);
    bandit.update(arm, context, means[arm] + noise(rng));
    if (round >= rounds - counted && arm == 2) ++best;
  }
  EXPECT_GE(best, counted * 9 / 10);
  EXPECT_GT(bandit.plays()[0], 0);  // every arm was tried
  EXPECT_GT(bandit.plays()[1], 0);
}

TEST(LinUcb, LearnsWhichArmSuitsWhichContext) {
  hpt::bandit::LinUcb bandit(2, 2, 0.5);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int round = 0; round < 500; ++round) {
    const double x = unit(rng);
    std::vector<double> context = {1.0, x};
    std::size_t arm = bandit.choose(context);
    bandit.update(arm, context, arm == 0 ? 1.0 - x : x);
  }
  EXPECT_EQ(bandit.choose({1.0, 0.1}), 0u);
  EXPECT_EQ(bandit.choose({1.0, 0.9}), 1u);
}

TEST(LinUcb, SaveLoadKeepsItsBounds) {
  hpt::bandit::LinUcb a(3, 2, 1.0), b(3, 2, 1.0);
  a.update(1, {1.0, 0.5}, 0.7);
  a.update(2, {1.0, -0.5}, 0.1);
  std::stringstream bytes;
  {
    torch::serialize::OutputArchive archive;
    hpt::StateWriter archive_state(archive, /*copy=*/true);
    a.save(archive_state, "u/");
    archive.save_to(bytes);
  }
  torch::serialize::InputArchive archive;
  archive.load_from(bytes);
  b.load(archive, "u/");
  for (std::size_t k = 0; k < 3; ++k) EXPECT_EQ(a.upper_bound(k, {1.0, 0.2}), b.upper_bound(k, {1.0, 0.2}));
  EXPECT_EQ(a.plays(), b.plays());
  hpt::bandit::LinUcb other(2, 2, 1.0);
  EXPECT_THROW(other.load(archive, "u/"), hpt::BadInput);
}

// ---------------------------------------------------------------------------------
// The bandit phase controller, driven the way the engine drives it.

// One simulated run: a real step takes 10 ms; a predicted phase of horizon h moves
// `speed[h]` times faster (noisy); horizon 32 is the fastest but its phases raise the
// loss and are rolled back. Returns the horizons the controller chose.
std::vector<std::int64_t> simulate(hpt::PhaseController& phase, int phases, hpt::TrainingState& state,
                                   std::mt19937& rng) {
  const std::map<std::int64_t, double> speed = {{4, 0.8}, {8, 1.6}, {16, 2.5}, {32, 4.0}};
  std::normal_distribution<double> noise(0.0, 0.1);
  std::vector<std::int64_t> chosen;
  auto real_steps = [&](std::int64_t n) {
    state.step += n;
    state.real_steps += n;
    state.steps_since_phase += n;
    state.seconds += 0.01 * static_cast<double>(n);
  };
  while (static_cast<int>(chosen.size()) < phases) {
    hpt::PhaseDecision d = phase.decide(state);
    if (d.kind != hpt::PhaseKind::Predict) {
      real_steps(d.length);
      continue;
    }
    const std::int64_t h = d.length;
    chosen.push_back(h);
    hpt::PhaseOutcome outcome;
    outcome.planned = h;
    outcome.seconds = 0.01 * static_cast<double>(h) / (speed.at(h) * (1.0 + noise(rng)));
    outcome.loss_before = 1.0;
    outcome.rolled_back = h == 32;
    outcome.applied = outcome.rolled_back ? 0 : h;
    outcome.loss_after = outcome.rolled_back ? 1.5 : 0.99;
    state.step += outcome.applied;
    state.predicted_steps += outcome.applied;
    state.seconds += outcome.seconds;
    state.steps_since_phase = 0;
    phase.phase_ended(outcome);
    real_steps(1);  // the engine's Correct step after a phase
  }
  return chosen;
}

hpt::TrainingState fresh_state() {
  hpt::TrainingState s;
  s.max_steps = 1000000;
  s.last_loss = 1.0;
  s.loss_ema = 1.0;
  s.confidence = 0.8;
  return s;
}

TEST(BanditPhase, ConvergesToTheBestHorizon) {
  auto phase = make_plugin<hpt::PhaseController>(
      hpt::PluginKind::PhaseController, "bandit",
      {{"warmup", std::int64_t{20}}, {"min_real", std::int64_t{2}}, {"reward", std::string("time")}});
  hpt::TrainingState state = fresh_state();
  std::mt19937 rng(1);
  std::vector<std::int64_t> chosen = simulate(*phase, 300, state, rng);
  int best = 0;
  for (std::size_t i = chosen.size() - 100; i < chosen.size(); ++i) best += chosen[i] == 16;
  EXPECT_GE(best, 90);
  for (std::int64_t h : {4, 8, 32}) EXPECT_NE(std::find(chosen.begin(), chosen.end(), h), chosen.end()) << h;
}

TEST(BanditPhase, WarmsUpWaitsBetweenPhasesAndRespectsConfidence) {
  auto phase = make_plugin<hpt::PhaseController>(
      hpt::PluginKind::PhaseController, "bandit",
      {{"warmup", std::int64_t{50}}, {"min_real", std::int64_t{5}}, {"min_confidence", 0.5}});
  hpt::TrainingState s = fresh_state();
  s.confidence = 0.9;
  hpt::PhaseDecision d = phase->decide(s);
  EXPECT_EQ(d.kind, hpt::PhaseKind::Full);
  EXPECT_EQ(d.length, 50);
  s.real_steps = s.step = 50;
  d = phase->decide(s);
  ASSERT_EQ(d.kind, hpt::PhaseKind::Predict);
  s.real_steps = 51;
  d = phase->decide(s);  // the forecast was refused: no phase_ended
  EXPECT_EQ(d.kind, hpt::PhaseKind::Full);
  EXPECT_EQ(d.length, 4);  // min_real after the attempt at 50
  s.real_steps = 55;
  s.confidence = 0.2;
  d = phase->decide(s);
  EXPECT_EQ(d.kind, hpt::PhaseKind::Full);  // not confident enough: one real step, then ask again
  EXPECT_EQ(d.length, 1);
  s.real_steps = 56;
  s.confidence = 0.6;
  EXPECT_EQ(phase->decide(s).kind, hpt::PhaseKind::Predict);
}

TEST(BanditPhase, ResumesWithTheSameChoices) {
  Overrides options = {{"warmup", std::int64_t{0}}, {"min_real", std::int64_t{1}}};
  auto original = make_plugin<hpt::PhaseController>(hpt::PluginKind::PhaseController, "bandit", options);
  hpt::TrainingState state = fresh_state();
  std::mt19937 rng(2);
  simulate(*original, 40, state, rng);
  std::stringstream bytes;
  {
    torch::serialize::OutputArchive archive;
    hpt::StateWriter archive_state(archive, /*copy=*/true);
    original->save(archive_state);
    archive.save_to(bytes);
  }
  auto resumed = make_plugin<hpt::PhaseController>(hpt::PluginKind::PhaseController, "bandit", options);
  torch::serialize::InputArchive archive;
  archive.load_from(bytes);
  resumed->load(archive);
  hpt::TrainingState state_copy = state;
  std::mt19937 rng_a(3), rng_b(3);
  EXPECT_EQ(simulate(*original, 30, state, rng_a), simulate(*resumed, 30, state_copy, rng_b));
}

// Horizons 4 and 8, no exploration bonus: the bandit plays 4, then 8 (untried arms
// first), then the arm that earned more. The 4-step phase takes 1 ms, the 8-step one a
// second. "steps" pays 4 / min_real = 2 and 8 / 2 = 4 whatever the clock: 8 next. "time"
// pays 4 steps in 1 ms (40x a 10 ms real step) and 8 in a second (0.08x): 4 next.
std::int64_t third_choice(const std::string& reward) {
  auto phase = make_plugin<hpt::PhaseController>(hpt::PluginKind::PhaseController, "bandit",
                                                 {{"horizons", std::vector<std::int64_t>{4, 8}},
                                                  {"alpha", 0.0},
                                                  {"warmup", std::int64_t{10}},
                                                  {"min_real", std::int64_t{2}},
                                                  {"reward", reward}});
  hpt::TrainingState state = fresh_state();
  std::vector<std::int64_t> chosen;
  while (chosen.size() < 3) {
    hpt::PhaseDecision d = phase->decide(state);
    if (d.kind != hpt::PhaseKind::Predict) {
      state.step += d.length;
      state.real_steps += d.length;
      state.steps_since_phase += d.length;
      state.seconds += 0.01 * static_cast<double>(d.length);
      continue;
    }
    chosen.push_back(d.length);
    if (chosen.size() == 3) break;
    hpt::PhaseOutcome outcome;
    outcome.planned = outcome.applied = d.length;
    outcome.seconds = d.length == 4 ? 0.001 : 1.0;
    outcome.loss_before = outcome.loss_after = 1.0;
    state.step += outcome.applied;
    state.predicted_steps += outcome.applied;
    state.seconds += outcome.seconds;
    state.steps_since_phase = 0;
    phase->phase_ended(outcome);
  }
  EXPECT_EQ(chosen[0], 4);
  EXPECT_EQ(chosen[1], 8);
  return chosen[2];
}

TEST(BanditPhase, StepsRewardPaysKeptStepsPerRealStepWhateverTheClock) {
  EXPECT_EQ(third_choice("steps"), 8);
  EXPECT_EQ(third_choice("time"), 4);
}

TEST(BanditPhase, StepsIsTheDefaultReward) {
  auto info = hpt::test::built_plugins().find(hpt::PluginKind::PhaseController, "bandit");
  EXPECT_EQ(hpt::Options::defaults(info->options).get_string("reward"), "steps");
}

// With the "steps" reward the controller's choices depend on no clock: the simulated
// runs below differ only in how long each phase takes, yet choose the same horizons.
TEST(BanditPhase, StepsRewardChoosesTheSameWhateverTheTimings) {
  Overrides options = {{"warmup", std::int64_t{20}}, {"min_real", std::int64_t{2}}};
  auto a = make_plugin<hpt::PhaseController>(hpt::PluginKind::PhaseController, "bandit", options);
  auto b = make_plugin<hpt::PhaseController>(hpt::PluginKind::PhaseController, "bandit", options);
  hpt::TrainingState state_a = fresh_state(), state_b = fresh_state();
  std::mt19937 rng_a(11), rng_b(12);
  const std::vector<std::int64_t> chosen = simulate(*a, 60, state_a, rng_a);
  EXPECT_EQ(chosen, simulate(*b, 60, state_b, rng_b));
  EXPECT_NE(state_a.seconds, state_b.seconds);  // the clocks did differ
}

// Two runs of one seed through the engine (synthetic task, dynamics "linear", correction
// "residual", the bandit with its default reward) write the same steps of the same kinds.
std::vector<std::string> step_kinds_of_a_bandit_run(const std::string& runs_dir, const std::string& name) {
  const std::string manifest = R"(
[run]
seed = 3
max_steps = 400
eval_every = 100
log_every = 1
probe_interval = 4

[task]
plugin = "synthetic"
inputs = 8
outputs = 2
hidden = [16]
samples = 256
batch_size = 32

[optimizer]
plugin = "adamw"
lr = 3e-3

[dynamics]
plugin = "linear"
min_observations = 20

[correction]
plugin = "residual"

[phase]
plugin = "bandit"
warmup = 40
min_real = 3
min_confidence = 0.0
horizons = [4, 8, 16]
)";
  auto built = hpt::test::build_engine(manifest, {"run.name=\"" + name + "\""}, runs_dir);
  built.engine->run();
  std::vector<std::string> kinds;
  std::istringstream lines(hpt::test::read_file(runs_dir + "/" + name + "/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const boost::json::object o = boost::json::parse(line).as_object();
    if (o.at("type").as_string() != "step") continue;
    kinds.push_back(std::to_string(o.at("step").as_int64()) + " " + std::string(o.at("kind").as_string()) +
                    (o.contains("discarded") && o.at("discarded").as_bool() ? " discarded" : ""));
  }
  return kinds;
}

TEST(BanditPhase, TwoRunsOfOneSeedMakeTheSameDecisions) {
  hpt::test::TempDir dir;
  const std::vector<std::string> first = step_kinds_of_a_bandit_run(dir.path(), "first");
  const std::vector<std::string> second = step_kinds_of_a_bandit_run(dir.path(), "second");
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first, second);
  EXPECT_TRUE(std::any_of(first.begin(), first.end(),
                          [](const std::string& k) { return k.find("predicted") != std::string::npos; }))
      << "the bandit never predicted: the test shows nothing";
}

TEST(BanditPhase, RejectsAnEmptyHorizonList) {
  auto info = hpt::test::built_plugins().find(hpt::PluginKind::PhaseController, "bandit");
  hpt::Options options = hpt::Options::defaults(info->options);
  options.set("horizons", std::vector<std::int64_t>{});
  try {
    hpt::test::built_plugins().create<hpt::PhaseController>(*info, hpt::PluginContext{}, options);
    FAIL() << "an empty horizon list was accepted";
  } catch (const std::exception& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("horizons"));
  }
}

}  // namespace
