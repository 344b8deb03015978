// hpt::TorchOptimizer: the shared body of optimizer plugins built on torch::optim.
// A subclass declares its own options and builds the torch optimizer in make(); this
// base adds the learning-rate schedule, gradient clipping and centralisation, update
// tracking, the global gradient norm, and checkpoints.
//
//   class Adam : public hpt::TorchOptimizer {
//    public:
//     static std::vector<hpt::OptionSpec> option_specs() { return common_options(1e-3); }
//     Adam(const hpt::PluginContext& c, const hpt::Options& o) : TorchOptimizer(c, o) {}
//    private:
//     std::unique_ptr<torch::optim::Optimizer> make(const std::vector<torch::Tensor>& p) override {
//       return std::make_unique<torch::optim::Adam>(p, torch::optim::AdamOptions(base_learning_rate()));
//     }
//   };
#pragma once

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <torch/optim/optimizer.h>

#include "hpt/lr_schedule.hpp"
#include "hpt/optimizer.hpp"
#include "hpt/state_writer.hpp"

namespace hpt {

class TorchOptimizer : public Optimizer {
 public:
  // The options every TorchOptimizer reads: lr (default `lr_default`), schedule and
  // its settings, clip, clip_norm, clip_ratio, centralize.
  static std::vector<OptionSpec> common_options(double lr_default);

  // Reads the common options; throws hpt::BadInput naming a bad one. decay_steps = 0
  // means the run's budget (context.max_steps).
  TorchOptimizer(const PluginContext& context, const Options& options);
  ~TorchOptimizer() override;

  void bind(const std::vector<torch::Tensor>& parameters, bool track_updates) override;
  // Keeps the groups; bind() then splits the torch optimizer's one group into the
  // parameters in no group (first, the plugin's options) and one torch param group per
  // manifest group, its options a copy with the group's weight decay. Every step sets a
  // group's lr to the scheduled lr times its lr_scale.
  void set_parameter_groups(const std::vector<ParameterGroup>& groups) override;
  torch::Tensor step(const Closure& closure, std::int64_t step) override;
  const std::vector<torch::Tensor>& last_update() const override { return last_update_; }
  double last_grad_norm() const override { return grad_norm_; }
  double learning_rate() const override { return learning_rate_; }
  void scale_learning_rate(double factor) override;
  void on_evaluation(const Metrics& metrics) override;

  // The torch optimizer's own serialisation under "torch/", the schedule's state, the
  // learning-rate scale and the last learning rate. Both need bind() first.
  void save(hpt::StateWriter& state) const override;
  void load(torch::serialize::InputArchive& archive) override;

 protected:
  // Builds the torch optimizer over `parameters`, one parameter group. Called by bind().
  // Its learning rate is overwritten before every step, from the schedule.
  virtual std::unique_ptr<torch::optim::Optimizer> make(const std::vector<torch::Tensor>& parameters) = 0;

  // The `lr` option.
  double base_learning_rate() const { return base_lr_; }

  // The optimizer make() built; throws hpt::RunError before bind().
  torch::optim::Optimizer& torch_optimizer() const;

  // Reads a two-element float list option (Adam's betas), checking its length.
  static std::tuple<double, double> float_pair_option(const Options& options, const std::string& name);

 private:
  enum class Clip { None, Norm, Agc };

  // Runs after every backward: returns the global gradient norm before any change,
  // then centralises and clips as configured.
  double condition_gradients();

  double base_lr_;
  double lr_scale_ = 1.0;
  LrSchedule schedule_;
  Clip clip_;
  double clip_norm_;
  double clip_ratio_;
  bool centralize_;

  // Splits the optimizer's one param group as set_parameter_groups() asked.
  void apply_parameter_groups();

  std::vector<ParameterGroup> groups_;
  std::vector<double> group_lr_scales_;  // per torch param group, after bind()

  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<torch::Tensor> parameters_;
  bool track_updates_ = false;
  std::vector<torch::Tensor> last_update_;  // preallocated in bind() when tracking
  double grad_norm_ = 0.0;
  double learning_rate_;
};

}  // namespace hpt
