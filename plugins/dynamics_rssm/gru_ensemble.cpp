#include "gru_ensemble.hpp"

#include <string>

namespace hpt::rssm {

GruEnsembleImpl::GruEnsembleImpl(std::int64_t members, std::int64_t inputs, std::int64_t hidden, std::int64_t outputs) {
  for (std::int64_t m = 0; m < members; ++m) {
    cells_.push_back(register_module("cell" + std::to_string(m), torch::nn::GRUCell(inputs, hidden)));
    heads_.push_back(register_module("head" + std::to_string(m), torch::nn::Linear(hidden, outputs)));
    torch::NoGradGuard no_grad;
    for (auto& p : heads_.back()->parameters()) p.mul_(0.1);
  }
}

StackedWeights GruEnsembleImpl::stacked() const {
  std::vector<torch::Tensor> wi, bi, wh, bh, wo, bo;
  for (std::size_t m = 0; m < cells_.size(); ++m) {
    wi.push_back(cells_[m]->weight_ih.t());
    bi.push_back(cells_[m]->bias_ih.unsqueeze(0));
    wh.push_back(cells_[m]->weight_hh.t());
    bh.push_back(cells_[m]->bias_hh.unsqueeze(0));
    wo.push_back(heads_[m]->weight.t());
    bo.push_back(heads_[m]->bias.unsqueeze(0));
  }
  return {torch::stack(wi), torch::stack(bi), torch::stack(wh), torch::stack(bh), torch::stack(wo), torch::stack(bo)};
}

torch::Tensor GruEnsembleImpl::step(const StackedWeights& w, const torch::Tensor& inputs, const torch::Tensor& hidden) {
  const std::int64_t h = hidden.size(2);
  torch::Tensor gi = inputs.dim() == 2 ? torch::matmul(inputs, w.input).add_(w.input_bias)
                                       : torch::baddbmm(w.input_bias, inputs, w.input);
  torch::Tensor gh = torch::baddbmm(w.hidden_bias, hidden, w.hidden);
  torch::Tensor rz = torch::sigmoid(gi.narrow(2, 0, 2 * h) + gh.narrow(2, 0, 2 * h));
  torch::Tensor n = torch::tanh(gi.narrow(2, 2 * h, h) + rz.narrow(2, 0, h) * gh.narrow(2, 2 * h, h));
  return n + rz.narrow(2, h, h) * (hidden - n);  // (1 - z) * n + z * hidden
}

torch::Tensor GruEnsembleImpl::predict(const StackedWeights& w, const torch::Tensor& hidden) {
  return torch::baddbmm(w.head_bias, hidden, w.head);
}

}  // namespace hpt::rssm
