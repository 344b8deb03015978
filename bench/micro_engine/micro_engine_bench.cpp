// Micro-benchmarks of what hpt adds around the model:
//   - PluginCall vs DirectCall: Backend::synchronize() on the cpu plugin (a virtual call
//     into a shared library) against the same empty work inlined;
//   - FullStep/<hidden> vs PredictedStep/<hidden>: one real training step of the engine
//     (batch, forward, backward, AdamW, update tracking for the dynamics model) against
//     one predicted step (the backend's fused params += scale * direction over every
//     parameter) on the synthetic task's MLP with hidden widths 64, 512 and 2048
//     (about 5k, 0.3M and 4.3M weights). Goal: a predicted step costs at most 2% of a
//     full step;
//   - CheckpointSave/<hidden> vs CheckpointLoad/<hidden>: the engine's whole training
//     state (model, AdamW moments, every plugin, RNG) through the `torch` checkpointer
//     plugin into a temporary directory: serialise, hash, write, fsync, rename; then
//     read, verify the hashes, deserialise and restore. bench/checkpoint_io measures
//     the same against the disk's own rate on a model of over 100 MB.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <memory>
#include <string>
#include <unistd.h>

#include "engine/engine.hpp"
#include "config/manifest.hpp"
#include "plugins/plugin_loader.hpp"

namespace {

struct Setup {
  std::unique_ptr<hpt::host::PluginLoader> loader;
  std::unique_ptr<hpt::host::Engine> engine;
};

// An engine on the synthetic task with an MLP of two hidden layers of `hidden` units,
// AdamW, and the linear dynamics model (so real steps track their updates, as in a
// hybrid run).
Setup make_engine(std::int64_t hidden) {
  const std::string text = "[run]\nmax_steps = 1000000000\neval_every = 0\n"
                           "[task]\nplugin = \"synthetic\"\ninputs = 256\noutputs = 16\nsamples = 4096\nbatch_size = 128\n"
                           "hidden = [" + std::to_string(hidden) + ", " + std::to_string(hidden) + "]\n"
                           "[optimizer]\nplugin = \"adamw\"\nlr = 1e-3\n"
                           "[dynamics]\nplugin = \"linear\"\n";
  hpt::host::Manifest m = hpt::host::Manifest::parse(text, "micro_engine_bench.toml");
  Setup s;
  s.loader = std::make_unique<hpt::host::PluginLoader>(hpt::host::PluginLoader::default_dirs({}));
  hpt::host::EngineOptions options;
  options.write_run_dir = false;
  options.progress = 0;
  s.engine = std::make_unique<hpt::host::Engine>(hpt::host::resolve(m, *s.loader), *s.loader, options);
  return s;
}

void FullStep(benchmark::State& state) {
  Setup s = make_engine(state.range(0));
  for (int i = 0; i < 5; ++i) s.engine->real_step(hpt::StepKind::Full);
  for (auto _ : state) s.engine->real_step(hpt::StepKind::Full);
  std::int64_t weights = 0;
  for (const auto& p : s.engine->parameters()) weights += p.numel();
  state.counters["weights"] = static_cast<double>(weights);
}

void PredictedStep(benchmark::State& state) {
  Setup s = make_engine(state.range(0));
  const auto& params = s.engine->parameters();
  std::vector<torch::Tensor> direction;
  for (const auto& p : params) direction.push_back(torch::randn_like(p) * 1e-6);
  std::vector<double> scales(params.size(), 1.0);
  for (auto _ : state) {
    s.engine->backend().add_scaled(params, direction, scales);
    s.engine->backend().synchronize();
  }
}

void PluginCall(benchmark::State& state) {
  Setup s = make_engine(8);
  hpt::Backend& backend = s.engine->backend();
  for (auto _ : state) backend.synchronize();
}

void DirectCall(benchmark::State& state) {
  for (auto _ : state) benchmark::ClobberMemory();
}

// A `torch` checkpointer writing into a fresh temporary directory, removed at the end.
struct TempCheckpointer {
  explicit TempCheckpointer(hpt::host::PluginLoader& loader)
      : dir(std::filesystem::temp_directory_path() / ("hpt-micro-ckpt-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    auto info = loader.find(hpt::PluginKind::Checkpointer, "torch");
    hpt::PluginContext context;
    context.run_dir = dir.string();
    checkpointer = loader.create<hpt::Checkpointer>(*info, context, hpt::Options::defaults(info->options));
  }
  ~TempCheckpointer() {
    checkpointer.reset();
    std::filesystem::remove_all(dir);
  }
  std::filesystem::path dir;
  std::shared_ptr<hpt::Checkpointer> checkpointer;
};

void CheckpointSave(benchmark::State& state) {
  Setup s = make_engine(state.range(0));
  s.engine->real_step(hpt::StepKind::Full);  // AdamW has its moments
  TempCheckpointer temp(*s.loader);
  std::int64_t step = 0, bytes = 0;
  for (auto _ : state) {
    auto files = s.engine->checkpoint_files();
    bytes = 0;
    for (const auto& f : files) bytes += static_cast<std::int64_t>(f.bytes.size());
    temp.checkpointer->save(++step, files, {});
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}

void CheckpointLoad(benchmark::State& state) {
  Setup s = make_engine(state.range(0));
  s.engine->real_step(hpt::StepKind::Full);
  TempCheckpointer temp(*s.loader);
  const std::string path = temp.checkpointer->save(1, s.engine->checkpoint_files(), {}).path;
  std::int64_t bytes = 0;
  for (auto _ : state) {
    auto files = temp.checkpointer->load(path);
    bytes = 0;
    for (const auto& f : files) bytes += static_cast<std::int64_t>(f.bytes.size());
    s.engine->restore_checkpoint(files, path);
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}

BENCHMARK(FullStep)->Arg(64)->Arg(512)->Arg(2048)->Unit(benchmark::kMicrosecond);
BENCHMARK(PredictedStep)->Arg(64)->Arg(512)->Arg(2048)->Unit(benchmark::kMicrosecond);
BENCHMARK(CheckpointSave)->Arg(64)->Arg(512)->Arg(2048)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(CheckpointLoad)->Arg(64)->Arg(512)->Arg(2048)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(PluginCall);
BENCHMARK(DirectCall);

}  // namespace

BENCHMARK_MAIN();
