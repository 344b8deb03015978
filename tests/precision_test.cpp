// Mixed precision and device memory: bf16 autocast on the CPU, the fp16 loss scaler, the
// keys every [backend] section accepts, and the memory plan checked before the first step.
#include <cmath>
#include <limits>
#include <sstream>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/archive_io.hpp"
#include "config/manifest.hpp"
#include "engine/engine.hpp"
#include "engine/loss_scaler.hpp"
#include "engine/memory_plan.hpp"
#include "plugins/plugin_loader.hpp"
#include "test_support.hpp"

using hpt::host::LossScaler;
using hpt::host::LossScalerSettings;
using hpt::test::build_engine;
using hpt::test::read_file;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

// FM-16: NiNo's small CNN (16/32/32) on Fashion-MNIST, at a batch small enough for bf16
// on a CPU without bf16 instructions (LibTorch emulates it there, several times slower).
const char* kFashion = R"(
[run]
name = "fm16-bf16"
seed = 0
max_steps = 300
eval_every = 300
log_every = 1
[task]
plugin = "fashion_mnist"
batch_size = 16
probe_size = 16
train_limit = 6000
eval_limit = 500
[optimizer]
plugin = "adamw"
lr = 0.003
weight_decay = 0.0
)";

const char* kSynthetic = R"(
[run]
name = "synthetic"
seed = 3
max_steps = 20
eval_every = 0
[task]
plugin = "synthetic"
[optimizer]
plugin = "adam"
lr = 0.01
)";

std::string build_error(const std::string& text, const std::vector<std::string>& overrides) {
  try {
    build_engine(text, overrides);
  } catch (const hpt::BadInput& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<double> step_losses(const std::string& metrics_path) {
  std::vector<double> losses;
  std::istringstream in(read_file(metrics_path));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto o = boost::json::parse(line).as_object();
    if (o.at("type").as_string() == "step" && o.at("kind").as_string() == "full")
      losses.push_back(o.at("loss").to_number<double>());
  }
  return losses;
}

double mean(const std::vector<double>& v, std::size_t from, std::size_t to) {
  double s = 0;
  for (std::size_t i = from; i < to; ++i) s += v[i];
  return s / static_cast<double>(to - from);
}

// Parameters with the given gradients.
std::vector<torch::Tensor> with_grads(const std::vector<torch::Tensor>& grads) {
  std::vector<torch::Tensor> params;
  for (const auto& g : grads) {
    auto p = torch::zeros_like(g).requires_grad_(true);
    p.mutable_grad() = g.clone();
    params.push_back(p);
  }
  return params;
}

}  // namespace

TEST(Precision, Bf16AutocastTrainsFm16OnTheCpu) {
  TempDir runs;
  hpt::test::BuiltEngine b = build_engine(kFashion, {"backend.precision=\"bf16\""}, runs.path());
  hpt::host::RunSummary s = b.engine->run();
  ASSERT_EQ(s.status, "completed") << s.error;
  EXPECT_EQ(s.real_steps, 300);
  const std::vector<double> losses = step_losses(s.run_dir + "/metrics.jsonl");
  ASSERT_EQ(losses.size(), 300u);
  for (double l : losses) ASSERT_TRUE(std::isfinite(l));
  // From about ln(10) = 2.3 to well under it.
  EXPECT_LT(mean(losses, 270, 300), 0.6 * mean(losses, 0, 30));
  EXPECT_GT(s.final_metrics.at("val_accuracy"), 0.6);
  // The weights, and so the updates a dynamics model would see, stay fp32.
  for (const auto& p : b.engine->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat32);
  const auto summary = boost::json::parse(read_file(s.run_dir + "/summary.json")).as_object();
  EXPECT_EQ(summary.at("precision").as_string(), "bf16");
  EXPECT_EQ(summary.at("skipped_steps").as_int64(), 0);
  EXPECT_GT(summary.at("memory").as_object().at("total_bytes").as_int64(), 0);  // the cpu backend knows the RAM
}

TEST(Precision, Bf16ForwardPassReallyRunsInBf16) {
  // Same seed, same weights, same batch: fp32 and bf16 differ only by bf16 rounding inside
  // the forward pass, so the first losses are close but not equal.
  hpt::test::BuiltEngine fp32 = build_engine(kFashion, {"run.max_steps=1"});
  hpt::test::BuiltEngine bf16 = build_engine(kFashion, {"run.max_steps=1", "backend.precision=\"bf16\""});
  for (std::size_t i = 0; i < fp32.engine->parameters().size(); ++i)
    ASSERT_TRUE(torch::equal(fp32.engine->parameters()[i], bf16.engine->parameters()[i]));
  fp32.engine->real_step(hpt::StepKind::Full);
  bf16.engine->real_step(hpt::StepKind::Full);
  const double a = fp32.engine->state().last_loss, c = bf16.engine->state().last_loss;
  EXPECT_NE(a, c);
  EXPECT_NEAR(a, c, 0.05);
}

TEST(Precision, Fp16OnTheCpuIsRefusedNamingTheAlternative) {
  std::string e = build_error(kSynthetic, {"backend.precision=\"fp16\""});
  EXPECT_THAT(e, HasSubstr("test.toml: [backend] precision = \"fp16\" on cpu"));
  EXPECT_THAT(e, HasSubstr("use precision = \"bf16\""));
}

TEST(Precision, UnknownPrecisionNamesTheChoices) {
  std::string e = build_error(kSynthetic, {"backend.precision=\"fp8\""});
  EXPECT_THAT(e, HasSubstr("backend.precision"));
  EXPECT_THAT(e, HasSubstr("fp32"));
  EXPECT_THAT(e, HasSubstr("bf16"));
  EXPECT_THAT(e, HasSubstr("fp16"));
}

TEST(LossScaler, UnscaleDividesEveryGradientByTheScale) {
  LossScaler scaler(LossScalerSettings{8.0, 2.0, 0.5, 10});
  auto params = with_grads({torch::full({3}, 8.0), torch::full({2, 2}, -4.0)});
  EXPECT_DOUBLE_EQ(scaler.scale_loss(torch::tensor(1.5)).item<double>(), 12.0);
  EXPECT_TRUE(scaler.unscale(params));
  EXPECT_TRUE(torch::equal(params[0].grad(), torch::full({3}, 1.0)));
  EXPECT_TRUE(torch::equal(params[1].grad(), torch::full({2, 2}, -0.5)));
}

TEST(LossScaler, AnInfOrNanGradientSkipsTheStepAndBacksOff) {
  for (double bad : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    LossScaler scaler(LossScalerSettings{1024.0, 2.0, 0.5, 3});
    scaler.update(true);  // one clean step counted
    auto grad = torch::ones({4});
    grad[2] = bad;
    auto params = with_grads({torch::ones({5}), grad});
    EXPECT_FALSE(scaler.unscale(params));
    scaler.update(false);
    EXPECT_DOUBLE_EQ(scaler.scale(), 512.0);
    EXPECT_EQ(scaler.clean_steps(), 0);
  }
}

TEST(LossScaler, GrowsAfterGrowthIntervalCleanStepsInARow) {
  LossScaler scaler(LossScalerSettings{16.0, 2.0, 0.5, 3});
  scaler.update(true);
  scaler.update(true);
  EXPECT_DOUBLE_EQ(scaler.scale(), 16.0);
  scaler.update(true);
  EXPECT_DOUBLE_EQ(scaler.scale(), 32.0);
  EXPECT_EQ(scaler.clean_steps(), 0);
  // An overflow in between starts the count again.
  scaler.update(true);
  scaler.update(true);
  scaler.update(false);
  EXPECT_DOUBLE_EQ(scaler.scale(), 16.0);
  scaler.update(true);
  scaler.update(true);
  EXPECT_DOUBLE_EQ(scaler.scale(), 16.0);
  scaler.update(true);
  EXPECT_DOUBLE_EQ(scaler.scale(), 32.0);
}

TEST(LossScaler, RoundTripsThroughACheckpoint) {
  LossScalerSettings settings{65536.0, 2.0, 0.5, 4};
  LossScaler trained(settings);
  trained.update(false);  // 32768
  trained.update(true);
  trained.update(true);   // two clean steps towards growth
  const std::string bytes = hpt::host::archive_bytes([&](hpt::StateWriter& state) { trained.save(state); });
  torch::serialize::InputArchive archive;
  archive.load_from(bytes.data(), bytes.size());
  LossScaler resumed(settings);
  resumed.load(archive);
  EXPECT_DOUBLE_EQ(resumed.scale(), 32768.0);
  EXPECT_EQ(resumed.clean_steps(), 2);
  // ... and goes on as the original would: growth after two more clean steps.
  resumed.update(true);
  EXPECT_DOUBLE_EQ(resumed.scale(), 32768.0);
  resumed.update(true);
  EXPECT_DOUBLE_EQ(resumed.scale(), 65536.0);
}

TEST(MemoryPlan, CountsParametersGradientsOptimizerStateAndSnapshots) {
  hpt::test::BuiltEngine b = build_engine(kSynthetic, {});
  std::int64_t param_bytes = 0;
  for (const auto& p : b.engine->parameters()) param_bytes += p.numel() * 4;
  const auto& plan = b.engine->memory_plan();
  EXPECT_EQ(plan.total(), 5 * param_bytes);  // weights, gradients, Adam's two moments, last-good snapshot
  hpt::test::BuiltEngine sgd = build_engine(kSynthetic, {"optimizer.plugin=\"sgd\"", "optimizer.momentum=0.0"});
  EXPECT_EQ(sgd.engine->memory_plan().total(), 3 * param_bytes);  // no optimizer state
}

TEST(MemoryPlan, ABudgetTooSmallFailsBeforeTheFirstStepNamingWhatDoesNotFit) {
  std::string e = build_error(kSynthetic, {"backend.memory_budget=1e-7"});
  EXPECT_THAT(e, HasSubstr("test.toml: [backend] memory_budget = 1e-07 GiB is too small"));
  EXPECT_THAT(e, HasSubstr("optimizer state (adam)"));
  EXPECT_THAT(e, HasSubstr("parameters"));
  EXPECT_THAT(e, HasSubstr("on cpu"));
  // A budget that fits is silent.
  EXPECT_NO_THROW(build_engine(kSynthetic, {"backend.memory_budget=1.0"}));
}
