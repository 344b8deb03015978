// Optimizer "lbfgs": torch::optim::LBFGS with the schedules and clipping of
// hpt::TorchOptimizer. One step runs up to max_iter iterations and calls the closure
// several times, so it suits full-batch tasks.
#include <torch/optim/lbfgs.h>

#include "hpt/hpt.hpp"
#include "hpt/torch_optimizer.hpp"

namespace {

class LbfgsOptimizer : public hpt::TorchOptimizer {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    auto specs = common_options(1.0);
    specs.push_back(hpt::option_int("history_size", 100, "update pairs kept for the Hessian estimate", 1));
    specs.push_back(hpt::option_int("max_iter", 20, "iterations per step", 1));
    specs.push_back(hpt::option_float("tolerance_grad", 1e-7, "stop a step when the largest |gradient| is below", 0.0));
    specs.push_back(hpt::option_float("tolerance_change", 1e-9, "stop a step when loss or parameters change less", 0.0));
    specs.push_back(hpt::option_string("line_search", "strong_wolfe", "line search: strong_wolfe, or none (fixed lr)",
                                       {"strong_wolfe", "none"}));
    return specs;
  }

  LbfgsOptimizer(const hpt::PluginContext& context, const hpt::Options& options)
      : TorchOptimizer(context, options),
        lbfgs_options_(torch::optim::LBFGSOptions(base_learning_rate())
                           .history_size(options.get_int("history_size"))
                           .max_iter(options.get_int("max_iter"))
                           .tolerance_grad(options.get_float("tolerance_grad"))
                           .tolerance_change(options.get_float("tolerance_change"))) {
    const std::string& line_search = options.get_string("line_search");
    if (line_search == "strong_wolfe") lbfgs_options_.line_search_fn("strong_wolfe");
    else if (line_search != "none")
      throw hpt::BadInput("option 'line_search' must be \"strong_wolfe\" or \"none\", got \"" + line_search + "\"");
  }

  // torch::optim::LBFGS works on one param group only (as torch.optim.LBFGS).
  void set_parameter_groups(const std::vector<hpt::ParameterGroup>&) override {
    throw hpt::BadInput("optimizer lbfgs does not take [[param_groups]]: L-BFGS works on one parameter group "
                        "(as torch.optim.LBFGS); use sgd, adam, adamw or schedule_free for groups");
  }

  // LibTorch 1.13's LBFGS cannot serialise its scratch vector `al` while the history is
  // not full (it holds undefined tensors). Every step overwrites `al` before reading it,
  // so it is dropped before saving.
  void save(hpt::StateWriter& state) const override {
    for (auto& entry : torch_optimizer().state())
      static_cast<torch::optim::LBFGSParamState&>(*entry.second).al(c10::nullopt);
    TorchOptimizer::save(state);
  }

 std::int64_t planned_state_bytes(const std::vector<torch::Tensor>& parameters) const override {
    // history_size pairs (s, y) of flattened parameters, plus the direction, previous
    // gradient and previous flat gradient: 2 * history + 3 parameter-sized vectors.
    const std::int64_t one = Optimizer::planned_state_bytes(parameters) / 2;
    return (2 * lbfgs_options_.history_size() + 3) * one;
  }

 private:
  std::unique_ptr<torch::optim::Optimizer> make(const std::vector<torch::Tensor>& parameters) override {
    return std::make_unique<torch::optim::LBFGS>(parameters, lbfgs_options_);
  }

  torch::optim::LBFGSOptions lbfgs_options_;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Optimizer, "lbfgs", "1.0.0", "L-BFGS (optional strong Wolfe line search) on torch::optim",
           LbfgsOptimizer, LbfgsOptimizer::option_specs)
