// PhaseController: chooses the next phase (full, predicted, correction) and its length.
//
// Contract, on the training thread: decide() before every phase, with the state after
// the last step (TrainingState::confidence is the dynamics model's); phase_ended() after
// every predicted phase that ran, with how it went (not when the forecast had no
// confidence and no step was predicted). A controller whose decisions depend on wall
// time is not reproducible: prefer step counts. With several ranks only rank 0's
// decision is used (it is broadcast), so a controller needs no collective of its own.
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
