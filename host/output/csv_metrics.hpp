// metrics.csv (run.loggers = [..., "csv"]), as Lightning's CSVLogger writes it: a header
// that is the union of the keys seen so far, sorted, with a `step` column; one row per
// logged step and one per evaluation; a key a row lacks is an empty cell. When a new key
// appears (the first evaluation's metrics, the first predicted step) the file is rewritten
// under the wider header, as Lightning does.
// Columns: step rows have `loss` (real steps), `forecast_loss` (kept predicted steps: the
// dynamics model's forecast) or `probe_loss` (probes), `lr`, `grad_norm` (real steps) and
// `train_seconds`; evaluation rows have each metric under its own name, `train_seconds`
// and, when the run predicts, `predicted_fraction` (kept predicted steps / step-equivalents).
// Steps of a rolled-back phase are left out (metrics.jsonl keeps them, marked discarded).
// Resuming from a checkpoint at step S drops the rows after S, so no step appears twice;
// a half-written last line (a crash) is dropped when the file is opened.
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "output/metrics_sink.hpp"

namespace hpt::host {

class CsvMetrics : public MetricsSink {
 public:
  explicit CsvMetrics(std::string path);

  void step(const LoggedStep& s) override;
  void eval(std::int64_t step, double train_seconds, const Metrics& metrics,
            std::optional<std::int64_t> predicted_steps) override;
  void rollback(std::int64_t, std::int64_t) override {}
  void checkpoint(std::int64_t, double) override {}
  void resume(std::int64_t step) override;
  void flush() override;

 private:
  using Row = std::vector<std::pair<std::string, std::string>>;  // key, cell text
  void write_row(const Row& row);
  // Rewrites the file under header `keys_`, keeping the rows up to `through_step` (all
  // when nullopt) and dropping a half-written last line.
  void rewrite(std::optional<std::int64_t> through_step);
  void open_for_append();

  std::string path_;
  std::vector<std::string> keys_;  // the header, sorted
  std::ofstream out_;
};

}  // namespace hpt::host
