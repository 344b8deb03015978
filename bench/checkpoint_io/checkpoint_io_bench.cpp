// Save and load throughput of the `torch` checkpointer plugin, loaded through the
// PluginLoader as the engine loads it, for a model of --mb megabytes (default 128):
//   save     checkpointer->save(files) of bytes already serialised: hashing, writing,
//            fsync, rename, retention — what the plugin adds to the engine's work;
//   load     checkpointer->load(path) with the files dropped from the page cache first
//            (posix_fadvise DONTNEED), so the bytes come from the disk: read + SHA-256;
//   and the same end to end, with model -> archive bytes and back;
//   stall    how long the calling (training) thread is held by one save of the model:
//            in the foreground the whole save end to end; in the background only the
//            snapshot (every tensor copied by a copying hpt::StateWriter), as the engine takes it
//            with [checkpointer] background = true, while serialisation and the
//            plugin's save run on another thread (background_total: until it is done).
// MB = 10^6 bytes, as dd counts. Prints one "name value" line per figure: the median
// of --repeats runs, and the fastest run ("best_"), which on a shared machine is the
// closest to what the disk and the code can do.
//
// --compression zstd [--level N] saves through the plugin with `compression = "zstd"`
// at that level; MB/s stay MB of checkpoint content (uncompressed) per second, and
// stored_mb says what went to disk. --from CHECKPOINT_DIR saves and loads the files of
// an existing checkpoint (read and decompressed first) instead of a synthetic model,
// and then prints only checkpoint_mb, stored_mb, save and load_cold.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <iostream>
#include <sstream>

#include "checkpoint/checkpoint_snapshot.hpp"
#include "checkpoint_format/checkpoint_manifest.hpp"
#include "plugins/plugin_loader.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double fastest(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

// Linear layers of 2048 x 2048 until the parameters reach `megabytes`.
torch::nn::Sequential make_model(double megabytes) {
  const std::int64_t width = 2048;
  const double layer_mb = static_cast<double>(width * (width + 1) * 4) / 1e6;
  torch::nn::Sequential model;
  for (double mb = 0; mb < megabytes; mb += layer_mb) model->push_back(torch::nn::Linear(width, width));
  return model;
}

std::string model_bytes(const torch::nn::Module& model) {
  torch::serialize::OutputArchive archive;
  model.save(archive);
  std::string bytes;
  archive.save_to([&](const void* data, std::size_t size) {
    bytes.append(static_cast<const char*>(data), size);
    return size;
  });
  return bytes;
}

// Asks the kernel to forget the cached pages of every file in `dir` (they are clean:
// the checkpointer fsynced them), so that the next read comes from the disk.
void drop_from_page_cache(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    int fd = ::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = (fs::temp_directory_path() / "hpt-checkpoint-io").string();
  double megabytes = 128;
  int repeats = 5;
  std::string compression = "none", from;
  std::int64_t level = 3;
  bool usage_error = argc % 2 == 0;  // an option without its value
  for (int i = 1; !usage_error && i + 1 < argc; i += 2) {
    std::string key = argv[i];
    if (key == "--dir") dir = argv[i + 1];
    else if (key == "--mb") megabytes = std::stod(argv[i + 1]);
    else if (key == "--repeats") repeats = std::max(1, std::stoi(argv[i + 1]));
    else if (key == "--compression") compression = argv[i + 1];
    else if (key == "--level") level = std::stoll(argv[i + 1]);
    else if (key == "--from") from = argv[i + 1];
    else usage_error = true;
  }
  if (usage_error) {
    std::cerr << "usage: checkpoint_io_bench [--dir DIR] [--mb MB] [--repeats N] [--compression none|zstd] "
                 "[--level N] [--from CHECKPOINT_DIR]\n";
    return 2;
  }
  torch::set_num_threads(1);
  fs::remove_all(dir);
  fs::create_directories(dir);

  hpt::host::PluginLoader loader(hpt::host::PluginLoader::default_dirs({}));
  auto info = loader.find(hpt::PluginKind::Checkpointer, "torch");
  hpt::Options options = hpt::Options::defaults(info->options);
  options.set("keep_last", std::int64_t{1});
  options.set("compression", compression);
  options.set("compression_level", level);
  hpt::PluginContext context;
  context.run_dir = dir;
  auto checkpointer = loader.create<hpt::Checkpointer>(*info, context, options);

  auto stored_mb = [](const std::string& checkpoint) {
    std::uintmax_t bytes = 0;
    for (const auto& entry : fs::directory_iterator(checkpoint))
      if (entry.path().filename() != hpt::checkpoint::kManifestName) bytes += entry.file_size();
    return static_cast<double>(bytes) / 1e6;
  };
  auto print = [&](const char* name, double mb, const std::vector<double>& seconds) {
    std::printf("%s_MBps %.1f\nbest_%s_MBps %.1f\n", name, mb / median(seconds), name, mb / fastest(seconds));
  };

  if (!from.empty()) {  // an existing checkpoint's files, as the engine hands them to save()
    const std::vector<hpt::CheckpointFile> files = hpt::checkpoint::read_checkpoint(from).files;
    double content_mb = 0, on_disk_mb = 0;
    for (const auto& f : files) content_mb += static_cast<double>(f.bytes.size()) / 1e6;
    std::vector<double> save_s, load_s;
    for (int r = 0; r < repeats; ++r) {
      auto t0 = Clock::now();
      hpt::CheckpointInfo saved = checkpointer->save(r + 1, files, {});
      save_s.push_back(seconds_since(t0));
      on_disk_mb = stored_mb(saved.path);
      drop_from_page_cache(saved.path);
      t0 = Clock::now();
      std::vector<hpt::CheckpointFile> loaded = checkpointer->load(saved.path);
      load_s.push_back(seconds_since(t0));
      if (loaded.size() != files.size()) throw std::runtime_error("the checkpoint did not load back whole");
    }
    fs::remove_all(dir);
    std::printf("checkpoint_mb %.2f\nstored_mb %.2f\n", content_mb, on_disk_mb);
    print("save", content_mb, save_s);
    print("load_cold", content_mb, load_s);
    return 0;
  }

  torch::nn::Sequential model = make_model(megabytes);
  std::vector<double> save_s, load_s, serialise_s, deserialise_s, stall_background_s, background_total_s;
  double total_mb = 0, on_disk_mb = 0;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = Clock::now();
    std::vector<hpt::CheckpointFile> files{{"model.pt", model_bytes(*model)}, {"engine.pt", "step"}};
    serialise_s.push_back(seconds_since(t0));
    total_mb = static_cast<double>(files[0].bytes.size() + files[1].bytes.size()) / 1e6;

    t0 = Clock::now();
    hpt::CheckpointInfo saved = checkpointer->save(r + 1, files, {});
    save_s.push_back(seconds_since(t0));
    on_disk_mb = stored_mb(saved.path);
    files.clear();

    drop_from_page_cache(saved.path);
    t0 = Clock::now();
    std::vector<hpt::CheckpointFile> loaded = checkpointer->load(saved.path);
    load_s.push_back(seconds_since(t0));

    t0 = Clock::now();
    torch::serialize::InputArchive archive;
    archive.load_from(loaded[0].bytes.data(), loaded[0].bytes.size());
    model->load(archive);
    deserialise_s.push_back(seconds_since(t0));

    // The same save in the background: the caller is held only for the snapshot.
    t0 = Clock::now();
    auto frozen = std::make_shared<hpt::host::FrozenCheckpoint>();
    frozen->add_archive("model.pt", [&](hpt::StateWriter& state) { state.write_module_contents(*model); });
    frozen->add_file({"engine.pt", "step"});
    stall_background_s.push_back(seconds_since(t0));
    auto background = std::async(std::launch::async, [&, frozen, step = repeats + r + 1] {
      std::vector<hpt::CheckpointFile> files = frozen->files();
      checkpointer->save(step, files, {});
    });
    background.get();
    background_total_s.push_back(seconds_since(t0));
  }
  fs::remove_all(dir);

  std::vector<double> save_all(save_s.size()), load_all(load_s.size());
  for (std::size_t i = 0; i < save_s.size(); ++i) {
    save_all[i] = serialise_s[i] + save_s[i];
    load_all[i] = load_s[i] + deserialise_s[i];
  }
  std::printf("checkpoint_mb %.1f\nstored_mb %.1f\n", total_mb, on_disk_mb);
  print("save", total_mb, save_s);
  print("load_cold", total_mb, load_s);
  print("save_end_to_end", total_mb, save_all);
  print("load_end_to_end", total_mb, load_all);
  auto print_seconds = [&](const char* name, const std::vector<double>& seconds) {
    std::printf("%s_s %.3f\nbest_%s_s %.3f\n", name, median(seconds), name, fastest(seconds));
  };
  print_seconds("stall_foreground", save_all);
  print_seconds("stall_background", stall_background_s);
  print_seconds("background_total", background_total_s);
  return 0;
}
