// GPU tests of the `cuda` backend. Each one is SKIPPED, with the reason, where the plugin is
// not built (a CPU-only LibTorch, as Debian's) or no CUDA device is visible;
// scripts/gpu_check.sh runs them on a GPU machine. The kernels have their own tests in
// kernels/tests (kernels_test).
#include <filesystem>
#include <sstream>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/checkpoint_tools.hpp"
#include "test_support.hpp"

using hpt::test::read_file;
using hpt::test::run_hpt;
using hpt::test::TempDir;

namespace {

// "" when the cuda backend can run here, else why not.
std::string why_no_gpu() {
  const std::string plugin = std::string(HPT_BINARY_DIR) + "/plugins/hpt_backend_cuda.so";
  if (!std::filesystem::exists(plugin))
    return "the cuda backend is not built (" + plugin + " is missing): this LibTorch is a CPU-only build";
  if (!torch::cuda::is_available()) return "no CUDA device is visible to LibTorch";
  return "";
}

#define SKIP_WITHOUT_GPU()                        \
  do {                                            \
    const std::string why = why_no_gpu();         \
    if (!why.empty()) GTEST_SKIP() << why;        \
  } while (0)

std::string manifest(const std::string& runs_dir, const std::string& name) {
  return "[run]\nname = \"" + name + "\"\nseed = 5\nmax_steps = 200\neval_every = 50\nruns_dir = \"" + runs_dir +
         "\"\n[task]\nplugin = \"synthetic\"\nsamples = 1024\n[optimizer]\nplugin = \"adam\"\nlr = 0.01\n"
         "[backend]\nplugin = \"cuda\"\n";
}

boost::json::object summary_of(const std::string& run_dir) {
  return boost::json::parse(read_file(run_dir + "/summary.json")).as_object();
}

// The val_loss of the first and of the last evaluation in metrics.jsonl.
std::pair<double, double> first_and_last_val_loss(const std::string& run_dir) {
  std::istringstream in(read_file(run_dir + "/metrics.jsonl"));
  std::string line;
  std::vector<double> v;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto o = boost::json::parse(line).as_object();
    if (o.at("type").as_string() == "eval") v.push_back(o.at("val_loss").to_number<double>());
  }
  if (v.empty()) return {0, 0};
  return {v.front(), v.back()};
}

std::vector<hpt::test::CliResult> run_all(const std::vector<std::vector<std::string>>& commands) {
  std::vector<hpt::test::CliResult> out;
  for (const auto& c : commands) out.push_back(run_hpt(c));
  return out;
}

}  // namespace

TEST(CudaBackend, FusedOperationsMatchTheCpuBackend) {
  SKIP_WITHOUT_GPU();
  auto cuda = hpt::test::make_plugin<hpt::Backend>(hpt::PluginKind::Backend, "cuda");
  auto cpu = hpt::test::make_plugin<hpt::Backend>(hpt::PluginKind::Backend, "cpu");
  ASSERT_EQ(cuda->device().type(), torch::kCUDA);
  torch::manual_seed(1);
  std::vector<torch::Tensor> p_cpu, u_cpu, p_gpu, u_gpu;
  std::vector<double> scales;
  for (std::int64_t n : {1, 3, 1000, 65537, 1 << 20}) {
    p_cpu.push_back(torch::randn({n}));
    u_cpu.push_back(torch::randn({n}));
    p_gpu.push_back(p_cpu.back().to(cuda->device()));
    u_gpu.push_back(u_cpu.back().to(cuda->device()));
    scales.push_back(0.5 + 0.1 * static_cast<double>(scales.size()));
  }
  std::vector<torch::Tensor> snap = cuda->snapshot(p_gpu);
  cpu->add_scaled(p_cpu, u_cpu, scales);
  cuda->add_scaled(p_gpu, u_gpu, scales);
  cuda->synchronize();
  for (std::size_t i = 0; i < p_cpu.size(); ++i)
    EXPECT_TRUE(torch::allclose(p_gpu[i].cpu(), p_cpu[i], 1e-6, 1e-6)) << "tensor " << i;
  torch::Tensor n_cpu = cpu->norms(p_cpu), n_gpu = cuda->norms(p_gpu);
  EXPECT_TRUE(torch::allclose(n_gpu.cpu().to(torch::kFloat64), n_cpu.to(torch::kFloat64), 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(cuda->norms(p_gpu).cpu(), n_gpu.cpu())) << "norms differ run to run";
  cuda->restore(p_gpu, snap);
  for (std::size_t i = 0; i < p_gpu.size(); ++i) EXPECT_TRUE(torch::equal(p_gpu[i], snap[i]));
  const hpt::MemoryUse use = cuda->memory_use();
  EXPECT_GT(use.allocated, 0);
  EXPECT_GE(use.peak, use.allocated);
  EXPECT_GT(use.total, use.peak);
}

TEST(CudaBackend, TrainsInFp32Bf16AndFp16WithMemoryInTheSummary) {
  SKIP_WITHOUT_GPU();
  TempDir dir;
  for (const char* precision : {"fp32", "bf16", "fp16"}) {
    std::string m = dir.write(std::string(precision) + ".toml", manifest(dir.path(), precision));
    auto r = run_hpt({"run", m, std::string("backend.precision=\"") + precision + "\"", "--no-progress"});
    ASSERT_EQ(r.code, 0) << precision << ": " << r.err;
    const std::string run_dir = dir.path() + "/" + precision;
    auto [first, last] = first_and_last_val_loss(run_dir);
    EXPECT_LT(last, 0.5 * first) << precision;
    auto s = summary_of(run_dir);
    EXPECT_EQ(s.at("precision").as_string(), precision);
    EXPECT_GT(s.at("memory").as_object().at("peak_bytes").as_int64(), 0) << precision;
    EXPECT_THAT(read_file(run_dir + "/metrics.jsonl"), ::testing::HasSubstr("\"memory_peak_bytes\""));
  }
}

TEST(CudaBackend, Fp16OverflowSkipsStepsBacksOffAndTrainsOn) {
  SKIP_WITHOUT_GPU();
  TempDir dir;
  std::string m = dir.write("m.toml", manifest(dir.path(), "overflow"));
  // A first scale that overflows fp16 gradients: the first steps are skipped, each one
  // backing the scale off by 1e-10, until the gradients fit.
  auto r = run_hpt({"run", m, "backend.precision=\"fp16\"", "backend.loss_scale=1e30", "backend.scale_backoff=1e-10",
                    "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto s = summary_of(dir.path() + "/overflow");
  EXPECT_GE(s.at("skipped_steps").as_int64(), 1);
  EXPECT_LE(s.at("skipped_steps").as_int64(), 4);
  EXPECT_EQ(s.at("divergence_rollbacks").as_int64(), 0);  // a skipped step is not a divergence
  EXPECT_THAT(read_file(dir.path() + "/overflow/metrics.jsonl"), ::testing::HasSubstr("\"kind\":\"skipped\""));
  auto [first, last] = first_and_last_val_loss(dir.path() + "/overflow");
  EXPECT_LT(last, 0.5 * first);
}

TEST(CudaBackend, StopAndResumeIsBitIdenticalInDeterministicMode) {
  SKIP_WITHOUT_GPU();
  TempDir dir;
  const std::string checkpoints = "[checkpointer]\nplugin = \"torch\"\nevery_steps = 25\n";
  std::string ma = dir.write("a.toml", manifest(dir.path() + "/a", "r") + checkpoints);
  std::string mb = dir.write("b.toml", manifest(dir.path() + "/b", "r") + checkpoints);
  auto results = run_all({{"run", ma, "backend.precision=\"bf16\"", "--no-progress"},
                          {"run", mb, "backend.precision=\"bf16\"", "run.max_steps=100", "--no-progress"},
                          {"resume", dir.path() + "/b/r", "run.max_steps=200", "--no-progress"}});
  for (const auto& r : results) ASSERT_EQ(r.code, 0) << r.err;
  auto a = hpt::host::read_model_tensors(read_file(dir.path() + "/a/r/checkpoints/latest/model.pt"), "a");
  auto b = hpt::host::read_model_tensors(read_file(dir.path() + "/b/r/checkpoints/latest/model.pt"), "b");
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
}

TEST(CudaBackend, HybridRunPredictsOnTheGpu) {
  SKIP_WITHOUT_GPU();
  TempDir dir;
  std::string m = dir.write("m.toml", manifest(dir.path(), "hybrid"));
  auto r = run_hpt({"run", m, "dynamics.plugin=\"linear\"", "dynamics.min_observations=10",
                    "correction.plugin=\"residual\"", "phase.plugin=\"adaptive\"", "phase.warmup_steps=10",
                    "phase.confidence_threshold=0.0", "phase.min_horizon=2", "phase.initial_horizon=4",
                    "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto s = summary_of(dir.path() + "/hybrid");
  EXPECT_GT(s.at("predicted_steps").as_int64(), 0);
}
