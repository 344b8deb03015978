// Task "counting" (tests only): a linear regression that counts how often its loss was
// computed (forward passes) and differentiated (backward passes). evaluate() reports
// the counts beside val_loss, so tests can see what the engine really ran.
#include "hpt/hpt.hpp"

namespace {

class CountingTask : public hpt::Task {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {hpt::option_int("batch_size", 16, "samples per batch", 1)};
  }

  CountingTask(const hpt::PluginContext& context, const hpt::Options& options)
      : batch_size_(options.get_int("batch_size")) {
    auto gen = at::detail::createCPUGenerator(context.seed);
    inputs_ = torch::randn({256, 4}, gen);
    targets_ = inputs_.matmul(torch::tensor({{1.0f}, {-2.0f}, {0.5f}, {3.0f}})) + 0.7f;
    torch::manual_seed(context.seed);
    model_ = torch::nn::Linear(4, 1);
    probe_ = {{inputs_.slice(0, 0, 64)}, targets_.slice(0, 0, 64)};
  }

  torch::nn::Module& model() override { return *model_; }

  hpt::Batch next_batch() override {
    std::int64_t start = (position_ * batch_size_) % (256 - batch_size_);
    ++position_;
    return {{inputs_.slice(0, start, start + batch_size_)}, targets_.slice(0, start, start + batch_size_)};
  }

  torch::Tensor loss(const hpt::Batch& batch) override {
    ++forward_;
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
    double val = torch::mse_loss(model_->forward(inputs_.slice(0, 192)), targets_.slice(0, 192)).item<double>();
    return {{"val_loss", val}, {"forward_calls", double(forward_)}, {"backward_calls", double(backward_)}};
  }

  std::vector<std::string> metric_names() const override { return {"val_loss", "forward_calls", "backward_calls"}; }

  void save(torch::serialize::OutputArchive& archive) const override {
    archive.write("position", torch::tensor(position_));
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::Tensor t;
    archive.read("position", t);
    position_ = t.item<std::int64_t>();
  }

 private:
  std::int64_t batch_size_;
  std::int64_t position_ = 0;
  torch::Tensor inputs_, targets_;
  torch::nn::Linear model_{nullptr};
  hpt::Batch probe_;
  std::int64_t forward_ = 0;
  std::int64_t backward_ = 0;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Task, "counting", "1.0.0", "test task that counts forward and backward passes",
           CountingTask, CountingTask::option_specs)
