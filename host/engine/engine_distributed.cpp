// The engine's side of data parallelism ("Data-parallel training" in
// docs/architecture.md): every rank runs the same loop on its shard of each batch, with
// the same weights, and so decides the same things. What makes it so is here: rank 0's
// weights at the start, gradients averaged after every backward pass (GradientSync), the
// loss every decision reads averaged, rank 0's phase decisions and evaluation taken by
// all. A predicted step needs none of it: every rank applies the same forecast, with no
// communication at all.
#include <cstring>

#include "engine/engine.hpp"

namespace hpt::host {

void Engine::join_world() {
  // Rank 0's initial parameters and buffers, on every rank.
  std::vector<torch::Tensor> state;
  for (const auto& p : task_->model().parameters(true)) state.push_back(p.detach());
  for (const auto& b : task_->model().buffers(true)) state.push_back(b.detach());
  {
    torch::NoGradGuard no_grad;
    backend_->broadcast(state, 0);
  }
  const auto bucket_bytes = static_cast<std::int64_t>(distributed_.bucket_mb * 1024.0 * 1024.0);
  grad_sync_ = std::make_unique<GradientSync>(*backend_, params_, bucket_bytes);
  logger_->info("rank {} of {}: {} gradient bucket(s), {:.1f} MiB all-reduced per real step",
                options_.world.rank, options_.world.size, grad_sync_->buckets(),
                static_cast<double>(grad_sync_->bytes_per_step()) / (1024.0 * 1024.0));
}

double Engine::agree_after_step(double local_loss) {
  // One small all-reduce: the loss (its mean is what the divergence monitor, the phase
  // controller and the logs read) and whether any rank wants to stop.
  torch::Tensor t = torch::tensor({local_loss, local_stop_signal_ != 0 ? 1.0 : 0.0}, torch::kFloat64)
                        .to(context_.device);
  backend_->all_reduce({t});
  t = t.cpu();
  if (t[1].item<double>() > 0.0) agreed_stop_ = true;
  return t[0].item<double>() / static_cast<double>(options_.world.size);
}

PhaseDecision Engine::agreed(PhaseDecision decision) {
  // Controllers may read wall-clock time (the bandit's reward does), which differs from
  // rank to rank: rank 0's decision is everyone's. Plain full training needs no vote.
  if (!distributed() || !predicting_enabled_) return decision;
  torch::Tensor t = torch::tensor({static_cast<std::int64_t>(decision.kind), decision.length}, torch::kInt64)
                        .to(context_.device);
  backend_->broadcast({t}, 0);
  t = t.cpu();
  decision.kind = static_cast<PhaseKind>(t[0].item<std::int64_t>());
  decision.length = t[1].item<std::int64_t>();
  return decision;
}

void Engine::check_ranks_in_sync(bool force) {
  if (!distributed()) return;
  if (!force && (!distributed_.check_sync || state_.step - last_sync_check_ < distributed_.check_every)) return;
  last_sync_check_ = state_.step;
  // A checksum of every parameter: the sum and the sum of squares in float64, and the
  // bits of the first element of each tensor.
  torch::NoGradGuard no_grad;
  torch::Tensor mine = torch::zeros({3}, torch::TensorOptions(torch::kFloat64).device(context_.device));
  for (const auto& p : params_) {
    if (p.numel() == 0) continue;
    const torch::Tensor d = p.detach().to(torch::kFloat64);
    mine += torch::stack({d.sum(), d.square().sum(), d.flatten()[0]});
  }
  torch::Tensor reference = mine.clone();
  backend_->broadcast({reference}, 0);
  const bool same = torch::equal(mine.cpu(), reference.cpu());
  torch::Tensor differing = torch::tensor({same ? 0.0 : 1.0}, torch::kFloat64).to(context_.device);
  backend_->all_reduce({differing});
  const auto ranks = static_cast<std::int64_t>(differing.cpu().item<double>());
  if (ranks > 0)
    throw RunError("the ranks' parameters differ at step " + std::to_string(state_.step) + ": " +
                   std::to_string(ranks) + " of " + std::to_string(options_.world.size) +
                   " rank(s) disagree with rank 0" + (same ? "" : " (this one, rank " + std::to_string(options_.world.rank) + ", does)"));
  logger_->debug("step {}: parameters identical on all {} ranks", state_.step, options_.world.size);
}

}  // namespace hpt::host
