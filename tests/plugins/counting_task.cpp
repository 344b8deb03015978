// Task "counting" (tests only): a linear regression that counts how often its loss was
// computed (forward passes) and differentiated (backward passes). evaluate() reports
// the counts beside val_loss, so tests can see what the engine really ran.
//
// For the chaos tests it can also kill its own process (SIGKILL, as the OOM killer or a
// preempted node does) at a chosen moment: in the N-th next_batch(), evaluate() or probe
// (a loss without gradient, as the engine measures inside a predicted phase) of the
// process; and it can carry hidden layers, so that its checkpoints take a while to write.
#include <csignal>
#include <cstdlib>

#include "hpt/hpt.hpp"
#include "hpt/torch_compat.hpp"

namespace {

class CountingTask : public hpt::Task {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {hpt::option_int("batch_size", 16, "samples per batch", 1),
            hpt::option_int("hidden", 0, "width of two hidden layers (0: a plain linear model)", 0),
            hpt::option_bool("report_threads", false,
                             "also report train_threads (LibTorch's intra-op threads at the last batch) and "
                             "eval_threads (at evaluation)"),
            hpt::option_int("kill_at_batch", 0, "SIGKILL itself in this process's N-th next_batch (0: never)", 0),
            hpt::option_int("kill_in_evaluation", 0, "SIGKILL itself in this process's N-th evaluate (0: never)", 0),
            hpt::option_int("kill_in_probe", 0, "SIGKILL itself in this process's N-th probe (0: never)", 0),
            hpt::option_int("kill_rank", -1, "only the rank of this number kills itself (-1: every rank)", -1),
            hpt::option_int("kill_attempt", -1,
                            "only in this attempt of a torchrun group (TORCHELASTIC_RESTART_COUNT, unset: 0; -1: any)",
                            -1)};
  }

  CountingTask(const hpt::PluginContext& context, const hpt::Options& options)
      : batch_size_(options.get_int("batch_size")),
        report_threads_(options.get_bool("report_threads")),
        kill_at_batch_(options.get_int("kill_at_batch")),
        kill_in_evaluation_(options.get_int("kill_in_evaluation")),
        kill_in_probe_(options.get_int("kill_in_probe")) {
    const std::int64_t kill_rank = options.get_int("kill_rank");
    const std::int64_t kill_attempt = options.get_int("kill_attempt");
    const char* restarts = std::getenv("TORCHELASTIC_RESTART_COUNT");
    const std::int64_t attempt = restarts ? std::atoll(restarts) : 0;
    if ((kill_rank >= 0 && kill_rank != context.rank) || (kill_attempt >= 0 && kill_attempt != attempt))
      kill_at_batch_ = kill_in_evaluation_ = kill_in_probe_ = 0;
    auto gen = hpt::make_cpu_generator(context.seed);
    inputs_ = torch::randn({256, 4}, gen);
    targets_ = inputs_.matmul(torch::tensor({{1.0f}, {-2.0f}, {0.5f}, {3.0f}})) + 0.7f;
    torch::manual_seed(context.seed);
    const std::int64_t hidden = options.get_int("hidden");
    if (hidden == 0) {
      model_->push_back(torch::nn::Linear(4, 1));
    } else {
      model_->push_back(torch::nn::Linear(4, hidden));
      model_->push_back(torch::nn::Linear(hidden, hidden));
      model_->push_back(torch::nn::Linear(hidden, 1));
    }
    probe_ = {{inputs_.slice(0, 0, 64)}, targets_.slice(0, 0, 64)};
  }

  torch::nn::Module& model() override { return *model_; }

  hpt::Batch next_batch() override {
    kill_at(++batches_, kill_at_batch_);
    train_threads_ = torch::get_num_threads();
    std::int64_t start = (position_ * batch_size_) % (256 - batch_size_);
    ++position_;
    return {{inputs_.slice(0, start, start + batch_size_)}, targets_.slice(0, start, start + batch_size_)};
  }

  torch::Tensor loss(const hpt::Batch& batch) override {
    ++forward_;
    if (!torch::GradMode::is_enabled()) kill_at(++probes_, kill_in_probe_);
    torch::Tensor loss = torch::mse_loss(model_->forward(batch.inputs.at(0)), batch.targets);
    if (loss.requires_grad())
      loss.register_hook([this](torch::Tensor grad) {
        ++backward_;
        return grad;
      });
    return loss;
  }

  const hpt::Batch& probe_batch() override { return probe_; }

  hpt::Metrics evaluate() override {
    kill_at(++evaluations_, kill_in_evaluation_);
    double val = torch::mse_loss(model_->forward(inputs_.slice(0, 192)), targets_.slice(0, 192)).item<double>();
    hpt::Metrics m = {{"val_loss", val}, {"forward_calls", double(forward_)}, {"backward_calls", double(backward_)}};
    if (report_threads_) {
      m["train_threads"] = double(train_threads_);
      m["eval_threads"] = double(torch::get_num_threads());
    }
    return m;
  }

  std::vector<std::string> metric_names() const override {
    if (report_threads_) return {"val_loss", "forward_calls", "backward_calls", "train_threads", "eval_threads"};
    return {"val_loss", "forward_calls", "backward_calls"};
  }

  void save(hpt::StateWriter& state) const override {
    state.write("position", torch::tensor(position_));
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::Tensor t;
    archive.read("position", t);
    position_ = t.item<std::int64_t>();
  }

 private:
  static void kill_at(std::int64_t count, std::int64_t when) {
    if (when != 0 && count == when) std::raise(SIGKILL);
  }

  std::int64_t batch_size_;
  bool report_threads_;
  int train_threads_ = 0;
  std::int64_t kill_at_batch_, kill_in_evaluation_, kill_in_probe_;
  std::int64_t batches_ = 0, evaluations_ = 0, probes_ = 0;
  std::int64_t position_ = 0;
  torch::Tensor inputs_, targets_;
  torch::nn::Sequential model_;
  hpt::Batch probe_;
  std::int64_t forward_ = 0;
  std::int64_t backward_ = 0;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Task, "counting", "1.0.0", "test task that counts forward and backward passes",
           CountingTask, CountingTask::option_specs)
