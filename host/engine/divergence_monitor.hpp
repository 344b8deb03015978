// The divergence monitor: watches every real step for signs that training is going
// wrong and tells the engine what to do about it.
//
//   signal                                         level     action
//   NaN or Inf loss or gradient norm               critical  roll back to the last good state, cut the lr
//   gradient norm > grad_explode x its average     critical  roll back, cut the lr
//   loss > its average + loss_sigma std. devs      warning   force real steps, halve the horizon cap
//   loss oscillating with growing swings           warning   halve the horizon cap
//   gradient norm < grad_vanish x its average      notice    logged only
//   a predicted phase rolled back                  warning   force real steps
//
// The last good state is a snapshot the engine takes every `snapshot_every` real steps
// while the monitor is quiet. After `max_rollbacks` critical roll-backs the run fails.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "config/divergence_settings.hpp"
#include "hpt/state_writer.hpp"

namespace hpt::host {

enum class Alarm { None, Notice, Warning, Critical };
const char* to_string(Alarm alarm);  // "notice", "warning", "critical" ("none")

struct Diagnosis {
  Alarm alarm = Alarm::None;
  std::string reason;  // for the log and metrics.jsonl
};

class DivergenceMonitor {
 public:
  explicit DivergenceMonitor(DivergenceSettings settings) : s_(settings) {}

  // After every real step.
  Diagnosis observe(double loss, double grad_norm);
  // After a predicted phase that was rolled back.
  Diagnosis phase_rolled_back();

  const DivergenceSettings& settings() const { return s_; }
  // Real steps the engine must still take before predicting again.
  std::int64_t forced_real_steps() const { return forced_real_; }
  void took_real_step() {
    if (forced_real_ > 0) --forced_real_;
  }
  // The largest horizon allowed now (halved by warnings, regrows by one per quiet
  // real step up to `unlimited`).
  std::int64_t horizon_cap(std::int64_t unlimited) const;
  // Whether now is a good moment for a last-good snapshot.
  bool snapshot_due() const;
  void snapshot_taken() { since_snapshot_ = 0; }
  // Forget the statistics after a roll-back (they describe the discarded trajectory).
  void reset_statistics();

  // Everything the monitor has learned, for checkpoints: keys "monitor/..." of `archive`.
  void save(hpt::StateWriter& state) const;
  // Restores what save() wrote; an archive without it (an older checkpoint) leaves the monitor as it is.
  void load(torch::serialize::InputArchive& archive);

 private:
  DivergenceSettings s_;
  std::int64_t steps_ = 0;
  double loss_mean_ = 0.0, loss_var_ = 0.0, grad_mean_ = 0.0;
  std::deque<double> recent_losses_;
  std::int64_t forced_real_ = 0;
  double horizon_factor_ = 1.0;
  std::int64_t since_snapshot_ = 0;
  std::int64_t quiet_steps_ = 0;
};

}  // namespace hpt::host
