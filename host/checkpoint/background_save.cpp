#include "checkpoint/background_save.hpp"

#include <chrono>

#include "hpt/error.hpp"

namespace hpt::host {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

BackgroundSave::BackgroundSave(std::shared_ptr<Checkpointer> checkpointer, std::int64_t step,
                               std::shared_ptr<FrozenCheckpoint> frozen, Metrics metrics,
                               double snapshot_seconds)
    : step_(step), snapshot_seconds_(snapshot_seconds) {
  result_ = std::async(std::launch::async, [checkpointer = std::move(checkpointer), frozen = std::move(frozen), step,
                                            metrics = std::move(metrics)]() mutable {
    auto t0 = Clock::now();
    CheckpointInfo info = checkpointer->save(step, frozen->files(), metrics);
    frozen.reset();  // frees the copies now rather than at the next wait
    return std::make_pair(std::move(info), seconds_since(t0));
  });
}

bool BackgroundSave::finished() const {
  return result_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

BackgroundSave::Done BackgroundSave::wait() {
  auto t0 = Clock::now();
  std::pair<CheckpointInfo, double> r;
  try {
    r = result_.get();
  } catch (const std::exception& e) {
    throw RunError("the checkpoint of step " + std::to_string(step_) + " (saved in the background) failed: " + e.what());
  }
  Done done;
  done.step = step_;
  done.info = std::move(r.first);
  done.seconds = snapshot_seconds_ + r.second;
  done.stall_seconds = snapshot_seconds_ + seconds_since(t0);
  done.snapshot_seconds = snapshot_seconds_;
  return done;
}

}  // namespace hpt::host
