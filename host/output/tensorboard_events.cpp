#include "output/tensorboard_events.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iterator>

#include "hpt/error.hpp"
#include "output/protobuf_wire.hpp"
#include "output/run_directory.hpp"
#include "output/tfrecord.hpp"

namespace hpt::host {

namespace {

// Field numbers of tensorflow/core/util/event.proto and framework/summary.proto, tensor.proto.
namespace event_field {
constexpr int kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5, kSessionLog = 6;
}
namespace summary_field {
constexpr int kValue = 1;                                          // Summary.value (repeated)
constexpr int kTag = 1, kSimpleValue = 2, kTensor = 8, kMetadata = 9;  // Summary.Value
constexpr int kPluginData = 1, kPluginName = 1;                    // SummaryMetadata, .PluginData
constexpr int kDtype = 1, kTensorShape = 2, kStringVal = 8;        // TensorProto
constexpr int kDtString = 7;                                       // DataType DT_STRING
constexpr int kStatus = 1, kStart = 1;                             // SessionLog.status, START
}  // namespace summary_field

double tensorboard_wall_time() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// events.out.tfevents.<unix seconds, 10 digits>.<host>, as TensorBoard's writer names
// it; a second file in the same second (a quick resume) gets .1, .2, ... after it.
std::string new_event_file_name(const std::string& dir) {
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  char secs[32];
  std::snprintf(secs, sizeof secs, "%010lld", static_cast<long long>(std::time(nullptr)));
  const std::string base = dir + "/events.out.tfevents." + secs + "." + host;
  std::string path = base;
  for (int n = 1; std::filesystem::exists(path); ++n) path = base + "." + std::to_string(n);
  return path;
}

// Markdown (TensorBoard's text plugin renders it): a code block keeps the TOML as it is.
std::string markdown_code_block(const std::string& text) {
  std::string out = "    ";
  for (std::size_t i = 0; i < text.size(); ++i) {
    out += text[i];
    if (text[i] == '\n' && i + 1 < text.size()) out += "    ";
  }
  return out;
}

std::string slurp_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TensorBoardEvents::TensorBoardEvents(const std::string& run_dir, const std::string& resolved_manifest)
    : run_dir_(run_dir), path_(new_event_file_name(run_dir)) {
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw RunError("cannot open " + path_ + " for writing");
  ProtoMessage version;
  version.float64(event_field::kWallTime, tensorboard_wall_time()).bytes(event_field::kFileVersion, "brain.Event:2");
  out_ << tfrecord_frame(version.data());

  using namespace summary_field;
  ProtoMessage plugin;
  plugin.bytes(kPluginName, "text");
  ProtoMessage metadata;
  metadata.message(kPluginData, plugin);
  ProtoMessage tensor;
  tensor.varint(kDtype, kDtString).message(kTensorShape, ProtoMessage()).bytes(kStringVal,
                                                                               markdown_code_block(resolved_manifest));
  ProtoMessage value;
  value.bytes(kTag, "config/manifest").message(kMetadata, metadata).message(kTensor, tensor);
  ProtoMessage summary;
  summary.message(kValue, value);
  write_event(0, &summary);
  flush();
}

void TensorBoardEvents::write_event(std::int64_t step, const ProtoMessage* summary, const ProtoMessage* session_log) {
  ProtoMessage event;
  event.float64(event_field::kWallTime, tensorboard_wall_time()).varint(event_field::kStep, static_cast<std::uint64_t>(step));
  if (summary) event.message(event_field::kSummary, *summary);
  if (session_log) event.message(event_field::kSessionLog, *session_log);
  out_ << tfrecord_frame(event.data());
}

void TensorBoardEvents::scalars(std::int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  using namespace summary_field;
  ProtoMessage summary;
  for (const auto& [tag, v] : values) {
    ProtoMessage value;
    value.bytes(kTag, tag).float32(kSimpleValue, static_cast<float>(v));
    summary.message(kValue, value);
  }
  write_event(step, &summary);
}

void TensorBoardEvents::step(const LoggedStep& s) {
  if (s.discarded) return;
  if (s.kind == "predicted")
    scalars(s.step, {{"train/forecast_loss", s.loss}, {"train/lr", s.learning_rate}});
  else if (s.kind == "probe")
    scalars(s.step, {{"train/probe_loss", s.loss}});
  else
    scalars(s.step, {{"train/loss", s.loss}, {"train/lr", s.learning_rate}, {"train/grad_norm", s.grad_norm}});
}

void TensorBoardEvents::eval(std::int64_t step, double, const Metrics& metrics,
                             std::optional<std::int64_t> predicted_steps) {
  std::vector<std::pair<std::string, double>> values;
  for (const auto& [name, v] : metrics) values.emplace_back("val/" + name, v);
  if (predicted_steps && step > 0) {
    values.emplace_back("hybrid/predicted_fraction", static_cast<double>(*predicted_steps) / static_cast<double>(step));
    values.emplace_back("hybrid/predicted_steps", static_cast<double>(*predicted_steps));
  }
  scalars(step, values);
  flush();
}

void TensorBoardEvents::rollback(std::int64_t step, std::int64_t discarded) {
  scalars(step, {{"hybrid/rollback_discarded_steps", static_cast<double>(discarded)}});
}

void TensorBoardEvents::checkpoint(std::int64_t step, double stall_seconds) {
  scalars(step, {{"checkpoint/stall_seconds", stall_seconds}});
  flush();
}

void TensorBoardEvents::resume(std::int64_t step) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(run_dir_, ec)) {
    const std::string path = entry.path().string();
    if (path == path_ || entry.path().filename().string().find("tfevents") == std::string::npos) continue;
    const std::string bytes = slurp_file(path);
    std::size_t trusted = 0;
    std::string kept;
    bool dropped = false;
    for (const std::string& record : tfrecord_records(bytes, &trusted)) {
      auto event_step = proto_varint_field(record, event_field::kStep);
      if (event_step && static_cast<std::int64_t>(*event_step) > step) dropped = true;
      else kept += tfrecord_frame(record);
    }
    if (dropped || trusted != bytes.size()) write_file_atomic(path, kept);
  }
  ProtoMessage start;
  start.varint(summary_field::kStatus, summary_field::kStart);
  write_event(step + 1, nullptr, &start);
  flush();
}

void TensorBoardEvents::flush() {
  flush_or_throw(out_, path_);
}

}  // namespace hpt::host
