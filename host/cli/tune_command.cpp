// hpt tune TUNE.toml [key.path=value ...] [--report-only]
#include <filesystem>
#include <iostream>

#include "cli/commands.hpp"
#include "hpt/error.hpp"
#include "output/run_directory.hpp"
#include "process/exit_codes.hpp"
#include "process/stop_signal.hpp"
#include "tune/tune_driver.hpp"
#include "tune/tune_manifest.hpp"
#include "tune/tune_report.hpp"

namespace hpt::host {

namespace {
const char* kTuneHelp =
    "usage: hpt tune TUNE.toml [key.path=value ...] [--report-only]\n"
    "\n"
    "Searches hyperparameters with Optuna: each trial is an `hpt run` of the base manifest with\n"
    "the trial's values as overrides, in its own process and run directory\n"
    "(<runs_dir>/trials/<number>). Each evaluation is reported to the pruner as it happens; a\n"
    "pruned trial is stopped with SIGTERM and marked PRUNED. The study lives in an Optuna\n"
    "storage (default: <runs_dir>/study.db, SQLite), so running the same command again resumes\n"
    "it and runs only the trials still missing (tune.trials=50 asks for more). Writes trials.csv,\n"
    "best.toml (the base manifest with the best trial's overrides: `hpt run best.toml`) and\n"
    "report.html into the tune directory. Ctrl-C stops the running trials; the study resumes.\n"
    "  --report-only   write the outputs from the study on disk, run nothing\n"
    "\n"
    "Overrides change the tune file: tune.trials=50 tune.workers=4 'tune.sampler=\"random\"'.\n"
    "The Optuna side runs with $HPT_PYTHON or /usr/bin/python3 (Debian's python3-optuna).\n"
    "\n"
    "Tune manifest (docs/manifest.md, \"Tune manifest\"):\n"
    "  [tune]\n"
    "  name = \"fm16-lr\"                                # default: the file's name\n"
    "  base = \"../configs/fm16_baseline.toml\"          # a run manifest, relative to this file\n"
    "  objective = { metric = \"val_loss\", direction = \"minimize\" }   # the final evaluation's metric\n"
    "            # or { time_to_target = true }: seconds to the base's run.target (a miss: 2 x its\n"
    "            # time scaled to the budget, the bench protocol's rule)\n"
    "  sampler = \"tpe\"                                 # tpe (default), random, grid, cmaes\n"
    "  pruner = \"median\"                               # median (default), hyperband, none, or\n"
    "            # { name = \"median\", startup_trials = 5, warmup_steps = 0 }\n"
    "  trials = 30\n"
    "  workers = 2                                     # trials at a time (default 1)\n"
    "  budget = 2000                                   # run.max_steps of each trial (default: the base's)\n"
    "  seed = 0                                        # the sampler's seed\n"
    "  runs_dir = \"runs/tune/fm16-lr\"                  # default: runs/tune/<name>\n"
    "  overrides = ['backend.threads=1']               # of the base, for every trial\n"
    "  storage = \"postgresql://user@host/hpt\"          # any Optuna storage URL (default: SQLite in runs_dir)\n"
    "  [space]\n"
    "  \"optimizer.lr\" = { log_uniform = [1e-4, 1e-1] }\n"
    "  \"optimizer.weight_decay\" = { uniform = [0.0, 0.1] }     # step = 0.01 optional\n"
    "  \"task.hidden\" = { int = [16, 256], log = true }         # or step = 16\n"
    "  \"task.batch_size\" = { choice = [64, 128, 256] }\n"
    "  \"x.y\" = { uniform = [0, 1], when = { \"task.batch_size\" = 128 } }   # only in those trials\n";

struct TuneArgs {
  std::string file;
  std::vector<std::string> overrides;
  bool report_only = false;
};

int run_tune(const TuneArgs& a, const std::string& command_text, std::ostream& out, std::ostream& err) {
  namespace fs = std::filesystem;
  TuneManifest tune = load_tune_manifest(a.file, a.overrides);
  fs::create_directories(tune.runs_dir);
  const std::string spec = (fs::path(tune.runs_dir) / "spec.json").string();
  write_file_atomic(spec, tune_spec_json(tune, fs::canonical("/proc/self/exe").string()));
  out.flush();
  const int code = run_tune_driver(spec, a.report_only ? std::vector<std::string>{"--export-only"} : std::vector<std::string>{});
  if (code == kExitBadInput || code == 127) return kExitBadInput;  // the driver said why
  const bool interrupted = code > 128;
  if (code != 0 && !interrupted) err << "hpt: tune: the Optuna driver failed (exit code " << code << ")\n";
  if (code == 0 || interrupted) {
    TuneResults results = read_tune_results(tune, command_text);
    for (const auto& path : write_tune_reports(tune, results)) out << "wrote " << path << "\n";
    out << "wrote " << (fs::path(tune.runs_dir) / "trials.csv").string() << "\n";
    if (auto best = best_trial(tune, results)) {
      out << "best: trial " << best->number << ", " << tune.objective.label << " = " << *best->value;
      for (const auto& o : best->overrides) out << " " << o;
      out << "\n";
    }
  }
  if (interrupted) {
    err << "hpt: tune interrupted by " << signal_name(code - 128)
        << "; run the same command again to resume the study\n";
    return code;
  }
  return code == 0 ? kExitOk : kExitFailure;
}
}  // namespace

void add_tune_command(CommandLine& cl) {
  auto r = std::make_shared<TuneArgs>();
  CLI::App* c = add_command(cl, "tune", "hyperparameter search with Optuna", kTuneHelp, [&cl, r](const CLI::App& parsed) {
    reject_remaining(parsed, kTuneHelp, "(overrides look like key.path=value)");
    if (r->file.empty()) throw BadInput(std::string("missing tune manifest\n") + kTuneHelp);
    for (const auto& o : r->overrides)
      if (o.find('=') == std::string::npos)
        throw BadInput("unexpected argument '" + o + "' (overrides look like key.path=value)\n" + kTuneHelp);
    return run_tune(*r, cl.command_text, cl.out, cl.err);
  });
  c->add_option("tune_manifest", r->file, "the tune manifest");
  c->add_option("overrides", r->overrides, "key.path=value");
  c->add_flag("--report-only", r->report_only, "write the outputs from the study on disk, run nothing");
}

}  // namespace hpt::host
