// Checkpoints and resume through the real hpt binary: N steps + stop + resume + N steps
// equals 2N uninterrupted steps bit for bit (with foreground and with background saves);
// SIGTERM writes a final checkpoint; a failed background save fails the run; and a run
// killed with SIGKILL at random moments, again and again, still ends with the weights of
// an uninterrupted run.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include <boost/json.hpp>

#include <torch/script.h>

#include "checkpoint/checkpoint_tools.hpp"
#include "engine/engine.hpp"
#include "test_support.hpp"

using hpt::test::read_file;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

namespace fs = std::filesystem;

// The full-training manifest: fast synthetic task, Adam, a checkpoint every 5 steps.
std::string full_manifest(const std::string& runs_dir) {
  return "[run]\nname = \"r\"\nseed = 11\nmax_steps = 60\neval_every = 20\nruns_dir = \"" + runs_dir +
         "\"\n[task]\nplugin = \"synthetic\"\nsamples = 256\n[optimizer]\nplugin = \"adam\"\nlr = 0.01\n"
         "[checkpointer]\nplugin = \"torch\"\nevery_steps = 5\nkeep_last = 2\n";
}

using hpt::test::run_to_end;
using hpt::test::spawn;
using hpt::test::wait_exit;

// The model weights of a run's latest checkpoint.
std::vector<std::pair<std::string, torch::Tensor>> final_weights(const std::string& run_dir) {
  std::string bytes = read_file(run_dir + "/checkpoints/latest/model.pt");
  return hpt::host::read_model_tensors(bytes, run_dir);
}

void expect_bit_identical(const std::string& a, const std::string& b) {
  auto wa = final_weights(a), wb = final_weights(b);
  ASSERT_EQ(wa.size(), wb.size());
  ASSERT_FALSE(wa.empty());
  for (std::size_t i = 0; i < wa.size(); ++i) {
    EXPECT_EQ(wa[i].first, wb[i].first);
    EXPECT_TRUE(torch::equal(wa[i].second, wb[i].second)) << wa[i].first << " differs";
  }
}

const std::string& bytes_named(const std::vector<hpt::CheckpointFile>& files, const std::string& name) {
  for (const auto& f : files)
    if (f.name == name) return f.bytes;
  throw std::runtime_error("no " + name);
}

TEST(Resume, StopAndResumeEqualsUninterruptedFullTraining) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path() + "/a"));
  ASSERT_EQ(run_to_end({"run", manifest, "--no-progress"}, dir.path() + "/a.log"), 0) << read_file(dir.path() + "/a.log");
  std::string b_runs = "run.runs_dir=\"" + dir.path() + "/b\"";
  ASSERT_EQ(run_to_end({"run", manifest, b_runs, "run.max_steps=30", "--no-progress"}, dir.path() + "/b.log"), 0);
  ASSERT_EQ(run_to_end({"resume", dir.path() + "/b/r", "run.max_steps=60", "--no-progress"}, dir.path() + "/b.log"), 0)
      << read_file(dir.path() + "/b.log");
  EXPECT_THAT(read_file(dir.path() + "/b.log"), HasSubstr("resumed from"));
  expect_bit_identical(dir.path() + "/a/r", dir.path() + "/b/r");
  EXPECT_THAT(read_file(dir.path() + "/b/r/summary.json"), HasSubstr("\"steps\":60"));
}

// A finished run keeps its summary: `hpt resume` says so and exits 0, writing nothing;
// with run.max_steps raised it goes on, and its summary has the final metrics again.
TEST(Resume, AFinishedRunIsLeftAsItIsUnlessItsBudgetIsRaised) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path() + "/a"));
  const std::string run_dir = dir.path() + "/a/r", log = dir.path() + "/a.log";
  ASSERT_EQ(run_to_end({"run", manifest, "--no-progress"}, log), 0) << read_file(log);
  const std::string finished = read_file(run_dir + "/summary.json");
  const std::string metrics = read_file(run_dir + "/metrics.jsonl");
  ASSERT_THAT(finished, HasSubstr("\"final_metrics\":{\"val_loss\""));

  ASSERT_EQ(run_to_end({"resume", run_dir, "--no-progress"}, log), 0) << read_file(log);
  EXPECT_THAT(read_file(log), HasSubstr("run r already finished (completed after 60 steps); nothing to resume"));
  EXPECT_EQ(read_file(run_dir + "/summary.json"), finished);
  EXPECT_EQ(read_file(run_dir + "/metrics.jsonl"), metrics);
  ASSERT_EQ(run_to_end({"resume", run_dir, "run.max_steps=60", "--no-progress"}, log), 0);
  EXPECT_EQ(read_file(run_dir + "/summary.json"), finished);

  ASSERT_EQ(run_to_end({"resume", run_dir, "run.max_steps=70", "--no-progress"}, log), 0) << read_file(log);
  auto summary = boost::json::parse(read_file(run_dir + "/summary.json")).as_object();
  EXPECT_EQ(summary.at("steps").as_int64(), 70);
  EXPECT_EQ(summary.at("status").as_string(), "completed");
  EXPECT_TRUE(summary.at("final_metrics").as_object().contains("val_loss")) << summary;
}

// A run stopped by its target stays stopped: resuming it would only stop again.
TEST(Resume, ARunThatReachedItsTargetIsNotResumed) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path() + "/a"));
  const std::string run_dir = dir.path() + "/a/r", log = dir.path() + "/a.log";
  ASSERT_EQ(run_to_end({"run", manifest, "run.target={metric=\"val_loss\", value=1e9}", "--no-progress"}, log), 0)
      << read_file(log);
  const std::string finished = read_file(run_dir + "/summary.json");
  ASSERT_THAT(finished, HasSubstr("\"status\":\"target_reached\""));
  ASSERT_EQ(run_to_end({"resume", run_dir, "run.max_steps=100", "--no-progress"}, log), 0);
  EXPECT_THAT(read_file(log), HasSubstr("already finished (target_reached after 20 steps)"));
  EXPECT_EQ(read_file(run_dir + "/summary.json"), finished);
}

// After a resume, steps/s is the run's steps over its training time, as summary.json
// records them, not the whole run's steps over this process's seconds.
TEST(Resume, StepsPerSecondAfterAResumeIsTheRunsStepsOverItsTrainingTime) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path() + "/a"));
  const std::string run_dir = dir.path() + "/a/r", log = dir.path() + "/a.log";
  ASSERT_EQ(run_to_end({"run", manifest, "run.max_steps=30", "--no-progress"}, log), 0) << read_file(log);
  ASSERT_EQ(run_to_end({"resume", run_dir, "run.max_steps=60", "--no-progress"}, log), 0) << read_file(log);
  std::istringstream in(read_file(run_dir + "/hpt.log"));
  std::vector<double> rates;
  std::regex progress(R"(step 60/60  ([0-9.]+) steps/s)");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, progress)) rates.push_back(std::stod(m[1]));
  }
  ASSERT_EQ(rates.size(), 1u) << read_file(run_dir + "/hpt.log");  // the last step's line, once
  auto summary = boost::json::parse(read_file(run_dir + "/summary.json")).as_object();
  const double expected = 60.0 / summary.at("train_seconds").to_number<double>();
  EXPECT_NEAR(rates[0], expected, 0.05 + 1e-9) << "summary: " << summary;
}

// The hybrid: linear dynamics, residual correction, adaptive phases, set to start
// predicting early on the synthetic task.
const std::vector<std::string> kHybrid = {
    "dynamics.plugin=\"linear\"", "dynamics.min_observations=10", "correction.plugin=\"residual\"",
    "phase.plugin=\"adaptive\"",  "phase.warmup_steps=10",        "phase.confidence_threshold=0.0",
    "phase.min_horizon=2",          "phase.initial_horizon=4"};

// `a` with the hybrid's overrides and no progress bar.
std::vector<std::string> hybrid_args(std::vector<std::string> a) {
  a.insert(a.end(), kHybrid.begin(), kHybrid.end());
  a.push_back("--no-progress");
  return a;
}

TEST(Resume, StopAndResumeEqualsUninterruptedHybridTraining) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path() + "/a"));
  ASSERT_EQ(run_to_end(hybrid_args({"run", manifest}), dir.path() + "/a.log"), 0) << read_file(dir.path() + "/a.log");
  std::string summary = read_file(dir.path() + "/a/r/summary.json");
  EXPECT_EQ(summary.find("\"predicted_steps\":0,"), std::string::npos) << "no predicted step: " << summary;
  std::string b_runs = "run.runs_dir=\"" + dir.path() + "/b\"";
  ASSERT_EQ(run_to_end(hybrid_args({"run", manifest, b_runs, "run.max_steps=30"}), dir.path() + "/b.log"), 0);
  ASSERT_EQ(run_to_end({"resume", dir.path() + "/b/r", "run.max_steps=60", "--no-progress"}, dir.path() + "/b.log"), 0)
      << read_file(dir.path() + "/b.log");
  expect_bit_identical(dir.path() + "/a/r", dir.path() + "/b/r");
}

// Every line of a run's metrics.jsonl of `type`.
std::vector<boost::json::object> metric_lines(const std::string& run_dir, const std::string& type) {
  std::vector<boost::json::object> lines;
  std::istringstream in(read_file(run_dir + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    auto o = boost::json::parse(line).as_object();
    if (o.at("type").as_string() == type) lines.push_back(o);
  }
  return lines;
}

// A run that died after its last checkpoint, before its summary: the resume restores the
// final metrics from the checkpoint (no evaluation again, no second line for it).
TEST(Resume, ARunResumedAtItsLastStepReportsItsFinalMetrics) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path() + "/a"));
  const std::string run_dir = dir.path() + "/a/r", log = dir.path() + "/a.log";
  ASSERT_EQ(run_to_end({"run", manifest, "--no-progress"}, log), 0) << read_file(log);
  auto finished = boost::json::parse(read_file(run_dir + "/summary.json")).as_object();
  const std::size_t evaluations = metric_lines(run_dir, "eval").size();
  fs::remove(run_dir + "/summary.json");
  ASSERT_EQ(run_to_end({"resume", run_dir, "--no-progress"}, log), 0) << read_file(log);
  auto resumed = boost::json::parse(read_file(run_dir + "/summary.json")).as_object();
  EXPECT_EQ(resumed.at("final_metrics"), finished.at("final_metrics"));
  EXPECT_EQ(resumed.at("evaluations"), finished.at("evaluations"));
  EXPECT_EQ(metric_lines(run_dir, "eval").size(), evaluations);
}

// A hybrid run stopped right after a rolled-back phase (whose warning forces real steps
// and halves the horizon cap) resumes into exactly what the uninterrupted run did: the
// divergence monitor's state is in the checkpoint. The stopped run is the uninterrupted
// run's own directory with the checkpoints after the stop removed.
TEST(Resume, StopRightAfterARollBackResumesExactly) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path() + "/a"));
  ASSERT_EQ(run_to_end(hybrid_args({"run", manifest, "run.max_steps=120", "checkpointer.every_steps=1",
                                    "checkpointer.keep_last=0"}),
                       dir.path() + "/a.log"),
            0)
      << read_file(dir.path() + "/a.log");
  auto rollbacks = metric_lines(dir.path() + "/a/r", "rollback");
  ASSERT_FALSE(rollbacks.empty()) << "no phase was rolled back";
  // The first checkpoint after the first roll-back: the monitor is forcing real steps.
  const std::int64_t stop = rollbacks.front().at("step").as_int64() + 1;
  const std::string stopped = dir.path() + "/b/r";
  fs::create_directories(dir.path() + "/b");
  fs::copy(dir.path() + "/a/r", stopped, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  for (const auto& entry : fs::directory_iterator(stopped + "/checkpoints")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step_", 0) == 0 && std::stoll(name.substr(5)) > stop) fs::remove_all(entry.path());
  }
  fs::remove(stopped + "/summary.json");  // a stopped run's says "interrupted", not "completed": resume refuses those
  ASSERT_EQ(run_to_end({"resume", stopped, "--no-progress"}, dir.path() + "/b.log"), 0) << read_file(dir.path() + "/b.log");
  EXPECT_THAT(read_file(dir.path() + "/b.log"), HasSubstr("(step " + std::to_string(stop) + ")"));
  expect_bit_identical(dir.path() + "/a/r", stopped);
}

// Checkpoints are due when a multiple of every_steps was crossed, also inside a kept
// predicted phase: one in every window [25k, 25k + 25).
TEST(Resume, HybridRunsCheckpointEveryWindowOfEverySteps) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path() + "/a"));
  ASSERT_EQ(run_to_end(hybrid_args({"run", manifest, "run.max_steps=400", "checkpointer.every_steps=25",
                                    "checkpointer.keep_last=0"}),
                       dir.path() + "/a.log"),
            0)
      << read_file(dir.path() + "/a.log");
  std::string summary = read_file(dir.path() + "/a/r/summary.json");
  EXPECT_EQ(summary.find("\"predicted_steps\":0,"), std::string::npos) << "no predicted step: " << summary;
  std::map<std::int64_t, int> per_window;
  for (const auto& line : metric_lines(dir.path() + "/a/r", "checkpoint")) ++per_window[line.at("step").as_int64() / 25];
  for (std::int64_t k = 1; k <= 16; ++k) EXPECT_EQ(per_window[k], 1) << "checkpoints in [" << 25 * k << ", " << 25 * k + 25 << ")";
}

TEST(Resume, FallsBackToThePreviousCheckpointWhenTheLatestIsCorrupt) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path()));
  ASSERT_EQ(run_to_end({"run", manifest, "run.max_steps=20", "--no-progress"}, dir.path() + "/log"), 0);
  // Flip one byte of the newest checkpoint's model.
  std::string model = fs::canonical(dir.path() + "/r/checkpoints/latest").string() + "/model.pt";
  std::string bytes = read_file(model);
  bytes[bytes.size() / 2] ^= 0x01;
  std::ofstream(model, std::ios::binary) << bytes;
  ASSERT_EQ(run_to_end({"resume", dir.path() + "/r", "run.max_steps=25", "--no-progress"}, dir.path() + "/log"), 0)
      << read_file(dir.path() + "/log");
  std::string log = read_file(dir.path() + "/log");
  EXPECT_THAT(log, HasSubstr("model.pt fails its SHA-256 check"));
  EXPECT_THAT(log, HasSubstr("trying the one before"));
  EXPECT_THAT(log, HasSubstr("step_000015 (step 15)"));
}

TEST(Resume, CheckpointOfAnotherModelNamesTheParameterAndBothShapes) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path()));
  ASSERT_EQ(run_to_end({"run", manifest, "run.max_steps=10", "--no-progress"}, dir.path() + "/log"), 0);
  auto r = hpt::test::run_hpt({"resume", dir.path() + "/r", "task.hidden=[7]", "run.max_steps=20"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("does not fit this model: parameter 'fc1.weight' has shape [16, 8] in the checkpoint "
                               "and [7, 8] in the model"));
}

TEST(Resume, SigtermFinishesTheStepAndWritesAFinalCheckpoint) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path()));
  pid_t pid = spawn({"run", manifest, "run.max_steps=10000000", "checkpointer.every_steps=0", "--no-progress"},
                    dir.path() + "/log");
  // Wait for training to be under way.
  std::string metrics = dir.path() + "/r/metrics.jsonl";
  for (int i = 0; i < 600 && read_file(metrics).size() < 2000; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid), 143) << read_file(dir.path() + "/log");
  std::string summary = read_file(dir.path() + "/r/summary.json");
  EXPECT_THAT(summary, HasSubstr("\"status\":\"interrupted\""));
  ASSERT_TRUE(fs::exists(dir.path() + "/r/checkpoints/latest/manifest.json")) << read_file(dir.path() + "/log");
  EXPECT_THAT(read_file(dir.path() + "/log"), HasSubstr("hpt resume"));
}

TEST(Resume, SigtermWithoutACheckpointerPromisesNoResume) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", "[run]\nname = \"r\"\nmax_steps = 10000000\nruns_dir = \"" + dir.path() +
                                                 "\"\n[task]\nplugin = \"synthetic\"\n[optimizer]\nplugin = \"adam\"\n");
  pid_t pid = spawn({"run", manifest, "--no-progress"}, dir.path() + "/log");
  std::string metrics = dir.path() + "/r/metrics.jsonl";
  for (int i = 0; i < 600 && read_file(metrics).size() < 2000; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid), 143) << read_file(dir.path() + "/log");
  std::string log = read_file(dir.path() + "/log");
  EXPECT_THAT(log, HasSubstr("no checkpoint was written"));
  EXPECT_EQ(log.find("hpt resume"), std::string::npos) << log;
  EXPECT_THAT(read_file(dir.path() + "/r/summary.json"), HasSubstr("\"status\":\"interrupted\""));
}

// ---------------------------------------------------------------------------------
// Background saves ([checkpointer] background = true)

const char* kBackground = "checkpointer.background=true";

// Every attribute of a LibTorch archive, nested archives included ("state.0.exp_avg"):
// tensors compared by dtype, shape and value, other values by their printed form.
void expect_same_archive_content(const std::string& a, const std::string& b, const std::string& what) {
  std::istringstream in_a(a), in_b(b);
  torch::jit::Module module_a = torch::jit::load(in_a), module_b = torch::jit::load(in_b);
  std::vector<torch::jit::NameValue> attrs_a, attrs_b;
  for (const auto& nv : module_a.named_attributes(true)) attrs_a.push_back(nv);
  for (const auto& nv : module_b.named_attributes(true)) attrs_b.push_back(nv);
  ASSERT_EQ(attrs_a.size(), attrs_b.size()) << what;
  for (std::size_t i = 0; i < attrs_a.size(); ++i) {
    const auto& [name, va] = attrs_a[i];
    const auto& vb = attrs_b[i].value;
    ASSERT_EQ(name, attrs_b[i].name) << what;
    std::vector<torch::Tensor> ta, tb;
    if (va.isTensor() && vb.isTensor()) ta = {va.toTensor()}, tb = {vb.toTensor()};
    else if (va.isTensorList() && vb.isTensorList()) ta = va.toTensorVector(), tb = vb.toTensorVector();
    if (va.isObject()) continue;  // a nested archive: its attributes follow
    if (ta.empty() && tb.empty()) {
      std::ostringstream pa, pb;
      pa << va;
      pb << vb;
      EXPECT_EQ(pa.str(), pb.str()) << what << ": " << name;
      continue;
    }
    ASSERT_EQ(ta.size(), tb.size()) << what << ": " << name;
    for (std::size_t k = 0; k < ta.size(); ++k) {
      EXPECT_EQ(ta[k].dtype(), tb[k].dtype()) << what << ": " << name;
      EXPECT_TRUE(ta[k].defined() == tb[k].defined() && (!ta[k].defined() || torch::equal(ta[k], tb[k])))
          << what << ": " << name << " differs";
    }
  }
}

std::unique_ptr<hpt::host::Engine> make_engine(hpt::host::PluginLoader& loader, const std::string& runs_dir,
                                               const std::vector<std::string>& overrides) {
  hpt::host::Manifest m = hpt::host::Manifest::parse(full_manifest(runs_dir), "test.toml", overrides);
  hpt::host::EngineOptions options;
  options.progress = 0;
  return std::make_unique<hpt::host::Engine>(hpt::host::resolve(m, loader), loader, options);
}

// A plugin whose state is views of one buffer, as a fused optimizer's flat state is.
class BufferViews : public hpt::Plugin {
 public:
  torch::Tensor buffer = torch::arange(8, torch::kFloat32);
  void save(hpt::StateWriter& state) const override {
    state.write("low", buffer.narrow(0, 0, 4));
    state.write("high", buffer.narrow(0, 4, 4));
    state.write("list", c10::IValue(std::vector<torch::Tensor>{buffer.narrow(0, 2, 4), buffer}));
  }
};

TEST(BackgroundCheckpoint, TwoViewsOfOneBufferComeBackAsTheirOwnValues) {
  BufferViews plugin;
  hpt::host::FrozenCheckpoint frozen;
  frozen.add_archive("views.pt", [&](hpt::StateWriter& state) { plugin.save(state); });
  plugin.buffer.mul_(-1);  // training goes on while the snapshot waits to be written
  std::vector<hpt::CheckpointFile> files = std::async(std::launch::async, [&] { return frozen.files(); }).get();
  ASSERT_EQ(files.size(), 1u);

  torch::serialize::InputArchive in;
  in.load_from(files[0].bytes.data(), files[0].bytes.size());
  torch::Tensor low, high;
  in.read("low", low);
  in.read("high", high);
  c10::IValue list;
  in.read("list", list);
  const torch::Tensor all = torch::arange(8, torch::kFloat32);
  EXPECT_TRUE(torch::equal(low, all.narrow(0, 0, 4))) << low;
  EXPECT_TRUE(torch::equal(high, all.narrow(0, 4, 4))) << high;
  std::vector<torch::Tensor> views = list.toTensorVector();
  ASSERT_EQ(views.size(), 2u);
  EXPECT_TRUE(torch::equal(views[0], all.narrow(0, 2, 4))) << views[0];
  EXPECT_TRUE(torch::equal(views[1], all)) << views[1];
  // Still views of one buffer, as written.
  EXPECT_EQ(high.data_ptr<float>(), low.data_ptr<float>() + 4);
  EXPECT_EQ(views[1].data_ptr<float>(), low.data_ptr<float>());
}

TEST(BackgroundCheckpoint, SnapshotHoldsExactlyWhatAForegroundSaveOfItsStepHolds) {
  TempDir dir;
  hpt::host::PluginLoader loader(hpt::host::PluginLoader::default_dirs({}));
  std::vector<std::string> overrides = kHybrid;
  overrides.push_back(kBackground);
  auto engine = make_engine(loader, dir.path(), overrides);
  for (int i = 0; i < 12; ++i) engine->real_step(hpt::StepKind::Full);

  std::vector<hpt::CheckpointFile> foreground = engine->checkpoint_files();
  hpt::host::Engine::CheckpointSnapshot snapshot = engine->checkpoint_snapshot();
  // Training changes the live weights, the optimizer's moments and every plugin's state...
  for (int i = 0; i < 3; ++i) engine->real_step(hpt::StepKind::Full);
  std::vector<hpt::CheckpointFile> later = engine->checkpoint_files();
  ASSERT_NE(bytes_named(later, "model.pt"), bytes_named(foreground, "model.pt"));
  ASSERT_NE(bytes_named(later, "optimizer.pt"), bytes_named(foreground, "optimizer.pt"));

  // ...and the snapshot, serialised afterwards on another thread, still holds step 12:
  // the same tensors, bit for bit, and the same values. (Not the same bytes: LibTorch
  // stamps every archive it writes with a fresh serialization id.)
  std::vector<hpt::CheckpointFile> background =
      std::async(std::launch::async, [&] { return snapshot.files(); }).get();
  ASSERT_EQ(background.size(), foreground.size());
  for (std::size_t i = 0; i < foreground.size(); ++i) {
    EXPECT_EQ(background[i].name, foreground[i].name);
    if (foreground[i].name.size() > 3 && foreground[i].name.substr(foreground[i].name.size() - 3) == ".pt")
      expect_same_archive_content(background[i].bytes, foreground[i].bytes, foreground[i].name);
    else
      EXPECT_EQ(background[i].bytes, foreground[i].bytes) << foreground[i].name;
  }
}

TEST(BackgroundCheckpoint, StopAndResumeEqualsUninterruptedTraining) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path() + "/a"));
  // a: foreground saves, 60 steps at once; b: background saves, 30 steps, then 30 more.
  ASSERT_EQ(run_to_end(hybrid_args({"run", manifest}), dir.path() + "/a.log"), 0) << read_file(dir.path() + "/a.log");
  std::string b_runs = "run.runs_dir=\"" + dir.path() + "/b\"";
  ASSERT_EQ(run_to_end(hybrid_args({"run", manifest, b_runs, "run.max_steps=30", kBackground}), dir.path() + "/b.log"), 0)
      << read_file(dir.path() + "/b.log");
  ASSERT_EQ(run_to_end({"resume", dir.path() + "/b/r", "run.max_steps=60", kBackground, "--no-progress"},
                       dir.path() + "/b.log"),
            0)
      << read_file(dir.path() + "/b.log");
  EXPECT_THAT(read_file(dir.path() + "/b.log"), HasSubstr("step_000030 (step 30)"));
  expect_bit_identical(dir.path() + "/a/r", dir.path() + "/b/r");

  // Every checkpoint is in metrics.jsonl with the training thread's stall, and the sum in summary.json.
  std::string metrics = read_file(dir.path() + "/b/r/metrics.jsonl");
  EXPECT_THAT(metrics, HasSubstr("\"type\":\"checkpoint\",\"step\":5,"));
  EXPECT_THAT(metrics, HasSubstr("\"background\":true"));
  EXPECT_THAT(read_file(dir.path() + "/b/r/summary.json"), HasSubstr("\"checkpoint_stall_seconds\":"));
}

TEST(BackgroundCheckpoint, AFailedSaveFailsTheRunNamingTheCheckpoint) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path()));
  // A file where the checkpoint directory should go, inside the run directory (which
  // run.resume lets the run reuse; checkpointer.directory may not leave it).
  fs::create_directories(dir.path() + "/r");
  dir.write("r/blocker", "a file where the checkpoint directory should go");
  std::string log = dir.path() + "/log";
  int code = run_to_end({"run", manifest, kBackground, "run.resume=true", "checkpointer.directory=\"blocker/checkpoints\"",
                         "--no-progress"},
                        log);
  EXPECT_EQ(code, 1) << read_file(log);
  EXPECT_THAT(read_file(log), HasSubstr("the checkpoint of step 5 (saved in the background) failed: cannot create "
                                        "checkpoint directory"));
  EXPECT_THAT(read_file(log), HasSubstr("blocker/checkpoints"));
}

TEST(BackgroundCheckpoint, SigtermWaitsForTheSaveInFlightAndWritesAFinalCheckpoint) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path()));
  pid_t pid = spawn({"run", manifest, "run.max_steps=10000000", "checkpointer.every_steps=2", kBackground,
                     "--no-progress"},
                    dir.path() + "/log");
  std::string metrics = dir.path() + "/r/metrics.jsonl";
  for (int i = 0; i < 600 && read_file(metrics).size() < 4000; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid), 143) << read_file(dir.path() + "/log");
  std::string summary = read_file(dir.path() + "/r/summary.json");
  EXPECT_THAT(summary, HasSubstr("\"status\":\"interrupted\""));
  // `latest` is the checkpoint of the step the run stopped at, complete and valid.
  auto manifest_json = boost::json::parse(read_file(dir.path() + "/r/checkpoints/latest/manifest.json")).as_object();
  auto summary_json = boost::json::parse(summary).as_object();
  EXPECT_EQ(manifest_json.at("step").as_int64(), summary_json.at("steps").as_int64());
  EXPECT_NO_THROW(final_weights(dir.path() + "/r"));
}

TEST(Resume, SurvivesTwentySigkillsAtRandomMoments) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", full_manifest(dir.path() + "/ref"));
  const std::vector<std::string> longer = {"run.max_steps=3000", "checkpointer.every_steps=5", "--no-progress"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), longer.begin(), longer.end());
    return args;
  };
  ASSERT_EQ(run_to_end(with({"run", manifest}), dir.path() + "/ref.log"), 0) << read_file(dir.path() + "/ref.log");

  const std::string runs = "run.runs_dir=\"" + dir.path() + "/crash\"";
  const std::string run_dir = dir.path() + "/crash/r";
  const std::string log = dir.path() + "/crash.log";
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> delay_ms(0, 300);
  int kills = 0, completed_early = 0;
  for (int attempt = 0; attempt < 20; ++attempt) {
    bool started = fs::exists(run_dir + "/config.resolved.toml");
    pid_t pid = spawn(started ? with({"resume", run_dir}) : with({"run", manifest, runs, "--overwrite"}), log);
    // Kill at a random moment once training is under way (process start-up time varies
    // with the machine's load, so the clock starts when the process begins writing).
    const std::string metrics = run_dir + "/metrics.jsonl";
    const auto size_before = fs::exists(metrics) ? fs::file_size(metrics) : 0;
    for (int i = 0; i < 400 && (!fs::exists(metrics) || fs::file_size(metrics) == size_before); ++i) {
      siginfo_t info{};
      if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    kill(pid, SIGKILL);
    int code = wait_exit(pid);
    if (code == 128 + SIGKILL) ++kills;
    else if (code == 0) ++completed_early;
    else FAIL() << "attempt " << attempt << " exited with " << code << ":\n" << read_file(log);
    // Whatever the moment of the kill, the latest checkpoint (if any) is complete and valid.
    if (fs::exists(run_dir + "/checkpoints/latest"))
      EXPECT_NO_THROW(final_weights(run_dir)) << "attempt " << attempt;
  }
  EXPECT_GE(kills, 15);
  ASSERT_EQ(run_to_end(with({"resume", run_dir}), log), 0) << read_file(log);
  expect_bit_identical(dir.path() + "/ref/r", run_dir);
  // metrics.jsonl parses line by line and has each step once, as the uninterrupted run's.
  std::map<std::int64_t, int> seen;
  for (const auto& line : metric_lines(run_dir, "step")) ++seen[line.at("step").as_int64()];
  ASSERT_EQ(seen.size(), 3000u);
  for (const auto& [step, count] : seen) EXPECT_EQ(count, 1) << "step " << step;
  (void)completed_early;
}

// ---------------------------------------------------------------------------------
// Chaos: kills at the worst moments and a full disk, each followed by resume. The
// counting test task kills its own process at a chosen moment (tests/plugins).

// A hybrid run of the counting task (the real linear / residual / adaptive plugins),
// Adam, background checkpoints every 10 steps.
std::string chaos_manifest(const std::string& runs_dir, const std::string& task_options) {
  return "[run]\nname = \"r\"\nseed = 5\nmax_steps = 200\neval_every = 25\nruns_dir = \"" + runs_dir +
         "\"\nplugin_dirs = [\"" HPT_TEST_PLUGIN_DIR "/engine\"]\n"
         "[task]\nplugin = \"counting\"\n" + task_options +
         "\n[optimizer]\nplugin = \"adam\"\nlr = 0.01\n"
         "[checkpointer]\nplugin = \"torch\"\nevery_steps = 10\nkeep_last = 2\nbackground = true\n";
}

// What a run measured, line by line, without its timings: the step and eval lines.
std::vector<std::string> measured_lines(const std::string& run_dir) {
  std::vector<std::string> out;
  std::istringstream in(read_file(run_dir + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    boost::json::object o = boost::json::parse(line).as_object();  // every line parses
    const std::string type(o.at("type").as_string());
    if (type != "step" && type != "eval") continue;
    for (const char* timing : {"seconds", "train_seconds", "eval_seconds"}) o.erase(timing);
    // The counting task's own tallies count the passes of its process, not of the run.
    for (const char* tally : {"forward_calls", "backward_calls"}) o.erase(tally);
    out.push_back(boost::json::serialize(o));
  }
  return out;
}

std::int64_t latest_step(const std::string& run_dir) {
  if (!fs::exists(run_dir + "/checkpoints/latest")) return 0;
  auto manifest = boost::json::parse(read_file(run_dir + "/checkpoints/latest/manifest.json")).as_object();
  return manifest.at("step").as_int64();
}

void expect_intact_after_chaos(const std::string& reference, const std::string& run_dir) {
  expect_bit_identical(reference, run_dir);
  const std::vector<std::string> got = measured_lines(run_dir), want = measured_lines(reference);
  EXPECT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < std::min(got.size(), want.size()); ++i)
    if (got[i] != want[i]) {
      ADD_FAILURE() << "metrics.jsonl differs at measured line " << i << ":\n" << got[i] << "\nexpected\n" << want[i];
      break;
    }
  for (const auto& entry : fs::directory_iterator(run_dir + "/checkpoints"))
    EXPECT_NE(entry.path().filename().string().rfind(".tmp-", 0), 0u) << "left over: " << entry.path();
}

TEST(Chaos, KillsDuringBackgroundSavesLoseNothing) {
  TempDir dir;
  // Full training (a batch per step, so the N-th batch of a process is a known step), and
  // hidden layers so that a save is still being written when the next step starts.
  std::string manifest = dir.write("m.toml", chaos_manifest(dir.path() + "/ref", "hidden = 384"));
  ASSERT_EQ(run_to_end({"run", manifest, "--no-progress"}, dir.path() + "/ref.log"), 0) << read_file(dir.path() + "/ref.log");

  const std::string run_dir = dir.path() + "/chaos/r";
  const std::string log = dir.path() + "/chaos.log";
  std::vector<std::string> args = {"run", manifest, "run.runs_dir=\"" + dir.path() + "/chaos\""};
  int in_flight = 0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    // Killed as step from + 21 starts: the checkpoint of step from + 20 has just been
    // handed to the background thread.
    const std::int64_t from = latest_step(run_dir);
    std::vector<std::string> killed = args;
    killed.insert(killed.end(), {"task.kill_at_batch=21", "--no-progress"});
    ASSERT_EQ(run_to_end(killed, log), 128 + SIGKILL) << read_file(log);
    const std::int64_t saving = from + 20, latest = latest_step(run_dir);
    EXPECT_TRUE(latest == saving || latest == saving - 10) << "latest " << latest << ", saving " << saving;
    if (latest < saving) ++in_flight;
    EXPECT_NO_THROW(final_weights(run_dir)) << "attempt " << attempt;
    args = {"resume", run_dir};
  }
  // At least one kill caught its save in flight (the others found it already written).
  EXPECT_GE(in_flight, 1);
  ASSERT_EQ(run_to_end({"resume", run_dir, "task.kill_at_batch=0", "--no-progress"}, log), 0) << read_file(log);
  expect_intact_after_chaos(dir.path() + "/ref/r", run_dir);
}

TEST(Chaos, KillsDuringEvaluationAndPredictedPhasesAndAFullDiskLoseNothing) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", chaos_manifest(dir.path() + "/ref", "hidden = 8"));
  auto hybrid = [&](std::vector<std::string> a) {
    a.insert(a.end(), kHybrid.begin(), kHybrid.end());
    a.push_back("--no-progress");
    return a;
  };
  ASSERT_EQ(run_to_end(hybrid({"run", manifest}), dir.path() + "/ref.log"), 0) << read_file(dir.path() + "/ref.log");
  ASSERT_NE(read_file(dir.path() + "/ref/r/metrics.jsonl").find("\"kind\":\"predicted\""), std::string::npos)
      << "the reference run has no predicted phase";

  const std::string run_dir = dir.path() + "/chaos/r";
  const std::string runs = "run.runs_dir=\"" + dir.path() + "/chaos\"";
  // 1. Killed in the middle of the second evaluation.
  ASSERT_EQ(run_to_end(hybrid({"run", manifest, runs, "task.kill_in_evaluation=2"}), dir.path() + "/1.log"), 128 + SIGKILL);
  // 2. Resumed, and killed inside a predicted phase (its third probe).
  ASSERT_EQ(run_to_end(hybrid({"resume", run_dir, "task.kill_in_evaluation=0", "task.kill_in_probe=3"}),
                       dir.path() + "/2.log"),
            128 + SIGKILL)
      << read_file(dir.path() + "/2.log");
  // 3. Resumed onto a disk that fills up as metrics.jsonl grows by 3 kB: no file may grow
  //    past that size, and the checkpoint files (whose sizes do not grow) stay below it.
  std::uintmax_t largest = fs::file_size(run_dir + "/metrics.jsonl");
  for (const auto& entry : fs::directory_iterator(run_dir + "/checkpoints/latest/"))
    largest = std::max(largest, fs::file_size(entry.path()));
  const auto limit = static_cast<rlim_t>(largest + 3000);
  const std::string full_log = dir.path() + "/3.log";
  const int full = wait_exit(spawn(hybrid({"resume", run_dir, "task.kill_in_probe=0"}), full_log, limit));
  EXPECT_EQ(full, 1) << read_file(full_log);
  EXPECT_THAT(read_file(full_log), HasSubstr("cannot write " + run_dir + "/metrics.jsonl"));
  EXPECT_THAT(read_file(run_dir + "/summary.json"), HasSubstr("\"status\":\"failed\""));
  // 4. Space freed: resumed to the end.
  ASSERT_EQ(run_to_end(hybrid({"resume", run_dir, "task.kill_in_probe=0"}), dir.path() + "/4.log"), 0)
      << read_file(dir.path() + "/4.log");
  expect_intact_after_chaos(dir.path() + "/ref/r", run_dir);
}


}  // namespace
