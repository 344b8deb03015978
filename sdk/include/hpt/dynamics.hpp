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
};

}  // namespace hpt
