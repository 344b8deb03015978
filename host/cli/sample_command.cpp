// hpt sample CHECKPOINT_OR_RUN_DIR [--prompt TEXT] [--length N] [--temperature T] [--seed S] [key.path=value ...]
#include <cmath>

#include "cli/commands.hpp"
#include "engine/trained_model.hpp"
#include "hpt/error.hpp"

namespace hpt::host {

namespace {
const char* kSampleHelp =
    "usage: hpt sample CHECKPOINT_OR_RUN_DIR [--prompt TEXT] [--length N] [--temperature T] [--seed S]\n"
    "                  [key.path=value ...]\n"
    "\n"
    "Generates text with a trained model of a task that models sequences (char_lm) and\n"
    "prints it: the prompt followed by N generated characters (default 200). Temperature\n"
    "(> 0, default 1.0) divides the logits before sampling; the same seed (default 0) gives\n"
    "the same text. CHECKPOINT_OR_RUN_DIR is a checkpoint directory or the run directory of\n"
    "a finished run; the task reads no data: its vocabulary comes from the saved task state.\n";

struct SampleArgs {
  std::string path;
  std::vector<std::string> overrides;
  SampleRequest request;
};
}  // namespace

void add_sample_command(CommandLine& cl) {
  auto r = std::make_shared<SampleArgs>();
  CLI::App* c = add_command(cl, "sample", "generate text from a trained char_lm", kSampleHelp,
                            [&cl, r](const CLI::App& parsed) {
                              reject_remaining(parsed, kSampleHelp, "(overrides look like key.path=value)");
                              if (r->path.empty())
                                throw BadInput(std::string("missing checkpoint or run directory\n") + kSampleHelp);
                              for (const auto& o : r->overrides)
                                if (o.find('=') == std::string::npos)
                                  throw BadInput("unexpected argument '" + o +
                                                 "' (overrides look like key.path=value)\n" + kSampleHelp);
                              if (r->request.length < 0)
                                throw BadInput("--length must be >= 0, got " + std::to_string(r->request.length));
                              if (!(r->request.temperature > 0.0) || !std::isfinite(r->request.temperature))
                                throw BadInput("--temperature must be a finite number > 0, got " +
                                               std::to_string(r->request.temperature));
                              TrainedModel model(r->path, r->overrides, /*inference_only=*/true);
                              cl.out << model.sample(r->request) << "\n";
                              return kExitOk;
                            });
  c->add_option("path", r->path, "a checkpoint directory or a run directory");
  c->add_option("overrides", r->overrides, "key.path=value");
  c->add_option("--prompt", r->request.prompt, "the start of the text");
  c->add_option("--length", r->request.length, "characters to generate after the prompt");
  c->add_option("--temperature", r->request.temperature, "divides the logits before sampling (> 0)");
  c->add_option("--seed", r->request.seed, "the sampling stream");
}

}  // namespace hpt::host
