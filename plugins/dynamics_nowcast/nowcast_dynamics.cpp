// DynamicsModel "nowcast": a learned nowcaster (libs/nowcast, trained by
// tools/nowcast_train on recorded trajectories) jumps the weights far ahead, rarely.
//
// It sums the real updates of every `window` real steps into a window delta per
// parameter; once it holds the model's `context` latest deltas it is confident (1), and a
// forecast asks the net for every parameter's change over the next `ahead` windows. The
// forecast spreads that change evenly over `ahead * window` predicted steps (direction =
// change / steps, scale 1), so the engine's probes watch the jump on its way and the
// correction strategy can stop or roll it back. Then it starts collecting afresh: the
// deltas after a jump describe the trajectory from where the jump landed (kept) or from
// where it started (rolled back), and the net reads only deltas, never the weights.
//
// Use it with a phase controller that asks for the whole jump at once, e.g. `adaptive`
// with initial_horizon = min_horizon = max_horizon = ahead * window and
// confidence_threshold = 0.5 (configs/presets/hybrid_nowcast.toml).
#include <deque>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "hpt/hpt.hpp"
#include "nowcast/nowcast_net.hpp"

namespace {

constexpr const char* kOwner = "dynamics nowcast";

class NowcastDynamics : public hpt::DynamicsModel {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_path("model", "", "the nowcaster's model file (hpt-nowcast-train's output)"),
        hpt::option_int("window", 0, "real steps per window (0: the window the model was trained with)", 0),
        hpt::option_float("gain", 1.0, "multiplies the predicted change (1: as predicted)", 0.0),
        hpt::option_float("average_decay", 0.0,
                          "a jump starts from an exponential moving average of the weights with this "
                          "decay per real step, the step-to-step noise averaged out (0: from the weights)",
                          0.0, 0.9999),
    };
  }

  NowcastDynamics(const hpt::PluginContext& context, const hpt::Options& options)
      : logger_(context.logger), gain_(options.get_float("gain")), average_decay_(options.get_float("average_decay")) {
    const std::string& path = options.get_string("model");
    if (path.empty())
      throw hpt::BadInput(std::string(kOwner) + ": option 'model' is required: a model file written by "
                          "hpt-nowcast-train (see docs/benchmarks.md)");
    net_ = hpt::nowcast::load_nowcaster(path);
    net_->eval();
    net_->to(context.device);
    const auto& shape = net_->shape();
    window_ = options.get_int("window") > 0 ? options.get_int("window") : shape.window;
    if (logger_)
      logger_->info("nowcast: {} (context {} windows, {} ahead, window {} real steps)", path, shape.context,
                    shape.ahead, window_);
  }

  void bind(const hpt::ParameterLayout& layout) override { layout_ = layout; }

  void observe(const hpt::StepRecord& record) override {
    if (record.update.empty()) return;
    torch::NoGradGuard no_grad;
    if (current_.empty())
      for (const auto& u : record.update) current_.push_back(torch::zeros_like(u));
    if (average_decay_ > 0.0) {
      // The average minus the weights: e' = d e + (1-d)(w+u) gives (e'-w') = d ((e-w) - u).
      if (lag_.empty())
        for (const auto& u : record.update) lag_.push_back(torch::zeros_like(u));
      for (std::size_t p = 0; p < lag_.size(); ++p) lag_[p].sub_(record.update[p]).mul_(average_decay_);
    }
    for (std::size_t p = 0; p < current_.size(); ++p) current_[p].add_(record.update[p]);
    if (++steps_in_window_ < window_) return;
    windows_.push_back(std::move(current_));
    current_.clear();
    steps_in_window_ = 0;
    while (static_cast<std::int64_t>(windows_.size()) > net_->shape().context) windows_.pop_front();
  }

  double confidence() const override {
    return static_cast<std::int64_t>(windows_.size()) == net_->shape().context ? 1.0 : 0.0;
  }

  hpt::Forecast forecast(std::int64_t horizon) override {
    hpt::Forecast f;
    if (confidence() == 0.0 || horizon <= 0) return f;
    torch::NoGradGuard no_grad;
    const std::int64_t steps = net_->shape().ahead * window_;
    for (std::size_t p = 0; p < windows_.front().size(); ++p) {
      std::vector<torch::Tensor> deltas;
      for (const auto& w : windows_) deltas.push_back(w[p]);
      f.direction.push_back(hpt::nowcast::predict_change(net_, deltas).mul_(gain_ / static_cast<double>(steps)));
    }
    if (!lag_.empty()) f.offset = std::move(lag_);
    const std::int64_t h = std::min(horizon, steps);
    f.scale.assign(static_cast<std::size_t>(h), std::vector<double>(layout_.groups.size(), 1.0));
    f.confidence = 1.0;
    // Start afresh: the next deltas are taken from wherever this phase leaves the weights.
    windows_.clear();
    current_.clear();
    lag_.clear();
    steps_in_window_ = 0;
    return f;
  }

  std::int64_t planned_bytes(const hpt::ParameterLayout& layout) const override {
    // context + 1 deltas of every parameter (and the average's lag), float32 at most.
    return (net_->shape().context + 1 + (average_decay_ > 0.0 ? 1 : 0)) * layout.elements() * 4;
  }

  void save(hpt::StateWriter& state) const override {
    state.write("steps_in_window", c10::IValue(steps_in_window_));
    state.write("windows", c10::IValue(static_cast<std::int64_t>(windows_.size())));
    for (std::size_t w = 0; w < windows_.size(); ++w)
      for (std::size_t p = 0; p < windows_[w].size(); ++p)
        state.write("window_" + std::to_string(w) + "_" + std::to_string(p), windows_[w][p]);
    for (std::size_t p = 0; p < current_.size(); ++p) state.write("current_" + std::to_string(p), current_[p]);
    state.write("lags", c10::IValue(static_cast<std::int64_t>(lag_.size())));
    for (std::size_t p = 0; p < lag_.size(); ++p) state.write("lag_" + std::to_string(p), lag_[p]);
  }

  void load(torch::serialize::InputArchive& archive) override {
    steps_in_window_ = hpt::read_value(archive, "steps_in_window", kOwner).toInt();
    const std::int64_t windows = hpt::read_value(archive, "windows", kOwner).toInt();
    const std::size_t parameters = layout_.names.size();
    windows_.clear();
    for (std::int64_t w = 0; w < windows; ++w) {
      std::vector<torch::Tensor> deltas;
      for (std::size_t p = 0; p < parameters; ++p)
        deltas.push_back(hpt::read_tensor(archive, "window_" + std::to_string(w) + "_" + std::to_string(p), kOwner));
      windows_.push_back(std::move(deltas));
    }
    current_.clear();
    if (steps_in_window_ > 0)
      for (std::size_t p = 0; p < parameters; ++p)
        current_.push_back(hpt::read_tensor(archive, "current_" + std::to_string(p), kOwner));
    lag_.clear();
    if (hpt::read_value(archive, "lags", kOwner).toInt() > 0)
      for (std::size_t p = 0; p < parameters; ++p)
        lag_.push_back(hpt::read_tensor(archive, "lag_" + std::to_string(p), kOwner));
  }

 private:
  std::shared_ptr<spdlog::logger> logger_;
  double gain_;
  double average_decay_;
  std::vector<torch::Tensor> lag_;                     // average_decay > 0: the weight average minus the weights
  hpt::nowcast::NowcastNet net_{nullptr};
  std::int64_t window_ = 0;
  hpt::ParameterLayout layout_;
  std::vector<torch::Tensor> current_;                 // this window's sum of updates so far
  std::int64_t steps_in_window_ = 0;
  std::deque<std::vector<torch::Tensor>> windows_;     // the latest window deltas, oldest first
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::DynamicsModel, "nowcast", "0.1.0",
           "a learned nowcaster (hpt-nowcast-train) jumps the weights ahead by many windows of steps, rarely",
           NowcastDynamics, NowcastDynamics::option_specs)
