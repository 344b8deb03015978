// CorrectionStrategy "none": takes forecasts as they are and only rolls back when the
// probe loss rose above the loss before the phase by more than `tolerance`.
#include "hpt/hpt.hpp"

namespace {

class NoneCorrection : public hpt::CorrectionStrategy {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {hpt::option_float("tolerance", 0.05, "roll back when the probe loss rose by more than this fraction", 0.0)};
  }
  NoneCorrection(const hpt::PluginContext&, const hpt::Options& options) : tolerance_(options.get_float("tolerance")) {}

  hpt::Forecast adjust(hpt::Forecast forecast) override { return forecast; }

  hpt::Verdict judge(const hpt::Forecast&, std::int64_t, double probe_loss, double loss_before) override {
    return probe_loss > loss_before * (1.0 + tolerance_) ? hpt::Verdict::Rollback : hpt::Verdict::Continue;
  }

  void observe_real(const hpt::StepRecord&, const hpt::Forecast&) override {}

 private:
  double tolerance_;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::CorrectionStrategy, "none", "1.0.0",
           "no correction: keep forecasts, roll back only when the probe loss rises past a tolerance", NoneCorrection,
           NoneCorrection::option_specs)
