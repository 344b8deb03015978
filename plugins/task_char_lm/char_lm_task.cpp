// Task "char_lm": next-character prediction on a text corpus with a small decoder-only
// transformer (transformer_lm.hpp). The default corpus is every fortune of the Debian
// package fortunes (/usr/share/games/fortunes), read as text_corpus.hpp describes.
//
// The vocabulary is the sorted set of the corpus's bytes. The last `val_fraction` of
// the text is held out. The training text is cut into non-overlapping windows of
// context + 1 characters (inputs: the first `context`, targets: the same shifted by
// one); batches visit the windows shuffled per epoch (task_support/epoch_sampler.hpp).
// The probe batch is a fixed random choice of training windows. Validation uses
// eval_batches x batch_size windows spread evenly over the held-out text and reports
// val_loss (mean cross entropy, nats per character) and val_bpc (bits per character).
//
// The vocabulary is part of the task's saved state ("vocabulary": its bytes as a uint8
// tensor). Built with context.inference_only (`hpt sample`), the task reads no corpus:
// load() rebuilds the model from the saved vocabulary and the options' sizes, and
// sample() generates text with it.
//
// activation_checkpointing = true keeps only each transformer block's input for
// backward, which runs the block's forward again: less activation memory for one more
// forward of the blocks per step, with the same loss and gradients.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "task_support/epoch_sampler.hpp"
#include "hpt/hpt.hpp"
#include "hpt/torch_compat.hpp"
#include "task_support/losses.hpp"
#include "task_support/seeding.hpp"
#include "text_corpus.hpp"
#include "transformer_lm.hpp"

namespace {

using hpt::task_support::derive_seed;
using hpt::task_support::LossKind;

// Independent random streams of one run.
enum Stream : std::uint64_t { kOrderStream = 1, kProbeStream = 2, kModelStream = 3 };

const char* const kMissingHint =
    "install the Debian package fortunes, or set the task's `corpus` to a text file or a folder of text files";

// Windows [count, context + 1] of `tokens` (uint8 ids) starting at `starts` (int64), as int64 ids.
torch::Tensor windows_at(const torch::Tensor& tokens, const torch::Tensor& starts, std::int64_t context) {
  torch::Tensor offsets = torch::arange(context + 1, starts.options());
  return tokens.index_select(0, (starts.unsqueeze(1) + offsets).flatten()).view({-1, context + 1}).to(torch::kInt64);
}

hpt::Batch batch_of_windows(const torch::Tensor& windows) {
  const std::int64_t context = windows.size(1) - 1;
  return {{windows.narrow(1, 0, context)}, windows.narrow(1, 1, context)};
}

torch::Tensor tensor_of_bytes(const std::string& bytes) {
  torch::Tensor t = torch::empty({static_cast<std::int64_t>(bytes.size())}, torch::kUInt8);
  if (!bytes.empty()) std::memcpy(t.data_ptr<std::uint8_t>(), bytes.data(), bytes.size());
  return t;
}

std::string bytes_of_tensor(const torch::Tensor& t) {
  torch::Tensor bytes = t.to(torch::kCPU, torch::kUInt8).contiguous();
  return std::string(reinterpret_cast<const char*>(bytes.data_ptr<std::uint8_t>()), static_cast<std::size_t>(bytes.numel()));
}

// 'a', '\n', '\xc3': a byte as a message shows it.
std::string quoted(unsigned char c) {
  if (c == '\n') return "'\\n'";
  if (c == '\t') return "'\\t'";
  if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  const char* hex = "0123456789abcdef";
  return std::string("'\\x") + hex[c >> 4] + hex[c & 15] + "'";
}

std::string quoted_list(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) out += (out.empty() ? "" : " ") + quoted(c);
  return out;
}

class CharLmTask : public hpt::Task {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_path("corpus", "/usr/share/games/fortunes",
                         "a text file, or a folder whose files without extension are concatenated"),
        hpt::option_int("layers", 2, "transformer blocks", 1, 64),
        hpt::option_int("width", 64, "embedding width (a multiple of heads)", 1, 8192),
        hpt::option_int("heads", 4, "attention heads", 1, 256),
        hpt::option_int("context", 64, "characters per training window", 1, 8192),
        hpt::option_int("batch_size", 32, "windows per batch", 1, 65536),
        hpt::option_float("val_fraction", 0.1, "fraction of the text held out at its end for validation", 0.001, 0.5),
        hpt::option_int("eval_batches", 8, "validation batches of batch_size windows", 1, 10000),
        hpt::option_bool("activation_checkpointing", false,
                         "keep only each block's input for backward, which recomputes the block "
                         "(less memory, one more forward of the blocks per step)"),
    };
  }

  CharLmTask(const hpt::PluginContext& context, const hpt::Options& options)
      : context_(options.get_int("context")),
        batch_size_(options.get_int("batch_size")),
        layers_(options.get_int("layers")),
        width_(options.get_int("width")),
        heads_(options.get_int("heads")),
        activation_checkpointing_(options.get_bool("activation_checkpointing")),
        model_seed_(derive_seed(context.seed, kModelStream)),
        device_(context.device) {
    if (context.inference_only) return;  // load() builds the model from the saved vocabulary
    const std::string& corpus = options.get_string("corpus");
    const std::string text = hpt::char_lm::read_corpus(corpus, kMissingHint);
    vocabulary_.emplace(text);
    const auto total = static_cast<std::int64_t>(text.size());
    const auto held_out = static_cast<std::int64_t>(std::ceil(options.get_float("val_fraction") * total));
    const std::int64_t train_windows = (total - held_out - 1) / context_;
    const std::int64_t val_windows = (held_out - 1) / context_;
    if (train_windows < 1 || val_windows < 1)
      throw hpt::BadInput("corpus " + corpus + " has " + std::to_string(total) +
                          " characters: too few for windows of context " + std::to_string(context_) +
                          " + 1 in both its training part and its held-out " +
                          std::to_string(options.get_float("val_fraction")));
    torch::Tensor tokens = vocabulary_->encode(text).to(context.device);
    train_tokens_ = tokens.narrow(0, 0, total - held_out);
    sampler_.emplace(train_windows, batch_size_, derive_seed(context.seed, kOrderStream), context.device,
                     hpt::task_support::Shard{context.rank, context.world_size});

    hpt::task_support::EpochSampler probe_choice(train_windows, batch_size_, derive_seed(context.seed, kProbeStream),
                                                 context.device);
    probe_ = batch_of_windows(windows_at(train_tokens_, probe_choice.next() * context_, context_));

    const std::int64_t eval_windows = std::min(val_windows, options.get_int("eval_batches") * batch_size_);
    auto spread = torch::arange(eval_windows, torch::TensorOptions(torch::kInt64).device(context.device));
    torch::Tensor val = windows_at(tokens.narrow(0, total - held_out, held_out),
                                   (spread * val_windows).div(eval_windows, "floor") * context_, context_);
    val_inputs_ = val.narrow(1, 0, context_);
    val_targets_ = val.narrow(1, 1, context_);
    build_model();
  }

  torch::nn::Module& model() override {
    if (!model_) throw hpt::RunError("task char_lm: built for inference only, its model is built by load()");
    return *model_;
  }

  hpt::Batch next_batch() override {
    need_data();
    return batch_of_windows(windows_at(train_tokens_, sampler_->next() * context_, context_));
  }

  torch::Tensor loss(const hpt::Batch& batch) override {
    return hpt::task_support::mean_loss(LossKind::CrossEntropy, model_->forward(batch.inputs.at(0)), batch.targets);
  }

  const hpt::Batch& probe_batch() override {
    need_data();
    return probe_;
  }

  hpt::Metrics evaluate() override {
    need_data();
    hpt::Metrics m = hpt::task_support::evaluate_in_chunks(
        [this](const torch::Tensor& tokens) { return model_->forward(tokens); }, val_inputs_, val_targets_,
        batch_size_, LossKind::CrossEntropy);
    return {{"val_loss", m.at("val_loss")}, {"val_bpc", m.at("val_loss") / std::log(2.0)}};
  }

  std::vector<std::string> metric_names() const override { return {"val_loss", "val_bpc"}; }

  void save(hpt::StateWriter& state) const override {
    if (sampler_) sampler_->save(state, "order_");
    if (vocabulary_) state.write("vocabulary", tensor_of_bytes(vocabulary_->bytes()));
  }

  void load(torch::serialize::InputArchive& archive) override {
    torch::Tensor saved;
    const bool has_vocabulary = archive.try_read("vocabulary", saved);
    if (!sampler_) {  // inference only: the model comes from the saved vocabulary
      if (!has_vocabulary)
        throw hpt::BadInput("task char_lm: the saved task state has no vocabulary (it was written by an older hpt); "
                            "train again to sample from it");
      vocabulary_.emplace(bytes_of_tensor(saved));
      build_model();
      return;
    }
    if (has_vocabulary && bytes_of_tensor(saved) != vocabulary_->bytes())
      throw hpt::BadInput("task char_lm: the saved vocabulary (" + std::to_string(saved.numel()) +
                          " characters) is not the corpus's (" + std::to_string(vocabulary_->size()) +
                          "): the corpus changed since the state was saved");
    sampler_->load(archive, "order_");
  }

  bool can_sample() const override { return true; }

  std::string sample(const hpt::SampleRequest& request) override {
    if (!model_ || !vocabulary_) throw hpt::RunError("task char_lm: sample() before the model was built");
    std::string unknown;
    for (unsigned char c : request.prompt)
      if (!vocabulary_->contains(c) && unknown.find(static_cast<char>(c)) == std::string::npos)
        unknown.push_back(static_cast<char>(c));
    if (!unknown.empty())
      throw hpt::BadInput("the prompt has characters the model's vocabulary lacks: " + quoted_list(unknown) +
                          " (its " + std::to_string(vocabulary_->size()) + " characters: " +
                          quoted_list(vocabulary_->bytes()) + ")");
    if (!(request.temperature > 0.0) || !std::isfinite(request.temperature))
      throw hpt::BadInput("the sampling temperature must be a finite number > 0, got " +
                          std::to_string(request.temperature));
    torch::NoGradGuard no_grad;
    const bool was_training = model_->is_training();
    model_->eval();
    // An empty prompt starts from a line break (or the first character the model knows);
    // that start is not part of the text returned.
    const std::string start =
        !request.prompt.empty() ? request.prompt
                                : std::string(1, vocabulary_->contains('\n') ? '\n' : vocabulary_->bytes().front());
    torch::Tensor encoded = vocabulary_->encode(start).to(torch::kInt64);
    std::vector<std::int64_t> tokens(encoded.data_ptr<std::int64_t>(), encoded.data_ptr<std::int64_t>() + encoded.numel());
    const std::size_t first_generated = tokens.size();
    at::Generator generator = hpt::make_cpu_generator(request.seed);
    for (std::int64_t i = 0; i < request.length; ++i) {
      const std::size_t window = std::min<std::size_t>(tokens.size(), static_cast<std::size_t>(context_));
      torch::Tensor input = torch::tensor(std::vector<std::int64_t>(tokens.end() - static_cast<std::ptrdiff_t>(window), tokens.end()),
                                          torch::kInt64)
                                .unsqueeze(0)
                                .to(device_);
      torch::Tensor logits = model_->forward(input)[0][-1].to(torch::kCPU, torch::kFloat64) / request.temperature;
      tokens.push_back(torch::multinomial(torch::softmax(logits, 0), 1, false, generator).item<std::int64_t>());
    }
    model_->train(was_training);
    torch::Tensor generated =
        torch::tensor(std::vector<std::int64_t>(tokens.begin() + static_cast<std::ptrdiff_t>(first_generated), tokens.end()),
                      torch::kInt64);
    return request.prompt + vocabulary_->decode(generated);
  }

 private:
  void build_model() {
    {
      hpt::task_support::ScopedTorchSeed seeded(model_seed_);
      model_ = hpt::char_lm::TransformerLm(vocabulary_->size(), context_, layers_, width_, heads_,
                                           activation_checkpointing_);
    }
    model_->to(device_);
  }

  void need_data() const {
    if (!sampler_) throw hpt::RunError("task char_lm: built for inference only, it has no data");
  }

  std::int64_t context_;
  std::int64_t batch_size_;
  std::int64_t layers_, width_, heads_;
  bool activation_checkpointing_;
  std::uint64_t model_seed_;
  torch::Device device_;
  std::optional<hpt::char_lm::ByteVocabulary> vocabulary_;   // none until load() when inference only
  torch::Tensor train_tokens_;                                // uint8 ids of the training text
  std::optional<hpt::task_support::EpochSampler> sampler_;    // over training windows; none when inference only
  hpt::Batch probe_;
  torch::Tensor val_inputs_, val_targets_;                    // int64 [eval windows, context]
  hpt::char_lm::TransformerLm model_{nullptr};
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Task, "char_lm", "1.0.0",
           "character-level language model: a small transformer on a text corpus (default: Debian fortunes)",
           CharLmTask, CharLmTask::option_specs)
