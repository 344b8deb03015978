// The nowcaster (issue 11): run.record_trajectory writes evenly spaced snapshots; the
// network's features, its file (save, load, refusals); hpt-nowcast-train learns from
// recorded trajectories and beats "stay"; the `nowcast` dynamics plugin sums real updates
// into windows, is confident only with a full context, forecasts the net's change spread
// over the jump, and a hybrid run with it really predicts steps.
#include <cstdio>
#include <filesystem>

#include <boost/json.hpp>

#include "checkpoint/weights_file.hpp"
#include "nowcast/nowcast_net.hpp"
#include "test_support.hpp"

using hpt::test::read_file;
using hpt::test::TempDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

const char* kRun = R"(
[run]
name = "traj"
seed = 4
max_steps = 200
eval_every = 0
record_trajectory = 10
[task]
plugin = "synthetic"
hidden = [8]
batch_size = 0
[optimizer]
plugin = "sgd"
lr = 0.05
)";

std::string record(const TempDir& dir, std::uint64_t seed) {
  auto b = hpt::test::build_engine(kRun, {"run.seed=" + std::to_string(seed), "run.name=\"traj" + std::to_string(seed) + "\""},
                                   dir.path());
  b.engine->run();
  return b.engine->run_dir();
}

// The layout of one parameter "w", a vector of `size`, in a group of its own.
hpt::ParameterLayout one_vector(std::int64_t size) {
  hpt::ParameterLayout layout;
  layout.names = {"w"};
  layout.shapes = {{size}};
  layout.group_names = {"w"};
  layout.groups = {{0}};
  layout.group_of = {0};
  return layout;
}

std::pair<int, std::string> run_tool(const std::string& args) {
  std::string out;
  FILE* pipe = ::popen((std::string(HPT_NOWCAST_TRAIN) + " " + args + " 2>&1").c_str(), "r");
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(Trajectory, SnapshotsEveryNStepsFromStepZero) {
  TempDir dir;
  const std::string run = record(dir, 1);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(run + "/trajectory")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names.size(), 21u);  // steps 0, 10, ..., 200
  EXPECT_EQ(names.front(), "step_000000000.pt");
  EXPECT_EQ(names.back(), "step_000000200.pt");
  // The last snapshot is the final weights; the first differs from it (training moved them).
  auto last = hpt::host::read_weights_file(run + "/trajectory/" + names.back());
  auto final_weights = hpt::host::read_weights_file(run + "/final_weights.pt");
  auto first = hpt::host::read_weights_file(run + "/trajectory/" + names.front());
  ASSERT_EQ(last.size(), final_weights.size());
  for (std::size_t i = 0; i < last.size(); ++i) {
    EXPECT_TRUE(torch::equal(last[i].second, final_weights[i].second)) << last[i].first;
    EXPECT_FALSE(torch::equal(first[i].second, last[i].second)) << first[i].first;
  }
}

TEST(NowcastNet, FeaturesAreTheDeltasNewestFirstInUnitsOfTheirRms) {
  std::vector<torch::Tensor> deltas = {torch::full({2, 3}, 1.0), torch::full({2, 3}, 2.0), torch::full({2, 3}, 4.0)};
  double scale = 0.0;
  torch::Tensor x = hpt::nowcast::features_of(deltas, scale);
  EXPECT_NEAR(scale, std::sqrt((1.0 + 4.0 + 16.0) / 3.0), 1e-6);
  ASSERT_EQ(x.sizes(), (std::vector<std::int64_t>{6, 3 + hpt::nowcast::kTensorKinds}));
  EXPECT_NEAR(x[0][0].item<double>(), 4.0 / scale, 1e-6);  // newest first
  EXPECT_NEAR(x[5][2].item<double>(), 1.0 / scale, 1e-6);
  EXPECT_EQ(x[0][3 + 1].item<double>(), 1.0);  // a 2-D tensor
  EXPECT_EQ(x[0][3 + 0].item<double>(), 0.0);
  // A tensor that did not move gets no change.
  hpt::nowcast::NowcastNet net(hpt::nowcast::NowcastShape{3, 2, 10, 8});
  std::vector<torch::Tensor> still(3, torch::zeros({4}));
  EXPECT_TRUE(torch::equal(hpt::nowcast::predict_change(net, still), torch::zeros({4})));
}

TEST(NowcastNet, SavesAndLoadsItsShapeAndWeights) {
  TempDir dir;
  torch::manual_seed(3);
  hpt::nowcast::NowcastNet net(hpt::nowcast::NowcastShape{4, 5, 200, 16});
  const std::string path = dir.path() + "/model.pt";
  hpt::nowcast::save_nowcaster(net, path);
  auto loaded = hpt::nowcast::load_nowcaster(path);
  EXPECT_EQ(loaded->shape().context, 4);
  EXPECT_EQ(loaded->shape().ahead, 5);
  EXPECT_EQ(loaded->shape().window, 200);
  EXPECT_EQ(loaded->shape().hidden, 16);
  torch::Tensor x = torch::randn({7, 4 + hpt::nowcast::kTensorKinds});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(net->forward(x), loaded->forward(x)));
  EXPECT_THROW(hpt::nowcast::load_nowcaster(dir.path() + "/missing.pt"), hpt::BadInput);
  const std::string junk = dir.write("junk.pt", "not a model");
  try {
    hpt::nowcast::load_nowcaster(junk);
    ADD_FAILURE() << "junk loaded";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr(junk));
  }
}

TEST(NowcastTrain, LearnsFromRecordedTrajectoriesAndBeatsStaying) {
  TempDir dir;
  const std::string a = record(dir, 1), b = record(dir, 2);
  const std::string model = dir.path() + "/nowcaster.pt";
  auto [code, out] = run_tool(a + " " + b + " -o " + model + " --context 3 --ahead 4 --hidden 16 --epochs 100 --batch 64 --lr 3e-3 --seed 1");
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("window 10 steps"));
  // The last epoch's validation loss (on the held-out run) against staying put.
  const auto line = out.substr(out.rfind("epoch 100:"));
  double train = 0, val = 0, stay = 0, extrapolate = 0;
  ASSERT_EQ(std::sscanf(line.c_str(), "epoch 100: train %lf, validation %lf (stay %lf, extrapolate %lf)", &train, &val,
                        &stay, &extrapolate),
            4)
      << line;
  EXPECT_LT(val, 0.5 * stay) << out;
  EXPECT_LT(val, extrapolate) << out;  // it learned more than "keep going"
  auto net = hpt::nowcast::load_nowcaster(model);
  EXPECT_EQ(net->shape().window, 10);
  EXPECT_EQ(net->shape().ahead, 4);

  // --stride 2: every second snapshot, windows of 20 steps.
  auto strided = run_tool(a + " " + b + " -o " + dir.path() + "/strided.pt --context 2 --ahead 2 --epochs 1 --stride 2");
  ASSERT_EQ(strided.first, 0) << strided.second;
  EXPECT_THAT(strided.second, HasSubstr("window 20 steps"));
  EXPECT_EQ(hpt::nowcast::load_nowcaster(dir.path() + "/strided.pt")->shape().window, 20);

  auto bad = run_tool(dir.path() + " -o " + dir.path() + "/x.pt");
  EXPECT_EQ(bad.first, 2);
  EXPECT_THAT(bad.second, HasSubstr("no trajectory/ folder"));
}

TEST(NowcastDynamics, ConfidentWithAFullContextAndForecastsTheNetsChangeOverTheJump) {
  TempDir dir;
  torch::manual_seed(5);
  hpt::nowcast::NowcastNet net(hpt::nowcast::NowcastShape{2, 3, 4, 8});
  const std::string path = dir.path() + "/model.pt";
  hpt::nowcast::save_nowcaster(net, path);
  auto model = hpt::test::make_plugin<hpt::DynamicsModel>(hpt::PluginKind::DynamicsModel, "nowcast",
                                                          {{"model", path}});
  const hpt::ParameterLayout layout = one_vector(3);
  model->bind(layout);
  std::vector<torch::Tensor> updates;
  for (int s = 1; s <= 8; ++s) {
    EXPECT_EQ(model->confidence(), 0.0) << "before step " << s;
    hpt::StepRecord r;
    r.step = s;
    r.update = {torch::tensor({0.1, -0.2, 0.05}) * s};
    updates.push_back(r.update[0]);
    model->observe(r);
  }
  EXPECT_EQ(model->confidence(), 1.0);  // two windows of 4 steps
  hpt::Forecast f = model->forecast(100);
  ASSERT_EQ(f.direction.size(), 1u);
  EXPECT_EQ(f.horizon(), 12);  // ahead 3 x window 4: the whole jump
  const torch::Tensor first = updates[0] + updates[1] + updates[2] + updates[3];
  const torch::Tensor second = updates[4] + updates[5] + updates[6] + updates[7];
  torch::NoGradGuard no_grad;
  const torch::Tensor change = hpt::nowcast::predict_change(net, {first, second});
  EXPECT_TRUE(torch::allclose(f.direction[0] * 12.0, change, 1e-5, 1e-7));
  EXPECT_EQ(model->confidence(), 0.0);  // it starts collecting afresh
  EXPECT_EQ(model->forecast(12).confidence, 0.0);
}

// average_decay: the jump starts from the exponential moving average of the weights
// (the offset is that average minus the weights), computed here from the weights.
TEST(NowcastDynamics, AJumpStartsFromTheWeightAverageWithAverageDecay) {
  TempDir dir;
  hpt::nowcast::NowcastNet net(hpt::nowcast::NowcastShape{2, 3, 2, 8});
  const std::string path = dir.path() + "/model.pt";
  hpt::nowcast::save_nowcaster(net, path);
  auto model = hpt::test::make_plugin<hpt::DynamicsModel>(hpt::PluginKind::DynamicsModel, "nowcast",
                                                          {{"model", path}, {"average_decay", 0.9}});
  const hpt::ParameterLayout layout = one_vector(2);
  model->bind(layout);
  torch::Tensor w = torch::tensor({1.0, -1.0}), average = w.clone();
  for (int s = 1; s <= 4; ++s) {
    hpt::StepRecord r;
    r.step = s;
    r.update = {torch::tensor({0.3 * s, 0.1 - 0.05 * s * s})};
    w = w + r.update[0];
    average = 0.9 * average + 0.1 * w;
    model->observe(r);
  }
  hpt::Forecast f = model->forecast(6);
  ASSERT_EQ(f.offset.size(), 1u);
  EXPECT_TRUE(torch::allclose(f.offset[0], average - w, 1e-5, 1e-7)) << f.offset[0] << (average - w);
  // Without it, a jump starts from the weights.
  auto plain = hpt::test::make_plugin<hpt::DynamicsModel>(hpt::PluginKind::DynamicsModel, "nowcast", {{"model", path}});
  plain->bind(layout);
  for (int s = 1; s <= 4; ++s) {
    hpt::StepRecord r;
    r.step = s;
    r.update = {torch::ones({2})};
    plain->observe(r);
  }
  EXPECT_TRUE(plain->forecast(6).offset.empty());
}

TEST(NowcastDynamics, AHybridRunWithATrainedNowcasterPredictsSteps) {
  TempDir dir;
  const std::string a = record(dir, 1), b = record(dir, 2);
  const std::string model = dir.path() + "/nowcaster.pt";
  ASSERT_EQ(run_tool(a + " " + b + " -o " + model + " --context 3 --ahead 4 --hidden 16 --epochs 10").first, 0);
  auto built = hpt::test::build_engine(
      kRun, {"run.seed=7", "run.record_trajectory=0", "dynamics.plugin=\"nowcast\"", "dynamics.model=\"" + model + "\"",
             "correction.plugin=\"none\"", "phase.plugin=\"adaptive\"", "phase.warmup_steps=30",
             "phase.min_real_steps=1", "phase.confidence_threshold=0.5", "phase.initial_horizon=40",
             "phase.min_horizon=40", "phase.max_horizon=40", "phase.grow=1.0", "run.probe_interval=40"});
  auto summary = built.engine->run();
  EXPECT_GT(built.engine->state().predicted_steps, 0);
  EXPECT_EQ(built.engine->state().step, 200);
  EXPECT_LT(built.engine->state().real_steps, 200);
}

// Preset hybrid_nowcast: its model file ships beside it (found relative to the preset),
// and its phases are exactly the model's jump (ahead x window predicted steps) after a
// full context (context x window real steps).
TEST(NowcastDynamics, ThePresetsModelShipsAndItsPhasesAreTheModelsJump) {
  auto m = hpt::host::resolve(
      hpt::host::Manifest::load(std::string(HPT_SOURCE_DIR) + "/configs/fm16_nino.toml", {"run.preset=\"hybrid_nowcast\""}),
      hpt::test::built_plugins());
  const auto& dynamics = m.at(hpt::PluginKind::DynamicsModel).options;
  const auto& phase = m.at(hpt::PluginKind::PhaseController).options;
  EXPECT_EQ(dynamics.get_string("model"),
            (fs::path(HPT_SOURCE_DIR) / "configs/presets/nowcast/fm_w200_c8_a5.pt").lexically_normal().string());
  auto net = hpt::nowcast::load_nowcaster(dynamics.get_string("model"));
  const auto& shape = net->shape();
  EXPECT_EQ(shape.window, 200);
  EXPECT_EQ(shape.context, 8);
  EXPECT_EQ(shape.ahead, 5);
  for (const char* key : {"initial_horizon", "min_horizon", "max_horizon"})
    EXPECT_EQ(phase.get_int(key), shape.ahead * shape.window) << key;
  EXPECT_EQ(phase.get_int("warmup_steps"), shape.context * shape.window);
}

TEST(NowcastDynamics, AMissingModelIsBadInputNamingIt) {
  try {
    hpt::test::build_engine(kRun, {"dynamics.plugin=\"nowcast\"", "dynamics.model=\"/nonexistent/model.pt\""});
    ADD_FAILURE() << "accepted";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/model.pt"));
  }
  try {
    hpt::test::build_engine(kRun, {"dynamics.plugin=\"nowcast\""});
    ADD_FAILURE() << "accepted";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("option 'model' is required"));
  }
}

}  // namespace
