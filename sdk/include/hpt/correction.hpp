// CorrectionStrategy: compares forecasts with what really happened; adjusts the next
// forecast, stops a predicted phase early or rolls it back.
//
// Contract, on the training thread: for every predicted phase, adjust() once before it,
// judge() after every run.probe_interval applied steps and after the phase's last one
// (a Verdict other than Continue ends the phase), and observe_real() with the first real
// step after a phase that was kept (not after a roll-back). load() comes
// right after construction when resuming.
#pragma once

#include "hpt/plugin.hpp"
#include "hpt/types.hpp"

namespace hpt {

class CorrectionStrategy : public Plugin {
 public:
  ~CorrectionStrategy() override;

  // A predicted phase is about to start with `forecast`; the strategy may adjust the
  // step scales and the confidence (from what its residuals taught it) and returns it.
  virtual Forecast adjust(Forecast forecast) = 0;

  // After `applied` predicted steps of the phase, the probe loss was `probe_loss`;
  // `loss_before` is the probe loss before the phase.
  virtual Verdict judge(const Forecast& forecast, std::int64_t applied, double probe_loss,
                        double loss_before) = 0;

  // The first real step after a phase, with the forecast the phase used, so the
  // strategy can measure the forecast's error against the real update.
  virtual void observe_real(const StepRecord& record, const Forecast& forecast) = 0;
};

}  // namespace hpt
