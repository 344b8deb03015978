#include "task_support/epoch_sampler.hpp"

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "hpt/error.hpp"
#include "task_support/seeding.hpp"

namespace hpt::task_support {

namespace {

void write_int(hpt::StateWriter& state, const std::string& key, std::int64_t value) {
  state.write(key, torch::tensor(value, torch::kInt64));
}

std::int64_t read_int(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor t;
  archive.read(key, t);
  return t.item<std::int64_t>();
}

}  // namespace

EpochSampler::EpochSampler(std::int64_t samples, std::int64_t batch_size, std::uint64_t seed, torch::Device device,
                           Shard shard)
    : samples_(samples),
      batch_size_(shard.world > 1 ? batch_size : std::min(batch_size, samples)),
      shard_(shard),
      seed_(seed),
      device_(device) {
  if (samples_ < 1) throw BadInput("a task needs at least one training sample, got " + std::to_string(samples_));
  if (batch_size_ < 1) throw BadInput("batch size must be at least 1, got " + std::to_string(batch_size));
  if (shard_.world < 1 || shard_.rank < 0 || shard_.rank >= shard_.world)
    throw BadInput("rank " + std::to_string(shard_.rank) + " of " + std::to_string(shard_.world) + " ranks");
  if (batch_size_ * shard_.world > samples_)
    throw BadInput("a global batch of " + std::to_string(batch_size_) + " x " + std::to_string(shard_.world) +
                   " ranks = " + std::to_string(batch_size_ * shard_.world) + " rows exceeds the " +
                   std::to_string(samples_) + " training samples: lower batch_size");
  shuffle_for_epoch();
}

// The pool of restrict_to() as ascending indices; throws for indices out of range or repeated.
std::vector<std::int64_t> EpochSampler::checked_pool(const torch::Tensor& pool) const {
  if (pool.dim() != 1)
    throw BadInput("a curriculum's pool of examples must be a 1-D tensor of indices, got " +
                   std::to_string(pool.dim()) + " dimensions");
  torch::Tensor cpu = pool.to(torch::kCPU, torch::kInt64).contiguous();
  std::vector<std::int64_t> out(cpu.data_ptr<std::int64_t>(), cpu.data_ptr<std::int64_t>() + cpu.numel());
  std::sort(out.begin(), out.end());
  if (!out.empty() && (out.front() < 0 || out.back() >= samples_))
    throw BadInput("a curriculum's pool holds example " + std::to_string(out.front() < 0 ? out.front() : out.back()) +
                   ", outside the " + std::to_string(samples_) + " training samples");
  if (std::adjacent_find(out.begin(), out.end()) != out.end())
    throw BadInput("a curriculum's pool holds example " + std::to_string(*std::adjacent_find(out.begin(), out.end())) +
                   " more than once");
  return out;
}

void EpochSampler::restrict_to(const torch::Tensor& pool) {
  std::vector<std::int64_t> indices;
  if (pool.defined()) {
    indices = checked_pool(pool);
    const std::int64_t global = batch_size_ * shard_.world;
    if (static_cast<std::int64_t>(indices.size()) < global)
      throw BadInput("a curriculum's pool of " + std::to_string(indices.size()) +
                     " examples is smaller than a global batch of " + std::to_string(global) +
                     " rows: raise curriculum.start_fraction or lower batch_size");
  }
  pool_ = std::move(indices);
  ++epoch_;
  position_ = 0;
  shuffle_for_epoch();
}

void EpochSampler::shuffle_for_epoch() {
  std::vector<std::int64_t> order;
  if (pool_.empty()) {
    order.resize(static_cast<std::size_t>(samples_));
    std::iota(order.begin(), order.end(), std::int64_t{0});
  } else {
    order = pool_;
  }
  std::mt19937_64 rng(derive_seed(seed_, static_cast<std::uint64_t>(epoch_)));
  for (std::size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng() % (i + 1)]);
  order_ = torch::tensor(order, torch::kInt64).to(device_);
}

torch::Tensor EpochSampler::next() {
  const std::int64_t global = batch_size_ * shard_.world;
  if (position_ + global > visited()) {
    ++epoch_;
    position_ = 0;
    shuffle_for_epoch();
  }
  torch::Tensor batch = order_.narrow(0, position_ + shard_.rank * batch_size_, batch_size_);
  position_ += global;
  return batch;
}

void EpochSampler::save(hpt::StateWriter& state, const std::string& prefix) const {
  write_int(state, prefix + "samples", samples_);
  write_int(state, prefix + "batch_size", batch_size_);
  write_int(state, prefix + "seed", static_cast<std::int64_t>(seed_));
  write_int(state, prefix + "epoch", epoch_);
  write_int(state, prefix + "position", position_);
  write_int(state, prefix + "world", shard_.world);
  if (!pool_.empty()) state.write(prefix + "pool", torch::tensor(pool_, torch::kInt64));
}

void EpochSampler::load(torch::serialize::InputArchive& archive, const std::string& prefix) {
  std::int64_t samples = read_int(archive, prefix + "samples");
  std::int64_t batch_size = read_int(archive, prefix + "batch_size");
  if (samples != samples_ || batch_size != batch_size_)
    throw BadInput("the saved data order is for " + std::to_string(samples) + " samples in batches of " +
                   std::to_string(batch_size) + ", this task has " + std::to_string(samples_) + " in batches of " +
                   std::to_string(batch_size_) + " (were the task's options changed?)");
  torch::Tensor world;
  const std::int64_t saved_world = archive.try_read(prefix + "world", world) ? world.item<std::int64_t>() : 1;
  if (saved_world != shard_.world)
    throw BadInput("the saved data order is for " + std::to_string(saved_world) + " rank(s), this run has " +
                   std::to_string(shard_.world) + ": resume on the world size the checkpoint was written with");
  seed_ = static_cast<std::uint64_t>(read_int(archive, prefix + "seed"));
  epoch_ = read_int(archive, prefix + "epoch");
  position_ = read_int(archive, prefix + "position");
  torch::Tensor pool;
  pool_ = archive.try_read(prefix + "pool", pool) ? checked_pool(pool) : std::vector<std::int64_t>();
  shuffle_for_epoch();
}

}  // namespace hpt::task_support
