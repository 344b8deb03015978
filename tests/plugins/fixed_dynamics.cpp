// DynamicsModel "fixed" (tests only): forecasts a known update: every parameter moves by
// `step` (a constant) times `scale` per predicted step, confidence 1; with offset != 0 the
// first predicted step also adds `offset` to every weight. With nan = true the direction
// is NaN, to test that a poisoned phase is caught and rolled back.
#include <limits>

#include "hpt/hpt.hpp"

namespace {

class FixedDynamics : public hpt::DynamicsModel {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {hpt::option_float("step", 1e-3, "value added to every weight per predicted step"),
            hpt::option_float("scale", 1.0, "scale of every group at every step"),
            hpt::option_float("offset", 0.0, "value added to every weight once, with the first predicted step"),
            hpt::option_bool("nan", false, "forecast NaN updates")};
  }

  FixedDynamics(const hpt::PluginContext&, const hpt::Options& options)
      : step_(options.get_bool("nan") ? std::numeric_limits<double>::quiet_NaN() : options.get_float("step")),
        scale_(options.get_float("scale")),
        offset_(options.get_float("offset")) {}

  void bind(const hpt::ParameterLayout& layout) override { layout_ = layout; }
  void observe(const hpt::StepRecord& record) override { ++observed_; last_loss_ = record.loss; }

  hpt::Forecast forecast(std::int64_t horizon) override {
    hpt::Forecast f;
    for (const auto& shape : layout_.shapes) f.direction.push_back(torch::full(shape, step_));
    if (offset_ != 0.0)
      for (const auto& shape : layout_.shapes) f.offset.push_back(torch::full(shape, offset_));
    f.scale.assign(static_cast<std::size_t>(horizon), std::vector<double>(layout_.groups.size(), scale_));
    f.loss.assign(static_cast<std::size_t>(horizon), last_loss_);
    f.loss_low = f.loss;
    f.loss_high = f.loss;
    f.confidence = 1.0;
    return f;
  }

  double confidence() const override { return 1.0; }

  void save(hpt::StateWriter& state) const override {
    state.write("observed", torch::tensor(observed_));
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::Tensor t;
    archive.read("observed", t);
    observed_ = t.item<std::int64_t>();
  }

 private:
  double step_;
  double scale_;
  double offset_;
  hpt::ParameterLayout layout_;
  std::int64_t observed_ = 0;
  double last_loss_ = 0.0;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::DynamicsModel, "fixed", "1.0.0", "test dynamics with a fixed known forecast",
           FixedDynamics, FixedDynamics::option_specs)
