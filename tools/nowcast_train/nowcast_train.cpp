// hpt-nowcast-train RUN_DIR... -o MODEL: trains the nowcaster (libs/nowcast) on the
// trajectories the runs recorded (run.record_trajectory = window: trajectory/step_N.pt).
//
// A sample is one weight of one tensor at one point t of a trajectory: its last
// `context` window deltas (features_of: divided by the tensor's RMS delta) and, as the
// target, its change over the next `ahead` windows in the same units. The last run
// given is held out for validation when there are two or more. Each epoch prints the
// training and validation loss beside two baselines any predictor must beat on the
// validation samples: "stay" (no change: the mean squared target) and "extrapolate"
// (`ahead` times the mean of the context's deltas).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "checkpoint/weights_file.hpp"
#include "hpt/error.hpp"
#include "nowcast/nowcast_net.hpp"

namespace fs = std::filesystem;
using hpt::nowcast::NowcastNet;
using hpt::nowcast::NowcastShape;

namespace {

struct Trajectory {
  std::string run;
  std::int64_t window = 0;                                   // step-equivalents between snapshots
  std::vector<std::vector<torch::Tensor>> snapshots;         // [snapshot][tensor], floating tensors only
};

Trajectory read_trajectory(const std::string& run_dir) {
  Trajectory t;
  t.run = run_dir;
  const fs::path dir = fs::path(run_dir) / "trajectory";
  if (!fs::is_directory(dir))
    throw hpt::BadInput(run_dir + ": no trajectory/ folder (record one with run.record_trajectory = 200)");
  std::map<std::int64_t, std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 && e.path().extension() == ".pt")
      files[std::stoll(name.substr(5, name.size() - 8))] = e.path().string();
  }
  if (files.size() < 2) throw hpt::BadInput(dir.string() + ": fewer than two snapshots");
  std::int64_t previous = -1;
  std::vector<std::string> names;
  for (const auto& [step, file] : files) {
    if (previous >= 0) {
      const std::int64_t gap = step - previous;
      if (t.window == 0) t.window = gap;
      if (gap != t.window)
        throw hpt::BadInput(file + ": snapshots are not evenly spaced (" + std::to_string(gap) + " steps after the last, " +
                            std::to_string(t.window) + " before)");
    }
    previous = step;
    std::vector<torch::Tensor> tensors;
    std::vector<std::string> these;
    for (auto& [name, tensor] : hpt::host::read_weights_file(file))
      if (tensor.is_floating_point()) {
        these.push_back(name);
        tensors.push_back(tensor.to(torch::kFloat32));
      }
    if (names.empty()) names = these;
    if (these != names) throw hpt::BadInput(file + ": other tensors than the trajectory's first snapshot");
    t.snapshots.push_back(std::move(tensors));
  }
  return t;
}

struct Samples {
  std::vector<torch::Tensor> x, y;
  torch::Tensor features, targets;
  void finish() {
    features = torch::cat(x);
    targets = torch::cat(y);
    x.clear();
    y.clear();
  }
};

// Every point t with `context` deltas behind it and `ahead` windows after it; at most
// `per_tensor` weights of each tensor at each point, drawn from torch's generator.
void add_samples(const Trajectory& t, const NowcastShape& s, std::int64_t per_tensor, Samples& out) {
  const std::int64_t n = static_cast<std::int64_t>(t.snapshots.size());
  for (std::int64_t at = s.context; at + s.ahead < n; ++at)
    for (std::size_t p = 0; p < t.snapshots[0].size(); ++p) {
      std::vector<torch::Tensor> deltas;
      for (std::int64_t k = at - s.context + 1; k <= at; ++k) deltas.push_back(t.snapshots[k][p] - t.snapshots[k - 1][p]);
      double scale = 0.0;
      torch::Tensor x = hpt::nowcast::features_of(deltas, scale);
      if (scale == 0.0) continue;
      torch::Tensor y = ((t.snapshots[at + s.ahead][p] - t.snapshots[at][p]) / scale).reshape({-1});
      if (x.size(0) > per_tensor) {
        torch::Tensor pick = torch::randperm(x.size(0), torch::TensorOptions().dtype(torch::kInt64))
                                 .narrow(0, 0, per_tensor);
        x = x.index_select(0, pick);
        y = y.index_select(0, pick);
      }
      out.x.push_back(x);
      out.y.push_back(y);
    }
}

double mse(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).square().mean().item<double>(); }

// Every `stride`-th snapshot from the first: windows `stride` times as long, so one
// recording at a fine interval serves nets of several window lengths.
void thin(Trajectory& t, std::int64_t stride) {
  if (stride == 1) return;
  std::vector<std::vector<torch::Tensor>> kept;
  for (std::size_t i = 0; i < t.snapshots.size(); i += static_cast<std::size_t>(stride))
    kept.push_back(std::move(t.snapshots[i]));
  t.snapshots = std::move(kept);
  t.window *= stride;
}

int train(const std::vector<std::string>& runs, const std::string& out, NowcastShape shape, int epochs,
          std::int64_t batch, std::int64_t per_tensor, double lr, std::uint64_t seed, std::int64_t stride) {
  torch::manual_seed(seed);
  std::vector<Trajectory> trajectories;
  for (const auto& r : runs) {
    trajectories.push_back(read_trajectory(r));
    thin(trajectories.back(), stride);
  }
  shape.window = trajectories[0].window;
  for (const auto& t : trajectories)
    if (t.window != shape.window)
      throw hpt::BadInput(t.run + ": snapshots every " + std::to_string(t.window) + " steps; " + trajectories[0].run +
                          " has them every " + std::to_string(shape.window) + ": record them alike");
  Samples train_set, val_set;
  const bool hold_out = trajectories.size() >= 2;
  for (std::size_t i = 0; i < trajectories.size(); ++i)
    add_samples(trajectories[i], shape, per_tensor, hold_out && i + 1 == trajectories.size() ? val_set : train_set);
  if (train_set.x.empty())
    throw hpt::BadInput("no training samples: each trajectory needs more than context + ahead = " +
                        std::to_string(shape.context + shape.ahead) + " snapshots");
  train_set.finish();
  if (hold_out && !val_set.x.empty()) {
    val_set.finish();
  } else {  // one run: a tenth of its samples
    const std::int64_t n = train_set.features.size(0), v = std::max<std::int64_t>(1, n / 10);
    torch::Tensor order = torch::randperm(n, torch::TensorOptions().dtype(torch::kInt64));
    val_set.features = train_set.features.index_select(0, order.narrow(0, 0, v));
    val_set.targets = train_set.targets.index_select(0, order.narrow(0, 0, v));
    train_set.features = train_set.features.index_select(0, order.narrow(0, v, n - v));
    train_set.targets = train_set.targets.index_select(0, order.narrow(0, v, n - v));
  }
  const torch::Tensor context_mean = val_set.features.narrow(1, 0, shape.context).mean(1);
  const double stay = val_set.targets.square().mean().item<double>();
  const double extrapolate = mse(context_mean * static_cast<double>(shape.ahead), val_set.targets);
  std::printf("nowcast: %lld training and %lld validation samples from %zu trajectories (window %lld steps, context %lld, "
              "ahead %lld)\nvalidation baselines: stay %.5f, extrapolate %.5f\n",
              static_cast<long long>(train_set.features.size(0)), static_cast<long long>(val_set.features.size(0)),
              trajectories.size(), static_cast<long long>(shape.window), static_cast<long long>(shape.context),
              static_cast<long long>(shape.ahead), stay, extrapolate);

  NowcastNet net(shape);
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(lr));
  const std::int64_t n = train_set.features.size(0);
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    net->train();
    torch::Tensor order = torch::randperm(n, torch::TensorOptions().dtype(torch::kInt64));
    double total = 0.0;
    for (std::int64_t b = 0; b < n; b += batch) {
      torch::Tensor idx = order.narrow(0, b, std::min(batch, n - b));
      optimizer.zero_grad();
      torch::Tensor loss = torch::mse_loss(net->forward(train_set.features.index_select(0, idx)),
                                           train_set.targets.index_select(0, idx));
      loss.backward();
      optimizer.step();
      total += loss.item<double>() * static_cast<double>(idx.size(0));
    }
    net->eval();
    torch::NoGradGuard no_grad;
    const double val = mse(net->forward(val_set.features), val_set.targets);
    std::printf("epoch %d: train %.5f, validation %.5f (stay %.5f, extrapolate %.5f)\n", epoch, total / n, val, stay,
                extrapolate);
    std::fflush(stdout);
  }
  hpt::nowcast::save_nowcaster(net, out);
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hpt-nowcast-train: trains the nowcast dynamics plugin's network on recorded trajectories",
               "hpt-nowcast-train"};
  std::vector<std::string> runs;
  std::string out;
  NowcastShape shape;
  int epochs = 20;
  std::int64_t batch = 256;
  std::int64_t per_tensor = 4096;
  double lr = 1e-3;
  std::uint64_t seed = 0;
  std::int64_t stride = 1;
  app.add_option("runs", runs, "run directories with a trajectory/ folder (run.record_trajectory); "
                               "the last is held out for validation when there are two or more")
      ->required();
  app.add_option("-o,--out", out, "the model file to write")->required();
  app.add_option("--context", shape.context, "window deltas the net reads")->check(CLI::Range(1, 64));
  app.add_option("--ahead", shape.ahead, "windows ahead the net predicts")->check(CLI::Range(1, 1000));
  app.add_option("--hidden", shape.hidden, "width of the hidden layers")->check(CLI::Range(1, 4096));
  app.add_option("--epochs", epochs, "passes over the training samples")->check(CLI::Range(1, 100000));
  app.add_option("--batch", batch, "samples per Adam step")->check(CLI::Range(1, 1 << 24));
  app.add_option("--per-tensor", per_tensor, "at most this many weights of a tensor per trajectory point")
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--lr", lr, "Adam's learning rate")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "the sampling and initialisation seed");
  app.add_option("--stride", stride,
                 "use every this many-th recorded snapshot: windows this many times the recording interval")
      ->check(CLI::Range(1, 1000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    return train(runs, out, shape, epochs, batch, per_tensor, lr, seed, stride);
  } catch (const hpt::BadInput& e) {
    std::fprintf(stderr, "hpt-nowcast-train: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hpt-nowcast-train: error: %s\n", e.what());
    return 1;
  }
}
