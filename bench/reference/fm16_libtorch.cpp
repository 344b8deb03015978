// The FM-16 protocol written directly on LibTorch, with no plugins: the baseline that
// hpt's full-training step is measured against. fm16_pytorch.py is the same loop in
// Python; README.md in this folder describes both.
//
// Fashion-MNIST, normalised (x/255 - 0.2860)/0.3530; CNN conv3x3(1->16, stride 2, no padding),
// conv3x3(16->32), conv3x3(32->32), each followed by ReLU, global average pooling,
// Linear(32->10); cross-entropy; AdamW lr 6e-3, weight decay 0.01; batch 128. Each
// epoch walks a fresh permutation of the 60k training images drawn from a generator
// seeded with --seed, in whole batches (the last partial batch is dropped). The
// 10k test images are evaluated every --eval-every steps, timed apart from training.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "hpt/error.hpp"
#include "hpt/torch_compat.hpp"
#include "idx_file.hpp"

namespace {

constexpr double kMean = 0.2860;
constexpr double kStd = 0.3530;
constexpr std::int64_t kBatch = 128;
constexpr double kLr = 6e-3;
constexpr double kWeightDecay = 0.01;
constexpr std::int64_t kWarmupSteps = 20;  // left out of the per-step statistics
constexpr std::int64_t kEvalBatch = 1000;
const char* const kDataDir = "/usr/share/datasets/fashion-mnist/";
const char* const kDataHint = "it comes with the Debian package dataset-fashion-mnist";

const char* const kUsage =
    "usage: fm16_libtorch [--steps N] [--seed S] [--threads T] [--eval-every E] [--target A] [--json OUT]\n"
    "  --steps N       training steps at most (default 10000)\n"
    "  --seed S        seeds the model's initialisation and the data order (default 0)\n"
    "  --threads T     torch intra-op threads (default: all cores)\n"
    "  --eval-every E  evaluate on the 10k test images every E steps (default 200)\n"
    "  --target A      stop at the first evaluation with accuracy >= A; 0: never (default 0.895)\n"
    "  --json OUT      write the run's summary as JSON to OUT\n";

struct Args {
  std::int64_t steps = 10000;
  std::uint64_t seed = 0;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::int64_t eval_every = 200;
  double target = 0.895;
  std::string json;
};

// The value of a flag: a whole number (or, for T = double, any number) no less than `min`.
template <typename T>
T parse_value(const std::string& flag, const std::string& text, T min) {
  std::istringstream in(text);
  T value{};
  in >> value;
  if (!in || !in.eof() || value < min) {
    std::ostringstream message;
    message << flag << " wants a number >= " << min << ", got '" << text << "'";
    throw hpt::BadInput(message.str());
  }
  return value;
}

Args parse_args(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (i + 1 >= argc) throw hpt::BadInput(flag + " wants a value\n" + kUsage);
    const std::string value = argv[i + 1];
    if (flag == "--steps")
      args.steps = parse_value<std::int64_t>(flag, value, 1);
    else if (flag == "--seed")
      args.seed = static_cast<std::uint64_t>(parse_value<std::int64_t>(flag, value, 0));
    else if (flag == "--threads")
      args.threads = parse_value<int>(flag, value, 1);
    else if (flag == "--eval-every")
      args.eval_every = parse_value<std::int64_t>(flag, value, 1);
    else if (flag == "--target")
      args.target = parse_value<double>(flag, value, 0);
    else if (flag == "--json")
      args.json = value;
    else
      throw hpt::BadInput("unknown option " + flag + "\n" + kUsage);
  }
  return args;
}

struct Split {
  torch::Tensor images;  // {n, 1, 28, 28} float32, normalised
  torch::Tensor labels;  // {n} int64
};

Split load_split(const std::string& prefix) {
  const std::string stem = std::string(kDataDir) + prefix;
  torch::Tensor images = hpt::data::read_idx(stem + "-images-idx3-ubyte.gz", kDataHint);
  torch::Tensor labels = hpt::data::read_idx(stem + "-labels-idx1-ubyte.gz", kDataHint);
  images = images.to(torch::kFloat32).div_(255).sub_(kMean).div_(kStd).unsqueeze(1).contiguous();
  return {images, labels.to(torch::kInt64)};
}

struct NetImpl : torch::nn::Module {
  torch::nn::Conv2d conv1{torch::nn::Conv2dOptions(1, 16, 3).stride(2).padding(0)};
  torch::nn::Conv2d conv2{torch::nn::Conv2dOptions(16, 32, 3).padding(1)};
  torch::nn::Conv2d conv3{torch::nn::Conv2dOptions(32, 32, 3).padding(1)};
  torch::nn::Linear fc{32, 10};

  NetImpl() {
    register_module("conv1", conv1);
    register_module("conv2", conv2);
    register_module("conv3", conv3);
    register_module("fc", fc);
  }

  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(conv1(x));
    x = torch::relu(conv2(x));
    x = torch::relu(conv3(x));
    return fc(x.mean({2, 3}));
  }
};
TORCH_MODULE(Net);

// Batches of training indices: a fresh seeded permutation each epoch, whole batches only.
class Sampler {
 public:
  Sampler(std::int64_t size, std::uint64_t seed)
      : size_(size), generator_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

  torch::Tensor next() {
    if (!order_.defined() || position_ + kBatch > size_) {
      order_ = torch::randperm(size_, generator_);
      position_ = 0;
    }
    torch::Tensor batch = order_.slice(0, position_, position_ + kBatch);
    position_ += kBatch;
    return batch;
  }

 private:
  std::int64_t size_;
  torch::Generator generator_;
  torch::Tensor order_;
  std::int64_t position_ = 0;
};

struct Evaluation {
  std::int64_t step;
  double accuracy;
  double loss;
  double train_loss;    // mean training loss over the steps since the previous evaluation
  double train_time_s;  // training time so far
  double eval_time_s;   // this evaluation's time
};

Evaluation evaluate(Net& net, const Split& test) {
  torch::NoGradGuard no_grad;
  net->eval();
  const std::int64_t n = test.images.size(0);
  double loss_sum = 0;
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < n; i += kEvalBatch) {
    torch::Tensor x = test.images.slice(0, i, i + kEvalBatch);
    torch::Tensor y = test.labels.slice(0, i, i + kEvalBatch);
    torch::Tensor logits = net->forward(x);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    correct += logits.argmax(1).eq(y).sum().item<std::int64_t>();
  }
  net->train();
  Evaluation e{};
  e.accuracy = static_cast<double>(correct) / static_cast<double>(n);
  e.loss = loss_sum / static_cast<double>(n);
  return e;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

struct StepStats {
  double min_ms, median_ms, max_ms, mean_ms;
  std::int64_t count, warmup_excluded;
};

// Statistics over the step times after the warm-up steps (over all of them if the run
// is no longer than the warm-up).
StepStats step_stats(const std::vector<double>& step_ms) {
  const std::int64_t n = static_cast<std::int64_t>(step_ms.size());
  const std::int64_t skip = n > kWarmupSteps ? kWarmupSteps : 0;
  std::vector<double> kept(step_ms.begin() + skip, step_ms.end());
  double sum = 0;
  for (double t : kept) sum += t;
  return {*std::min_element(kept.begin(), kept.end()), median(kept), *std::max_element(kept.begin(), kept.end()),
          sum / static_cast<double>(kept.size()), static_cast<std::int64_t>(kept.size()), skip};
}

void write_json(const std::string& path, const Args& args, const StepStats& stats, const std::vector<double>& step_ms,
                const std::vector<Evaluation>& evals, double train_time_s, double eval_time_s,
                const std::optional<Evaluation>& at_target) {
  std::ofstream out(path);
  if (!out) throw hpt::BadInput("cannot write " + path);
  out << std::setprecision(10);
  out << "{\n"
      << "  \"loop\": \"libtorch\",\n"
      << "  \"torch_version\": \"" << TORCH_VERSION << "\",\n"
      << "  \"seed\": " << args.seed << ",\n"
      << "  \"threads\": " << args.threads << ",\n"
      << "  \"batch_size\": " << kBatch << ",\n"
      << "  \"lr\": " << kLr << ",\n"
      << "  \"weight_decay\": " << kWeightDecay << ",\n"
      << "  \"eval_every\": " << args.eval_every << ",\n"
      << "  \"target\": " << args.target << ",\n"
      << "  \"steps\": " << step_ms.size() << ",\n"
      << "  \"step_ms\": {\"min\": " << stats.min_ms << ", \"median\": " << stats.median_ms
      << ", \"max\": " << stats.max_ms << ", \"mean\": " << stats.mean_ms << ", \"count\": " << stats.count
      << ", \"warmup_excluded\": " << stats.warmup_excluded << "},\n"
      << "  \"train_time_s\": " << train_time_s << ",\n"
      << "  \"eval_time_s\": " << eval_time_s << ",\n"
      << "  \"steps_to_target\": " << (at_target ? std::to_string(at_target->step) : "null") << ",\n"
      << "  \"time_to_target_s\": " << (at_target ? std::to_string(at_target->train_time_s) : "null") << ",\n"
      << "  \"final_accuracy\": " << evals.back().accuracy << ",\n"
      << "  \"final_loss\": " << evals.back().loss << ",\n"
      << "  \"evals\": [";
  for (std::size_t i = 0; i < evals.size(); ++i) {
    const Evaluation& e = evals[i];
    out << (i ? ",\n    " : "\n    ") << "{\"step\": " << e.step << ", \"accuracy\": " << e.accuracy
        << ", \"loss\": " << e.loss << ", \"train_loss\": " << e.train_loss << ", \"train_time_s\": " << e.train_time_s
        << ", \"eval_time_s\": " << e.eval_time_s << "}";
  }
  out << "\n  ],\n  \"step_times_ms\": [";
  for (std::size_t i = 0; i < step_ms.size(); ++i) out << (i ? ", " : "") << step_ms[i];
  out << "]\n}\n";
  if (!out) throw hpt::BadInput("cannot write " + path);
}

int run(const Args& args) {
  using Clock = std::chrono::steady_clock;
  torch::set_num_threads(args.threads);
  torch::manual_seed(args.seed);

  const Split train = load_split("train");
  const Split test = load_split("t10k");
  Net net;
  torch::optim::AdamW optimizer(net->parameters(), torch::optim::AdamWOptions(kLr).weight_decay(kWeightDecay));
  Sampler sampler(train.images.size(0), args.seed);

  std::cout << "fm16 libtorch " << TORCH_VERSION << ": seed " << args.seed << ", " << torch::get_num_threads()
            << " threads, batch " << kBatch << ", AdamW lr " << kLr << ", up to " << args.steps << " steps\n"
            << std::fixed;

  std::vector<double> step_ms;
  step_ms.reserve(static_cast<std::size_t>(args.steps));
  std::vector<Evaluation> evals;
  std::optional<Evaluation> at_target;
  double train_time_s = 0;
  double eval_time_s = 0;
  double loss_since_eval = 0;
  for (std::int64_t step = 1; step <= args.steps; ++step) {
    const auto start = Clock::now();
    const torch::Tensor index = sampler.next();
    const torch::Tensor x = train.images.index_select(0, index);
    const torch::Tensor y = train.labels.index_select(0, index);
    hpt::zero_grad(optimizer);
    torch::Tensor loss = torch::nn::functional::cross_entropy(net->forward(x), y);
    loss.backward();
    optimizer.step();
    loss_since_eval += loss.item<double>();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    step_ms.push_back(seconds * 1e3);
    train_time_s += seconds;

    if (step % args.eval_every != 0 && step != args.steps) continue;
    const auto eval_start = Clock::now();
    Evaluation e = evaluate(net, test);
    e.eval_time_s = std::chrono::duration<double>(Clock::now() - eval_start).count();
    e.step = step;
    e.train_loss = loss_since_eval / static_cast<double>(step - (evals.empty() ? 0 : evals.back().step));
    e.train_time_s = train_time_s;
    eval_time_s += e.eval_time_s;
    loss_since_eval = 0;
    evals.push_back(e);
    std::cout << "step " << std::setw(6) << step << "  train loss " << std::setprecision(4) << e.train_loss
              << "  val loss " << e.loss << "  val acc " << e.accuracy << "  train time " << std::setprecision(2)
              << train_time_s << " s  (eval " << e.eval_time_s << " s)" << std::endl;
    if (args.target > 0 && e.accuracy >= args.target) {
      at_target = e;
      break;
    }
  }

  const StepStats stats = step_stats(step_ms);
  std::cout << std::setprecision(3) << "per-step time (ms, " << stats.count << " steps after " << stats.warmup_excluded
            << " warm-up): min " << stats.min_ms << "  median " << stats.median_ms << "  max " << stats.max_ms
            << "  mean " << stats.mean_ms << "\n"
            << "training time " << train_time_s << " s over " << step_ms.size() << " steps (evaluation "
            << eval_time_s << " s, excluded)\n"
            << "steps to target " << std::setprecision(3) << args.target << ": ";
  if (at_target)
    std::cout << at_target->step << " (" << at_target->train_time_s << " s)\n";
  else
    std::cout << "not reached\n";
  std::cout << std::setprecision(4) << "final accuracy " << evals.back().accuracy << " at step " << evals.back().step
            << "\n";
  if (!args.json.empty()) write_json(args.json, args, stats, step_ms, evals, train_time_s, eval_time_s, at_target);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const hpt::BadInput& e) {
    std::cerr << "fm16_libtorch: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "fm16_libtorch: " << e.what() << "\n";
    return 1;
  }
}
