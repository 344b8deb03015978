// Checkpointer "torch": one directory per checkpoint, <run_dir>/checkpoints/step_000123/,
// holding the engine's files and a manifest.json with the SHA-256 of each; written
// atomically (temporary directory, fsync, rename), verified on load, thinned out by a
// retention policy, with `latest` and `best` symbolic links beside them.
//
// Rules worth knowing:
// - A save at a step that has a checkpoint already (after a fall-back resume or a
//   roll-back) writes the new one completely and then swaps it in atomically; the old
//   one is deleted afterwards. The checkpoint the run resumed from is the exception:
//   it is never replaced or deleted, and a save at its step keeps it and writes nothing.
// - every_steps: due when the step has crossed a multiple of every_steps since the last
//   save or load (a hybrid run may jump over the multiple inside a predicted phase: the
//   checkpoint comes at the first step after it). Never twice for one step.
// - `latest` points at the checkpoint written last; `best` at the best by best_metric
//   among those kept. Leftover .tmp-* entries of a crash are removed on the next save.
// - With `background`, the engine calls save() on a thread of its own, one save at a
//   time, while training goes on calling due(); save() and due() share only last_step_,
//   which is atomic for that reason. due() itself moves last_step_ to the step it
//   answers yes for (the engine saves when told to), so a save still in flight is not
//   asked for twice.
// - compression = "zstd" stores every file as a zstd frame at compression_level (on the
//   background thread too, when there is one); the manifest's sizes and SHA-256 are of the
//   stored bytes. load() reads both kinds (checkpoint_compression.hpp decides by the
//   frame magic), so a directory of older uncompressed and newer compressed ones loads.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <optional>
#include <set>

#include <spdlog/spdlog.h>

#include "checkpoint_format/checkpoint_compression.hpp"
#include "checkpoint_format/checkpoint_manifest.hpp"
#include "checkpoint_format/checkpoint_writer.hpp"
#include "hpt/hpt.hpp"

namespace {

namespace fs = std::filesystem;
namespace ckpt = hpt::checkpoint;

constexpr const char* kStepPrefix = "step_";

// "step_000123"; more digits once steps pass a million.
std::string checkpoint_name(std::int64_t step) {
  std::string digits = std::to_string(step);
  if (digits.size() < 6) digits.insert(0, 6 - digits.size(), '0');
  return kStepPrefix + digits;
}

// The step a checkpoint directory name stands for, or nullopt for any other name.
std::optional<std::int64_t> step_of_name(const std::string& name) {
  const std::string prefix = kStepPrefix;
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0 || name.size() > prefix.size() + 18)
    return std::nullopt;
  std::int64_t step = 0;
  for (std::size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

std::string same_path_key(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  return ec ? fs::path(path).lexically_normal().string() : p.string();
}

class TorchCheckpointer : public hpt::Checkpointer {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_int("every_steps", 1000, "checkpoint every this many step-equivalents (0: off)", 0),
        hpt::option_float("every_seconds", 0.0, "checkpoint after this many seconds of training (0: off)", 0),
        hpt::option_int("keep_last", 3, "keep the newest this many checkpoints (0: keep every one)", 0),
        hpt::option_int("keep_best", 0, "also keep the best this many by best_metric", 0),
        hpt::option_string("best_metric", "", "the metric that ranks checkpoints for keep_best and `best` (empty: none)"),
        hpt::option_string("best_mode", "auto",
                           "whether higher or lower best_metric is better; auto: by the metric's name, as "
                           "run.target (lower for *loss*, *error*, *perplexity*, *ppl*, *bpc*)",
                           {"auto", "max", "min"}),
        hpt::option_string("directory", "checkpoints",
                           "where checkpoints go: a relative path inside the run directory (no '..', not absolute)"),
        hpt::option_bool("background", false,
                         "save from an in-memory snapshot on a background thread, so that training does not wait "
                         "for serialisation and the disk (one save in flight; its memory is a copy of the state)"),
        hpt::option_string("compression", ckpt::kCompressionNone,
                           "store each file compressed: none, or zstd (libzstd; hashes are over the stored bytes, "
                           "and every reader decompresses transparently)",
                           {ckpt::kCompressionNone, ckpt::kCompressionZstd}),
        hpt::option_int("compression_level", ckpt::kZstdDefaultLevel,
                        "zstd's level with compression = \"zstd\": higher is smaller and slower to save (the speed of "
                        "loading hardly depends on it); negative levels are zstd's fast modes",
                        ckpt::zstd_min_level(), ckpt::zstd_max_level()),
    };
  }

  TorchCheckpointer(const hpt::PluginContext& context, const hpt::Options& options)
      : logger_(context.logger),
        dir_(fs::path(context.run_dir) / options.get_string("directory")),
        every_steps_(options.get_int("every_steps")),
        every_seconds_(options.get_float("every_seconds")),
        keep_last_(options.get_int("keep_last")),
        keep_best_(options.get_int("keep_best")),
        best_metric_(options.get_string("best_metric")),
        lower_is_better_(hpt::lower_is_better(best_metric_, options.get_string("best_mode"))),
        zstd_(options.get_string("compression") == ckpt::kCompressionZstd),
        zstd_level_(static_cast<int>(options.get_int("compression_level"))) {
    const fs::path directory = options.get_string("directory");
    if (directory.empty() || directory.is_absolute() ||
        std::any_of(directory.begin(), directory.end(), [](const fs::path& part) { return part == ".."; }))
      throw hpt::BadInput("checkpointer.directory must be a relative path inside the run directory, got '" +
                          directory.string() + "' (checkpoints belong to their run: hpt resume, export and average "
                          "look for them there)");
    if (keep_best_ > 0 && best_metric_.empty())
      throw hpt::BadInput("checkpointer.keep_best = " + std::to_string(keep_best_) +
                          " needs checkpointer.best_metric (the metric that says which checkpoints are best)");
  }

  bool due(std::int64_t step, double seconds_since_last) const override {
    const std::int64_t last = last_step_;
    if (step == last) return false;
    const bool crossed = every_steps_ > 0 && step / every_steps_ > last / every_steps_;
    if (!crossed && !(every_seconds_ > 0 && seconds_since_last >= every_seconds_)) return false;
    last_step_ = step;
    return true;
  }

  hpt::CheckpointInfo save(std::int64_t step, const std::vector<hpt::CheckpointFile>& files,
                           const hpt::Metrics& metrics) override {
    prepare_directory();
    const fs::path target = dir_ / checkpoint_name(step);
    last_step_ = step;
    if (!resumed_from_.empty() && same_path_key(target.string()) == resumed_from_) {
      warn("checkpointer: step " + std::to_string(step) + " already has " + target.string() +
           ", the checkpoint this run resumed from; it is kept and this save writes nothing");
      return info_of(target);
    }
    if (zstd_) {
      std::vector<hpt::CheckpointFile> stored;
      stored.reserve(files.size());
      for (const auto& f : files) stored.push_back({f.name, ckpt::zstd_compress(f.bytes, zstd_level_)});
      ckpt::write_checkpoint(target, step, stored, metrics, ckpt::WhenExists::Replace);
    } else {
      ckpt::write_checkpoint(target, step, files, metrics, ckpt::WhenExists::Replace);
    }
    ckpt::replace_symlink(dir_ / "latest", target.filename().string());
    apply_retention(target);
    return {target.string(), step, metrics};
  }

  std::vector<hpt::CheckpointInfo> list() const override {
    std::vector<hpt::CheckpointInfo> out;
    std::error_code ec;
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& path = it->path();
      std::optional<std::int64_t> step = step_of_name(path.filename().string());
      if (!step || !it->is_directory(ec) || it->is_symlink(ec)) continue;
      if (!fs::exists(path / ckpt::kManifestName, ec)) continue;  // never completed
      out.push_back(info_of(path, *step));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step > b.step; });
    return out;
  }

  std::vector<hpt::CheckpointFile> load(const std::string& path) const override {
    ckpt::VerifiedCheckpoint checkpoint = ckpt::read_checkpoint(path);
    resumed_from_ = same_path_key(path);
    last_step_ = checkpoint.manifest.step;
    return std::move(checkpoint.files);
  }

 private:
  void warn(const std::string& message) const {
    if (logger_) logger_->warn("{}", message);
  }

  // Creates the checkpoint directory on first use and clears what a crash left behind.
  void prepare_directory() {
    std::error_code ec;
    if (!fs::is_directory(dir_, ec)) {
      fs::create_directories(dir_, ec);
      if (ec) throw hpt::RunError("cannot create checkpoint directory " + dir_.string() + ": " + ec.message());
      ckpt::fsync_directory(dir_.parent_path().empty() ? fs::path(".") : dir_.parent_path());
    }
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().filename().string().rfind(ckpt::kTempPrefix, 0) != 0) continue;
      std::error_code remove_ec;
      fs::remove_all(it->path(), remove_ec);
      if (remove_ec) warn("checkpointer: cannot remove leftover " + it->path().string() + ": " + remove_ec.message());
    }
  }

  // Step and metrics of a complete checkpoint; a manifest that cannot be read leaves
  // the metrics empty (load() will say what is wrong with it).
  static hpt::CheckpointInfo info_of(const fs::path& path, std::optional<std::int64_t> step = std::nullopt) {
    hpt::CheckpointInfo info{path.string(), step.value_or(0), {}};
    try {
      ckpt::Manifest manifest = ckpt::read_manifest(path.string());
      if (!step) info.step = manifest.step;
      info.metrics = std::move(manifest.metrics);
    } catch (const hpt::BadInput&) {
    }
    return info;
  }

  std::optional<double> rank_value(const hpt::CheckpointInfo& c) const {
    auto it = c.metrics.find(best_metric_);
    if (it == c.metrics.end() || !std::isfinite(it->second)) return std::nullopt;
    return it->second;
  }

  // Keeps the newest keep_last, the best keep_best, the one just written and the one
  // resumed from; points `best` at the best kept one; deletes the rest.
  void apply_retention(const fs::path& written) {
    std::vector<hpt::CheckpointInfo> all = list();  // newest first
    std::set<std::string> keep{same_path_key(written.string())};
    if (!resumed_from_.empty()) keep.insert(resumed_from_);
    for (std::size_t i = 0; i < all.size(); ++i)
      if (keep_last_ == 0 || static_cast<std::int64_t>(i) < keep_last_) keep.insert(same_path_key(all[i].path));

    std::vector<const hpt::CheckpointInfo*> ranked;
    if (!best_metric_.empty())
      for (const auto& c : all)
        if (rank_value(c)) ranked.push_back(&c);
    std::stable_sort(ranked.begin(), ranked.end(), [&](const auto* a, const auto* b) {
      return lower_is_better_ ? *rank_value(*a) < *rank_value(*b) : *rank_value(*a) > *rank_value(*b);
    });
    for (std::size_t i = 0; i < ranked.size() && static_cast<std::int64_t>(i) < keep_best_; ++i)
      keep.insert(same_path_key(ranked[i]->path));

    update_best_pointer(ranked, keep);
    for (const auto& c : all) {
      if (keep.count(same_path_key(c.path))) continue;
      try {
        ckpt::remove_checkpoint(c.path);
      } catch (const std::exception& e) {
        warn(std::string("checkpointer: retention could not delete a checkpoint: ") + e.what());
      }
    }
  }

  void update_best_pointer(const std::vector<const hpt::CheckpointInfo*>& ranked, const std::set<std::string>& keep) {
    if (best_metric_.empty()) return;
    const fs::path link = dir_ / "best";
    for (const auto* c : ranked) {
      if (!keep.count(same_path_key(c->path))) continue;
      ckpt::replace_symlink(link, fs::path(c->path).filename().string());
      return;
    }
    std::error_code ec;
    fs::remove(link, ec);  // no kept checkpoint has the metric yet
  }

  std::shared_ptr<spdlog::logger> logger_;
  fs::path dir_;
  std::int64_t every_steps_;
  double every_seconds_;
  std::int64_t keep_last_;
  std::int64_t keep_best_;
  std::string best_metric_;
  bool lower_is_better_;
  bool zstd_;       // compression = "zstd"
  int zstd_level_;  // its compression_level
  // The step of the last save or load: due() is false for it (0: the untrained start).
  mutable std::atomic<std::int64_t> last_step_{0};
  // The checkpoint the last successful load() read (the run resumed from it): never deleted.
  mutable std::string resumed_from_;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Checkpointer, "torch", "1.2.0",
           "atomic, SHA-256-verified checkpoint directories with latest/best links and retention", TorchCheckpointer,
           TorchCheckpointer::option_specs)
