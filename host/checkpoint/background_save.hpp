// A checkpoint written on another thread: the training thread freezes the state
// (FrozenCheckpoint) and goes on; a thread of our own serialises it and hands it to
// Checkpointer::save(), which hashes, writes, fsyncs, renames and applies retention as
// in the foreground. The engine keeps at most one in flight (docs/architecture.md).
#pragma once

#include <cstdint>
#include <future>
#include <memory>

#include "checkpoint/checkpoint_snapshot.hpp"
#include "hpt/checkpointer.hpp"

namespace hpt::host {

class BackgroundSave {
 public:
  struct Done {
    std::int64_t step = 0;
    CheckpointInfo info;
    double seconds = 0.0;           // the whole save: snapshot and the thread's work
    double stall_seconds = 0.0;     // what the training thread spent: snapshot and waiting
    double snapshot_seconds = 0.0;  // of which the snapshot
  };

  // Starts writing `frozen` as the checkpoint of `step`; snapshot_seconds is what
  // freezing it cost the training thread. The checkpointer must allow save() on another
  // thread (the `background` option, hpt/checkpointer.hpp).
  BackgroundSave(std::shared_ptr<Checkpointer> checkpointer, std::int64_t step,
                 std::shared_ptr<FrozenCheckpoint> frozen, Metrics metrics, double snapshot_seconds);

  std::int64_t step() const { return step_; }
  bool finished() const;
  // Waits for the save. Throws RunError "the checkpoint of step N (saved in the
  // background) failed: <reason>" when it failed.
  Done wait();

 private:
  std::int64_t step_ = 0;
  double snapshot_seconds_ = 0.0;
  std::future<std::pair<CheckpointInfo, double>> result_;  // the checkpoint and the thread's seconds
};

}  // namespace hpt::host
