// hpt export CHECKPOINT_OR_RUN_DIR [--format torch|json] [-o OUT]
#include <filesystem>

#include "checkpoint/checkpoint_tools.hpp"
#include "cli/commands.hpp"
#include "hpt/error.hpp"

namespace hpt::host {

namespace {
const char* kExportHelp =
    "usage: hpt export CHECKPOINT_OR_RUN_DIR [--format torch|json] [-o OUT]\n"
    "\n"
    "Writes the model weights of a checkpoint directory (runs/<name>/checkpoints/step_N, or\n"
    "its 'latest'/'best' link), or a finished run's final_weights.pt (runs/<name>), as a\n"
    "compact torch archive -- a dict name -> tensor that torch::pickle_load and Python's\n"
    "torch.load read, a state_dict: model.load_state_dict(torch.load(OUT)) -- or as\n"
    "human-readable JSON. A checkpoint's hashes are verified first. Default OUT: beside the\n"
    "checkpoint, inside a run directory; an OUT that is a directory gets the file inside it.\n";

struct ExportArgs {
  std::string checkpoint;
  std::string format = "torch";
  std::string output;
};
}  // namespace

void add_export_command(CommandLine& cl) {
  auto r = std::make_shared<ExportArgs>();
  CLI::App* c = add_command(cl, "export", "write a checkpoint's weights", kExportHelp, [&cl, r](const CLI::App& parsed) {
    reject_remaining(parsed, kExportHelp);
    if (r->checkpoint.empty()) throw BadInput(std::string("missing checkpoint or run directory\n") + kExportHelp);
    if (r->format != "torch" && r->format != "json")
      throw BadInput("--format must be torch or json, got '" + r->format + "'");
    std::string output = r->output.empty() ? default_export_path(r->checkpoint, r->format) : r->output;
    std::error_code ec;
    if (!r->output.empty() && std::filesystem::is_directory(r->output, ec))  // -o DIR: the file goes into it
      output = (std::filesystem::path(r->output) /
                std::filesystem::path(default_export_path(r->checkpoint, r->format)).filename())
                   .string();
    export_checkpoint(r->checkpoint, r->format, output);
    cl.out << "wrote " << output << "\n";
    return kExitOk;
  });
  c->add_option("checkpoint", r->checkpoint, "a checkpoint directory or a run directory");
  c->add_option("--format", r->format, "torch or json");
  c->add_option("-o,--output", r->output, "where to write");
}

}  // namespace hpt::host
