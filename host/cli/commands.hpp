// The commands of `hpt`, one per file (cli/<name>_command.cpp). Each adds its
// subcommand to the CLI11 app with its options, and sets the action that runs once the
// command line parsed. Argument errors are hpt::BadInput with the command's usage text.
#pragma once

#include <functional>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace hpt::host {

struct CommandLine {
  struct Command {
    std::string help;            // the usage text of `hpt COMMAND --help`
    std::function<int(const CLI::App& parsed)> action; // runs the command once its arguments parsed
  };
  CLI::App& app;
  std::ostream& out;
  std::ostream& err;
  std::string command_text;      // the whole command line, "hpt bench x.toml", for reports
  std::map<const CLI::App*, Command> commands;
};

void add_run_command(CommandLine& cl);
void add_validate_command(CommandLine& cl);
void add_plugins_command(CommandLine& cl);
void add_resume_command(CommandLine& cl);
void add_export_command(CommandLine& cl);
void add_average_command(CommandLine& cl);
void add_bench_command(CommandLine& cl);
void add_eval_command(CommandLine& cl);
void add_sample_command(CommandLine& cl);
void add_tune_command(CommandLine& cl);

// Adds subcommand `name` whose -h/--help prints `help` (our own text, not CLI11's) and
// which runs `action` once parsed. It keeps what it does not know in remaining(), for
// the action to judge (reject_remaining).
CLI::App* add_command(CommandLine& cl, const char* name, const char* summary, const char* help,
                      std::function<int(const CLI::App& parsed)> action);

// Shared by `run`, `resume` and `validate`: train as a manifest says.
struct RunRequest {
  std::string manifest;
  std::vector<std::string> overrides;
  bool overwrite = false;
  int progress = -1;  // 1: progress bar, 0: plain lines, -1: bar when stderr is a terminal
  int nproc = 0;      // run --nproc N: start N local ranks (0: this process is the run, or one rank of it)
};
int run_manifest(const RunRequest& request, std::ostream& out);
// The manifest and overrides of `run` or `validate`, checked (BadInput with `usage`).
RunRequest manifest_arguments(const CLI::App& parsed, const RunRequest& given, const char* usage);
// --progress and --no-progress.
void add_progress_flags(CLI::App& command, RunRequest& request);

// What a command left unparsed: each "--x" is an unknown option, each other word an
// unexpected argument. Throws BadInput naming the first, with `usage`.
void reject_remaining(const CLI::App& command, const char* usage, const char* hint = nullptr);

}  // namespace hpt::host
