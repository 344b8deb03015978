// hpt run MANIFEST.toml [key.path=value ...] [--overwrite] [--progress|--no-progress] [--nproc N]
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/commands.hpp"
#include "distributed/launch_environment.hpp"
#include "distributed/local_launcher.hpp"
#include "engine/engine.hpp"

namespace hpt::host {

namespace {

const char* kRunHelp =
    "usage: hpt run MANIFEST.toml [key.path=value ...] [--overwrite] [--progress|--no-progress] [--nproc N]\n"
    "\n"
    "Trains as the manifest says. Any key can be overridden: optimizer.lr=3e-3 run.seed=2\n"
    "(the value is parsed as TOML; text that is not TOML is taken as a string).\n"
    "Writes runs/<run.name>/: config.resolved.toml, metrics.jsonl, summary.json, hpt.log, checkpoints/.\n"
    "An existing run directory is refused unless --overwrite is given (or run.resume=true).\n"
    "Data parallel: under torchrun (torchrun --nproc_per_node=N --no_python hpt run M.toml), or\n"
    "--nproc N to start N local ranks without torchrun; [distributed] configures them.\n";

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

}  // namespace

// The manifest and its overrides, as `run` and `validate` take them.
RunRequest manifest_arguments(const CLI::App& parsed, const RunRequest& given, const char* usage) {
  reject_remaining(parsed, usage, "(overrides look like key.path=value)");
  if (given.manifest.empty()) throw BadInput(std::string("missing manifest\n") + usage);
  for (const auto& o : given.overrides)
    if (o.find('=') == std::string::npos)
      throw BadInput("unexpected argument '" + o + "' (overrides look like key.path=value)\n" + usage);
  return given;
}

int run_manifest(const RunRequest& a, std::ostream& out) {
  Manifest m = Manifest::load(a.manifest, a.overrides);
  PluginLoader loader(PluginLoader::default_dirs(plugin_dirs_of(m)));
  ResolvedManifest resolved = resolve(m, loader);
  const RunConfig run = resolved.run;
  std::optional<LaunchEnvironment> launch = read_launch_environment();
  if (a.nproc > 0) {
    if (launch)
      throw BadInput("--nproc " + std::to_string(a.nproc) + " inside a launch of " +
                     std::to_string(launch->world_size) + " ranks (WORLD_SIZE is set): use one or the other");
    std::vector<std::string> args = {"run", a.manifest};
    args.insert(args.end(), a.overrides.begin(), a.overrides.end());
    if (a.overwrite) args.push_back("--overwrite");
    if (a.progress == 0) args.push_back("--no-progress");
    if (a.progress == 1) args.push_back("--progress");
    return run_local_ranks(a.nproc, args, std::cerr);
  }
  EngineOptions options;
  options.overwrite = a.overwrite;
  options.progress = a.progress;
  if (launch) {
    if (launch->restart_count > 0) {
      // torchrun restarted the group (--max-restarts) after a rank failed: go on from the
      // latest checkpoint of the run, or start over when there are none to go on from.
      if (resolved.has(PluginKind::Checkpointer)) resolved.run.resume = true;
      else options.overwrite = true;
      // One write for the whole line: every rank prints it at once to the same stderr, and
      // an unbuffered std::cerr writes each << apart (the lines came out interleaved).
      std::ostringstream line;
      line << "hpt: rank " << launch->rank << ": restart " << launch->restart_count << " of the group: "
           << (resolved.run.resume ? "resuming from the latest checkpoint" : "starting over (no [checkpointer])")
           << "\n";
      const std::string text = line.str();
      std::cerr.write(text.data(), static_cast<std::streamsize>(text.size()));
      std::cerr.flush();
    }
    options.world = connect_world(*launch, DistributedSettings::from(resolved.distributed));
    if (launch->rank != 0) options.progress = 0;
  }
  Engine engine(std::move(resolved), loader, options);
  install_signal_handlers();
  RunSummary summary = engine.run();
  if (options.world.rank == 0) out << format_summary(summary, run);  // one summary for all ranks
  return kExitOk;
}

void add_progress_flags(CLI::App& command, RunRequest& r) {
  command.add_flag_callback("--progress", [&r] { r.progress = 1; }, "draw a progress bar");
  command.add_flag_callback("--no-progress", [&r] { r.progress = 0; }, "log plain progress lines");
}

void add_run_command(CommandLine& cl) {
  auto r = std::make_shared<RunRequest>();
  CLI::App* c = add_command(cl, "run", "train", kRunHelp, [&cl, r](const CLI::App& parsed) {
    return run_manifest(manifest_arguments(parsed, *r, kRunHelp), cl.out);
  });
  c->add_option("manifest", r->manifest, "the run manifest");
  c->add_option("overrides", r->overrides, "key.path=value");
  c->add_flag("--overwrite", r->overwrite, "replace an existing run directory");
  c->add_option("--nproc", r->nproc, "start N local ranks of a data-parallel run (without torchrun)")
      ->check(CLI::Range(1, 1024));
  add_progress_flags(*c, *r);
}

}  // namespace hpt::host
