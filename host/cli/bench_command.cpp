// hpt bench BENCH.toml [key.path=value ...] [--report-only]
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "bench/bench_report.hpp"
#include "cli/commands.hpp"
#include "hpt/error.hpp"
#include "process/stop_signal.hpp"

namespace hpt::host {

namespace {
const char* kBenchHelp =
    "usage: hpt bench BENCH.toml [key.path=value ...] [--report-only]\n"
    "\n"
    "Runs a benchmark suite: every variant of the bench manifest at every seed, interleaved\n"
    "(seed-major: A B C, A B C, ...), each as its own `hpt run` process with its output in\n"
    "<runs_dir>/runs/<variant>-s<seed>/output.log. Every variant is resolved first, so a typo\n"
    "fails before anything runs. Runs already complete with the same manifest are skipped,\n"
    "so running the same command again resumes the suite; a failed run is reported and the\n"
    "suite goes on. While a run runs, its progress line (step, steps/s, loss, last evaluation,\n"
    "ETA to the target or the budget) is redrawn in place on a terminal, or printed every few\n"
    "seconds otherwise. Writes results.json, report.md and report.html into bench.runs_dir.\n"
    "  --report-only   write the reports from the runs on disk, run nothing (runs never run say \"not run\")\n"
    "\n"
    "Overrides: bench.<key>=value overrides the bench file (bench.seeds=[0,1] bench.budget=500\n"
    "bench.runs_dir=\"/tmp/b\"); any other key.path=value is applied to the base manifest of every\n"
    "variant (a variant that sets the same key keeps its own value), e.g. run.eval_every=100;\n"
    "run.max_steps, run.target and run.runs_dir mean bench.budget, bench.target and bench.runs_dir.\n"
    "`hpt validate BENCH.toml [key.path=value ...]` checks it all without running.\n"
    "\n"
    "Bench manifest:\n"
    "  [bench]\n"
    "  name = \"fm16\"                                  # default: the file's name\n"
    "  base = \"../configs/fm16_baseline.toml\"         # a run manifest, relative to this file\n"
    "  seeds = [0, 1, 2, 3, 4]\n"
    "  baseline = \"baseline\"                          # the variant speedups are measured against\n"
    "  target = { metric = \"val_accuracy\", value = 0.895 }   # default: the base's run.target\n"
    "                                  # also stop = false, min_steps = N: as in run.target\n"
    "  budget = 20000                                  # run.max_steps (default: the base's)\n"
    "  runs_dir = \"runs/bench/fm16\"                   # default: runs/bench/<name>\n"
    "  [[variant]]\n"
    "  name = \"hybrid_linear\"\n"
    "  overrides = ['dynamics.plugin=\"linear\"']      # and/or a [variant.set] table of key.path = value\n"
    "  [[variant]]                                     # a grid: one variant per combination of values,\n"
    "  name = \"adamw\"                                 # named adamw-lr0.001-weight_decay0.0, ...\n"
    "  grid = { \"optimizer.lr\" = [1e-3, 3e-3], \"optimizer.weight_decay\" = [0.0, 0.01] }\n"
    "                                  # (a string value names itself: grid = { \"dynamics.plugin\" = [\"linear\"] } -> <name>-linear)\n"
    "\n"
    "A run that misses the target counts as twice the budget: 2 x budget steps, and 2 x its\n"
    "training time (and backward passes) scaled to the budget.\n";

struct BenchArgs {
  std::string file;
  std::vector<std::string> overrides;
  bool report_only = false;
};

int run_bench(const BenchArgs& a, const std::string& command_text, std::ostream& out, std::ostream& err) {
  namespace fs = std::filesystem;
  BenchManifest bench = load_bench_manifest(a.file, a.overrides);
  std::vector<PlannedRun> runs = plan_runs(bench);
  std::vector<RunOutcome> outcomes;
  // Progress redrawn in place only when the suite's console is a terminal.
  const bool terminal = &out == &std::cout && ::isatty(STDOUT_FILENO);
  try {
    if (!a.report_only) outcomes = run_suite(bench, runs, fs::canonical("/proc/self/exe").string(), out, terminal);
  } catch (const Interrupted& e) {
    err << "hpt: bench " << e.what() << "; run the same command again to resume the suite\n";
    return 128 + e.signal;
  }
  BenchResults results = collect_results(bench, runs, outcomes, command_text);
  for (const auto& path : write_bench_reports(results, bench.runs_dir)) out << "wrote " << path << "\n";
  std::size_t unfinished = 0, not_run = 0;
  for (const auto& r : results.runs) {
    if (!r.ran) ++not_run;
    else if (!r.finished) ++unfinished;
  }
  if (not_run > 0)
    out << not_run << " of " << results.runs.size() << " runs not run yet (\"not run\" in the reports); `hpt bench "
        << a.file << "` runs them\n";
  if (unfinished == 0) return kExitOk;
  err << "hpt: bench: " << unfinished << " of " << results.runs.size() << " runs did not finish (see report.md)\n";
  return kExitFailure;
}
}  // namespace

void add_bench_command(CommandLine& cl) {
  auto r = std::make_shared<BenchArgs>();
  CLI::App* c = add_command(cl, "bench", "variants x seeds, side by side, with a report", kBenchHelp,
                            [&cl, r](const CLI::App& parsed) {
                              reject_remaining(parsed, kBenchHelp, "(overrides look like key.path=value)");
                              if (r->file.empty()) throw BadInput(std::string("missing bench manifest\n") + kBenchHelp);
                              for (const auto& o : r->overrides)
                                if (o.find('=') == std::string::npos)
                                  throw BadInput("unexpected argument '" + o + "' (overrides look like key.path=value)\n" +
                                                 kBenchHelp);
                              return run_bench(*r, cl.command_text, cl.out, cl.err);
                            });
  c->add_option("bench_manifest", r->file, "the bench manifest");
  c->add_option("overrides", r->overrides, "key.path=value");
  c->add_flag("--report-only", r->report_only, "write the reports from the runs on disk, run nothing");
}

}  // namespace hpt::host
