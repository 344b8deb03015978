// The order in which a task visits its training samples: shuffled anew every epoch,
// reproducible from a seed and resumable from a checkpoint.
//
// Epoch e visits the samples in a permutation that depends only on (seed, e) (a
// Fisher-Yates shuffle driven by std::mt19937_64, which the C++ standard fully
// specifies), so the position -- epoch and index into its permutation -- is the whole
// state: save() writes it, load() restores it, and the batches after a load are the
// ones an uninterrupted run would have seen.
#pragma once

#include <cstdint>
#include <string>

#include <torch/serialize/archive.h>
#include <torch/types.h>

#include "hpt/state_writer.hpp"

namespace hpt::task_support {

// Data parallelism: rank r of `world` ranks takes rows [r * batch_size, (r + 1) * batch_size)
// of each global batch of batch_size * world rows, so the ranks together see the batches
// one process with batch_size * world would, and no row twice.
struct Shard {
  int rank = 0;
  int world = 1;
};

class EpochSampler {
 public:
  // `samples` to visit, `batch_size` per batch and rank (capped at `samples` on one rank),
  // indices on `device`.
  EpochSampler(std::int64_t samples, std::int64_t batch_size, std::uint64_t seed, torch::Device device,
               Shard shard = {});

  // Indices (int64, on the device) of this rank's part of the next batch. Every batch has
  // batch_size() indices: an epoch yields samples / (batch_size * world) batches and
  // leaves the remainder out.
  torch::Tensor next();

  std::int64_t batch_size() const { return batch_size_; }
  std::int64_t epoch() const { return epoch_; }
  std::int64_t position() const { return position_; }

  // The position, under keys starting with `prefix`. load() throws hpt::BadInput when
  // the archive was written for another number of samples or batch size.
  void save(hpt::StateWriter& state, const std::string& prefix) const;
  void load(torch::serialize::InputArchive& archive, const std::string& prefix);

 private:
  void shuffle_for_epoch();

  std::int64_t samples_;
  std::int64_t batch_size_;
  Shard shard_;
  std::uint64_t seed_;
  torch::Device device_;
  std::int64_t epoch_ = 0;
  std::int64_t position_ = 0;  // index into order_ of the next batch's first sample
  torch::Tensor order_;        // this epoch's permutation, on the device
};

}  // namespace hpt::task_support
