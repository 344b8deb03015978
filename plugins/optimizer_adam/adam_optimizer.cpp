// Optimizer "adam": torch::optim::Adam (L2 weight decay added to the gradient, AMSGrad)
// with the schedules and clipping of hpt::TorchOptimizer.
#include <torch/optim/adam.h>

#include "hpt/hpt.hpp"
#include "hpt/torch_optimizer.hpp"

namespace {

class AdamOptimizer : public hpt::TorchOptimizer {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    auto specs = common_options(1e-3);
    specs.push_back(hpt::option_float_list("betas", {0.9, 0.999}, "decay rates of the moment estimates", 0.0, 1.0));
    specs.push_back(hpt::option_float("eps", 1e-8, "added to the denominator", 0.0));
    specs.push_back(hpt::option_float("weight_decay", 0.0, "L2 penalty added to the gradient", 0.0));
    specs.push_back(hpt::option_bool("amsgrad", false, "use the AMSGrad variant"));
    return specs;
  }

  AdamOptimizer(const hpt::PluginContext& context, const hpt::Options& options)
      : TorchOptimizer(context, options),
        adam_options_(torch::optim::AdamOptions(base_learning_rate())
                          .betas(float_pair_option(options, "betas"))
                          .eps(options.get_float("eps"))
                          .weight_decay(options.get_float("weight_decay"))
                          .amsgrad(options.get_bool("amsgrad"))) {}

 private:
  std::unique_ptr<torch::optim::Optimizer> make(const std::vector<torch::Tensor>& parameters) override {
    return std::make_unique<torch::optim::Adam>(parameters, adam_options_);
  }

  torch::optim::AdamOptions adam_options_;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Optimizer, "adam", "1.0.0", "Adam on torch::optim", AdamOptimizer,
           AdamOptimizer::option_specs)
