// metrics.jsonl as a reader can trust it: complete JSON lines, predicted steps that say
// they are forecasts and whether they were discarded, and a resume that cuts the file
// back to the checkpoint and drops a half-written line.
#include "output/metrics_log.hpp"

#include <sstream>

#include <boost/json.hpp>

#include "test_support.hpp"

using hpt::host::MetricsLog;
using hpt::test::read_file;
using hpt::test::TempDir;

namespace {

std::vector<boost::json::object> lines_of(const std::string& path) {
  std::vector<boost::json::object> lines;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(boost::json::parse(line).as_object());
  return lines;
}

hpt::StepRecord record(std::int64_t step, hpt::StepKind kind, double loss) {
  hpt::StepRecord r;
  r.step = step;
  r.kind = kind;
  r.loss = loss;
  return r;
}

TEST(MetricsLog, PredictedStepsCarryTheForecastAndWhetherTheyWereDiscarded) {
  TempDir dir;
  const std::string path = dir.path() + "/metrics.jsonl";
  {
    MetricsLog log(path, 1);
    log.step(record(1, hpt::StepKind::Full, 0.9), 0.1);
    log.begin_phase();
    log.step(record(2, hpt::StepKind::Predicted, 0.8), 0.2);
    log.step(record(2, hpt::StepKind::Probe, 0.85), 0.2);
    log.end_phase(/*rolled_back=*/true);
    log.rollback(1, 1);
    log.begin_phase();
    log.step(record(2, hpt::StepKind::Predicted, 0.7), 0.3);
    log.end_phase(/*rolled_back=*/false);
    log.flush();
  }
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0].at("loss").as_double(), 0.9);
  EXPECT_FALSE(lines[0].contains("forecast_loss"));
  EXPECT_FALSE(lines[1].contains("loss"));
  EXPECT_EQ(lines[1].at("forecast_loss").as_double(), 0.8);
  EXPECT_EQ(lines[1].at("discarded").as_bool(), true);
  EXPECT_EQ(lines[2].at("kind").as_string(), "probe");
  EXPECT_EQ(lines[2].at("loss").as_double(), 0.85);  // a probe is measured
  EXPECT_EQ(lines[3].at("type").as_string(), "rollback");
  EXPECT_EQ(lines[4].at("discarded").as_bool(), false);
}

TEST(MetricsLog, ANonFiniteNumberIsNull) {
  TempDir dir;
  const std::string path = dir.path() + "/metrics.jsonl";
  {
    MetricsLog log(path, 1);
    log.step(record(1, hpt::StepKind::Full, std::nan("")), 0.1);
    log.eval(1, 0.1, 0.0, 1, {{"val_loss", INFINITY}});
  }
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(lines[0].at("loss").is_null());
  EXPECT_TRUE(lines[1].at("val_loss").is_null());
}

TEST(MetricsLog, ResumeCutsBackToTheCheckpointAndMarksIt) {
  TempDir dir;
  const std::string path = dir.path() + "/metrics.jsonl";
  std::uint64_t at_checkpoint = 0;
  {
    MetricsLog log(path, 1);
    for (int s = 1; s <= 3; ++s) log.step(record(s, hpt::StepKind::Full, 1.0), 0.1);
    at_checkpoint = log.sync();
    for (int s = 4; s <= 5; ++s) log.step(record(s, hpt::StepKind::Full, 1.0), 0.1);
  }
  {
    std::ofstream half(path, std::ios::app);
    half << "{\"type\":\"step\",\"st";  // a process killed mid-line
  }
  MetricsLog resumed(path, 1);
  resumed.resume(3, "checkpoints/step_000003", at_checkpoint);
  resumed.step(record(4, hpt::StepKind::Full, 1.0), 0.1);
  resumed.flush();
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[2].at("step").as_int64(), 3);
  EXPECT_EQ(lines[3].at("type").as_string(), "resume");
  EXPECT_EQ(lines[3].at("step").as_int64(), 3);
  EXPECT_EQ(lines[4].at("step").as_int64(), 4);
}

TEST(MetricsLog, ResumeWithoutARecordedLengthDropsOnlyAHalfLine) {
  TempDir dir;
  const std::string path = dir.path() + "/metrics.jsonl";
  {
    MetricsLog log(path, 1);
    log.step(record(1, hpt::StepKind::Full, 1.0), 0.1);
  }
  {
    std::ofstream half(path, std::ios::app);
    half << "{\"type\":";
  }
  MetricsLog resumed(path, 1);
  resumed.resume(1, "c", std::numeric_limits<std::uint64_t>::max());
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].at("type").as_string(), "resume");
}

}  // namespace
