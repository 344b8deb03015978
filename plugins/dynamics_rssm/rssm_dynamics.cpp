// DynamicsModel "rssm": a small recurrent ensemble over the training state.
//
// Each real step becomes a feature vector (state_features.hpp: loss, gradient norm and
// per-group update levels and changes, cosines between consecutive updates, learning
// rate, phase). An ensemble of `members` GRU cells reads the sequence; each member's head
// predicts the change of the dynamic features at the next real step (gru_ensemble.hpp).
//
// Online training: the last `history` feature vectors are kept with the hidden state each
// member had before reading them. Every `train_every` observations, `train_steps` Adam
// steps (the model's own optimizer, learning rate `lr`, gradient norm clipped to
// `grad_clip`) run truncated back-propagation through time over `windows` windows of
// `tbptt` steps: the newest window and others spread evenly back through the history,
// each starting from its stored hidden state. Loss: mean squared error of the predicted
// feature changes.
//
// Forecast(h): every member rolls forward h steps from its current hidden state, feeding
// its own predictions back (learning rate held, phase set to Full). From the members'
// mean and spread:
//   loss[i]          first loss * exp(mean predicted loss level at step i)
//   loss_low/high    the same, -/+ bound_width * (spread at step i + recent error), in log space
//   scale[i][g]      gain * exp(predicted update level of g at step i - its recent average),
//                    capped at max_scale: the predicted size of the update relative to the
//                    updates the direction averages
//   direction        per parameter, the bias-corrected moving average of the real updates
//                    (decay direction_decay): the mean displacement of one real step
//   confidence       exp(-(recent error + mean spread of the loss level) / error_scale),
//                    where the recent error is the moving average (decay error_decay) of
//                    |observed loss level - the ensemble's one-step forecast of it| over
//                    consecutive real steps. 0 before min_observations real steps.
// Everything (weights, the optimizer's moments, buffers, statistics) is saved, so a
// resumed run continues bit for bit. Weights are initialised from run.seed without
// touching the process's global random generator.
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>

#include "archive_io.hpp"
#include "gru_ensemble.hpp"
#include "hpt/hpt.hpp"
#include "hpt/torch_compat.hpp"
#include "state_features.hpp"
#include "update_average.hpp"

namespace {

using hpt::rssm::GruEnsemble;
using hpt::rssm::GruEnsembleImpl;
using hpt::rssm::StateFeatures;
using hpt::rssm::UpdateAverage;

// Seeds the global CPU generator for the lifetime of the object and restores its state
// afterwards: torch::nn modules initialise from it.
class SeededGlobalGenerator {
 public:
  explicit SeededGlobalGenerator(std::uint64_t seed) : generator_(hpt::default_cpu_generator()) {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    saved_ = generator_.get_state();
    generator_.set_current_seed(seed);
  }
  ~SeededGlobalGenerator() {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    generator_.set_state(saved_);
  }
  SeededGlobalGenerator(const SeededGlobalGenerator&) = delete;
  SeededGlobalGenerator& operator=(const SeededGlobalGenerator&) = delete;

 private:
  at::Generator generator_;
  torch::Tensor saved_;
};

class RssmDynamics : public hpt::DynamicsModel {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_int("members", 4, "GRU cells in the ensemble", 2, 16),
        hpt::option_int("hidden", 32, "hidden units of each GRU cell", 2, 1024),
        hpt::option_int("history", 128, "recent real steps kept for training", 2, 1e6),
        hpt::option_int("tbptt", 8, "steps of truncated back-propagation through time (less than history)", 1, 1e5),
        hpt::option_int("windows", 8, "tbptt windows per gradient step: the newest and ones spread through history", 1, 256),
        hpt::option_int("train_every", 8, "real steps between training rounds", 1, 1e9),
        hpt::option_int("train_steps", 1, "gradient steps per training round", 1, 1000),
        hpt::option_float("lr", 1e-2, "learning rate of the model's own Adam", 1e-8, 1.0),
        hpt::option_float("grad_clip", 1.0, "gradient norm clip of the model's training", 1e-6, 1e6),
        hpt::option_float("direction_decay", 0.9, "decay of the moving average of updates (the direction)", 0.0, 0.9999),
        hpt::option_int("min_observations", 32, "real steps before the first forecast", 1, 1e9),
        hpt::option_float("error_scale", 0.05, "log-loss error at which confidence falls to 1/e", 1e-9, 1e3),
        hpt::option_float("error_decay", 0.9, "decay of the moving average of the one-step loss error", 0.0, 0.9999),
        hpt::option_float("bound_width", 2.0, "loss bounds: this many (spread + error) around the path", 0.0, 100.0),
        hpt::option_float("gain", 1.0, "multiplies every step scale", 0.0, 100.0),
        hpt::option_float("max_scale", 2.0, "cap on every step scale", 0.0, 1e3),
    };
  }

  RssmDynamics(const hpt::PluginContext& context, const hpt::Options& options)
      : device_(context.device),
        seed_(context.seed),
        members_(options.get_int("members")),
        hidden_size_(options.get_int("hidden")),
        history_(options.get_int("history")),
        tbptt_(options.get_int("tbptt")),
        windows_(options.get_int("windows")),
        train_every_(options.get_int("train_every")),
        train_steps_(options.get_int("train_steps")),
        lr_(options.get_float("lr")),
        grad_clip_(options.get_float("grad_clip")),
        direction_decay_(options.get_float("direction_decay")),
        min_observations_(options.get_int("min_observations")),
        error_scale_(options.get_float("error_scale")),
        error_decay_(options.get_float("error_decay")),
        bound_width_(options.get_float("bound_width")),
        gain_(options.get_float("gain")),
        max_scale_(options.get_float("max_scale")) {
    if (tbptt_ >= history_)
      throw hpt::BadInput("dynamics rssm: tbptt (" + std::to_string(tbptt_) + ") must be less than history (" +
                          std::to_string(history_) + "): a window needs tbptt + 1 kept steps");
  }

  void bind(const hpt::ParameterLayout& layout) override {
    const std::size_t groups = layout.groups.size();
    features_ = std::make_unique<StateFeatures>(layout.group_of, groups);
    average_ = std::make_unique<UpdateAverage>(groups, direction_decay_);
    const auto inputs = static_cast<std::int64_t>(features_->size());
    {
      SeededGlobalGenerator seeded(seed_);
      ensemble_ = GruEnsemble(members_, inputs, hidden_size_, static_cast<std::int64_t>(features_->dynamic_size()));
    }
    optimizer_ = std::make_unique<torch::optim::Adam>(ensemble_->parameters(), torch::optim::AdamOptions(lr_));
    refresh_weights();
    inputs_ = torch::zeros({history_, inputs});
    hiddens_ = torch::zeros({history_, members_, hidden_size_});
    hidden_ = torch::zeros({members_, 1, hidden_size_});
    scratch_.assign(features_->size(), 0.0f);
    levels_.assign(groups, 0.0);
  }

  void observe(const hpt::StepRecord& record) override {
    if (!features_) throw hpt::RunError("dynamics rssm: observe() before bind()");
    torch::NoGradGuard no_grad;
    features_->encode(record, scratch_.data());
    const double level = scratch_[StateFeatures::kLossLevel];
    if (has_prediction_ && record.step == last_step_ + 1) {
      error_average_ = error_decay_ * error_average_ + (1.0 - error_decay_) * std::abs(level - predicted_level_);
      ++errors_;
    }
    const std::int64_t slot = observations_ % history_;
    torch::Tensor x = inputs_[slot];
    x.copy_(torch::from_blob(scratch_.data(), {static_cast<std::int64_t>(scratch_.size())}, torch::kFloat32));
    hiddens_[slot].copy_(hidden_.squeeze(1));
    hidden_ = GruEnsembleImpl::step(weights_, x.unsqueeze(0), hidden_);
    if (!record.update.empty()) {
      for (std::size_t g = 0; g < levels_.size(); ++g) levels_[g] = scratch_[features_->update_level_index(g)];
      average_->add(record.update, levels_);
    }
    ++observations_;
    last_step_ = record.step;
    if (observations_ % train_every_ == 0 && std::min(observations_, history_) > tbptt_) train();

    torch::Tensor next = GruEnsembleImpl::predict(weights_, hidden_).select(2, StateFeatures::kLossLevel);
    predicted_level_ = level + next.mean().item<double>();
    has_prediction_ = true;
  }

  hpt::Forecast forecast(std::int64_t horizon) override {
    hpt::Forecast f;
    if (!features_ || observations_ < min_observations_ || average_->empty() || errors_ == 0 || horizon <= 0) return f;
    torch::NoGradGuard no_grad;
    const auto dynamic = static_cast<std::int64_t>(features_->dynamic_size());
    torch::Tensor x = inputs_[(observations_ - 1) % history_].clone();
    x[static_cast<std::int64_t>(features_->phase_index())] = 0.0f;  // predicted steps stand in for full ones
    torch::Tensor state = x.expand({members_, 1, x.size(0)}).clone();
    torch::Tensor hidden = hidden_;
    std::vector<torch::Tensor> path;
    path.reserve(static_cast<std::size_t>(horizon));
    for (std::int64_t i = 0; i < horizon; ++i) {
      state.narrow(2, 0, dynamic).add_(GruEnsembleImpl::predict(weights_, hidden));
      path.push_back(state.narrow(2, 0, dynamic).squeeze(1).clone());
      if (i + 1 < horizon) hidden = GruEnsembleImpl::step(weights_, state, hidden);
    }
    torch::Tensor levels = torch::stack(path).to(torch::kFloat64);  // [horizon, members, dynamic]
    torch::Tensor mean = levels.mean(1).contiguous();
    torch::Tensor spread = levels.std(1, /*unbiased=*/false).contiguous();
    auto m = mean.accessor<double, 2>();
    auto s = spread.accessor<double, 2>();

    const double error = recent_error();
    const auto groups = features_->groups();
    double spread_sum = 0.0;
    f.scale.assign(static_cast<std::size_t>(horizon), std::vector<double>(groups, 0.0));
    for (std::int64_t i = 0; i < horizon; ++i) {
      const double level = m[i][StateFeatures::kLossLevel];
      const double width = bound_width_ * (s[i][StateFeatures::kLossLevel] + error);
      f.loss.push_back(features_->loss_of_level(level));
      f.loss_low.push_back(features_->loss_of_level(level - width));
      f.loss_high.push_back(features_->loss_of_level(level + width));
      spread_sum += s[i][StateFeatures::kLossLevel];
      for (std::size_t g = 0; g < groups; ++g) {
        const double ratio = std::exp(m[i][static_cast<std::int64_t>(features_->update_level_index(g))] - average_->mean_level(g));
        f.scale[static_cast<std::size_t>(i)][g] = std::min(max_scale_, gain_ * ratio);
      }
    }
    f.confidence = std::exp(-(error + spread_sum / static_cast<double>(horizon)) / error_scale_);
    if (!std::isfinite(f.confidence) || !std::isfinite(f.loss.back()) || !all_finite(f.scale)) return {};
    f.direction = average_->mean();
    return f;
  }

  // The forecast's confidence without the ensemble spread of a forecast path (which
  // needs one): an upper bound of what forecast() reports, cheap enough for every step.
  // The running mean of updates and the previous update: two fp32 copies of the
  // parameters; the GRU ensemble and its Adam state are kilobytes next to them.
  std::int64_t planned_bytes(const hpt::ParameterLayout& layout) const override {
    return 2 * layout.elements() * static_cast<std::int64_t>(sizeof(float));
  }

  double confidence() const override {
    if (!features_ || observations_ < min_observations_ || average_->empty() || errors_ == 0) return 0.0;
    double c = std::exp(-recent_error() / error_scale_);
    return std::isfinite(c) ? c : 0.0;
  }

  void save(hpt::StateWriter& state) const override {
    if (!features_) throw hpt::RunError("dynamics rssm: save() before bind()");
    state.write("observations", c10::IValue(observations_));
    state.write("last_step", c10::IValue(last_step_));
    state.write("has_prediction", c10::IValue(has_prediction_));
    state.write("predicted_level", c10::IValue(predicted_level_));
    state.write("error_average", c10::IValue(error_average_));
    state.write("errors", c10::IValue(errors_));
    state.write("inputs", inputs_);
    state.write("hiddens", hiddens_);
    state.write("hidden", hidden_);
    features_->save(state, "features/");
    average_->save(state, "average/");
    state.write("ensemble", *ensemble_);
    state.write("optimizer", *optimizer_);
  }

  void load(torch::serialize::InputArchive& archive) override {
    if (!features_) throw hpt::RunError("dynamics rssm: load() before bind()");
    torch::Tensor inputs = hpt::rssm::read_tensor(archive, "inputs");
    torch::Tensor hiddens = hpt::rssm::read_tensor(archive, "hiddens");
    if (inputs.sizes() != inputs_.sizes() || hiddens.sizes() != hiddens_.sizes())
      throw hpt::BadInput("dynamics rssm: the checkpoint was written with other history, members, hidden or "
                          "parameter groups (its buffers are " + shape(inputs) + " and " + shape(hiddens) +
                          ", this model's " + shape(inputs_) + " and " + shape(hiddens_) + ")");
    observations_ = hpt::rssm::read_value(archive, "observations").toInt();
    last_step_ = hpt::rssm::read_value(archive, "last_step").toInt();
    has_prediction_ = hpt::rssm::read_value(archive, "has_prediction").toBool();
    predicted_level_ = hpt::rssm::read_value(archive, "predicted_level").toDouble();
    error_average_ = hpt::rssm::read_value(archive, "error_average").toDouble();
    errors_ = hpt::rssm::read_value(archive, "errors").toInt();
    inputs_ = inputs;
    hiddens_ = hiddens;
    hidden_ = hpt::rssm::read_tensor(archive, "hidden");
    features_->load(archive, "features/", device_);
    average_->load(archive, "average/", device_);
    torch::serialize::InputArchive weights, optimizer;
    if (!archive.try_read("ensemble", weights) || !archive.try_read("optimizer", optimizer))
      throw hpt::BadInput("dynamics rssm: the checkpoint has no ensemble weights or optimizer state");
    try {
      ensemble_->load(weights);
      optimizer_->load(optimizer);
      refresh_weights();
    } catch (const c10::Error& e) {
      throw hpt::BadInput(std::string("dynamics rssm: the checkpoint's weights do not fit this model: ") +
                          e.what_without_backtrace());
    }
  }

 private:
  // train_steps gradient steps of truncated back-propagation through time.
  void train() {
    torch::Tensor slots = window_slots();  // [tbptt + 1, windows]
    torch::Tensor x = inputs_.index({slots});  // [tbptt + 1, windows, features]
    torch::Tensor start = hiddens_.index({slots[0]}).permute({1, 0, 2}).contiguous();  // [members, windows, hidden]
    const auto dynamic = static_cast<std::int64_t>(features_->dynamic_size());
    torch::Tensor changes = x.narrow(0, 1, tbptt_).narrow(2, 0, dynamic) - x.narrow(0, 0, tbptt_).narrow(2, 0, dynamic);
    torch::Tensor targets = changes.unsqueeze(1);  // [tbptt, 1, windows, dynamic]
    for (std::int64_t k = 0; k < train_steps_; ++k) {
      torch::AutoGradMode grad(true);
      const hpt::rssm::StackedWeights w = ensemble_->stacked();
      torch::Tensor hidden = start;
      std::vector<torch::Tensor> predictions;
      predictions.reserve(static_cast<std::size_t>(tbptt_));
      for (std::int64_t t = 0; t < tbptt_; ++t) {
        hidden = GruEnsembleImpl::step(w, x[t], hidden);
        predictions.push_back(GruEnsembleImpl::predict(w, hidden));
      }
      torch::Tensor loss = (torch::stack(predictions) - targets).square().mean();
      hpt::zero_grad(*optimizer_);
      loss.backward();
      torch::nn::utils::clip_grad_norm_(ensemble_->parameters(), grad_clip_);
      optimizer_->step();
    }
    refresh_weights();
  }

  // The stacked weights observe() and forecast() run with, after every change of them.
  void refresh_weights() {
    torch::NoGradGuard no_grad;
    weights_ = ensemble_->stacked();
  }

  // Ring-buffer slots of the training windows, [tbptt + 1, windows]: window 0 ends at the
  // newest step, the others start evenly spaced back to the oldest kept step.
  torch::Tensor window_slots() const {
    const std::int64_t newest_start = observations_ - 1 - tbptt_;
    const std::int64_t oldest_start = observations_ - std::min(observations_, history_);
    const std::int64_t span = newest_start - oldest_start;
    torch::Tensor slots = torch::empty({tbptt_ + 1, windows_}, torch::kLong);
    auto a = slots.accessor<std::int64_t, 2>();
    for (std::int64_t w = 0; w < windows_; ++w) {
      const std::int64_t begin = windows_ > 1 ? newest_start - span * w / (windows_ - 1) : newest_start;
      for (std::int64_t t = 0; t <= tbptt_; ++t) a[t][w] = (begin + t) % history_;
    }
    return slots;
  }

  double recent_error() const {
    return errors_ == 0 ? 0.0 : error_average_ / (1.0 - std::pow(error_decay_, static_cast<double>(errors_)));
  }

  static bool all_finite(const std::vector<std::vector<double>>& rows) {
    for (const auto& row : rows)
      for (double v : row)
        if (!std::isfinite(v)) return false;
    return true;
  }

  static std::string shape(const torch::Tensor& t) {
    std::string s = "[";
    for (std::int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
    return s + "]";
  }

  torch::Device device_;
  std::uint64_t seed_;
  std::int64_t members_, hidden_size_, history_, tbptt_, windows_, train_every_, train_steps_;
  double lr_, grad_clip_, direction_decay_;
  std::int64_t min_observations_;
  double error_scale_, error_decay_, bound_width_, gain_, max_scale_;

  std::unique_ptr<StateFeatures> features_;
  std::unique_ptr<UpdateAverage> average_;
  GruEnsemble ensemble_{nullptr};
  hpt::rssm::StackedWeights weights_;  // ensemble_'s weights, stacked, without autograd
  std::unique_ptr<torch::optim::Adam> optimizer_;
  torch::Tensor inputs_;   // [history, features]: ring buffer of feature vectors
  torch::Tensor hiddens_;  // [history, members, hidden]: the hidden state before each of them
  torch::Tensor hidden_;   // [members, 1, hidden]: after the newest step
  std::vector<float> scratch_;  // the newest feature vector
  std::vector<double> levels_;  // its per-group update levels

  std::int64_t observations_ = 0;
  std::int64_t last_step_ = 0;
  bool has_prediction_ = false;
  double predicted_level_ = 0.0;  // the ensemble's forecast of the next loss level
  double error_average_ = 0.0;    // moving average of |loss level - predicted_level_|
  std::int64_t errors_ = 0;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::DynamicsModel, "rssm", "1.0.0",
           "recurrent GRU ensemble over the training state, trained online (TBPTT)", RssmDynamics,
           RssmDynamics::option_specs)
