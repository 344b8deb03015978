#include "output/metrics_sink.hpp"

#include <algorithm>

#include "hpt/error.hpp"
#include "output/csv_metrics.hpp"
#include "output/tensorboard_events.hpp"

namespace hpt::host {

std::vector<std::unique_ptr<MetricsSink>> make_metrics_sinks(const std::vector<std::string>& loggers,
                                                             const std::string& run_dir,
                                                             const std::string& resolved_manifest) {
  std::vector<std::unique_ptr<MetricsSink>> sinks;
  std::vector<std::string> made;
  for (const std::string& name : loggers) {
    if (name == "jsonl" || std::find(made.begin(), made.end(), name) != made.end()) continue;
    if (name == "csv") sinks.push_back(std::make_unique<CsvMetrics>(run_dir + "/metrics.csv"));
    else if (name == "tensorboard") sinks.push_back(std::make_unique<TensorBoardEvents>(run_dir, resolved_manifest));
    else throw BadInput("run.loggers: unknown logger \"" + name + "\" (loggers: jsonl, csv, tensorboard)");
    made.push_back(name);
  }
  return sinks;
}

}  // namespace hpt::host
