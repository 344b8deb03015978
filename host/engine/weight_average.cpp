#include "engine/weight_average.hpp"

#include "checkpoint/archive_io.hpp"

namespace hpt::host {

void WeightAverage::start_if_due(Backend& backend, const std::vector<torch::Tensor>& weights, std::int64_t step) {
  if (!settings_.enabled || started() || step < settings_.start_step) return;
  average_ = backend.snapshot(weights);
}

void WeightAverage::after_real_step(Backend& backend, const std::vector<torch::Tensor>& weights, std::int64_t step) {
  if (!settings_.enabled) return;
  if (!started()) {
    start_if_due(backend, weights, step);
    return;
  }
  backend.update_average(average_, weights, settings_.decay);
}

void WeightAverage::save(StateWriter& state, const std::vector<std::string>& names) const {
  state.write("names", c10::IValue(names));
  for (std::size_t i = 0; i < average_.size(); ++i) state.write("param_" + std::to_string(i), average_[i]);
}

void WeightAverage::load(torch::serialize::InputArchive& archive, const std::vector<torch::Tensor>& weights) {
  average_.clear();
  std::vector<torch::Tensor> loaded;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    torch::Tensor t;
    if (!archive.try_read("param_" + std::to_string(i), t)) break;
    loaded.push_back(t.to(weights[i].device(), weights[i].scalar_type()));
  }
  if (loaded.size() == weights.size()) average_ = std::move(loaded);
}

std::vector<std::pair<std::string, torch::Tensor>> read_averaged_weights(const std::string& bytes,
                                                                         const std::string& what) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  read_archive(bytes, [&](torch::serialize::InputArchive& archive) {
    c10::IValue names;
    if (!archive.try_read("names", names) || !names.isList())
      throw BadInput(what + " holds no averaged weights (not written by hpt's [averaging])");
    const auto list = names.toListRef();
    for (std::size_t i = 0; i < list.size(); ++i) {
      torch::Tensor t;
      if (!archive.try_read("param_" + std::to_string(i), t)) {
        out.clear();  // the average had not started
        return;
      }
      out.emplace_back(list[i].toStringRef(), t);
    }
  });
  return out;
}

}  // namespace hpt::host
