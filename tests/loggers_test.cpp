// The loggers of run.loggers beside metrics.jsonl: metrics.csv as Lightning's CSVLogger
// writes it, and TensorBoard event files checked by a reader that shares no code with
// hpt's writer (tests/tools/read_tfevents.py: crcmod for the framing, google.protobuf for
// the Events); after a resume every step shows once; rolled-back steps stay out; a
// misspelt logger is a manifest error.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <boost/json.hpp>

#include "output/csv_metrics.hpp"
#include "output/protobuf_wire.hpp"
#include "output/tensorboard_events.hpp"
#include "output/tfrecord.hpp"
#include "test_support.hpp"

using hpt::test::read_file;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

namespace fs = std::filesystem;

const char* kLogged = R"(
[run]
name = "logged"
seed = 5
max_steps = 30
eval_every = 10
loggers = ["csv", "tensorboard"]
[task]
plugin = "synthetic"
samples = 256
[optimizer]
plugin = "adam"
lr = 0.01
)";

// A CSV file as rows of {column: cell}.
struct Csv {
  std::vector<std::string> header;
  std::vector<std::map<std::string, std::string>> rows;
};

std::vector<std::string> split_csv_line(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::vector<std::string> cells(1);
  for (char c : line) {
    if (c == ',') cells.emplace_back();
    else cells.back() += c;
  }
  return cells;
}

Csv read_csv(const std::string& path) {
  Csv csv;
  std::istringstream in(read_file(path));
  std::string line;
  if (!std::getline(in, line)) return csv;
  csv.header = split_csv_line(line);
  while (std::getline(in, line)) {
    std::vector<std::string> cells = split_csv_line(line);
    EXPECT_EQ(cells.size(), csv.header.size()) << "row: " << line;
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < cells.size() && i < csv.header.size(); ++i) row[csv.header[i]] = cells[i];
    csv.rows.push_back(row);
  }
  return csv;
}

// The rows that have column `key`, by step.
std::vector<std::int64_t> steps_with(const Csv& csv, const std::string& key) {
  std::vector<std::int64_t> steps;
  for (const auto& row : csv.rows)
    if (!row.at(key).empty()) steps.push_back(std::stoll(row.at("step")));
  return steps;
}

std::vector<boost::json::object> read_jsonl(const std::string& path) {
  std::vector<boost::json::object> lines;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(boost::json::parse(line).as_object());
  return lines;
}

// metrics.jsonl's value of `key` in the lines of `type`, by step (measured steps only for "loss").
std::map<std::int64_t, double> jsonl_values(const std::string& run_dir, const std::string& type, const std::string& key) {
  std::map<std::int64_t, double> values;
  for (const auto& line : read_jsonl(run_dir + "/metrics.jsonl"))
    if (line.at("type").as_string() == type && line.contains(key) && line.at(key).is_number())
      values[line.at("step").to_number<std::int64_t>()] = line.at(key).to_number<double>();
  return values;
}

std::vector<std::int64_t> iota_steps(std::int64_t first, std::int64_t last) {
  std::vector<std::int64_t> steps;
  for (std::int64_t s = first; s <= last; ++s) steps.push_back(s);
  return steps;
}

std::vector<std::string> event_files(const std::string& run_dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(run_dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// ----- the independent reader

struct CommandResult {
  int code;
  std::string output;
};

CommandResult run_command(const std::string& command) {
  CommandResult r{-1, ""};
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) r.output.append(buf, n);
  int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// Why the reader cannot run here, or "".
std::string reader_missing() {
  if (!fs::exists("/usr/bin/python3")) return "/usr/bin/python3 is not installed";
  if (run_command("/usr/bin/python3 -c 'import google.protobuf' 2>/dev/null").code != 0)
    return "google.protobuf is not installed for /usr/bin/python3 (python3-protobuf; scripts/deps.sh installs it)";
  if (run_command("/usr/bin/python3 -c 'import crcmod.predefined' 2>/dev/null").code != 0)
    return "crcmod is not installed for /usr/bin/python3 (python3-crcmod; scripts/deps.sh installs it)";
  return "";
}

// The event files of `dir` decoded by tests/tools/read_tfevents.py.
boost::json::object decode_events(const std::string& dir) {
  const std::string script = std::string(HPT_SOURCE_DIR) + "/tests/tools/read_tfevents.py";
  CommandResult r = run_command("timeout 120 /usr/bin/python3 '" + script + "' '" + dir + "' 2>&1");
  EXPECT_EQ(r.code, 0) << r.output;
  if (r.code != 0) return {};
  return boost::json::parse(r.output).as_object();
}

// tag -> [(step, value)] in the order written.
using Scalars = std::map<std::string, std::vector<std::pair<std::int64_t, double>>>;

Scalars scalars_of(const boost::json::object& decoded) {
  Scalars out;
  for (const auto& e : decoded.at("events").as_array()) {
    const auto& event = e.as_object();
    if (!event.contains("scalars")) continue;
    const std::int64_t step = event.at("step").to_number<std::int64_t>();
    for (const auto& [tag, v] : event.at("scalars").as_object())
      out[std::string(tag)].emplace_back(step, v.is_string() ? std::nan("") : v.to_number<double>());
  }
  return out;
}

std::vector<std::int64_t> steps_of(const Scalars& scalars, const std::string& tag) {
  std::vector<std::int64_t> steps;
  if (scalars.count(tag))
    for (const auto& [step, value] : scalars.at(tag)) steps.push_back(step);
  return steps;
}

// TensorBoard keeps scalars as float32: equal to metrics.jsonl's double within float precision.
void expect_float_equal(const std::vector<std::pair<std::int64_t, double>>& written,
                        const std::map<std::int64_t, double>& jsonl, const std::string& tag) {
  for (const auto& [step, value] : written) {
    ASSERT_TRUE(jsonl.count(step)) << tag << " at step " << step << " is not in metrics.jsonl";
    EXPECT_EQ(static_cast<float>(value), static_cast<float>(jsonl.at(step))) << tag << " at step " << step;
  }
}

// ----- one plain run with both loggers, shared by the tests that read it

class LoggersRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    auto built = hpt::test::build_engine(kLogged, {}, dir_->path());
    built.engine->run();
    run_dir_ = built.engine->run_dir();
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
  static std::string run_dir_;
};
TempDir* LoggersRun::dir_ = nullptr;
std::string LoggersRun::run_dir_;

TEST_F(LoggersRun, CsvHasTheSortedUnionOfKeysAndARowPerStepAndPerEvaluation) {
  Csv csv = read_csv(run_dir_ + "/metrics.csv");
  EXPECT_EQ(csv.header,
            (std::vector<std::string>{"grad_norm", "loss", "lr", "step", "train_seconds", "val_loss"}));
  ASSERT_EQ(csv.rows.size(), 33u);  // 30 steps, 3 evaluations
  EXPECT_EQ(steps_with(csv, "loss"), iota_steps(1, 30));
  EXPECT_EQ(steps_with(csv, "val_loss"), (std::vector<std::int64_t>{10, 20, 30}));
  // Each evaluation's row follows its step's row; a key a row lacks is an empty cell.
  EXPECT_EQ(csv.rows[10].at("step"), "10");
  EXPECT_FALSE(csv.rows[10].at("val_loss").empty());
  EXPECT_TRUE(csv.rows[10].at("loss").empty());
  EXPECT_TRUE(csv.rows[9].at("val_loss").empty());
  // The numbers are metrics.jsonl's (Boost.JSON reads a double back to within an ulp or so).
  auto loss = jsonl_values(run_dir_, "step", "loss");
  auto val = jsonl_values(run_dir_, "eval", "val_loss");
  for (const auto& row : csv.rows) {
    const std::int64_t step = std::stoll(row.at("step"));
    if (!row.at("loss").empty()) {
      EXPECT_DOUBLE_EQ(std::stod(row.at("loss")), loss.at(step)) << "step " << step;
    }
    if (!row.at("val_loss").empty()) {
      EXPECT_DOUBLE_EQ(std::stod(row.at("val_loss")), val.at(step)) << "step " << step;
    }
  }
}

TEST_F(LoggersRun, TensorBoardEventsDecodeWithAnIndependentReader) {
  auto files = event_files(run_dir_);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(std::regex_match(fs::path(files[0]).filename().string(),
                               std::regex(R"(events\.out\.tfevents\.\d{10}\.[^/]+)")))
      << files[0];
  if (std::string why = reader_missing(); !why.empty()) GTEST_SKIP() << why;

  boost::json::object decoded = decode_events(run_dir_);
  ASSERT_FALSE(decoded.empty());
  const auto& events = decoded.at("events").as_array();
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0].as_object().at("file_version").as_string(), "brain.Event:2");
  std::string manifest;
  for (const auto& e : events)
    if (e.as_object().contains("texts")) manifest = e.as_object().at("texts").as_object().at("config/manifest").as_string();
  EXPECT_THAT(manifest, HasSubstr("plugin = \"synthetic\""));
  EXPECT_THAT(manifest, HasSubstr("max_steps = 30"));

  Scalars scalars = scalars_of(decoded);
  EXPECT_EQ(steps_of(scalars, "train/loss"), iota_steps(1, 30));
  EXPECT_EQ(steps_of(scalars, "train/lr"), iota_steps(1, 30));
  EXPECT_EQ(steps_of(scalars, "train/grad_norm"), iota_steps(1, 30));
  EXPECT_EQ(steps_of(scalars, "val/val_loss"), (std::vector<std::int64_t>{10, 20, 30}));
  expect_float_equal(scalars["train/loss"], jsonl_values(run_dir_, "step", "loss"), "train/loss");
  expect_float_equal(scalars["train/lr"], jsonl_values(run_dir_, "step", "lr"), "train/lr");
  expect_float_equal(scalars["train/grad_norm"], jsonl_values(run_dir_, "step", "grad_norm"), "train/grad_norm");
  expect_float_equal(scalars["val/val_loss"], jsonl_values(run_dir_, "eval", "val_loss"), "val/val_loss");
  EXPECT_EQ(scalars.count("hybrid/predicted_fraction"), 0u);  // this run does not predict
}

// A run resumed from a checkpoint before its end (as after a crash): the rows and events
// written after that checkpoint go, and every step shows once in metrics.csv and TensorBoard.
TEST(Loggers, AResumedRunShowsEveryStepOnce) {
  TempDir dir;
  const std::string manifest = std::string(kLogged) + "[checkpointer]\nplugin = \"torch\"\nevery_steps = 10\n";
  std::string run_dir;
  {
    auto built = hpt::test::build_engine(manifest, {"run.max_steps=25"}, dir.path());
    built.engine->run();
    run_dir = built.engine->run_dir();
  }
  // Steps 21..25 and the evaluation at 25 came after the checkpoint of step 20: without
  // the final checkpoint (step 25), they are a trajectory that a resume abandons.
  fs::path latest;
  std::int64_t latest_step = -1;
  for (const auto& e : fs::directory_iterator(run_dir + "/checkpoints")) {
    if (e.is_symlink()) continue;
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_search(name, m, std::regex(R"((\d+))")) && std::stoll(m[1]) > latest_step) {
      latest_step = std::stoll(m[1]);
      latest = e.path();
    }
  }
  ASSERT_EQ(latest_step, 25);
  fs::remove_all(latest);
  ASSERT_EQ(steps_with(read_csv(run_dir + "/metrics.csv"), "loss"), iota_steps(1, 25));
  {
    auto built = hpt::test::build_engine(manifest, {"run.resume=true", "run.max_steps=30"}, dir.path());
    EXPECT_EQ(built.engine->state().step, 20);
    built.engine->run();
  }

  Csv csv = read_csv(run_dir + "/metrics.csv");
  EXPECT_EQ(steps_with(csv, "loss"), iota_steps(1, 30));
  EXPECT_EQ(steps_with(csv, "val_loss"), (std::vector<std::int64_t>{10, 20, 30}));
  auto loss = jsonl_values(run_dir, "step", "loss");  // metrics.jsonl, cut back to step 20 as well
  for (const auto& row : csv.rows) {
    if (!row.at("loss").empty()) {
      EXPECT_DOUBLE_EQ(std::stod(row.at("loss")), loss.at(std::stoll(row.at("step"))));
    }
  }

  auto files = event_files(run_dir);
  ASSERT_EQ(files.size(), 2u);  // the resumed run writes a new file
  if (std::string why = reader_missing(); !why.empty()) GTEST_SKIP() << why;
  boost::json::object decoded = decode_events(run_dir);
  ASSERT_FALSE(decoded.empty());
  Scalars scalars = scalars_of(decoded);
  EXPECT_EQ(steps_of(scalars, "train/loss"), iota_steps(1, 30));
  EXPECT_EQ(steps_of(scalars, "val/val_loss"), (std::vector<std::int64_t>{10, 20, 30}));
  expect_float_equal(scalars["train/loss"], loss, "train/loss");
  EXPECT_EQ(steps_of(scalars, "checkpoint/stall_seconds"), (std::vector<std::int64_t>{10, 20, 30}));
  int restarts = 0;
  for (const auto& e : decoded.at("events").as_array())
    if (e.as_object().contains("session_log")) {
      ++restarts;
      EXPECT_EQ(e.as_object().at("session_log").to_number<int>(), 1);  // SessionLog.START
      EXPECT_EQ(e.as_object().at("step").to_number<std::int64_t>(), 21);
      EXPECT_EQ(e.as_object().at("file").as_string(), fs::path(files[1]).filename().string());
    }
  EXPECT_EQ(restarts, 1);
}

// A predicted phase: kept, its forecast losses are logged as such; rolled back, its steps
// stay out of metrics.csv and TensorBoard (metrics.jsonl marks them discarded), and the
// roll-back itself is a scalar.
std::string counting_manifest() {
  return R"(
[run]
name = "counting"
max_steps = 50
eval_every = 0
probe_interval = 2
loggers = ["csv", "tensorboard"]
[task]
plugin = "counting"
[optimizer]
plugin = "sgd"
lr = 0.05
[dynamics]
plugin = "fixed"
[correction]
plugin = "none"
tolerance = 1000.0
)";
}

std::string counting_run(const TempDir& dir, const std::vector<std::string>& overrides) {
  std::vector<std::string> all = overrides;
  all.push_back("run.plugin_dirs=[\"" + std::string(HPT_TEST_PLUGIN_DIR) + "/engine\"]");
  auto built = hpt::test::build_engine(counting_manifest(), all, dir.path());
  hpt::host::Engine& e = *built.engine;
  for (int i = 0; i < 3; ++i) e.real_step(hpt::StepKind::Full);
  e.predicted_phase(4);
  e.real_step(hpt::StepKind::Full);
  return e.run_dir();  // the engine goes: its files are closed
}

TEST(Loggers, RolledBackStepsStayOutAndTheRollBackIsLogged) {
  TempDir dir;
  // A huge predicted step makes the probe loss explode; tolerance 0.5 rolls it back after 2 steps.
  const std::string run_dir = counting_run(dir, {"dynamics.step=10.0", "correction.tolerance=0.5"});
  Csv csv = read_csv(run_dir + "/metrics.csv");
  EXPECT_EQ(steps_with(csv, "loss"), iota_steps(1, 4));  // step 4 once: the real one after the roll-back
  EXPECT_EQ(steps_with(csv, "probe_loss"), (std::vector<std::int64_t>{3}));  // the probe before the phase stands
  EXPECT_EQ(std::count(csv.header.begin(), csv.header.end(), "forecast_loss"), 0);

  if (std::string why = reader_missing(); !why.empty()) GTEST_SKIP() << why;
  Scalars scalars = scalars_of(decode_events(run_dir));
  EXPECT_EQ(steps_of(scalars, "train/loss"), iota_steps(1, 4));
  EXPECT_EQ(steps_of(scalars, "train/probe_loss"), (std::vector<std::int64_t>{3}));
  EXPECT_EQ(scalars.count("train/forecast_loss"), 0u);
  ASSERT_EQ(steps_of(scalars, "hybrid/rollback_discarded_steps"), (std::vector<std::int64_t>{3}));
  EXPECT_EQ(scalars["hybrid/rollback_discarded_steps"][0].second, 2.0);
}

TEST(Loggers, KeptPredictedStepsLogTheirForecastLoss) {
  TempDir dir;
  const std::string run_dir = counting_run(dir, {});
  Csv csv = read_csv(run_dir + "/metrics.csv");
  EXPECT_EQ(steps_with(csv, "loss"), (std::vector<std::int64_t>{1, 2, 3, 8}));
  EXPECT_EQ(steps_with(csv, "forecast_loss"), iota_steps(4, 7));
  EXPECT_EQ(steps_with(csv, "probe_loss"), (std::vector<std::int64_t>{3, 5, 7}));
  auto forecast = jsonl_values(run_dir, "step", "forecast_loss");
  for (const auto& row : csv.rows) {
    if (!row.at("forecast_loss").empty()) {
      EXPECT_DOUBLE_EQ(std::stod(row.at("forecast_loss")), forecast.at(std::stoll(row.at("step"))));
    }
  }

  if (std::string why = reader_missing(); !why.empty()) GTEST_SKIP() << why;
  Scalars scalars = scalars_of(decode_events(run_dir));
  EXPECT_EQ(steps_of(scalars, "train/forecast_loss"), iota_steps(4, 7));
  expect_float_equal(scalars["train/forecast_loss"], forecast, "train/forecast_loss");
  EXPECT_EQ(scalars.count("hybrid/rollback_discarded_steps"), 0u);
}

// A run that predicts: each evaluation also logs the fraction of step-equivalents that
// were predicted (kept), as metrics.jsonl's predicted steps count them.
TEST(Loggers, EvaluationsOfAPredictingRunLogThePredictedFraction) {
  TempDir dir;
  const std::string manifest = counting_manifest() +
                               "[phase]\nplugin = \"adaptive\"\nwarmup_steps = 3\nmin_real_steps = 2\n"
                               "initial_horizon = 4\nconfidence_threshold = 0.0\n";
  std::string run_dir;
  {
    auto built = hpt::test::build_engine(
        manifest,
        {"run.max_steps=30", "run.eval_every=10",
         "run.plugin_dirs=[\"" + std::string(HPT_TEST_PLUGIN_DIR) + "/engine\"]"},
        dir.path());
    built.engine->run();
    run_dir = built.engine->run_dir();
    ASSERT_GT(built.engine->summary().predicted_steps, 0);
  }
  // Kept predicted steps up to each evaluation, from metrics.jsonl (a predicted phase and
  // its correct step are one unit: an evaluation due inside one waits for its end).
  std::vector<std::int64_t> evals;
  for (const auto& [step, value] : jsonl_values(run_dir, "eval", "val_loss")) evals.push_back(step);
  ASSERT_EQ(evals.size(), 3u);
  std::map<std::int64_t, double> expected;
  for (std::int64_t at : evals) {
    int kept = 0;
    for (const auto& line : read_jsonl(run_dir + "/metrics.jsonl"))
      if (line.at("type").as_string() == "step" && line.at("kind").as_string() == "predicted" &&
          !line.at("discarded").as_bool() && line.at("step").to_number<std::int64_t>() <= at)
        ++kept;
    expected[at] = static_cast<double>(kept) / static_cast<double>(at);
  }
  EXPECT_GT(expected[30], 0.0);
  Csv csv = read_csv(run_dir + "/metrics.csv");
  EXPECT_EQ(steps_with(csv, "predicted_fraction"), evals);
  for (const auto& row : csv.rows) {
    if (!row.at("predicted_fraction").empty()) {
      EXPECT_DOUBLE_EQ(std::stod(row.at("predicted_fraction")), expected.at(std::stoll(row.at("step"))));
    }
  }

  if (std::string why = reader_missing(); !why.empty()) GTEST_SKIP() << why;
  Scalars scalars = scalars_of(decode_events(run_dir));
  EXPECT_EQ(steps_of(scalars, "hybrid/predicted_fraction"), evals);
  expect_float_equal(scalars["hybrid/predicted_fraction"], expected, "hybrid/predicted_fraction");
}

TEST(Loggers, AnUnknownLoggerIsAManifestErrorNamingTheKeyAndTheAllowedValues) {
  TempDir dir;
  std::string text = kLogged;
  text.replace(text.find("\"tensorboard\"]"), 14, "\"tensorbord\"]");
  const std::string path = dir.write("m.toml", text);
  auto r = hpt::test::run_hpt({"run", path, "--no-progress"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("m.toml"));
  EXPECT_THAT(r.err, HasSubstr("run.loggers"));
  EXPECT_THAT(r.err, HasSubstr("jsonl, csv, tensorboard"));
  EXPECT_THAT(r.err, HasSubstr("did you mean \"tensorboard\"?"));
}

// ----- the sinks on their own

hpt::host::LoggedStep logged(std::int64_t step, double loss) {
  hpt::host::LoggedStep s;
  s.step = step;
  s.kind = "full";
  s.loss = loss;
  return s;
}

TEST(CsvMetrics, ANewKeyRewritesTheFileUnderTheWiderHeaderAndResumeDropsLaterRows) {
  TempDir dir;
  const std::string path = dir.path() + "/metrics.csv";
  {
    hpt::host::CsvMetrics csv(path);
    csv.step(logged(1, 0.5));
    csv.step(logged(2, 0.25));
    csv.eval(2, 1.0, {{"val_accuracy", 0.75}}, std::nullopt);
    csv.step(logged(3, 0.125));
    csv.flush();
  }
  Csv before = read_csv(path);
  EXPECT_EQ(before.header,
            (std::vector<std::string>{"grad_norm", "loss", "lr", "step", "train_seconds", "val_accuracy"}));
  ASSERT_EQ(before.rows.size(), 4u);
  EXPECT_EQ(before.rows[0].at("loss"), "0.5");
  EXPECT_EQ(before.rows[0].at("val_accuracy"), "");  // written before the key existed
  EXPECT_EQ(before.rows[2].at("val_accuracy"), "0.75");

  { std::ofstream(path, std::ios::app) << "4,0.0625,0,"; }  // a crash in the middle of a line
  {
    hpt::host::CsvMetrics csv(path);
    csv.resume(2);  // the checkpoint of step 2
    csv.step(logged(3, 0.1));
    csv.flush();
  }
  Csv after = read_csv(path);
  EXPECT_EQ(after.header, before.header);
  EXPECT_EQ(steps_with(after, "loss"), (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(after.rows.back().at("loss"), "0.1");
  EXPECT_THAT(read_file(path), ::testing::EndsWith("\r\n"));
}

TEST(TensorBoardEvents, ResumeRewritesEarlierFilesWithoutLaterEventsOrATornRecord) {
  TempDir dir;
  std::string first;
  {
    hpt::host::TensorBoardEvents events(dir.path(), "[run]\n");
    first = events.path();
    for (int step = 1; step <= 5; ++step) events.step(logged(step, 1.0 / step));
  }
  { std::ofstream(first, std::ios::app | std::ios::binary) << std::string("\x10\x00\x00", 3); }
  {
    hpt::host::TensorBoardEvents events(dir.path(), "[run]\n");
    EXPECT_NE(events.path(), first);
    events.resume(3);
  }
  const std::string bytes = read_file(first);
  std::size_t trusted = 0;
  auto records = hpt::host::tfrecord_records(bytes, &trusted);
  EXPECT_EQ(trusted, bytes.size());
  std::vector<std::int64_t> steps;
  for (const auto& r : records)
    if (auto s = hpt::host::proto_varint_field(r, 2)) steps.push_back(static_cast<std::int64_t>(*s));
  EXPECT_EQ(steps, (std::vector<std::int64_t>{0, 1, 2, 3}));  // the manifest (step 0), steps 1..3
}

}  // namespace
