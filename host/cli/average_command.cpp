// hpt average CHECKPOINT CHECKPOINT... -o OUT_DIR
#include "checkpoint/checkpoint_tools.hpp"
#include "cli/commands.hpp"
#include "hpt/error.hpp"

namespace hpt::host {

namespace {
const char* kAverageHelp =
    "usage: hpt average CHECKPOINT CHECKPOINT... -o OUT_DIR\n"
    "\n"
    "Averages the parameters of several checkpoints of the same model into a new checkpoint\n"
    "directory OUT_DIR (which must not exist); the other state is copied from the first.\n";

struct AverageArgs {
  std::vector<std::string> inputs;
  std::string output;
};
}  // namespace

void add_average_command(CommandLine& cl) {
  auto r = std::make_shared<AverageArgs>();
  CLI::App* c = add_command(cl, "average", "average the weights of checkpoints", kAverageHelp,
                            [&cl, r](const CLI::App& parsed) {
                              reject_remaining(parsed, kAverageHelp);
                              if (r->inputs.size() < 2)
                                throw BadInput(std::string("average needs at least two checkpoints\n") + kAverageHelp);
                              if (r->output.empty()) throw BadInput(std::string("missing -o OUT_DIR\n") + kAverageHelp);
                              average_checkpoints(r->inputs, r->output);
                              cl.out << "wrote " << r->output << " (average of " << r->inputs.size()
                                     << " checkpoints)\n";
                              return kExitOk;
                            });
  c->add_option("checkpoints", r->inputs, "checkpoint directories");
  c->add_option("-o,--output", r->output, "the new checkpoint directory");
}

}  // namespace hpt::host
