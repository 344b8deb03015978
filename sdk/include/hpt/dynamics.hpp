// DynamicsModel: learns the training trajectory from real steps and forecasts the
// next updates and the loss, with a confidence.
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
