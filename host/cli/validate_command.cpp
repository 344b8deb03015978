// hpt validate MANIFEST.toml [key.path=value ...]   (a run manifest or a bench manifest)
#include <sstream>

#include "bench/bench_manifest.hpp"
#include "cli/commands.hpp"
#include "config/manifest.hpp"
#include "tune/tune_manifest.hpp"

namespace hpt::host {

namespace {
const char* kValidateHelp =
    "usage: hpt validate MANIFEST.toml [key.path=value ...]\n"
    "\n"
    "Parses the manifest, applies the overrides, loads the plugins it names and checks every\n"
    "key against their declared options. Prints the resolved manifest; exit 2 on any problem.\n"
    "A bench manifest (a file with a [bench] section) is checked as `hpt bench` would check it:\n"
    "the bench keys, then the run manifest of every variant (grid variants expanded) at every\n"
    "seed, resolved; it prints the plan: the runs, and each variant's overrides. The overrides\n"
    "are those of `hpt bench` (bench.seeds=[0,1], or a run key applied to every variant).\n"
    "A tune manifest (a file with a [tune] section) is checked as `hpt tune` would check it,\n"
    "every space key against the base; the overrides are those of `hpt tune` (tune.trials=50).\n";

// The plan of a valid bench: what `hpt bench` would run.
std::string bench_plan_text(const BenchManifest& bench, const std::vector<PlannedRun>& runs) {
  std::ostringstream os;
  const RunConfig& run = runs.front().resolved.run;
  os << "# bench " << bench.name << ": " << bench.variants.size() << " variants x " << bench.seeds.size()
     << " seeds = " << runs.size() << " runs into " << bench.runs_dir << "\n";
  os << "# base manifest: " << bench.base << "\n";
  os << "# baseline: " << bench.baseline << "; target: " << run.target->metric << (run.target->maximize ? " >= " : " <= ")
     << run.target->value << "; budget: " << run.max_steps << " step-equivalents per run\n";
  os << "# seeds:";
  for (auto s : bench.seeds) os << " " << s;
  os << "\n";
  if (!bench.run_overrides.empty()) {
    os << "# every variant:";
    for (const auto& o : bench.run_overrides) os << " " << o;
    os << "\n";
  }
  for (const auto& v : bench.variants) {
    os << "variant " << v.name << ":";
    if (v.overrides.empty()) os << " the base manifest as it is";
    for (const auto& o : v.overrides) os << " " << o;
    os << "\n";
  }
  return os.str();
}

}  // namespace

void add_validate_command(CommandLine& cl) {
  auto r = std::make_shared<RunRequest>();
  CLI::App* c = add_command(cl, "validate", "check a manifest without running", kValidateHelp,
                            [&cl, r](const CLI::App& parsed) {
                              RunRequest a = manifest_arguments(parsed, *r, kValidateHelp);
                              if (is_bench_manifest(a.manifest)) {
                                BenchManifest bench = load_bench_manifest(a.manifest, a.overrides);
                                std::vector<PlannedRun> runs = plan_runs(bench);
                                cl.out << bench_plan_text(bench, runs);
                                cl.out << "\n# " << a.manifest << " is a valid bench manifest (" << runs.size()
                                       << " runs resolved)\n";
                                return kExitOk;
                              }
                              if (is_tune_manifest(a.manifest)) {
                                TuneManifest tune = load_tune_manifest(a.manifest, a.overrides);
                                cl.out << "# tune " << tune.name << ": " << tune.trials << " trials (" << tune.sampler
                                       << ", pruner " << tune.pruner.name << "), " << tune.workers << " at a time, of "
                                       << tune.base << " into " << tune.runs_dir << "\n# storage: " << tune.storage << "\n";
                                for (const auto& p : tune.params) cl.out << "# space: " << p.name << "\n";
                                cl.out << "\n# " << a.manifest << " is a valid tune manifest\n";
                                return kExitOk;
                              }
                              Manifest m = Manifest::load(a.manifest, a.overrides);
                              PluginLoader loader(PluginLoader::default_dirs(plugin_dirs_of(m)));
                              ResolvedManifest resolved = resolve(m, loader);
                              cl.out << resolved.to_toml();
                              cl.out << "\n# " << a.manifest << " is valid\n";
                              return kExitOk;
                            });
  c->add_option("manifest", r->manifest, "the run or bench manifest");
  c->add_option("overrides", r->overrides, "key.path=value");
}

}  // namespace hpt::host
