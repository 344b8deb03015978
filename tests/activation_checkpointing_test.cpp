// Activation checkpointing (char_lm's `activation_checkpointing`, the checkpointed()
// function of plugins/task_char_lm/activation_checkpoint.hpp, compiled into this test
// as well):
//   - char_lm with and without it, same seed: the same loss and every parameter's
//     gradient, and the same weights after a few Adam steps;
//   - with it, far fewer bytes of CPU tensor storage stay alive between forward and
//     backward (counted by an allocator in front of c10's CPU allocator);
//   - checkpointed() recomputes a part with dropout on the forward's random mask, leaves
//     the run's random stream where plain autograd leaves it, and recomputes under the
//     forward's bf16 autocast;
//   - `hpt run` with the option trains, and summary.json reports the peak memory.
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include <boost/json.hpp>
#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include "activation_checkpoint.hpp"
#include "engine/autocast_scope.hpp"
#include "hpt/torch_compat.hpp"
#include "test_support.hpp"

using hpt::char_lm::checkpointed;
using hpt::test::read_file;
using hpt::test::run_hpt;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

// Counts the bytes of the CPU storage it allocated that is still alive. c10's CPU
// allocator keeps no statistics a program can read (it reports allocations only to the
// profiler), so this one sits in front of it while a CountingScope lives. Its storage's
// context is its data pointer, as c10's own (Allocator::raw_allocate relies on that).
class CountingCpuAllocator final : public c10::Allocator {
 public:
  // The one instance; it lives as long as the process: storage it handed out may outlive a scope.
  static CountingCpuAllocator& instance() {
    static auto* counter = new CountingCpuAllocator(c10::GetCPUAllocator());
    return *counter;
  }
  std::int64_t live_bytes() const { return live_.load(); }
  c10::Allocator* inner() const { return inner_; }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  // LibTorch 1.13's Allocator::allocate is const, later ones' is not, and later ones add a
  // pure copy_data: whichever the base declares, one of these overrides it (no `override`
  // keyword, so the other is an unused overload rather than an error).
  c10::DataPtr allocate(std::size_t n) const { return counted(n); }
  c10::DataPtr allocate(std::size_t n) { return counted(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }

 private:
  struct Held {
    std::int64_t bytes;
    c10::DeleterFnPtr deleter;
  };
  explicit CountingCpuAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr counted(std::size_t n) const {
    c10::DataPtr inner = inner_->allocate(n);
    void* data = inner.get();
    if (data == nullptr) return inner;  // n == 0
    TORCH_CHECK(inner.get_context() == data, "the CPU allocator's storage context is not its data pointer");
    {
      std::lock_guard<std::mutex> lock(mutex_);
      held_[data] = {static_cast<std::int64_t>(n), inner.get_deleter()};
    }
    inner.release_context();  // freed by release() from now on
    live_ += static_cast<std::int64_t>(n);
    return {data, data, &release, c10::Device(c10::kCPU)};
  }
  static void release(void* data) {
    CountingCpuAllocator& self = instance();
    Held held{0, self.inner_->raw_deleter()};
    {
      std::lock_guard<std::mutex> lock(self.mutex_);
      auto it = self.held_.find(data);
      // Not ours: LibTorch frees some storage raw_allocate()d through c10's allocator with
      // whatever GetCPUAllocator()->raw_deleter() is at that moment.
      if (it != self.held_.end()) {
        held = it->second;
        self.held_.erase(it);
      }
    }
    self.live_ -= held.bytes;
    held.deleter(data);
  }

  c10::Allocator* inner_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<void*, Held> held_;
  mutable std::atomic<std::int64_t> live_{0};
};

// While it lives, CPU tensors are allocated through the counting allocator.
class CountingScope {
 public:
  CountingScope() { c10::SetCPUAllocator(&CountingCpuAllocator::instance()); }
  ~CountingScope() { c10::SetCPUAllocator(CountingCpuAllocator::instance().inner()); }
  std::int64_t live_bytes() const { return CountingCpuAllocator::instance().live_bytes(); }
};

hpt::host::PluginLoader& loader() {
  static hpt::host::PluginLoader instance({std::string(HPT_BINARY_DIR) + "/plugins"});
  return instance;
}

// A corpus of a few thousand characters with a small vocabulary, so the transformer's
// activations, not the logits, are most of what a forward pass keeps.
std::string write_corpus(const TempDir& dir) {
  const char* words[] = {"the cat sat", "on the mat", "a dog ran", "to the sea", "and back"};
  std::string text;
  for (int i = 0; i < 600; ++i) text += std::string(words[(i * 7) % 5]) + (i % 4 == 3 ? ".\n" : " ");
  return dir.write("corpus.txt", text);
}

std::shared_ptr<hpt::Task> make_char_lm(const std::string& corpus, bool activation_checkpointing) {
  auto info = loader().find(hpt::PluginKind::Task, "char_lm");
  hpt::Options options = hpt::Options::defaults(info->options);
  options.set("corpus", corpus);
  options.set("layers", std::int64_t{3});
  options.set("width", std::int64_t{32});
  options.set("heads", std::int64_t{4});
  options.set("context", std::int64_t{48});
  options.set("batch_size", std::int64_t{8});
  options.set("eval_batches", std::int64_t{1});
  options.set("activation_checkpointing", activation_checkpointing);
  hpt::PluginContext context;
  context.seed = 11;
  return loader().create<hpt::Task>(*info, context, options);
}

// |a - b| <= tolerance * max|b|, elementwise: equal up to float rounding at b's scale.
void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tolerance, const std::string& what) {
  ASSERT_TRUE(a.defined()) << what;
  ASSERT_TRUE(b.defined()) << what;
  const double scale = b.abs().max().item<double>();
  const double diff = (a - b).abs().max().item<double>();
  EXPECT_LE(diff, tolerance * scale) << what << ": differs by " << diff << " at scale " << scale;
}

struct LossAndGradients {
  double loss;
  std::vector<std::pair<std::string, torch::Tensor>> gradients;
};

LossAndGradients loss_and_gradients(hpt::Task& task) {
  task.model().train();
  hpt::Batch batch = task.next_batch();
  torch::Tensor loss = task.loss(batch);
  loss.backward();
  LossAndGradients out{loss.item<double>(), {}};
  for (const auto& p : task.model().named_parameters()) out.gradients.emplace_back(p.key(), p.value().grad().clone());
  return out;
}

TEST(ActivationCheckpointing, SameLossAndGradientsAsWithout) {
  TempDir dir;
  const std::string corpus = write_corpus(dir);
  auto plain = make_char_lm(corpus, false);
  auto checkpointing = make_char_lm(corpus, true);
  const LossAndGradients a = loss_and_gradients(*plain), b = loss_and_gradients(*checkpointing);
  EXPECT_NEAR(b.loss, a.loss, 1e-6 * std::abs(a.loss));
  ASSERT_EQ(a.gradients.size(), b.gradients.size());
  ASSERT_EQ(a.gradients.size(), 6 + 3 * 12u);  // embeddings, final norm, head; 12 tensors a block
  for (std::size_t i = 0; i < a.gradients.size(); ++i) {
    ASSERT_EQ(b.gradients[i].first, a.gradients[i].first);
    EXPECT_GT(a.gradients[i].second.abs().max().item<double>(), 0.0) << a.gradients[i].first;
    expect_close(b.gradients[i].second, a.gradients[i].second, 1e-5, a.gradients[i].first);
  }
}

TEST(ActivationCheckpointing, AFewAdamStepsGiveTheSameWeights) {
  TempDir dir;
  const std::string corpus = write_corpus(dir);
  std::vector<std::vector<torch::Tensor>> weights;
  for (bool on : {false, true}) {
    auto task = make_char_lm(corpus, on);
    task->model().train();
    torch::optim::Adam adam(task->model().parameters(), torch::optim::AdamOptions(3e-3));
    for (int step = 0; step < 5; ++step) {
      hpt::Batch batch = task->next_batch();
      hpt::zero_grad(adam);
      task->loss(batch).backward();
      adam.step();
    }
    weights.emplace_back();
    for (const auto& p : task->model().parameters()) weights.back().push_back(p.detach().clone());
  }
  ASSERT_EQ(weights[0].size(), weights[1].size());
  for (std::size_t i = 0; i < weights[0].size(); ++i)
    expect_close(weights[1][i], weights[0][i], 1e-5, "parameter " + std::to_string(i));
}

// The bytes of CPU storage a training forward pass leaves alive until backward: the
// loss and every tensor its graph keeps. Backward still gives gradients afterwards.
std::int64_t bytes_kept_for_backward(hpt::Task& task) {
  task.model().train();
  hpt::Batch batch = task.next_batch();
  std::int64_t kept = 0;
  torch::Tensor loss;
  {
    CountingScope counting;
    const std::int64_t before = counting.live_bytes();
    loss = task.loss(batch);
    kept = counting.live_bytes() - before;
  }
  loss.backward();
  for (const auto& p : task.model().parameters()) EXPECT_TRUE(p.grad().defined());
  return kept;
}

TEST(ActivationCheckpointing, KeepsFarFewerActivationsForBackward) {
  TempDir dir;
  const std::string corpus = write_corpus(dir);
  auto plain = make_char_lm(corpus, false);
  auto checkpointing = make_char_lm(corpus, true);
  const std::int64_t without = bytes_kept_for_backward(*plain), with = bytes_kept_for_backward(*checkpointing);
  // Each block keeps its input, [8, 48, 32] floats, rather than its attention scores,
  // 4-times-wide MLP and the rest; the embeddings, final norm and head keep theirs both ways.
  const std::int64_t block_input = 8 * 48 * 32 * 4;
  EXPECT_GE(with, 3 * block_input);
  EXPECT_LT(with * 4, without) << "kept " << with << " bytes with checkpointing, " << without << " without";
}

// ---- checkpointed() on its own ----

struct Part {
  torch::nn::Linear in{nullptr}, out{nullptr};
  double dropout;
  Part(double dropout_p, std::uint64_t seed) : dropout(dropout_p) {
    torch::manual_seed(seed);
    in = torch::nn::Linear(16, 64);
    out = torch::nn::Linear(64, 16);
  }
  torch::Tensor operator()(const torch::Tensor& x) const {
    return x + out.ptr()->forward(torch::dropout(torch::gelu(in.ptr()->forward(x)), dropout, /*train=*/true));
  }
  std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> p = in->parameters();
    for (const auto& t : out->parameters()) p.push_back(t);
    return p;
  }
  void zero_grad() {
    in->zero_grad();
    out->zero_grad();
  }
};

struct PartResult {
  torch::Tensor output, input_grad, next_random;
  std::vector<torch::Tensor> grads;
};

// second(first(x)), backward, then the next number of the global random stream.
// (Two parts, not one twice: plain bf16 autocast sums a weight's gradient over its
// uses in bf16, in its cached cast, while the checkpointed passes cast it for each use.)
PartResult run_parts(Part& first, Part& second, bool checkpointing, bool bf16) {
  first.zero_grad();
  second.zero_grad();
  torch::manual_seed(5);
  torch::Tensor x = torch::randn({6, 16}).requires_grad_(true);
  torch::manual_seed(9);
  torch::Tensor y;
  {
    hpt::host::AutocastScope autocast(c10::DeviceType::CPU, bf16 ? torch::kBFloat16 : torch::kFloat32);
    auto apply = [&](const Part& part, const torch::Tensor& in) {
      return checkpointing ? checkpointed(part, in, part.parameters()) : part(in);
    };
    y = apply(second, apply(first, x));
  }
  (y.to(torch::kFloat32).pow(2).sum()).backward();
  PartResult r{y.detach().to(torch::kFloat32), x.grad().clone(), torch::rand({4}), {}};
  for (const Part* part : {&first, &second})
    for (const auto& p : part->parameters()) r.grads.push_back(p.grad().clone());
  return r;
}

void expect_same(const PartResult& a, const PartResult& b, double tolerance) {
  expect_close(b.output, a.output, tolerance, "output");
  expect_close(b.input_grad, a.input_grad, tolerance, "input gradient");
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (std::size_t i = 0; i < a.grads.size(); ++i) expect_close(b.grads[i], a.grads[i], tolerance, "gradient " + std::to_string(i));
}

TEST(CheckpointedFunction, DropoutIsRecomputedWithTheForwardsMask) {
  Part first(0.5, 3), second(0.5, 4);
  const PartResult plain = run_parts(first, second, false, false);
  const PartResult checkpointing = run_parts(first, second, true, false);
  expect_same(plain, checkpointing, 1e-6);
  // The recomputation drew its numbers from a copy of the forward's state: the run's
  // stream goes on where plain autograd leaves it.
  EXPECT_TRUE(torch::equal(checkpointing.next_random, plain.next_random));
}

TEST(CheckpointedFunction, Bf16AutocastIsRecomputedAsComputed) {
  Part first(0.0, 3), second(0.0, 4);
  const PartResult plain = run_parts(first, second, false, true);
  const PartResult checkpointing = run_parts(first, second, true, true);
  expect_same(plain, checkpointing, 1e-6);
  // The check can tell: fp32 gives other gradients than bf16 does.
  const PartResult fp32 = run_parts(first, second, false, false);
  EXPECT_GT((fp32.grads[0] - plain.grads[0]).abs().max().item<double>(), 1e-4 * plain.grads[0].abs().max().item<double>());
}

TEST(CheckpointedFunction, WithoutGradModeItIsAPlainCall) {
  Part part(0.0, 3);
  torch::Tensor x = torch::randn({2, 16});
  torch::NoGradGuard no_grad;
  torch::Tensor y = checkpointed(part, x, part.parameters());
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(torch::equal(y, part(x)));
}

// ---- hpt run ----

TEST(ActivationCheckpointing, ARunWithItTrainsAndReportsPeakMemory) {
  TempDir dir;
  write_corpus(dir);
  const std::string manifest = dir.write(
      "lm.toml", "[run]\nname = \"lm\"\nmax_steps = 6\neval_every = 3\nruns_dir = \"" + dir.path() +
                     "/runs\"\n[task]\nplugin = \"char_lm\"\ncorpus = \"corpus.txt\"\nlayers = 2\nwidth = 32\n"
                     "heads = 2\ncontext = 16\nbatch_size = 8\neval_batches = 1\nactivation_checkpointing = true\n"
                     "[optimizer]\nplugin = \"adam\"\nlr = 0.01\n");
  auto r = run_hpt({"run", manifest});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string run = dir.path() + "/runs/lm";
  EXPECT_THAT(read_file(run + "/config.resolved.toml"), HasSubstr("activation_checkpointing = true"));
  auto summary = boost::json::parse(read_file(run + "/summary.json")).as_object();
  EXPECT_EQ(summary.at("status").as_string(), "completed");
  EXPECT_EQ(summary.at("backward_passes").as_int64(), 6);
  // On the CPU: the process's peak resident set, which holds at least LibTorch itself.
  EXPECT_EQ(summary.at("peak_memory_of").as_string(), "process resident set");
  EXPECT_GT(summary.at("peak_memory_bytes").as_int64(), std::int64_t{10} << 20);
}

}  // namespace
