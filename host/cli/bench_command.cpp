// hpt bench BENCH.toml [--report-only]
#include <filesystem>

#include "bench/bench_report.hpp"
#include "cli/commands.hpp"
#include "hpt/error.hpp"
#include "process/stop_signal.hpp"

namespace hpt::host {

namespace {
const char* kBenchHelp =
    "usage: hpt bench BENCH.toml [--report-only]\n"
    "\n"
    "Runs a benchmark suite: every variant of the bench manifest at every seed, interleaved\n"
    "(seed-major: A B C, A B C, ...), each as its own `hpt run` process with its output in\n"
    "<runs_dir>/runs/<variant>-s<seed>/output.log. Every variant is resolved first, so a typo\n"
    "fails before anything runs. Runs already complete with the same manifest are skipped,\n"
    "so running the same command again resumes the suite; a failed run is reported and the\n"
    "suite goes on. Writes results.json, report.md and report.html into bench.runs_dir.\n"
    "  --report-only   write the reports from the runs on disk, run nothing\n"
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
    "\n"
    "A run that misses the target counts as twice the budget: 2 x budget steps, and 2 x its\n"
    "training time (and backward passes) scaled to the budget.\n";

struct BenchArgs {
  std::string file;
  bool report_only = false;
};

int run_bench(const BenchArgs& a, const std::string& command_text, std::ostream& out, std::ostream& err) {
  namespace fs = std::filesystem;
  BenchManifest bench = load_bench_manifest(a.file);
  std::vector<PlannedRun> runs = plan_runs(bench);
  std::vector<RunOutcome> outcomes;
  try {
    if (!a.report_only) outcomes = run_suite(bench, runs, fs::canonical("/proc/self/exe").string(), out);
  } catch (const Interrupted& e) {
    err << "hpt: bench " << e.what() << "; run the same command again to resume the suite\n";
    return 128 + e.signal;
  }
  BenchResults results = collect_results(bench, runs, outcomes, command_text);
  for (const auto& path : write_bench_reports(results, bench.runs_dir)) out << "wrote " << path << "\n";
  std::size_t unfinished = 0;
  for (const auto& r : results.runs) unfinished += r.finished ? 0 : 1;
  if (unfinished == 0) return kExitOk;
  err << "hpt: bench: " << unfinished << " of " << results.runs.size() << " runs did not finish (see report.md)\n";
  return kExitFailure;
}
}  // namespace

void add_bench_command(CommandLine& cl) {
  auto r = std::make_shared<BenchArgs>();
  CLI::App* c = add_command(cl, "bench", "variants x seeds, side by side, with a report", kBenchHelp,
                            [&cl, r](const CLI::App& parsed) {
                              reject_remaining(parsed, kBenchHelp);
                              if (r->file.empty()) throw BadInput(std::string("missing bench manifest\n") + kBenchHelp);
                              return run_bench(*r, cl.command_text, cl.out, cl.err);
                            });
  c->add_option("bench_manifest", r->file, "the bench manifest");
  c->add_flag("--report-only", r->report_only, "write the reports from the runs on disk, run nothing");
}

}  // namespace hpt::host
