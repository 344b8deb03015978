// DynamicsModel "none": forecasts nothing (confidence 0), so every step is a real one.
// The default when a manifest has no [dynamics] section: plain full training.
#include "hpt/hpt.hpp"

namespace {

class NoneDynamics : public hpt::DynamicsModel {
 public:
  static std::vector<hpt::OptionSpec> option_specs() { return {}; }
  NoneDynamics(const hpt::PluginContext&, const hpt::Options&) {}

  void bind(const hpt::ParameterLayout&) override {}
  void observe(const hpt::StepRecord&) override {}
  hpt::Forecast forecast(std::int64_t) override { return {}; }  // empty, confidence 0
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::DynamicsModel, "none", "1.0.0", "no forecasts: plain full training", NoneDynamics,
           NoneDynamics::option_specs)
