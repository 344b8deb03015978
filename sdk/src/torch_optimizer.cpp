#include "hpt/torch_optimizer.hpp"

#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>

#include "hpt/metric_direction.hpp"

#include "hpt/error.hpp"
#include "hpt/gradient_clipping.hpp"

namespace hpt {

namespace {

constexpr const char* kTorchKey = "torch";
constexpr const char* kLrScaleKey = "lr_scale";
constexpr const char* kLearningRateKey = "learning_rate";

LrScheduleConfig schedule_config(const PluginContext& context, const Options& options) {
  LrScheduleConfig c;
  c.kind = schedule_kind_from_string(options.get_string("schedule"), "schedule");
  c.warmup_steps = options.get_int("warmup_steps");
  c.decay_steps = options.get_int("decay_steps");
  if (c.decay_steps == 0) c.decay_steps = context.max_steps;
  c.min_lr_ratio = options.get_float("min_lr_ratio");
  c.step_size = options.get_int("step_size");
  c.gamma = options.get_float("gamma");
  c.plateau_metric = options.get_string("plateau_metric");
  c.plateau_maximize = !lower_is_better(c.plateau_metric, options.get_string("plateau_mode"));
  c.plateau_factor = options.get_float("plateau_factor");
  c.plateau_patience = options.get_int("plateau_patience");
  c.plateau_threshold = options.get_float("plateau_threshold");
  return c;
}

// torch::optim's options classes share no base with a weight decay; these are the ones
// that have it. False: this optimizer has none to set.
bool set_weight_decay(torch::optim::OptimizerOptions& options, double decay) {
  if (auto* o = dynamic_cast<torch::optim::AdamWOptions*>(&options)) o->weight_decay(decay);
  else if (auto* o = dynamic_cast<torch::optim::AdamOptions*>(&options)) o->weight_decay(decay);
  else if (auto* o = dynamic_cast<torch::optim::SGDOptions*>(&options)) o->weight_decay(decay);
  else if (auto* o = dynamic_cast<torch::optim::RMSpropOptions*>(&options)) o->weight_decay(decay);
  else if (auto* o = dynamic_cast<torch::optim::AdagradOptions*>(&options)) o->weight_decay(decay);
  else return false;
  return true;
}

double positive_option(const Options& options, const std::string& name) {
  double value = options.get_float(name);
  if (!(value > 0.0)) throw BadInput("option '" + name + "' must be > 0, got " + std::to_string(value));
  return value;
}

}  // namespace

std::vector<OptionSpec> TorchOptimizer::common_options(double lr_default) {
  return {
      option_float("lr", lr_default, "base learning rate", 0.0),
      option_string("schedule", "constant", "learning-rate schedule",
                    {"constant", "warmup_cosine", "step", "plateau"}),
      option_int("warmup_steps", 0, "warmup_cosine: steps of linear warmup from 0 to lr", 0),
      option_int("decay_steps", 0,
                 "warmup_cosine: the step where the cosine decay reaches min_lr_ratio * lr "
                 "(0: run.max_steps)",
                 0),
      option_float("min_lr_ratio", 0.0, "lowest lr as a fraction of lr: warmup_cosine's end, plateau's floor", 0.0,
                   1.0),
      option_int("step_size", 1000, "step: multiply the lr by gamma every this many steps", 1),
      option_float("gamma", 0.1, "step: the factor applied every step_size steps", 0.0),
      option_string("plateau_metric", "val_loss", "plateau: the evaluation metric watched"),
      option_string("plateau_mode", "auto",
                    "plateau: whether lower (min) or higher (max) is better; auto: by the metric's name, as run.target",
                    {"auto", "min", "max"}),
      option_float("plateau_factor", 0.1, "plateau: the factor applied on a plateau", 0.0, 1.0),
      option_int("plateau_patience", 10, "plateau: evaluations without improvement tolerated before reducing", 0),
      option_float("plateau_threshold", 1e-4, "plateau: relative improvement that counts as better", 0.0),
      option_string("clip", "none", "gradient clipping: none, norm (global L2 norm) or agc (adaptive, unit-wise)",
                    {"none", "norm", "agc"}),
      option_float("clip_norm", 1.0, "clip = norm: the largest global gradient norm", 0.0),
      option_float("clip_ratio", 0.01, "clip = agc: the largest ratio of gradient norm to parameter norm per unit",
                   0.0),
      option_bool("centralize", false, "subtract the per-row mean from gradients of tensors with 2+ dimensions"),
  };
}

TorchOptimizer::TorchOptimizer(const PluginContext& context, const Options& options)
    : base_lr_(options.get_float("lr")),
      schedule_(schedule_config(context, options)),
      clip_norm_(positive_option(options, "clip_norm")),
      clip_ratio_(positive_option(options, "clip_ratio")),
      centralize_(options.get_bool("centralize")) {
  if (!(base_lr_ >= 0.0)) throw BadInput("option 'lr' must be >= 0, got " + std::to_string(base_lr_));
  const std::string& clip = options.get_string("clip");
  if (clip == "none") clip_ = Clip::None;
  else if (clip == "norm") clip_ = Clip::Norm;
  else if (clip == "agc") clip_ = Clip::Agc;
  else throw BadInput("option 'clip' must be one of \"none\", \"norm\", \"agc\", got \"" + clip + "\"");
  learning_rate_ = base_lr_ * schedule_.factor(1);
}

TorchOptimizer::~TorchOptimizer() = default;

std::tuple<double, double> TorchOptimizer::float_pair_option(const Options& options, const std::string& name) {
  const auto& values = options.get_float_list(name);
  if (values.size() != 2)
    throw BadInput("option '" + name + "' must hold two numbers, got " + std::to_string(values.size()));
  return {values[0], values[1]};
}

torch::optim::Optimizer& TorchOptimizer::torch_optimizer() const {
  if (!optimizer_) throw RunError("optimizer used before bind()");
  return *optimizer_;
}

void TorchOptimizer::bind(const std::vector<torch::Tensor>& parameters, bool track_updates) {
  parameters_ = parameters;
  optimizer_ = make(parameters_);
  group_lr_scales_.assign(optimizer_->param_groups().size(), 1.0);
  if (!groups_.empty()) apply_parameter_groups();
  track_updates_ = track_updates;
  last_update_.clear();
  if (track_updates_) {
    torch::NoGradGuard no_grad;
    last_update_.reserve(parameters_.size());
    for (const auto& p : parameters_) last_update_.push_back(torch::zeros_like(p));
  }
}

void TorchOptimizer::set_parameter_groups(const std::vector<ParameterGroup>& groups) {
  if (optimizer_) throw RunError("set_parameter_groups() after bind()");
  groups_ = groups;
}

void TorchOptimizer::apply_parameter_groups() {
  auto& torch_groups = optimizer_->param_groups();
  if (torch_groups.size() != 1)
    throw RunError("[[param_groups]]: the optimizer built " + std::to_string(torch_groups.size()) +
                   " param groups; TorchOptimizer::make() must build one");
  const torch::optim::OptimizerOptions& base = torch_groups[0].options();
  std::vector<int> owner(parameters_.size(), -1);
  for (std::size_t g = 0; g < groups_.size(); ++g)
    for (std::size_t index : groups_[g].parameters) {
      if (index >= parameters_.size())
        throw RunError("[[param_groups]] '" + groups_[g].name + "': parameter index " + std::to_string(index) +
                       " past the " + std::to_string(parameters_.size()) + " parameters");
      if (owner[index] >= 0)
        throw BadInput("[[param_groups]]: a parameter is in both '" + groups_[owner[index]].name + "' and '" +
                       groups_[g].name + "'");
      owner[index] = static_cast<int>(g);
    }

  std::vector<torch::optim::OptimizerParamGroup> split;
  std::vector<double> scales;
  std::vector<torch::Tensor> rest;
  for (std::size_t i = 0; i < parameters_.size(); ++i)
    if (owner[i] < 0) rest.push_back(parameters_[i]);
  if (!rest.empty()) {
    split.emplace_back(rest, base.clone());
    scales.push_back(1.0);
  }
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    std::vector<torch::Tensor> members;
    for (std::size_t index : groups_[g].parameters) members.push_back(parameters_[index]);
    if (members.empty()) continue;
    std::unique_ptr<torch::optim::OptimizerOptions> options = base.clone();
    if (groups_[g].weight_decay && !set_weight_decay(*options, *groups_[g].weight_decay))
      throw BadInput("[[param_groups]] '" + groups_[g].name +
                     "': weight_decay is set but this optimizer has no weight decay option");
    split.emplace_back(std::move(members), std::move(options));
    scales.push_back(groups_[g].lr_scale);
  }
  torch_groups = std::move(split);
  group_lr_scales_ = std::move(scales);
}

double TorchOptimizer::condition_gradients() {
  if (clip_ == Clip::Norm && !centralize_) return clip_grad_norm(parameters_, clip_norm_);
  double norm = global_grad_norm(parameters_);
  if (centralize_) centralize_gradients(parameters_);
  if (clip_ == Clip::Norm) clip_grad_norm(parameters_, clip_norm_);
  if (clip_ == Clip::Agc) clip_grad_adaptive(parameters_, clip_ratio_);
  return norm;
}

torch::Tensor TorchOptimizer::step(const Closure& closure, std::int64_t step) {
  torch::optim::Optimizer& optimizer = torch_optimizer();
  learning_rate_ = base_lr_ * lr_scale_ * schedule_.factor(step);
  auto& torch_groups = optimizer.param_groups();
  for (std::size_t g = 0; g < torch_groups.size(); ++g)
    torch_groups[g].options().set_lr(learning_rate_ * (g < group_lr_scales_.size() ? group_lr_scales_[g] : 1.0));

  if (track_updates_) {
    // last_update_ holds the parameters before the step; after it, after minus before.
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < parameters_.size(); ++i) last_update_[i].copy_(parameters_[i]);
  }

  torch::Tensor first_loss;
  optimizer.step([&]() {
    torch::Tensor loss = closure();
    double norm = condition_gradients();
    if (!first_loss.defined()) {
      first_loss = loss;
      grad_norm_ = norm;
    }
    return loss;
  });

  if (track_updates_) {
    torch::NoGradGuard no_grad;
    torch::_foreach_neg_(last_update_);
    torch::_foreach_add_(last_update_, parameters_);
  }
  return first_loss;
}

void TorchOptimizer::scale_learning_rate(double factor) {
  if (!(factor > 0.0)) throw RunError("scale_learning_rate: the factor must be > 0, got " + std::to_string(factor));
  lr_scale_ *= factor;
}

void TorchOptimizer::on_evaluation(const Metrics& metrics) { schedule_.on_evaluation(metrics); }

void TorchOptimizer::save(hpt::StateWriter& state) const {
  state.write(kTorchKey, torch_optimizer());
  schedule_.save(state);
  state.write(kLrScaleKey, c10::IValue(lr_scale_));
  state.write(kLearningRateKey, c10::IValue(learning_rate_));
}

void TorchOptimizer::load(torch::serialize::InputArchive& archive) {
  torch::optim::Optimizer& optimizer = torch_optimizer();
  torch::serialize::InputArchive torch_archive;
  c10::IValue lr_scale, learning_rate;
  if (!archive.try_read(kTorchKey, torch_archive) || !archive.try_read(kLrScaleKey, lr_scale) ||
      !archive.try_read(kLearningRateKey, learning_rate))
    throw BadInput("optimizer checkpoint lacks the torch optimizer state or the learning rate "
                   "(was it written by another optimizer plugin?)");
  try {
    optimizer.load(torch_archive);
  } catch (const c10::Error& e) {
    throw BadInput(std::string("optimizer checkpoint does not fit this optimizer and its parameters: ") +
                   e.what_without_backtrace());
  }
  schedule_.load(archive);
  lr_scale_ = lr_scale.toDouble();
  learning_rate_ = learning_rate.toDouble();
}

}  // namespace hpt
