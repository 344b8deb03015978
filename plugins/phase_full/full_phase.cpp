// PhaseController "full": always real steps. The baseline every hybrid run is measured against.
#include "hpt/hpt.hpp"

namespace {

class FullPhase : public hpt::PhaseController {
 public:
  static std::vector<hpt::OptionSpec> option_specs() { return {}; }
  FullPhase(const hpt::PluginContext&, const hpt::Options&) {}

  hpt::PhaseDecision decide(const hpt::TrainingState& state) override {
    return {hpt::PhaseKind::Full, std::max<std::int64_t>(1, state.max_steps - state.step)};
  }
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::PhaseController, "full", "1.0.0", "always full training steps (the baseline)", FullPhase,
           FullPhase::option_specs)
