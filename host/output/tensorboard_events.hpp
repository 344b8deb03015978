// TensorBoard event files (run.loggers = [..., "tensorboard"]): `tensorboard --logdir runs/`
// shows every run of the folder. A file is named events.out.tfevents.<unix seconds>.<host>
// as TensorBoard's own writer names it, and holds TFRecord-framed Event protobufs
// (output/tfrecord.hpp, output/protobuf_wire.hpp): first Event{file_version "brain.Event:2"},
// then the resolved manifest as a text summary (tag config/manifest, step 0, a Markdown
// code block), then scalars:
//   train/loss, train/lr, train/grad_norm   every logged real step (full, correct, skipped)
//   train/forecast_loss, train/lr           every logged predicted step that was kept
//   train/probe_loss                        every probe (of a kept phase)
//   val/<metric>                            every evaluation, each metric the task reports
//   hybrid/predicted_fraction, hybrid/predicted_steps   every evaluation, when the run predicts
//   hybrid/rollback_discarded_steps         every roll-back, at the step the run went back to
//   checkpoint/stall_seconds                every checkpoint, at its step
// The file is flushed on every evaluation and checkpoint and at the end of the run.
// A resumed run writes a new file. Resuming from a checkpoint at step S first rewrites the
// run's earlier event files without the events after S (and without a record cut short by
// a crash), so no step is shown twice whatever reads them; the new file also starts with a
// SessionLog START at step S + 1, TensorBoard's own signal to drop such events.
#pragma once

#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "output/metrics_sink.hpp"

namespace hpt::host {

class ProtoMessage;

class TensorBoardEvents : public MetricsSink {
 public:
  TensorBoardEvents(const std::string& run_dir, const std::string& resolved_manifest);

  void step(const LoggedStep& s) override;
  void eval(std::int64_t step, double train_seconds, const Metrics& metrics,
            std::optional<std::int64_t> predicted_steps) override;
  void rollback(std::int64_t step, std::int64_t discarded) override;
  void checkpoint(std::int64_t step, double stall_seconds) override;
  void resume(std::int64_t step) override;
  void flush() override;

  const std::string& path() const { return path_; }

 private:
  void scalars(std::int64_t step, const std::vector<std::pair<std::string, double>>& values);
  void write_event(std::int64_t step, const ProtoMessage* summary, const ProtoMessage* session_log = nullptr);
  std::string run_dir_, path_;
  std::ofstream out_;
};

}  // namespace hpt::host
