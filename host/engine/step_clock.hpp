// Training time: the one place it is added up. Every piece of work that counts as
// training (a real step, a predicted step, a probe, a forecast, a snapshot, a
// roll-back) is charged here; evaluation and checkpoints are not. The total is kept in
// step in the run's summary and in the TrainingState the plugins see.
#pragma once

#include <chrono>

namespace hpt::host {

class StepClock {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  // `total` and `mirror`: where the training time so far is kept (summary and state).
  StepClock(double& total, double& mirror) : total_(total), mirror_(mirror) {}

  static TimePoint now() { return Clock::now(); }
  static double seconds_since(TimePoint t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

  // Counts `seconds` of wall time as training.
  void charge(double seconds) { set(total_ + seconds); }
  // Counts the wall time since t0 as training; returns it.
  double charge_since(TimePoint t0) {
    double s = seconds_since(t0);
    charge(s);
    return s;
  }
  // The training time so far (after a resume: the checkpoint's).
  double seconds() const { return total_; }
  void set(double seconds) { total_ = mirror_ = seconds; }

 private:
  double& total_;
  double& mirror_;
};

}  // namespace hpt::host
