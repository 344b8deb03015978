// Optimizer "sgd": torch::optim::SGD (momentum, dampening, Nesterov, weight decay) with
// the schedules and clipping of hpt::TorchOptimizer.
#include <torch/optim/sgd.h>

#include "hpt/hpt.hpp"
#include "hpt/torch_optimizer.hpp"

namespace {

class SgdOptimizer : public hpt::TorchOptimizer {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    auto specs = common_options(0.01);
    specs.push_back(hpt::option_float("momentum", 0.0, "momentum factor", 0.0));
    specs.push_back(hpt::option_float("dampening", 0.0, "dampening of the momentum", 0.0, 1.0));
    specs.push_back(hpt::option_bool("nesterov", false, "Nesterov momentum (needs momentum > 0, dampening = 0)"));
    specs.push_back(hpt::option_float("weight_decay", 0.0, "L2 penalty added to the gradient", 0.0));
    return specs;
  }

  SgdOptimizer(const hpt::PluginContext& context, const hpt::Options& options)
      : TorchOptimizer(context, options),
        sgd_options_(torch::optim::SGDOptions(base_learning_rate())
                         .momentum(options.get_float("momentum"))
                         .dampening(options.get_float("dampening"))
                         .nesterov(options.get_bool("nesterov"))
                         .weight_decay(options.get_float("weight_decay"))) {
    if (sgd_options_.nesterov() && (sgd_options_.momentum() <= 0.0 || sgd_options_.dampening() != 0.0))
      throw hpt::BadInput("option 'nesterov' needs option 'momentum' > 0 and option 'dampening' = 0");
  }

 std::int64_t planned_state_bytes(const std::vector<torch::Tensor>& parameters) const override {
    // One momentum buffer per parameter, none without momentum.
    return sgd_options_.momentum() > 0.0 ? Optimizer::planned_state_bytes(parameters) / 2 : 0;
  }

 private:
  std::unique_ptr<torch::optim::Optimizer> make(const std::vector<torch::Tensor>& parameters) override {
    return std::make_unique<torch::optim::SGD>(parameters, sgd_options_);
  }

  torch::optim::SGDOptions sgd_options_;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Optimizer, "sgd", "1.0.0", "SGD with momentum and Nesterov on torch::optim",
           SgdOptimizer, SgdOptimizer::option_specs)
