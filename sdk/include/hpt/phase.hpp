// PhaseController: chooses the next phase (full, predicted, correction) and its length.
#pragma once

#include "hpt/plugin.hpp"
#include "hpt/types.hpp"

namespace hpt {

class PhaseController : public Plugin {
 public:
  ~PhaseController() override;

  // The next phase, given the training state.
  virtual PhaseDecision decide(const TrainingState& state) = 0;

  // How the last predicted phase went.
  virtual void phase_ended(const PhaseOutcome& outcome) { (void)outcome; }
};

}  // namespace hpt
