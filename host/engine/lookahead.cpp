#include "engine/lookahead.hpp"

namespace hpt::host {

void Lookahead::start(Backend& backend, const std::vector<torch::Tensor>& weights) {
  if (!settings_.enabled || !slow_.empty()) return;
  slow_ = backend.snapshot(weights);
  steps_since_sync_ = 0;
}

bool Lookahead::after_real_step(Backend& backend, const std::vector<torch::Tensor>& weights) {
  if (!settings_.enabled) return false;
  if (slow_.empty()) start(backend, weights);
  if (++steps_since_sync_ < settings_.k) return false;
  steps_since_sync_ = 0;
  // phi = (1 - alpha) * phi + alpha * theta: an EMA step with decay 1 - alpha.
  backend.update_average(slow_, weights, 1.0 - settings_.alpha);
  backend.restore(weights, slow_);
  return true;
}

void Lookahead::save(StateWriter& state) const {
  state.write("steps_since_sync", torch::tensor(steps_since_sync_, torch::kInt64));
  for (std::size_t i = 0; i < slow_.size(); ++i) state.write("slow_" + std::to_string(i), slow_[i]);
}

void Lookahead::load(torch::serialize::InputArchive& archive, const std::vector<torch::Tensor>& weights) {
  torch::Tensor count;
  if (archive.try_read("steps_since_sync", count)) steps_since_sync_ = count.item<std::int64_t>();
  std::vector<torch::Tensor> loaded;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    torch::Tensor t;
    if (!archive.try_read("slow_" + std::to_string(i), t)) break;
    loaded.push_back(t.to(weights[i].device(), weights[i].scalar_type()));
  }
  if (loaded.size() == weights.size()) slow_ = std::move(loaded);
}

}  // namespace hpt::host
