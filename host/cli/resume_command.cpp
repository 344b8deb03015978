// hpt resume RUN_DIR [key.path=value ...]
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include <boost/json.hpp>

#include "cli/commands.hpp"
#include "config/manifest.hpp"
#include "hpt/error.hpp"
#include "process/exit_codes.hpp"

namespace hpt::host {

namespace {
const char* kResumeHelp =
    "usage: hpt resume RUN_DIR [key.path=value ...] [--nproc N]\n"
    "\n"
    "Continues the run in RUN_DIR from its latest valid checkpoint, with the manifest it was\n"
    "started with (RUN_DIR/config.resolved.toml) and the overrides given here.\n"
    "A run that finished (summary.json: completed, target_reached, early_stopped) is left as\n"
    "it is; a completed one continues when run.max_steps is raised above its steps.\n";

struct ResumeArgs {
  std::string run_dir;
  std::vector<std::string> overrides;
  RunRequest run;
};

// What summary.json says of a run that ended by itself (not interrupted, not failed).
struct FinishedRun {
  std::string status;  // "completed", "target_reached" or "early_stopped"
  std::int64_t steps = 0;
};

std::optional<FinishedRun> finished_run(const std::filesystem::path& dir) {
  std::ifstream in(dir / "summary.json");
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;  // half-written: the checkpoints decide
  const auto& o = v.as_object();
  const auto* status = o.if_contains("status");
  const auto* steps = o.if_contains("steps");
  if (!status || !status->is_string() || !steps || !steps->is_int64()) return std::nullopt;
  FinishedRun run{std::string(status->as_string()), steps->as_int64()};
  if (run.status != "completed" && run.status != "target_reached" && run.status != "early_stopped") return std::nullopt;
  return run;
}

// Resuming a finished run would restore its last checkpoint and rewrite its summary; it is
// told apart here, before anything is opened for writing. Returns true when there is
// nothing to do (and says so on `out`).
bool already_finished(const std::filesystem::path& dir, const std::string& manifest,
                      const std::vector<std::string>& overrides, std::ostream& out) {
  std::optional<FinishedRun> run = finished_run(dir);
  if (!run) return false;
  Manifest m = Manifest::load(manifest, overrides);
  const std::int64_t max_steps = m.table()["run"]["max_steps"].value<std::int64_t>().value_or(0);
  if (run->status == "completed" && max_steps > run->steps) return false;  // a raised budget: go on
  out << "run " << dir.filename().string() << " already finished (" << run->status << " after " << run->steps
      << " steps); nothing to resume, " << (dir / "summary.json").string() << " is unchanged\n";
  if (run->status == "completed")
    out << "  to train further, raise the budget: hpt resume " << dir.string() << " run.max_steps=" << 2 * run->steps
        << "\n";
  else
    out << "  it stopped on " << (run->status == "target_reached" ? "its target" : "early stopping")
        << ", which would stop it again: to train further, start a new run from " << (dir / "final_weights.pt").string()
        << "\n";
  return true;
}
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
                              if (already_finished(dir, a.manifest, a.overrides, cl.out)) return kExitOk;
                              return run_manifest(a, cl.out);
                            });
  c->add_option("run_dir", r->run_dir, "the run directory");
  c->add_option("overrides", r->overrides, "key.path=value");
  c->add_option("--nproc", r->run.nproc, "resume as N local ranks (the world size the run was written with)")
      ->check(CLI::Range(1, 1024));
  add_progress_flags(*c, r->run);
}

}  // namespace hpt::host
