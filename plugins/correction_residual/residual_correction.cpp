// CorrectionStrategy "residual": keeps the residuals of forecasts against reality and
// corrects the next forecast with them.
//
// Residuals it keeps:
//   loss     at every probe, (probe loss - expected) / band, where the forecast's loss path
//            is read as a change from the probe loss before the phase: after i predicted
//            steps the probe loss is expected at loss_before + (loss[i-1] - loss[0]), at most
//            loss_before + (loss_high[i-1] - loss[0]) (the probe batch and the training
//            batches differ in level, not in trend);
//   update   at the first real step after a kept phase, the cosine and the norm ratio between
//            the real update and the forecast's first predicted update, taken as
//            mean_g(scale[0][g]) * direction (the strategy does not see the parameter layout),
//            and their product, the real update's projection on the forecast in units of it.
// What it does with them:
//   adjust   multiplies every step scale by a correction factor and the confidence by a trust
//            factor. The factor moves towards the projections seen at real steps (`factor_rate`)
//            and is cut by `shrink` whenever a phase overshot: it was stopped, rolled back, or
//            ran its whole horizon and ended with a probe loss above the loss before it;
//            the trust is cut by `trust_penalty` after such a phase and recovers by
//            `trust_recovery` after a clean one, times the recent agreement (cosine) and
//            1 / (1 + mean positive loss residual).
//   judge    Rollback when the probe loss rose above loss_before by more than
//            `rollback_tolerance` (a fraction); Stop when it left the forecast's upper bound;
//            otherwise Continue.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "hpt/hpt.hpp"

namespace {

class ResidualCorrection : public hpt::CorrectionStrategy {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_float("rollback_tolerance", 0.02,
                          "roll back when the probe loss rose above the loss before the phase by this fraction",
                          0.0),
        hpt::option_float("shrink", 0.7, "step-scale factor multiplier after a phase was stopped or rolled back", 0.0,
                          1.0),
        hpt::option_float("factor_rate", 0.2, "how fast the step-scale factor follows the real updates' projections",
                          0.0, 1.0),
        hpt::option_float("min_factor", 0.1, "smallest step-scale correction factor", 0.0),
        hpt::option_float("max_factor", 3.0, "largest step-scale correction factor", 0.0),
        hpt::option_float("trust_penalty", 0.5, "confidence multiplier after a phase was stopped or rolled back", 0.0,
                          1.0),
        hpt::option_float("trust_recovery", 0.5, "fraction of the lost trust regained after a clean phase", 0.0, 1.0),
        hpt::option_float("residual_decay", 0.8, "decay of the moving averages of the residuals", 0.0, 0.9999),
    };
  }

  ResidualCorrection(const hpt::PluginContext&, const hpt::Options& options)
      : rollback_tolerance_(options.get_float("rollback_tolerance")),
        shrink_(options.get_float("shrink")),
        factor_rate_(options.get_float("factor_rate")),
        min_factor_(options.get_float("min_factor")),
        max_factor_(options.get_float("max_factor")),
        trust_penalty_(options.get_float("trust_penalty")),
        trust_recovery_(options.get_float("trust_recovery")),
        residual_decay_(options.get_float("residual_decay")) {
    if (min_factor_ > max_factor_)
      throw hpt::BadInput("correction residual: min_factor (" + std::to_string(min_factor_) +
                          ") is above max_factor (" + std::to_string(max_factor_) + ")");
    factor_ = std::clamp(1.0, min_factor_, max_factor_);
  }

  hpt::Forecast adjust(hpt::Forecast forecast) override {
    for (auto& step : forecast.scale)
      for (auto& s : step) s *= factor_;
    forecast.confidence *= trust_ * agreement_ / (1.0 + std::max(0.0, loss_residual_));
    phase_clean_ = true;
    return forecast;
  }

  hpt::Verdict judge(const hpt::Forecast& forecast, std::int64_t applied, double probe_loss,
                     double loss_before) override {
    hpt::Verdict verdict = hpt::Verdict::Continue;
    if (probe_loss > loss_before + std::abs(loss_before) * rollback_tolerance_) verdict = hpt::Verdict::Rollback;
    const auto i = static_cast<std::size_t>(applied - 1);
    if (applied >= 1 && i < forecast.loss.size() && i < forecast.loss_high.size()) {
      const double expected = loss_before + (forecast.loss[i] - forecast.loss[0]);
      const double high = loss_before + (forecast.loss_high[i] - forecast.loss[0]);
      const double band = std::max(high - expected, 1e-12);
      blend(loss_residual_, (probe_loss - expected) / band);
      if (verdict == hpt::Verdict::Continue && probe_loss > high) verdict = hpt::Verdict::Stop;
    }
    const bool ended_worse = applied >= forecast.horizon() && probe_loss > loss_before;
    if (verdict != hpt::Verdict::Continue || ended_worse)
      factor_ = std::clamp(factor_ * shrink_, min_factor_, max_factor_);
    if (verdict != hpt::Verdict::Continue) {
      trust_ *= trust_penalty_;
      phase_clean_ = false;
    }
    return verdict;
  }

  void observe_real(const hpt::StepRecord& record, const hpt::Forecast& forecast) override {
    if (forecast.scale.empty() || record.update.size() != forecast.direction.size()) return;
    // Per parameter: <u, d>, |d|^2, |u|^2; one transfer to the host.
    std::vector<torch::Tensor> rows;
    {
      torch::NoGradGuard no_grad;
      for (std::size_t p = 0; p < record.update.size(); ++p) {
        const torch::Tensor& u = record.update[p];
        const torch::Tensor& d = forecast.direction[p];
        rows.push_back(torch::stack({(u * d).sum(), d.square().sum(), u.square().sum()}));
      }
    }
    torch::Tensor sums = torch::stack(rows).to(torch::kCPU, torch::kFloat64);
    auto s = sums.accessor<double, 2>();
    // The forecast's first update is taken as mean(scale[0]) * direction: the strategy is
    // not told which group each parameter belongs to (exact when the group scales agree).
    const std::vector<double>& scale0 = forecast.scale[0];
    const double k = scale0.empty() ? 0.0 : std::accumulate(scale0.begin(), scale0.end(), 0.0) /
                                                static_cast<double>(scale0.size());
    double dot = 0.0, forecast_sq = 0.0, real_sq = 0.0;
    for (std::int64_t i = 0; i < sums.size(0); ++i) {
      dot += k * s[i][0];
      forecast_sq += k * k * s[i][1];
      real_sq += s[i][2];
    }
    if (forecast_sq <= 0.0 || real_sq <= 0.0) return;
    cosine_ = dot / std::sqrt(forecast_sq * real_sq);
    norm_ratio_ = std::sqrt(real_sq / forecast_sq);
    const double projection = std::clamp(cosine_ * norm_ratio_, 0.0, 2.0);
    factor_ = std::clamp(factor_ * (1.0 + factor_rate_ * (projection - 1.0)), min_factor_, max_factor_);
    blend(agreement_, std::clamp(cosine_, 0.0, 1.0));
    if (phase_clean_) trust_ += trust_recovery_ * (1.0 - trust_);
  }

  void save(hpt::StateWriter& state) const override {
    state.write("factor", c10::IValue(factor_));
    state.write("trust", c10::IValue(trust_));
    state.write("agreement", c10::IValue(agreement_));
    state.write("loss_residual", c10::IValue(loss_residual_));
    state.write("cosine", c10::IValue(cosine_));
    state.write("norm_ratio", c10::IValue(norm_ratio_));
    state.write("phase_clean", c10::IValue(phase_clean_));
  }

  void load(torch::serialize::InputArchive& archive) override {
    factor_ = hpt::read_value(archive, "factor", "correction residual").toDouble();
    trust_ = hpt::read_value(archive, "trust", "correction residual").toDouble();
    agreement_ = hpt::read_value(archive, "agreement", "correction residual").toDouble();
    loss_residual_ = hpt::read_value(archive, "loss_residual", "correction residual").toDouble();
    cosine_ = hpt::read_value(archive, "cosine", "correction residual").toDouble();
    norm_ratio_ = hpt::read_value(archive, "norm_ratio", "correction residual").toDouble();
    phase_clean_ = hpt::read_value(archive, "phase_clean", "correction residual").toBool();
  }

 private:
  void blend(double& average, double value) const {
    average = residual_decay_ * average + (1.0 - residual_decay_) * value;
  }

  double rollback_tolerance_;
  double shrink_;
  double factor_rate_;
  double min_factor_;
  double max_factor_;
  double trust_penalty_;
  double trust_recovery_;
  double residual_decay_;

  double factor_ = 1.0;         // multiplies every step scale
  double trust_ = 1.0;          // multiplies the confidence; cut after bad phases
  double agreement_ = 1.0;      // moving average of the clamped update cosine at real steps
  double loss_residual_ = 0.0;  // moving average of (probe - expected) / band
  double cosine_ = 0.0;         // the last real step's cosine with the forecast update
  double norm_ratio_ = 0.0;     // the last real step's |real| / |forecast|
  bool phase_clean_ = true;     // no Stop or Rollback in the current phase
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::CorrectionStrategy, "residual", "1.0.0",
           "learns forecast residuals: corrects step scales and confidence, stops or rolls back phases",
           ResidualCorrection, ResidualCorrection::option_specs)
