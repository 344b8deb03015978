// The order in which a task visits its training samples: shuffled anew every epoch,
// reproducible from a seed and resumable from a checkpoint.
//
// Epoch e visits the samples in a permutation that depends only on (seed, e) (a
// Fisher-Yates shuffle driven by std::mt19937_64, which the C++ standard fully
// specifies), so the position -- epoch and index into its permutation -- is the whole
// state: save() writes it, load() restores it, and the batches after a load are the
// ones an uninterrupted run would have seen.
//
// A curriculum (hpt::Task::restrict_examples) restricts the sampler to a pool of the
// samples: from then on each epoch is a permutation, driven the same way, of the pool's
// indices in ascending order. restrict_to() starts a new epoch at once; the pool is
// saved with the position. Never restricted, the sampler is what it was without pools.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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

  // From the next batch on, epochs visit only `pool` (int64 indices into the samples, any
  // order, no repeats; an undefined tensor: every sample again), starting a new epoch.
  // Throws hpt::BadInput for indices out of range or repeated, or a pool smaller than a
  // global batch (batch_size * world).
  void restrict_to(const torch::Tensor& pool);
  // The samples the epochs visit: the pool's size, or every sample when unrestricted.
  std::int64_t visited() const { return pool_.empty() ? samples_ : static_cast<std::int64_t>(pool_.size()); }

  // The position, under keys starting with `prefix`. load() throws hpt::BadInput when
  // the archive was written for another number of samples or batch size.
  void save(hpt::StateWriter& state, const std::string& prefix) const;
  void load(torch::serialize::InputArchive& archive, const std::string& prefix);

 private:
  void shuffle_for_epoch();
  std::vector<std::int64_t> checked_pool(const torch::Tensor& pool) const;

  std::int64_t samples_;
  std::int64_t batch_size_;
  Shard shard_;
  std::uint64_t seed_;
  torch::Device device_;
  std::int64_t epoch_ = 0;
  std::int64_t position_ = 0;  // index into order_ of the next batch's first sample
  torch::Tensor order_;        // this epoch's permutation, on the device
  std::vector<std::int64_t> pool_;  // restrict_to()'s indices, ascending; empty: unrestricted
};

}  // namespace hpt::task_support
