// Optimizer "schedule_free": Schedule-Free AdamW (Defazio et al. 2024, "The Road Less
// Scheduled"), in the interpolation form of the reference implementation (the
// schedulefree package's AdamWScheduleFree), written against hpt/optimizer.hpp.
//
// Three sequences: z (the base AdamW-like iterate), x (a weighted average of the z's:
// the point to evaluate) and y = (1 - beta1) z + beta1 x (the point the gradients are
// taken at). The parameters hold y during training; z and the second moment v are the
// state. Step k = 0, 1, ... (real steps this optimizer took), g the gradient at y:
//   lr_k    = lr * scale * min(1, (k + 1) / warmup_steps)      (linear warmup)
//   lr_max  = max(lr_max, lr_k)
//   w_k     = (k + 1)^r * lr_max^weight_lr_power,  W += w_k,  c = w_k / W
//   v       = beta2 v + (1 - beta2) g^2
//   d       = g / (sqrt(v / (1 - beta2^(k+1))) + eps) + weight_decay * y   (decay at y)
//   y       = (1 - c) y + c z + lr_k (beta1 (1 - c) - 1) d
//   z       = z - lr_k d
// which is x_{k+1} = (1 - c) x_k + c z_{k+1} and y_{k+1} = (1 - beta1) z_{k+1} + beta1
// x_{k+1} without storing x. use_evaluation_weights(true) turns the parameters into x
// in place (x = y + (1 - 1/beta1)(z - y)); false turns them back into y
// (y = x + (1 - beta1)(z - x)). The engine calls it around evaluations, final weights
// and exports. z starts as the parameters at the first step.
//
// Parameter groups ([[param_groups]]): a group's parameters use lr_k * lr_scale and their
// own weight decay. As in the reference implementation, where each group keeps its own
// lr_max and weight sum, c is the same for every group: a constant lr_scale cancels in
// w_k / W.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "hpt/gradient_clipping.hpp"
#include "hpt/hpt.hpp"

namespace {

constexpr const char* kOwner = "optimizer schedule_free";

class ScheduleFreeOptimizer : public hpt::Optimizer {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_float("lr", 0.0025, "base learning rate (of z)", 0.0),
        hpt::option_float_list("betas", {0.9, 0.999},
                               "beta1: interpolation between z and the average x where gradients are taken "
                               "(> 0); beta2: decay of the second moment",
                               0.0, 1.0),
        hpt::option_float("eps", 1e-8, "added to the denominator", 0.0),
        hpt::option_float("weight_decay", 0.0, "decoupled weight decay, computed at y", 0.0),
        hpt::option_int("warmup_steps", 0, "real steps of linear learning-rate warmup (0: none)", 0),
        hpt::option_float("r", 0.0, "polynomial weighting of the average: step k weighs (k+1)^r", 0.0),
        hpt::option_float("weight_lr_power", 2.0, "the average weighs each step by lr_max^weight_lr_power", 0.0),
        hpt::option_float("clip_norm", 0.0, "largest global gradient norm (0: no clipping)", 0.0),
    };
  }

  ScheduleFreeOptimizer(const hpt::PluginContext&, const hpt::Options& options)
      : base_lr_(options.get_float("lr")),
        eps_(options.get_float("eps")),
        weight_decay_(options.get_float("weight_decay")),
        warmup_steps_(options.get_int("warmup_steps")),
        r_(options.get_float("r")),
        weight_lr_power_(options.get_float("weight_lr_power")),
        clip_norm_(options.get_float("clip_norm")) {
    const auto betas = options.get_float_list("betas");
    if (betas.size() != 2)
      throw hpt::BadInput(std::string(kOwner) + ": option 'betas' must list two floats [beta1, beta2], got " +
                          std::to_string(betas.size()));
    beta1_ = betas[0];
    beta2_ = betas[1];
    if (!(beta1_ > 0.0 && beta1_ < 1.0))
      throw hpt::BadInput(std::string(kOwner) + ": option 'betas' needs beta1 in (0, 1) (x = y + (1 - 1/beta1)(z - y)), got " +
                          std::to_string(beta1_));
    if (!(beta2_ < 1.0))
      throw hpt::BadInput(std::string(kOwner) + ": option 'betas' needs beta2 < 1, got " + std::to_string(beta2_));
    learning_rate_ = rate(0);
  }

  void set_parameter_groups(const std::vector<hpt::ParameterGroup>& groups) override { groups_ = groups; }

  void bind(const std::vector<torch::Tensor>& parameters, bool track_updates) override {
    parameters_ = parameters;
    lr_scales_.assign(parameters_.size(), 1.0);
    decays_.assign(parameters_.size(), weight_decay_);
    std::vector<bool> grouped(parameters_.size(), false);
    for (const auto& g : groups_)
      for (std::size_t i : g.parameters) {
        if (i >= parameters_.size() || grouped[i])
          throw hpt::BadInput(std::string(kOwner) + ": [[param_groups]] '" + g.name +
                              "' names a parameter out of range or already in another group");
        grouped[i] = true;
        lr_scales_[i] = g.lr_scale;
        if (g.weight_decay) decays_[i] = *g.weight_decay;
      }
    torch::NoGradGuard no_grad;
    for (const auto& p : parameters_) {
      z_.push_back(torch::zeros_like(p));  // the parameters at the first step
      v_.push_back(torch::zeros_like(p));
      if (track_updates) last_update_.push_back(torch::zeros_like(p));
    }
  }

  torch::Tensor step(const hpt::Closure& closure, std::int64_t) override {
    if (evaluating_) use_evaluation_weights(false);  // gradients are taken at y
    torch::Tensor loss = closure();
    grad_norm_ = clip_norm_ > 0 ? hpt::clip_grad_norm(parameters_, clip_norm_) : hpt::global_grad_norm(parameters_);
    const double k1 = static_cast<double>(k_ + 1);
    learning_rate_ = rate(k_);
    lr_max_ = std::max(lr_max_, learning_rate_);
    const double weight = std::pow(k1, r_) * std::pow(lr_max_, weight_lr_power_);
    weight_sum_ += weight;
    const double c = weight_sum_ > 0.0 ? weight / weight_sum_ : 0.0;
    const double bias_correction2 = 1.0 - std::pow(beta2_, k1);
    const double y_step = learning_rate_ * (beta1_ * (1.0 - c) - 1.0);

    torch::NoGradGuard no_grad;
    const bool tracking = !last_update_.empty();
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
      torch::Tensor& y = parameters_[i];
      if (k_ == 0) z_[i].copy_(y);
      if (tracking) last_update_[i].copy_(y);  // before
      const torch::Tensor& g = y.grad();
      if (g.defined()) {
        v_[i].mul_(beta2_).addcmul_(g, g, 1.0 - beta2_);
        torch::Tensor d = g / v_[i].div(bias_correction2).sqrt_().add_(eps_);
        if (decays_[i] != 0.0) d.add_(y, decays_[i]);
        y.lerp_(z_[i], c);
        y.add_(d, y_step * lr_scales_[i]);
        z_[i].sub_(d, learning_rate_ * lr_scales_[i]);
      }
      if (tracking) last_update_[i].sub_(y).neg_();  // after minus before
    }
    ++k_;
    return loss;
  }

  void use_evaluation_weights(bool on) override {
    if (on == evaluating_) return;
    evaluating_ = on;
    if (k_ == 0) return;  // no step yet: x = y = z = the parameters
    torch::NoGradGuard no_grad;
    const double weight = on ? 1.0 - 1.0 / beta1_ : 1.0 - beta1_;
    for (std::size_t i = 0; i < parameters_.size(); ++i) parameters_[i].lerp_(z_[i], weight);
  }

  const std::vector<torch::Tensor>& last_update() const override { return last_update_; }
  double last_grad_norm() const override { return grad_norm_; }
  double learning_rate() const override { return learning_rate_; }

  void scale_learning_rate(double factor) override {
    if (!(factor > 0)) throw hpt::RunError("scale_learning_rate: factor must be > 0");
    lr_scale_ *= factor;
    if (k_ == 0) learning_rate_ = rate(0);
  }

  // z and v, one tensor each per parameter: the default's two moments.

  void save(hpt::StateWriter& state) const override {
    for (std::size_t i = 0; i < z_.size(); ++i) {
      state.write("z_" + std::to_string(i), z_[i]);
      state.write("v_" + std::to_string(i), v_[i]);
    }
    state.write("steps", torch::tensor(k_, torch::kInt64));
    state.write("weight_sum", torch::tensor(weight_sum_, torch::kFloat64));
    state.write("lr_max", torch::tensor(lr_max_, torch::kFloat64));
    state.write("lr_scale", torch::tensor(lr_scale_, torch::kFloat64));
    state.write("learning_rate", torch::tensor(learning_rate_, torch::kFloat64));
    state.write("evaluation_weights", torch::tensor(evaluating_ ? 1 : 0, torch::kInt64));
  }

  // After bind(): z_ and v_ hold one tensor per parameter, on the right device.
  void load(torch::serialize::InputArchive& archive) override {
    torch::NoGradGuard no_grad;
    auto fill = [&](std::vector<torch::Tensor>& into, const std::string& name) {
      for (std::size_t i = 0; i < into.size(); ++i) {
        torch::Tensor t = hpt::read_tensor(archive, name + "_" + std::to_string(i), kOwner);
        if (!t.sizes().equals(into[i].sizes()))
          throw hpt::BadInput(std::string(kOwner) + ": the checkpoint's " + name + " " + std::to_string(i) +
                              " does not fit its parameter");
        into[i].copy_(t);
      }
    };
    fill(z_, "z");
    fill(v_, "v");
    k_ = hpt::read_tensor(archive, "steps", kOwner).item<std::int64_t>();
    weight_sum_ = hpt::read_tensor(archive, "weight_sum", kOwner).item<double>();
    lr_max_ = hpt::read_tensor(archive, "lr_max", kOwner).item<double>();
    lr_scale_ = hpt::read_tensor(archive, "lr_scale", kOwner).item<double>();
    learning_rate_ = hpt::read_tensor(archive, "learning_rate", kOwner).item<double>();
    // Saved while the parameters held x: they come back as x, and the next step turns them into y.
    evaluating_ = hpt::read_tensor(archive, "evaluation_weights", kOwner).item<std::int64_t>() != 0;
  }

 private:
  // The rate of step k (0-based): warmup, then the base rate, times the cumulative scale.
  double rate(std::int64_t k) const {
    const double warmup = warmup_steps_ > 0 && k < warmup_steps_
                              ? static_cast<double>(k + 1) / static_cast<double>(warmup_steps_)
                              : 1.0;
    return base_lr_ * lr_scale_ * warmup;
  }

  double base_lr_, beta1_ = 0.9, beta2_ = 0.999, eps_, weight_decay_;
  std::int64_t warmup_steps_;
  double r_, weight_lr_power_, clip_norm_;

  std::int64_t k_ = 0;          // real steps taken
  double weight_sum_ = 0.0;     // sum of the average's weights
  double lr_max_ = -1.0;        // the largest rate so far
  double lr_scale_ = 1.0;
  double learning_rate_ = 0.0;
  double grad_norm_ = 0.0;
  bool evaluating_ = false;     // the parameters hold x
  std::vector<torch::Tensor> parameters_, z_, v_, last_update_;
  std::vector<hpt::ParameterGroup> groups_;
  std::vector<double> lr_scales_, decays_;  // per parameter, from the groups
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Optimizer, "schedule_free", "1.0.0",
           "Schedule-Free AdamW (Defazio et al. 2024): gradients at y, evaluation at the average x",
           ScheduleFreeOptimizer, ScheduleFreeOptimizer::option_specs)
