// Micro-benchmarks of the rssm dynamics model on an FM-16-sized layout (CNN 16/32/32:
// 4 groups, 8 parameter tensors, about 16k weights): the state-feature encoding alone,
// observe() with training every 1 or 8 (the default) observations or never, and forecast(h).
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "hpt/hpt.hpp"
#include "plugins/plugin_loader.hpp"
#include "state_features.hpp"

namespace {

hpt::ParameterLayout fm16_layout() {
  hpt::ParameterLayout l;
  l.names = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight", "conv3.bias", "fc.weight", "fc.bias"};
  l.shapes = {{16, 1, 3, 3}, {16}, {32, 16, 3, 3}, {32}, {32, 32, 3, 3}, {32}, {10, 288}, {10}};
  l.group_names = {"conv1", "conv2", "conv3", "fc"};
  l.groups = {{0, 1}, {2, 3}, {4, 5}, {6, 7}};
  l.group_of = {0, 0, 1, 1, 2, 2, 3, 3};
  return l;
}

// `count` records of a noisy decaying trajectory over `layout`, steps 1..count.
std::vector<hpt::StepRecord> records(const hpt::ParameterLayout& layout, int count) {
  torch::manual_seed(0);
  std::vector<torch::Tensor> direction;
  for (const auto& s : layout.shapes) direction.push_back(torch::randn(s));
  std::vector<hpt::StepRecord> out;
  for (int t = 1; t <= count; ++t) {
    hpt::StepRecord r;
    r.step = t;
    r.loss = 2.0 * std::exp(-0.01 * t) * (1.0 + 0.05 * torch::randn({1}).item<double>());
    r.grad_norm = 1.0 + 0.1 * torch::rand({1}).item<double>();
    r.learning_rate = 6e-3;
    r.group_update_norms.assign(layout.groups.size(), 0.0);
    for (std::size_t p = 0; p < direction.size(); ++p) {
      r.update.push_back(1e-3 * (direction[p] + torch::randn(layout.shapes[p])));
      r.group_update_norms[layout.group_of[p]] += r.update.back().square().sum().item<double>();
    }
    for (auto& n : r.group_update_norms) n = std::sqrt(n);
    out.push_back(std::move(r));
  }
  return out;
}

std::shared_ptr<hpt::DynamicsModel> make_rssm(std::int64_t train_every) {
  static hpt::host::PluginLoader loader({HPT_PLUGIN_DIR});
  auto info = loader.find(hpt::PluginKind::DynamicsModel, "rssm");
  hpt::Options options = hpt::Options::defaults(info->options);
  options.set("train_every", train_every);
  auto model = loader.create<hpt::DynamicsModel>(*info, hpt::PluginContext{}, options);
  model->bind(fm16_layout());
  return model;
}

void BM_EncodeFeatures(benchmark::State& state) {
  hpt::ParameterLayout layout = fm16_layout();
  std::vector<hpt::StepRecord> rs = records(layout, 64);
  hpt::rssm::StateFeatures features(layout.group_of, layout.groups.size());
  std::vector<float> out(features.size());
  std::size_t i = 0;
  for (auto _ : state) {
    features.encode(rs[i++ % rs.size()], out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["features"] = static_cast<double>(features.size());
}
BENCHMARK(BM_EncodeFeatures)->Unit(benchmark::kMicrosecond);

// Per observe(), training cost amortised: arg = train_every (8: the default; 1e9: never trains).
void BM_RssmObserve(benchmark::State& state) {
  hpt::ParameterLayout layout = fm16_layout();
  std::vector<hpt::StepRecord> rs = records(layout, 256);
  auto model = make_rssm(state.range(0));
  std::int64_t step = 0;
  for (auto _ : state) {
    hpt::StepRecord& r = rs[static_cast<std::size_t>(step % 256)];
    r.step = ++step;
    model->observe(r);
  }
}
BENCHMARK(BM_RssmObserve)->Arg(1)->Arg(8)->Arg(1000000000)->Unit(benchmark::kMicrosecond);

// forecast(h) after 200 observations: arg = h.
void BM_RssmForecast(benchmark::State& state) {
  hpt::ParameterLayout layout = fm16_layout();
  std::vector<hpt::StepRecord> rs = records(layout, 200);
  auto model = make_rssm(4);
  for (const auto& r : rs) model->observe(r);
  for (auto _ : state) {
    hpt::Forecast f = model->forecast(state.range(0));
    benchmark::DoNotOptimize(f.confidence);
  }
}
BENCHMARK(BM_RssmForecast)->Arg(4)->Arg(16)->Arg(32)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
