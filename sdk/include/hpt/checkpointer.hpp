// Checkpointer: saves and restores the whole training state. The engine serialises
// every component into named files (bytes); the checkpointer decides how and where
// they are written, verified and kept.
//
// Background saves: a checkpointer that declares a bool option `background` and has it
// set lets the engine call save() on a thread of the engine's own, from a snapshot of
// the training state, while training goes on. The engine then guarantees that at most
// one save() runs at a time and that list() and load() are not called meanwhile, but
// it does call due() (on the training thread) while a save() runs: the two must not
// race. A failed save() fails the run when the engine next waits for it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hpt/plugin.hpp"
#include "hpt/types.hpp"

namespace hpt {

struct CheckpointFile {
  std::string name;   // e.g. "model.pt", "optimizer.pt", "state.json"
  std::string bytes;
};

struct CheckpointInfo {
  std::string path;   // the checkpoint's directory
  std::int64_t step = 0;
  Metrics metrics;    // the metrics at save time (for keeping the best)
};

class Checkpointer : public Plugin {
 public:
  ~Checkpointer() override;

  // Whether a checkpoint is due after step `step`, `seconds` of training after the last one.
  virtual bool due(std::int64_t step, double seconds_since_last) const = 0;

  // Writes a checkpoint of step `step` and returns its path. Never leaves a partial
  // checkpoint where a complete one is expected.
  virtual CheckpointInfo save(std::int64_t step, const std::vector<CheckpointFile>& files,
                              const Metrics& metrics) = 0;

  // The checkpoints of the run, newest first.
  virtual std::vector<CheckpointInfo> list() const = 0;

  // Reads back the files of the checkpoint at `path`; throws hpt::BadInput naming the
  // file when it is missing or corrupt.
  virtual std::vector<CheckpointFile> load(const std::string& path) const = 0;
};

}  // namespace hpt
