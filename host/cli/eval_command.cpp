// hpt eval CHECKPOINT_OR_RUN_DIR [key.path=value ...] [--averaged] [--json]
#include <iomanip>
#include <sstream>

#include <boost/json.hpp>

#include "cli/commands.hpp"
#include "engine/trained_model.hpp"
#include "hpt/error.hpp"

namespace hpt::host {

namespace {
const char* kEvalHelp =
    "usage: hpt eval CHECKPOINT_OR_RUN_DIR [key.path=value ...] [--averaged] [--json]\n"
    "\n"
    "Evaluates trained weights with the task's own evaluate() and prints its metrics, one\n"
    "line each (--json: one JSON object, metric -> value). CHECKPOINT_OR_RUN_DIR is a\n"
    "checkpoint directory (runs/NAME/checkpoints/step_N, `latest`, `best`, or one `hpt average`\n"
    "wrote) or the run directory of a finished run (its final_weights.pt). The task is built\n"
    "from the run's resolved manifest; overrides apply to it, e.g. task.batch_size=256 or\n"
    "task.val_data_path=other.pt. Evaluation runs in fp32 on the run's backend.\n"
    "--averaged evaluates the run's [averaging] weight average instead: a run directory's\n"
    "final_averaged_weights.pt, or a checkpoint's averaging.pt.\n";

struct EvalArgs {
  std::string path;
  std::vector<std::string> overrides;
  bool json = false;
  bool averaged = false;
};
}  // namespace

void add_eval_command(CommandLine& cl) {
  auto r = std::make_shared<EvalArgs>();
  CLI::App* c = add_command(cl, "eval", "evaluate a checkpoint or a finished run", kEvalHelp,
                            [&cl, r](const CLI::App& parsed) {
                              reject_remaining(parsed, kEvalHelp, "(overrides look like key.path=value)");
                              if (r->path.empty())
                                throw BadInput(std::string("missing checkpoint or run directory\n") + kEvalHelp);
                              for (const auto& o : r->overrides)
                                if (o.find('=') == std::string::npos)
                                  throw BadInput("unexpected argument '" + o +
                                                 "' (overrides look like key.path=value)\n" + kEvalHelp);
                              TrainedModel model(r->path, r->overrides, /*inference_only=*/false, r->averaged);
                              Metrics metrics = model.evaluate();
                              if (r->json) {
                                boost::json::object o;
                                for (const auto& [name, value] : metrics) o[name] = value;
                                cl.out << boost::json::serialize(o) << "\n";
                              } else {
                                cl.err << "hpt eval: task " << model.task_name() << ", weights "
                                       << model.weights_file() << "\n";
                                std::ostringstream os;
                                os << std::setprecision(6);
                                for (const auto& [name, value] : metrics) os << name << " " << value << "\n";
                                cl.out << os.str();
                              }
                              return kExitOk;
                            });
  c->add_option("path", r->path, "a checkpoint directory or a run directory");
  c->add_option("overrides", r->overrides, "key.path=value");
  c->add_flag("--json", r->json, "print the metrics as one JSON object");
  c->add_flag("--averaged", r->averaged, "evaluate the run's weight average ([averaging]) instead of its weights");
}

}  // namespace hpt::host
