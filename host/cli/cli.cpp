// `hpt COMMAND ...`: picks the command, parses its arguments with CLI11 and maps what
// goes wrong to an exit code and one message.
#include "cli/cli.hpp"

#include <iostream>

#include "cli/commands.hpp"
#include "config/manifest.hpp"
#include "hpt/version.hpp"
#include "process/error_text.hpp"
#include "process/stop_signal.hpp"

namespace hpt::host {

namespace {

const char* kUsage =
    "hpt - hybrid predictive trainer\n"
    "\n"
    "usage:\n"
    "  hpt run MANIFEST.toml [key.path=value ...] [--overwrite]   train\n"
    "  hpt validate MANIFEST.toml [key.path=value ...]           check a run or bench manifest without running\n"
    "  hpt plugins [--kind KIND]                                 list the plugins that can be loaded\n"
    "  hpt resume RUN_DIR [key.path=value ...]                   continue from the last good checkpoint\n"
    "  hpt export CKPT|RUN_DIR [--format torch|json] [-o OUT]    write trained weights (a PyTorch state_dict)\n"
    "  hpt average CHECKPOINT CHECKPOINT... -o OUT_DIR           average the weights of checkpoints\n"
    "  hpt eval CKPT|RUN_DIR [key.path=value ...] [--json]       print the task's metrics of trained weights\n"
    "  hpt sample CKPT|RUN_DIR [--prompt TEXT] [--length N]      generate text (char_lm)\n"
    "  hpt bench BENCH.toml [key.path=value ...] [--report-only] variants x seeds, side by side, with a report\n"
    "  hpt tune TUNE.toml [key.path=value ...] [--report-only]   hyperparameter search (Optuna), resumable\n"
    "  hpt COMMAND --help                                        help for one command\n"
    "\n"
    "exit codes: 0 success, 1 failure while running, 2 bad input (manifest, plugin, arguments)\n"
    "plugins are searched in build/plugins, then $HPT_PLUGIN_PATH (colon-separated), then run.plugin_dirs\n";

int parse_and_run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"hpt - hybrid predictive trainer", "hpt"};
  app.set_help_flag();  // hpt's own help texts, below
  app.require_subcommand(1);
  std::string command_text = "hpt";
  for (const auto& a : args) command_text += " " + a;
  CommandLine cl{app, out, err, command_text, {}};
  add_run_command(cl);
  add_validate_command(cl);
  add_plugins_command(cl);
  add_resume_command(cl);
  add_export_command(cl);
  add_average_command(cl);
  add_bench_command(cl);
  add_eval_command(cl);
  add_sample_command(cl);
  add_tune_command(cl);

  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  if (std::find(names.begin(), names.end(), args[0]) == names.end()) {
    std::string near = closest_name(args[0], names);
    err << "hpt: unknown command '" << args[0] << "'" << (near.empty() ? "" : "; did you mean '" + near + "'?")
        << "\n\n"
        << kUsage;
    return kExitBadInput;
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  const CommandLine::Command& command = cl.commands.at(app.get_subcommand(args[0]));
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    // Help wins over every other argument.
    if (std::find(args.begin(), args.end(), "--help") != args.end() ||
        std::find(args.begin(), args.end(), "-h") != args.end())
      return out << command.help, kExitOk;
    throw BadInput(std::string(e.what()) + "\n" + command.help);
  }
  const CLI::App& parsed = *app.get_subcommand(args[0]);
  if (parsed.count("--help") > 0) return out << command.help, kExitOk;
  return command.action(parsed);
}

}  // namespace

CLI::App* add_command(CommandLine& cl, const char* name, const char* summary, const char* help,
                      std::function<int(const CLI::App& parsed)> action) {
  CLI::App* command = cl.app.add_subcommand(name, summary);
  command->set_help_flag();
  command->allow_extras();
  command->add_flag("-h,--help", "this help");
  cl.commands[command] = {help, std::move(action)};
  return command;
}

void reject_remaining(const CLI::App& command, const char* usage, const char* hint) {
  std::vector<std::string> rest = command.remaining();
  if (rest.empty()) return;
  const std::string& a = rest.front();
  if (a.rfind("--", 0) == 0) throw BadInput("unknown option " + a + "\n" + usage);
  throw BadInput("unexpected argument '" + a + "'" + (hint ? std::string(" ") + hint : std::string()) + "\n" + usage);
}

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  try {
    if (args.empty()) {
      err << kUsage;
      return kExitBadInput;
    }
    const std::string& cmd = args[0];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      out << kUsage;
      return kExitOk;
    }
    if (cmd == "--version") {
      out << "hpt " << HPT_VERSION_STRING << " (SDK ABI " << HPT_SDK_ABI_MAJOR << "." << HPT_SDK_ABI_MINOR
          << ", LibTorch " << HPT_TORCH_VERSION_STRING << ")\n";
      return kExitOk;
    }
    return parse_and_run(args, out, err);
  } catch (const BadInput& e) {
    err << "hpt: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const Interrupted& e) {
    err << "hpt: " << e.what()
        << (e.resumable ? "; the run can continue with `hpt resume RUN_DIR`\n"
                        : "; no checkpoint was written (the manifest has no [checkpointer] section), so it cannot "
                          "be resumed\n");
    return 128 + e.signal;
  } catch (const std::exception& e) {
    err << "hpt: failed: " << error_text(e) << "\n";
    return kExitFailure;
  }
}

}  // namespace hpt::host
