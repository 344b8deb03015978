#include "engine/gradient_sync.hpp"

#include <chrono>

#include "hpt/error.hpp"

namespace hpt::host {

GradientSync::GradientSync(Backend& backend, const std::vector<torch::Tensor>& parameters, std::int64_t bucket_bytes)
    : backend_(backend), parameters_(parameters), slots_(parameters.size()) {
  // Buckets in reverse parameter order; a new bucket when the dtype or device changes or
  // the current one is full.
  std::int64_t used = 0;  // bytes in the last bucket
  for (std::size_t k = parameters_.size(); k-- > 0;) {
    const torch::Tensor& p = parameters_[k];
    if (!p.requires_grad()) continue;
    const std::int64_t bytes = p.numel() * static_cast<std::int64_t>(p.element_size());
    bool fits = false;
    if (!buckets_.empty()) {
      const torch::Tensor& first = parameters_[buckets_.back().parameters.front()];
      fits = first.scalar_type() == p.scalar_type() && first.device() == p.device() && used + bytes <= bucket_bytes;
    }
    if (!fits) {
      buckets_.emplace_back();
      used = 0;
    }
    buckets_.back().parameters.push_back(k);
    used += bytes;
  }
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    std::int64_t offset = 0;
    for (std::size_t e = 0; e < bucket.parameters.size(); ++e) {
      const std::size_t i = bucket.parameters[e];
      slots_[i] = {b, e, offset, parameters_[i].numel()};
      offset += parameters_[i].numel();
    }
    const torch::Tensor& first = parameters_[bucket.parameters.front()];
    bucket.buffer = torch::zeros({offset}, first.options().requires_grad(false));
    bucket.arrived.assign(bucket.parameters.size(), false);
  }
  for (std::size_t k = 0; k < parameters_.size(); ++k) {
    if (!parameters_[k].requires_grad()) {
      hooks_.push_back(0);
      continue;
    }
    hooks_.push_back(parameters_[k].register_hook([this, k](torch::Tensor grad) { arrived(k, grad); }));
  }
}

GradientSync::~GradientSync() {
  for (std::size_t k = 0; k < parameters_.size(); ++k)
    if (parameters_[k].requires_grad()) parameters_[k].remove_hook(hooks_[k]);
}

std::int64_t GradientSync::bytes_per_step() const {
  std::int64_t bytes = 0;
  for (const auto& b : buckets_) bytes += b.buffer.numel() * static_cast<std::int64_t>(b.buffer.element_size());
  return bytes;
}

void GradientSync::begin() {
  for (auto& b : buckets_) {
    b.ready = 0;
    std::fill(b.arrived.begin(), b.arrived.end(), false);
    b.pending.reset();
  }
}

void GradientSync::arrived(std::size_t parameter, const torch::Tensor& grad) {
  const Slot& slot = slots_[parameter];
  Bucket& bucket = buckets_[slot.bucket];
  const std::size_t entry = slot.entry;
  // A leaf's hook runs once per backward pass, with the gradient summed over its uses.
  if (bucket.arrived[entry]) throw RunError("gradient sync: a second gradient for parameter " + std::to_string(parameter) +
                                            " in one backward pass");
  torch::NoGradGuard no_grad;
  bucket.buffer.narrow(0, slot.offset, slot.numel).copy_(grad.reshape({-1}));
  bucket.arrived[entry] = true;
  if (++bucket.ready == bucket.parameters.size()) launch(bucket);
}

void GradientSync::launch(Bucket& bucket) { bucket.pending = backend_.all_reduce_async({bucket.buffer}); }

void GradientSync::finish() {
  torch::NoGradGuard no_grad;
  // Buckets with a parameter backward never reached (unused this step): its gradient is
  // zero on this rank, and the bucket goes now. Every rank launches the buckets in the
  // same order (all-reduces match by order).
  for (auto& b : buckets_) {
    if (b.pending) continue;
    for (std::size_t e = 0; e < b.parameters.size(); ++e) {
      if (b.arrived[e]) continue;
      const Slot& slot = slots_[b.parameters[e]];
      const torch::Tensor& g = parameters_[b.parameters[e]].grad();
      if (g.defined()) b.buffer.narrow(0, slot.offset, slot.numel).copy_(g.reshape({-1}));
      else b.buffer.narrow(0, slot.offset, slot.numel).zero_();
    }
    launch(b);
  }
  const double inverse = 1.0 / static_cast<double>(backend_.world().size);
  for (auto& b : buckets_) {
    const auto t0 = std::chrono::steady_clock::now();
    b.pending->wait();
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    b.pending.reset();
    b.buffer.mul_(inverse);
    for (std::size_t i : b.parameters) {
      const Slot& slot = slots_[i];
      torch::Tensor mean = b.buffer.narrow(0, slot.offset, slot.numel).view(parameters_[i].sizes());
      torch::Tensor& grad = parameters_[i].mutable_grad();
      if (grad.defined()) grad.copy_(mean);
      else grad = mean.clone();
    }
  }
}

}  // namespace hpt::host
