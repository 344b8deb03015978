// hpt resume RUN_DIR [key.path=value ...]
#include <filesystem>

#include "cli/commands.hpp"
#include "hpt/error.hpp"

namespace hpt::host {

namespace {
const char* kResumeHelp =
    "usage: hpt resume RUN_DIR [key.path=value ...] [--nproc N]\n"
    "\n"
    "Continues the run in RUN_DIR from its latest valid checkpoint, with the manifest it was\n"
    "started with (RUN_DIR/config.resolved.toml) and the overrides given here.\n";

struct ResumeArgs {
  std::string run_dir;
  std::vector<std::string> overrides;
  RunRequest run;
};
}  // namespace

void add_resume_command(CommandLine& cl) {
  namespace fs = std::filesystem;
  auto r = std::make_shared<ResumeArgs>();
  CLI::App* c = add_command(cl, "resume", "continue from the last good checkpoint", kResumeHelp,
                            [&cl, r](const CLI::App& parsed) {
                              reject_remaining(parsed, kResumeHelp);
                              if (r->run_dir.empty()) throw BadInput(std::string("missing run directory\n") + kResumeHelp);
                              fs::path dir = fs::path(r->run_dir).lexically_normal();
                              if (dir.filename().empty()) dir = dir.parent_path();
                              fs::path resolved = dir / "config.resolved.toml";
                              if (!fs::exists(resolved))
                                throw BadInput("cannot resume " + dir.string() +
                                               ": no config.resolved.toml there (is it a run directory?)");
                              RunRequest a = r->run;
                              a.manifest = resolved.string();
                              std::string parent = dir.parent_path().empty() ? "." : dir.parent_path().string();
                              a.overrides = {"run.resume=true", "run.name=\"" + dir.filename().string() + "\"",
                                             "run.runs_dir=\"" + parent + "\""};
                              for (const auto& o : r->overrides) {
                                if (o.find('=') == std::string::npos)
                                  throw BadInput("unexpected argument '" + o + "'\n" + kResumeHelp);
                                a.overrides.push_back(o);
                              }
                              return run_manifest(a, cl.out);
                            });
  c->add_option("run_dir", r->run_dir, "the run directory");
  c->add_option("overrides", r->overrides, "key.path=value");
  c->add_option("--nproc", r->run.nproc, "resume as N local ranks (the world size the run was written with)")
      ->check(CLI::Range(1, 1024));
  add_progress_flags(*c, r->run);
}

}  // namespace hpt::host
