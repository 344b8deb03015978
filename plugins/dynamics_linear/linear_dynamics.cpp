// DynamicsModel "linear": extrapolates the recent real updates. Nearly free: a few
// element-wise operations per parameter tensor on each real step, no host copies of
// tensors (only a handful of scalars per step come back to the host).
//
// Per parameter tensor, on the device:
//   direction d_t = ema_decay * d_{t-1} + (1 - ema_decay) * u_t   (u_t: the real update)
// Per parameter group g, from scalars:
//   gain    s_g   EMA over steps of <u_t, d_{t-1}>_g / |d_{t-1}|_g^2
//                 = cos(u_t, d_{t-1}) * |u_t| / |d_{t-1}|: how much of the next real update
//                 the direction predicted. Consistent updates give 1 (d = u), noisy ones give
//                 a smaller gain (their average is shorter than each of them, and the next
//                 update is only partly along it), random ones give about 0.
//   decay   r_g   per-step factor from the least-squares trend of log |u_t|_g over the last
//                 `history` steps, clamped to [min_step_decay, 1] (never extrapolates growth).
//   Predicted step i (0-based) adds scale[i][g] * d = s_g * r_g^i * d to every parameter of g.
// Loss path: least-squares line through the last `history` training losses, continued
// from its fitted value at the last step; the bounds are bound_sigmas standard errors of
// that line's mean (the probe batch is fixed, so its loss follows the mean, not a batch).
// Offset (average_decay > 0): a phase starts from the weights' moving average instead of
// the weights, moved forward along the direction by the average's lag. Real steps under a
// constant learning rate bounce across the valley they follow; the average of the recent
// weights sits nearer its floor. Per parameter, from the updates alone:
//   o_t = average_decay * (o_{t-1} - u_t)         (o = average minus weights).
// A steady trajectory w_t = w_0 + t v has an average that lags by
// lag = average_decay / (1 - average_decay) steps, so the forecast's offset is
//   o_t + lag * s_g * d                           (zero for a steady trajectory),
// and after a kept phase, which put the weights there, o restarts from -lag * s_g * d (the
// engine's step index tells the model: a real step more than one step-equivalent after the
// last one follows a kept phase).
// Confidence: 0 before min_observations real steps; then the geometric mean of
//   consistency  EMA of the cosine between consecutive updates (all parameters), and
//   accuracy     EMA of 1 - |u_t - s d_{t-1}|^2 / |u_t|^2: how well the scaled direction
//                forecast each real update one step ahead,
// both clamped to [0, 1].
//
// The optimizer across a predicted phase (the engine's contract, kept on purpose): its
// state is not touched. Moments and the step count stay as they were after the last real
// step, and the step-equivalent index it receives keeps counting predicted steps, so a
// schedule advances with them. Predicted steps move along the average of the updates the
// optimizer itself produced, so its first moment stays a valid estimate at the new point
// and its second moment (slow, beta2 = 0.999 for Adam) barely changes over a phase; feeding
// it forecast "gradients" would only corrupt them. Schedules follow step-equivalents so a
// hybrid run and a full run meet the same learning rate at the same point of the budget.
#include <algorithm>
#include <cmath>
#include <deque>
#include <numeric>
#include <string>
#include <vector>

#include "hpt/hpt.hpp"

namespace {

// Least-squares line through ys at x = 0, 1, ..., n-1.
struct LineFit {
  double intercept = 0.0;
  double slope = 0.0;
  double residual_sigma = 0.0;  // standard deviation of the residuals
  double x_mean = 0.0;
  double sxx = 0.0;             // sum of (x - x_mean)^2

  static LineFit of(const std::deque<double>& ys) {
    LineFit f;
    const double n = static_cast<double>(ys.size());
    if (ys.empty()) return f;
    f.x_mean = (n - 1.0) / 2.0;
    double y_mean = std::accumulate(ys.begin(), ys.end(), 0.0) / n;
    double sxy = 0.0;
    for (std::size_t i = 0; i < ys.size(); ++i) {
      double dx = static_cast<double>(i) - f.x_mean;
      f.sxx += dx * dx;
      sxy += dx * (ys[i] - y_mean);
    }
    f.slope = f.sxx > 0.0 ? sxy / f.sxx : 0.0;
    f.intercept = y_mean - f.slope * f.x_mean;
    double ss = 0.0;
    for (std::size_t i = 0; i < ys.size(); ++i) {
      double r = ys[i] - f.at(static_cast<double>(i));
      ss += r * r;
    }
    f.residual_sigma = ys.size() > 2 ? std::sqrt(ss / (n - 2.0)) : 0.0;
    return f;
  }

  double at(double x) const { return intercept + slope * x; }

  // Standard error of the line's value at x, from n points.
  double standard_error(double x, double n) const {
    if (n <= 0.0 || sxx <= 0.0) return residual_sigma;
    return residual_sigma * std::sqrt(1.0 / n + (x - x_mean) * (x - x_mean) / sxx);
  }
};

torch::Tensor to_tensor(const std::deque<double>& values) {
  return torch::tensor(std::vector<double>(values.begin(), values.end()), torch::kFloat64);
}

std::deque<double> to_deque(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kCPU, torch::kFloat64).contiguous();
  return std::deque<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

class LinearDynamics : public hpt::DynamicsModel {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_float("ema_decay", 0.9, "decay of the moving average of real updates that gives the direction",
                          0.0, 0.9999),
        hpt::option_float("stat_decay", 0.9, "decay of the moving averages of gain, cosine and accuracy", 0.0,
                          0.9999),
        hpt::option_int("history", 50, "real steps kept for the loss trend and the update-norm trend", 3, 100000),
        hpt::option_int("min_observations", 20, "real steps observed before the confidence can exceed 0", 2),
        hpt::option_float("step_gain", 1.0, "multiplies the fitted step scale of every predicted step", 0.0),
        hpt::option_float("max_scale", 2.0, "largest step scale per predicted step", 0.0),
        hpt::option_float("min_step_decay", 0.9, "smallest per-step decay of the step scale over the horizon", 0.0,
                          1.0),
        hpt::option_float("bound_sigmas", 2.0, "width of the loss bounds in standard errors of the loss trend", 0.0),
        hpt::option_float("average_decay", 0.0,
                          "decay of the weight average a phase starts from; 0 starts from the weights as they are",
                          0.0, 0.9999),
    };
  }

  LinearDynamics(const hpt::PluginContext& context, const hpt::Options& options)
      : device_(context.device),
        ema_decay_(options.get_float("ema_decay")),
        stat_decay_(options.get_float("stat_decay")),
        history_(static_cast<std::size_t>(options.get_int("history"))),
        min_observations_(options.get_int("min_observations")),
        step_gain_(options.get_float("step_gain")),
        max_scale_(options.get_float("max_scale")),
        min_step_decay_(options.get_float("min_step_decay")),
        bound_sigmas_(options.get_float("bound_sigmas")),
        average_decay_(options.get_float("average_decay")),
        average_lag_(average_decay_ / (1.0 - average_decay_)) {
    if (min_step_decay_ <= 0.0) throw hpt::BadInput("dynamics linear: min_step_decay must be > 0");
  }

  void bind(const hpt::ParameterLayout& layout) override {
    layout_ = layout;
    const std::size_t groups = layout_.groups.size();
    gain_.assign(groups, 0.0);
    log_norms_.assign(groups, {});
  }

  void observe(const hpt::StepRecord& record) override {
    const std::size_t params = layout_.names.size();
    if (record.update.size() != params || record.group_update_norms.size() != layout_.groups.size())
      throw hpt::RunError("dynamics linear: the step record carries " + std::to_string(record.update.size()) +
                          " updates and " + std::to_string(record.group_update_norms.size()) + " group norms for " +
                          std::to_string(params) + " parameters in " + std::to_string(layout_.groups.size()) +
                          " groups");
    push(losses_, record.loss);
    for (std::size_t g = 0; g < layout_.groups.size(); ++g)
      push(log_norms_[g], std::log(std::max(record.group_update_norms[g], 1e-30)));

    torch::NoGradGuard no_grad;
    if (average_decay_ > 0.0) track_average(record);
    if (observations_ == 0) {
      for (const auto& u : record.update) {
        direction_.push_back(u.detach().clone());
        previous_.push_back(u.detach().clone());
      }
      observations_ = 1;
      return;
    }

    // Per parameter: <u, d>, <u, u_prev>, |u|^2, |d|^2, |u_prev|^2; one transfer to the host.
    std::vector<torch::Tensor> rows;
    rows.reserve(params);
    for (std::size_t p = 0; p < params; ++p) {
      const torch::Tensor& u = record.update[p];
      rows.push_back(torch::stack({(u * direction_[p]).sum(), (u * previous_[p]).sum(), u.square().sum(),
                                   direction_[p].square().sum(), previous_[p].square().sum()}));
    }
    torch::Tensor sums = torch::stack(rows).to(torch::kCPU, torch::kFloat64);
    auto s = sums.accessor<double, 2>();

    const std::size_t groups = layout_.groups.size();
    std::vector<double> ud(groups, 0.0), uu(groups, 0.0), dd(groups, 0.0);
    double cross = 0.0, uu_all = 0.0, prev_all = 0.0;
    for (std::size_t p = 0; p < params; ++p) {
      const auto i = static_cast<std::int64_t>(p);
      const std::size_t g = layout_.group_of[p];
      ud[g] += s[i][0];
      uu[g] += s[i][2];
      dd[g] += s[i][3];
      cross += s[i][1];
      uu_all += s[i][2];
      prev_all += s[i][4];
    }
    // One-step-ahead error of the scaled direction, with the gains before this step.
    double error = 0.0;
    for (std::size_t g = 0; g < groups; ++g) {
      const double k = real_step_scale(g);  // forecast() multiplies it by step_gain
      error += uu[g] - 2.0 * k * ud[g] + k * k * dd[g];
    }
    const double explained = uu_all > 0.0 ? 1.0 - error / uu_all : 0.0;
    const double cosine = uu_all > 0.0 && prev_all > 0.0 ? cross / std::sqrt(uu_all * prev_all) : 0.0;

    const bool first = observations_ == 1;
    auto blend = [&](double& average, double value) {
      average = first ? value : stat_decay_ * average + (1.0 - stat_decay_) * value;
    };
    for (std::size_t g = 0; g < groups; ++g) blend(gain_[g], dd[g] > 0.0 ? ud[g] / dd[g] : 0.0);
    blend(consistency_, cosine);
    blend(accuracy_, explained);

    // Out of place: a forecast handed out earlier keeps its own direction tensors.
    for (std::size_t p = 0; p < params; ++p) {
      direction_[p] = torch::lerp(direction_[p], record.update[p], 1.0 - ema_decay_);
      previous_[p] = record.update[p].detach().clone();
    }
    ++observations_;
  }

  hpt::Forecast forecast(std::int64_t horizon) override {
    hpt::Forecast f;
    f.confidence = confidence();
    if (f.confidence <= 0.0 || horizon <= 0) return {};

    const std::size_t groups = layout_.groups.size();
    std::vector<double> scale0(groups), decay(groups);
    for (std::size_t g = 0; g < groups; ++g) {
      scale0[g] = std::clamp(step_gain_ * gain_[g], 0.0, max_scale_);
      double slope = LineFit::of(log_norms_[g]).slope;
      decay[g] = std::clamp(std::exp(slope), min_step_decay_, 1.0);
    }
    const auto h = static_cast<std::size_t>(horizon);
    f.scale.assign(h, std::vector<double>(groups));
    for (std::size_t i = 0; i < h; ++i)
      for (std::size_t g = 0; g < groups; ++g)
        f.scale[i][g] = scale0[g] * std::pow(decay[g], static_cast<double>(i));

    LineFit trend = LineFit::of(losses_);
    const double n = static_cast<double>(losses_.size());
    const double last = n - 1.0;
    for (std::size_t i = 0; i < h; ++i) {
      const double x = last + static_cast<double>(i + 1);
      const double mean = trend.at(x);
      const double band = bound_sigmas_ * trend.standard_error(x, n);
      f.loss.push_back(mean);
      f.loss_low.push_back(mean - band);
      f.loss_high.push_back(mean + band);
    }
    f.direction = direction_;
    if (average_decay_ > 0.0)
      for (std::size_t p = 0; p < offset_.size(); ++p) f.offset.push_back(offset_[p] + lag_drift(p));
    return f;
  }

  double confidence() const override {
    if (observations_ < min_observations_) return 0.0;
    return std::sqrt(std::clamp(consistency_, 0.0, 1.0) * std::clamp(accuracy_, 0.0, 1.0));
  }

  void save(hpt::StateWriter& state) const override {
    state.write("observations", c10::IValue(observations_));
    state.write("consistency", c10::IValue(consistency_));
    state.write("accuracy", c10::IValue(accuracy_));
    state.write("gain", torch::tensor(gain_, torch::kFloat64));
    state.write("losses", to_tensor(losses_));
    for (std::size_t g = 0; g < log_norms_.size(); ++g)
      state.write("log_norms_" + std::to_string(g), to_tensor(log_norms_[g]));
    for (std::size_t p = 0; p < direction_.size(); ++p) {
      state.write("direction_" + std::to_string(p), direction_[p]);
      state.write("previous_" + std::to_string(p), previous_[p]);
    }
    if (average_decay_ > 0.0) {
      state.write("last_step", c10::IValue(last_step_));
      for (std::size_t p = 0; p < offset_.size(); ++p) state.write("offset_" + std::to_string(p), offset_[p]);
    }
  }

  void load(torch::serialize::InputArchive& archive) override {
    observations_ = hpt::read_value(archive, "observations", "dynamics linear").toInt();
    consistency_ = hpt::read_value(archive, "consistency", "dynamics linear").toDouble();
    accuracy_ = hpt::read_value(archive, "accuracy", "dynamics linear").toDouble();
    gain_ = vector_of(hpt::read_tensor(archive, "gain", "dynamics linear"));
    if (gain_.size() != layout_.groups.size())
      throw hpt::BadInput("dynamics linear: the checkpoint has " + std::to_string(gain_.size()) +
                          " parameter groups, the model " + std::to_string(layout_.groups.size()));
    losses_ = to_deque(hpt::read_tensor(archive, "losses", "dynamics linear"));
    for (std::size_t g = 0; g < log_norms_.size(); ++g)
      log_norms_[g] = to_deque(hpt::read_tensor(archive, "log_norms_" + std::to_string(g), "dynamics linear"));
    direction_.clear();
    previous_.clear();
    offset_.clear();
    if (observations_ == 0) return;
    if (average_decay_ > 0.0) {
      last_step_ = hpt::read_value(archive, "last_step", "dynamics linear").toInt();
      for (std::size_t p = 0; p < layout_.names.size(); ++p)
        offset_.push_back(hpt::read_tensor(archive, "offset_" + std::to_string(p), "dynamics linear").to(device_));
    }
    for (std::size_t p = 0; p < layout_.names.size(); ++p) {
      direction_.push_back(hpt::read_tensor(archive, "direction_" + std::to_string(p), "dynamics linear").to(device_));
      previous_.push_back(hpt::read_tensor(archive, "previous_" + std::to_string(p), "dynamics linear").to(device_));
    }
  }

 private:
  // The fitted scale of one real step along the direction, in group g.
  double real_step_scale(std::size_t g) const { return std::clamp(gain_[g], 0.0, max_scale_); }

  // lag * s_g * d for parameter p: how far a steady trajectory's average trails its weights.
  torch::Tensor lag_drift(std::size_t p) const {
    return direction_[p] * (average_lag_ * real_step_scale(layout_.group_of[p]));
  }

  // o = average_decay * (o - u), in place (forecasts hold their own sums); after a kept
  // phase o first restarts from -lag * s_g * d.
  void track_average(const hpt::StepRecord& record) {
    const bool after_phase = last_step_ > 0 && record.step > last_step_ + 1;
    for (std::size_t p = 0; p < record.update.size(); ++p) {
      if (offset_.size() <= p) offset_.push_back(torch::zeros_like(record.update[p]));
      if (after_phase) offset_[p] = -lag_drift(p);
      offset_[p].sub_(record.update[p]).mul_(average_decay_);
    }
    last_step_ = record.step;
  }

  void push(std::deque<double>& values, double v) const {
    values.push_back(v);
    while (values.size() > history_) values.pop_front();
  }

  static std::vector<double> vector_of(const torch::Tensor& t) {
    std::deque<double> d = to_deque(t);
    return {d.begin(), d.end()};
  }

  torch::Device device_;
  double ema_decay_;
  double stat_decay_;
  std::size_t history_;
  std::int64_t min_observations_;
  double step_gain_;
  double max_scale_;
  double min_step_decay_;
  double bound_sigmas_;
  double average_decay_;
  double average_lag_;  // average_decay / (1 - average_decay): steps the weight average trails

  hpt::ParameterLayout layout_;
  std::int64_t observations_ = 0;

 public:
  // direction_, previous_ and offset_: three fp32 copies of the parameters.
  std::int64_t planned_bytes(const hpt::ParameterLayout& layout) const override {
    return 3 * layout.elements() * static_cast<std::int64_t>(sizeof(float));
  }

 private:
  std::vector<torch::Tensor> direction_;  // per parameter, on the device
  std::vector<torch::Tensor> previous_;   // the last real update, per parameter
  std::vector<double> gain_;              // per group
  std::vector<std::deque<double>> log_norms_;  // per group, last `history` steps
  std::deque<double> losses_;             // last `history` training losses
  double consistency_ = 0.0;
  double accuracy_ = 0.0;
  std::vector<torch::Tensor> offset_;  // per parameter: weight average minus weights
  std::int64_t last_step_ = 0;         // step-equivalent index of the last real step
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::DynamicsModel, "linear", "1.0.0",
           "extrapolates a moving average of recent updates, step sizes fitted from their norms and cosines",
           LinearDynamics, LinearDynamics::option_specs)
