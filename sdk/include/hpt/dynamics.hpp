// DynamicsModel: learns the training trajectory from real steps and forecasts the
// next updates and the loss, with a confidence.
//
// Contract, in call order, all on the training thread: bind() once; load() when
// resuming; then observe() after every real step that was kept (not a step fp16 loss
// scaling skipped, not one a divergence roll-back discarded) and, when the phase
// controller asks for a predicted phase, forecast(). The engine applies a forecast
// itself (the model never touches the parameters) and may roll it back. A dynamics model
// is always created and bound ("none" by default); observe(), forecast() and the
// optimizer's update tracking happen only when it is not "none".
#pragma once

#include "hpt/plugin.hpp"
#include "hpt/types.hpp"

namespace hpt {

class DynamicsModel : public Plugin {
 public:
  ~DynamicsModel() override;

  // Tells the model how parameters are grouped. Called once, before observe().
  virtual void bind(const ParameterLayout& layout) = 0;

  // Every real step (Full and Correct), in order.
  virtual void observe(const StepRecord& record) = 0;

  // The next `horizon` predicted steps. confidence 0 means the model has nothing to offer.
  virtual Forecast forecast(std::int64_t horizon) = 0;

  // The confidence a forecast made now would have, cheaply (no forecast is built).
  // The engine reads it after every real step into TrainingState::confidence, so phase
  // controllers can decide whether to ask for a predicted phase. The default, 0, means
  // "never ask": every model that can forecast overrides it.
  virtual double confidence() const { return 0.0; }

  // Bytes of device memory the model will hold at most for this layout (its history of
  // updates, its own network), for the memory plan the engine checks before the first
  // step. The default, 0, suits models that keep only a few numbers per group.
  virtual std::int64_t planned_bytes(const ParameterLayout& layout) const {
    (void)layout;
    return 0;
  }
};

}  // namespace hpt
