#include "cli.hpp"

#include <csignal>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "bench_report.hpp"
#include "checkpoint_tools.hpp"
#include "engine.hpp"
#include "manifest.hpp"
#include "plugin_loader.hpp"

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

const char* kUsage =
    "hpt - hybrid predictive trainer\n"
    "\n"
    "usage:\n"
    "  hpt run MANIFEST.toml [key.path=value ...] [--overwrite]   train\n"
    "  hpt validate MANIFEST.toml [key.path=value ...]           check a manifest without running\n"
    "  hpt plugins [--kind KIND]                                 list the plugins that can be loaded\n"
    "  hpt resume RUN_DIR [key.path=value ...]                   continue from the last good checkpoint\n"
    "  hpt export CHECKPOINT [--format torch|json] [-o OUT]      write a checkpoint's weights\n"
    "  hpt average CHECKPOINT CHECKPOINT... -o OUT_DIR           average the weights of checkpoints\n"
    "  hpt bench BENCH.toml [--report-only]                      variants x seeds, side by side, with a report\n"
    "  hpt COMMAND --help                                        help for one command\n"
    "\n"
    "exit codes: 0 success, 1 failure while running, 2 bad input (manifest, plugin, arguments)\n"
    "plugins are searched in build/plugins, then $HPT_PLUGIN_PATH (colon-separated), then run.plugin_dirs\n";

const char* kRunHelp =
    "usage: hpt run MANIFEST.toml [key.path=value ...] [--overwrite] [--progress|--no-progress]\n"
    "\n"
    "Trains as the manifest says. Any key can be overridden: optimizer.lr=3e-3 run.seed=2\n"
    "(the value is parsed as TOML; text that is not TOML is taken as a string).\n"
    "Writes runs/<run.name>/: config.resolved.toml, metrics.jsonl, summary.json, hpt.log, checkpoints/.\n"
    "An existing run directory is refused unless --overwrite is given (or run.resume=true).\n";

const char* kValidateHelp =
    "usage: hpt validate MANIFEST.toml [key.path=value ...]\n"
    "\n"
    "Parses the manifest, applies the overrides, loads the plugins it names and checks every\n"
    "key against their declared options. Prints the resolved manifest; exit 2 on any problem.\n";

const char* kPluginsHelp =
    "usage: hpt plugins [--kind KIND] [--dir DIR ...] [--markdown]\n"
    "\n"
    "Lists every plugin library in the search path with its kind, name, version and options.\n"
    "KIND is one of: task optimizer backend dynamics correction phase checkpointer.\n"
    "--markdown prints the option tables of docs/manifest.md.\n";

const char* kResumeHelp =
    "usage: hpt resume RUN_DIR [key.path=value ...]\n"
    "\n"
    "Continues the run in RUN_DIR from its latest valid checkpoint, with the manifest it was\n"
    "started with (RUN_DIR/config.resolved.toml) and the overrides given here.\n";

const char* kExportHelp =
    "usage: hpt export CHECKPOINT [--format torch|json] [-o OUT]\n"
    "\n"
    "Writes the model weights of a checkpoint directory (runs/<name>/checkpoints/step_N, or\n"
    "its 'latest'/'best' link) as a compact torch archive (a dict name -> tensor that\n"
    "torch::pickle_load and Python's torch.load read) or as human-readable JSON. The\n"
    "checkpoint's hashes are verified first. Default OUT: beside the checkpoint.\n";

const char* kAverageHelp =
    "usage: hpt average CHECKPOINT CHECKPOINT... -o OUT_DIR\n"
    "\n"
    "Averages the parameters of several checkpoints of the same model into a new checkpoint\n"
    "directory OUT_DIR (which must not exist); the other state is copied from the first.\n";

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

bool wants_help(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") return true;
  return false;
}

struct RunArgs {
  std::string manifest;
  std::vector<std::string> overrides;
  bool overwrite = false;
  int progress = -1;
};

RunArgs parse_run_args(const std::vector<std::string>& args, const char* usage) {
  RunArgs r;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--overwrite") r.overwrite = true;
    else if (a == "--progress") r.progress = 1;
    else if (a == "--no-progress") r.progress = 0;
    else if (a.rfind("--", 0) == 0) throw BadInput("unknown option " + a + "\n" + usage);
    else if (r.manifest.empty()) r.manifest = a;
    else if (a.find('=') != std::string::npos) r.overrides.push_back(a);
    else throw BadInput("unexpected argument '" + a + "' (overrides look like key.path=value)\n" + usage);
  }
  if (r.manifest.empty()) throw BadInput(std::string("missing manifest\n") + usage);
  return r;
}

std::string format_summary(const RunSummary& s, const RunConfig& run) {
  std::ostringstream os;
  os << std::fixed;
  os << "run " << run.name << ": " << s.status << " after " << s.steps << " steps (" << s.real_steps << " real, "
     << s.predicted_steps << " predicted), " << std::setprecision(2) << s.train_seconds << " s training, "
     << s.eval_seconds << " s evaluation\n";
  for (const auto& [k, v] : s.final_metrics) os << "  " << k << " = " << std::setprecision(4) << v << "\n";
  if (run.target) {
    if (s.seconds_to_target)
      os << "  target " << run.target->metric << " " << (run.target->maximize ? ">= " : "<= ") << run.target->value
         << " reached at step " << *s.steps_to_target << " after " << std::setprecision(2) << *s.seconds_to_target
         << " s of training\n";
    else
      os << "  target " << run.target->metric << " " << run.target->value << " not reached\n";
  }
  if (!s.run_dir.empty()) os << "  results in " << s.run_dir << "/summary.json\n";
  return os.str();
}

int do_run(const RunArgs& a, std::ostream& out) {
  Manifest m = Manifest::load(a.manifest, a.overrides);
  PluginLoader loader(PluginLoader::default_dirs(plugin_dirs_of(m)));
  ResolvedManifest resolved = resolve(m, loader);
  const RunConfig run = resolved.run;
  EngineOptions options;
  options.overwrite = a.overwrite;
  options.progress = a.progress;
  Engine engine(std::move(resolved), loader, options);
  install_signal_handlers();
  out << format_summary(engine.run(), run);
  return kExitOk;
}

int do_validate(const RunArgs& a, std::ostream& out) {
  Manifest m = Manifest::load(a.manifest, a.overrides);
  PluginLoader loader(PluginLoader::default_dirs(plugin_dirs_of(m)));
  ResolvedManifest resolved = resolve(m, loader);
  out << resolved.to_toml();
  out << "\n# " << a.manifest << " is valid\n";
  return kExitOk;
}

// The plugin part of docs/manifest.md: a heading and a table of options per plugin.
void print_plugins_markdown(const std::vector<std::shared_ptr<const PluginInfo>>& all, const std::string& kind_filter,
                            std::ostream& out) {
  for (PluginKind k : all_plugin_kinds()) {
    if (!kind_filter.empty() && kind_filter != section_name(k)) continue;
    for (const auto& p : all) {
      if (p->kind != k) continue;
      out << "### " << section_name(k) << " `" << p->name << "`\n\n" << p->summary << " (version " << p->version
          << ")\n\n";
      if (p->options.empty()) {
        out << "No options.\n\n";
        continue;
      }
      out << "| key | type | default | meaning |\n| --- | --- | --- | --- |\n";
      for (const auto& o : p->options) {
        std::ostringstream type;
        type << to_string(o.type);
        if (o.min || o.max) {
          type << " in [";
          if (o.min) type << *o.min;
          type << "..";
          if (o.max) type << *o.max;
          type << "]";
        }
        for (std::size_t i = 0; i < o.choices.size(); ++i) type << (i ? ", " : ": ") << o.choices[i];
        std::string doc = o.doc;
        for (std::size_t at = doc.find('|'); at != std::string::npos; at = doc.find('|', at + 2)) doc.replace(at, 1, "\\|");
        out << "| `" << o.name << "` | " << type.str() << " | `" << to_toml(o.default_value) << "` | " << doc << " |\n";
      }
      out << "\n";
    }
  }
}

int do_plugins(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string kind_filter;
  std::vector<std::string> extra;
  bool markdown = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--markdown") {
      markdown = true;
    } else if ((args[i] == "--kind" || args[i] == "--dir") && i + 1 < args.size()) {
      (args[i] == "--kind" ? kind_filter : (extra.emplace_back(), extra.back())) = args[i + 1];
      ++i;
    } else {
      throw BadInput("unexpected argument '" + args[i] + "'\n" + kPluginsHelp);
    }
  }
  if (!kind_filter.empty()) {
    std::vector<std::string> kinds;
    for (PluginKind k : all_plugin_kinds()) kinds.push_back(section_name(k));
    if (std::find(kinds.begin(), kinds.end(), kind_filter) == kinds.end()) {
      std::string near = closest_name(kind_filter, kinds);
      std::string list;
      for (const auto& k : kinds) list += (list.empty() ? "" : ", ") + k;
      throw BadInput("unknown plugin kind '" + kind_filter + "'" + (near.empty() ? "" : "; did you mean '" + near + "'?") +
                     " (kinds: " + list + ")");
    }
  }
  PluginLoader loader(PluginLoader::default_dirs(extra));
  std::vector<std::string> problems;
  auto all = loader.load_all(&problems);
  if (markdown) {
    print_plugins_markdown(all, kind_filter, out);
    for (const auto& p : problems) err << "warning: " << p << "\n";
    return kExitOk;
  }
  out << "plugin search path: ";
  for (std::size_t i = 0; i < loader.dirs().size(); ++i) out << (i ? ":" : "") << loader.dirs()[i];
  out << "\n";
  for (PluginKind k : all_plugin_kinds()) {
    if (!kind_filter.empty() && kind_filter != section_name(k)) continue;
    out << "\n" << section_name(k) << " (" << interface_name(k) << ")\n";
    bool any = false;
    for (const auto& p : all) {
      if (p->kind != k) continue;
      any = true;
      out << "  " << std::left << std::setw(16) << p->name << " " << std::setw(8) << p->version << " " << p->summary
          << "\n";
      for (const auto& o : p->options) {
        std::string range;
        std::ostringstream r;
        if (o.min || o.max) {
          r << " [";
          if (o.min) r << *o.min;
          r << "..";
          if (o.max) r << *o.max;
          r << "]";
        }
        if (!o.choices.empty()) {
          r << " {";
          for (std::size_t i = 0; i < o.choices.size(); ++i) r << (i ? "|" : "") << o.choices[i];
          r << "}";
        }
        out << "      " << std::left << std::setw(22) << (o.name + " = " + to_toml(o.default_value)) << " "
            << to_string(o.type) << r.str() << ": " << o.doc << "\n";
      }
    }
    if (!any) out << "  (none)\n";
  }
  for (const auto& p : problems) err << "warning: " << p << "\n";
  return kExitOk;
}

int do_resume(const std::vector<std::string>& args, std::ostream& out) {
  if (args.size() < 2) throw BadInput(std::string("missing run directory\n") + kResumeHelp);
  fs::path dir = fs::path(args[1]).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();
  fs::path resolved = dir / "config.resolved.toml";
  if (!fs::exists(resolved))
    throw BadInput("cannot resume " + dir.string() + ": no config.resolved.toml there (is it a run directory?)");
  RunArgs a;
  a.manifest = resolved.string();
  a.overrides = {"run.resume=true", "run.name=\"" + dir.filename().string() + "\"",
                 "run.runs_dir=\"" + (dir.parent_path().empty() ? std::string(".") : dir.parent_path().string()) + "\""};
  for (std::size_t i = 2; i < args.size(); ++i) {
    if (args[i] == "--progress") a.progress = 1;
    else if (args[i] == "--no-progress") a.progress = 0;
    else if (args[i].find('=') != std::string::npos) a.overrides.push_back(args[i]);
    else throw BadInput("unexpected argument '" + args[i] + "'\n" + kResumeHelp);
  }
  return do_run(a, out);
}

int do_export(const std::vector<std::string>& args, std::ostream& out) {
  std::string checkpoint, format = "torch", output;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--format" && i + 1 < args.size()) format = args[++i];
    else if ((args[i] == "-o" || args[i] == "--output") && i + 1 < args.size()) output = args[++i];
    else if (args[i].rfind("-", 0) != 0 && checkpoint.empty()) checkpoint = args[i];
    else throw BadInput("unexpected argument '" + args[i] + "'\n" + kExportHelp);
  }
  if (checkpoint.empty()) throw BadInput(std::string("missing checkpoint directory\n") + kExportHelp);
  if (format != "torch" && format != "json") throw BadInput("--format must be torch or json, got '" + format + "'");
  if (output.empty()) output = default_export_path(checkpoint, format);
  export_checkpoint(checkpoint, format, output);
  out << "wrote " << output << "\n";
  return kExitOk;
}

int do_average(const std::vector<std::string>& args, std::ostream& out) {
  std::vector<std::string> inputs;
  std::string output;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if ((args[i] == "-o" || args[i] == "--output") && i + 1 < args.size()) output = args[++i];
    else if (args[i].rfind("-", 0) != 0) inputs.push_back(args[i]);
    else throw BadInput("unexpected argument '" + args[i] + "'\n" + kAverageHelp);
  }
  if (inputs.size() < 2) throw BadInput(std::string("average needs at least two checkpoints\n") + kAverageHelp);
  if (output.empty()) throw BadInput(std::string("missing -o OUT_DIR\n") + kAverageHelp);
  average_checkpoints(inputs, output);
  out << "wrote " << output << " (average of " << inputs.size() << " checkpoints)\n";
  return kExitOk;
}

int do_bench(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string file;
  bool report_only = false;
  std::string command = "hpt";
  for (const auto& a : args) command += " " + a;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--report-only") report_only = true;
    else if (args[i].rfind("-", 0) != 0 && file.empty()) file = args[i];
    else throw BadInput("unexpected argument '" + args[i] + "'\n" + kBenchHelp);
  }
  if (file.empty()) throw BadInput(std::string("missing bench manifest\n") + kBenchHelp);
  BenchManifest bench = load_bench_manifest(file);
  std::vector<PlannedRun> runs = plan_runs(bench);
  std::vector<RunOutcome> outcomes;
  try {
    if (!report_only) outcomes = run_suite(bench, runs, fs::canonical("/proc/self/exe").string(), out);
  } catch (const Interrupted& e) {
    err << "hpt: bench " << e.what() << "; run the same command again to resume the suite\n";
    return 128 + e.signal;
  }
  BenchResults results = collect_results(bench, runs, outcomes, command);
  for (const auto& path : write_bench_reports(results, bench.runs_dir)) out << "wrote " << path << "\n";
  std::size_t unfinished = 0;
  for (const auto& r : results.runs) unfinished += r.finished ? 0 : 1;
  if (unfinished == 0) return kExitOk;
  err << "hpt: bench: " << unfinished << " of " << results.runs.size() << " runs did not finish (see report.md)\n";
  return kExitFailure;
}

}  // namespace

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
    if (cmd == "run") {
      if (wants_help(args)) return out << kRunHelp, kExitOk;
      return do_run(parse_run_args(args, kRunHelp), out);
    }
    if (cmd == "validate") {
      if (wants_help(args)) return out << kValidateHelp, kExitOk;
      return do_validate(parse_run_args(args, kValidateHelp), out);
    }
    if (cmd == "plugins") {
      if (wants_help(args)) return out << kPluginsHelp, kExitOk;
      return do_plugins(args, out, err);
    }
    if (cmd == "resume") {
      if (wants_help(args)) return out << kResumeHelp, kExitOk;
      return do_resume(args, out);
    }
    if (cmd == "export") {
      if (wants_help(args)) return out << kExportHelp, kExitOk;
      return do_export(args, out);
    }
    if (cmd == "average") {
      if (wants_help(args)) return out << kAverageHelp, kExitOk;
      return do_average(args, out);
    }
    if (cmd == "bench") {
      if (wants_help(args)) return out << kBenchHelp, kExitOk;
      return do_bench(args, out, err);
    }
    std::vector<std::string> commands = {"run", "validate", "plugins", "resume", "export", "average", "bench"};
    std::string near = closest_name(cmd, commands);
    err << "hpt: unknown command '" << cmd << "'" << (near.empty() ? "" : "; did you mean '" + near + "'?") << "\n\n"
        << kUsage;
    return kExitBadInput;
  } catch (const BadInput& e) {
    err << "hpt: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const Interrupted& e) {
    err << "hpt: " << e.what() << "; the run can continue with `hpt resume`\n";
    return 128 + e.signal;
  } catch (const std::exception& e) {
    err << "hpt: failed: " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace hpt::host
