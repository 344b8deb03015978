// Optimizer "adamw": torch::optim::AdamW (decoupled weight decay, AMSGrad) with the
// schedules and clipping of hpt::TorchOptimizer.
#include <torch/optim/adamw.h>

#include "hpt/hpt.hpp"
#include "hpt/torch_optimizer.hpp"

namespace {

class AdamWOptimizer : public hpt::TorchOptimizer {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    auto specs = common_options(1e-3);
    specs.push_back(hpt::option_float_list("betas", {0.9, 0.999}, "decay rates of the moment estimates", 0.0, 1.0));
    specs.push_back(hpt::option_float("eps", 1e-8, "added to the denominator", 0.0));
    specs.push_back(hpt::option_float("weight_decay", 0.01, "decoupled weight decay", 0.0));
    specs.push_back(hpt::option_bool("amsgrad", false, "use the AMSGrad variant"));
    return specs;
  }

  AdamWOptimizer(const hpt::PluginContext& context, const hpt::Options& options)
      : TorchOptimizer(context, options),
        adamw_options_(torch::optim::AdamWOptions(base_learning_rate())
                           .betas(float_pair_option(options, "betas"))
                           .eps(options.get_float("eps"))
                           .weight_decay(options.get_float("weight_decay"))
                           .amsgrad(options.get_bool("amsgrad"))) {}

 private:
  std::unique_ptr<torch::optim::Optimizer> make(const std::vector<torch::Tensor>& parameters) override {
    return std::make_unique<torch::optim::AdamW>(parameters, adamw_options_);
  }

  torch::optim::AdamWOptions adamw_options_;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Optimizer, "adamw", "1.0.0", "AdamW (decoupled weight decay) on torch::optim",
           AdamWOptimizer, AdamWOptimizer::option_specs)
