#include "transformer_lm.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "activation_checkpoint.hpp"
#include "hpt/error.hpp"

namespace hpt::char_lm {

CausalSelfAttentionImpl::CausalSelfAttentionImpl(std::int64_t width, std::int64_t heads) : heads_(heads) {
  if (heads < 1 || width % heads != 0)
    throw BadInput("width " + std::to_string(width) + " must be a multiple of heads " + std::to_string(heads));
  qkv_ = register_module("qkv", torch::nn::Linear(width, 3 * width));
  proj_ = register_module("proj", torch::nn::Linear(width, width));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x) {
  const std::int64_t batch = x.size(0), time = x.size(1), width = x.size(2), head_width = width / heads_;
  // [B, T, 3 * width] -> three [B, heads, T, head_width]
  auto qkv = qkv_->forward(x).view({batch, time, 3, heads_, head_width}).permute({2, 0, 3, 1, 4}).unbind(0);
  torch::Tensor scores = torch::matmul(qkv[0], qkv[1].transpose(-2, -1)) / std::sqrt(static_cast<double>(head_width));
  torch::Tensor future = torch::ones({time, time}, torch::TensorOptions(torch::kBool).device(x.device())).triu(1);
  torch::Tensor weights = torch::softmax(scores.masked_fill(future, -std::numeric_limits<float>::infinity()), -1);
  torch::Tensor heads = torch::matmul(weights, qkv[2]);  // [B, heads, T, head_width]
  return proj_->forward(heads.transpose(1, 2).reshape({batch, time, width}));
}

TransformerBlockImpl::TransformerBlockImpl(std::int64_t width, std::int64_t heads) {
  attn_norm_ = register_module("attn_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  attn_ = register_module("attn", CausalSelfAttention(width, heads));
  mlp_norm_ = register_module("mlp_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  mlp_in_ = register_module("mlp_in", torch::nn::Linear(width, 4 * width));
  mlp_out_ = register_module("mlp_out", torch::nn::Linear(4 * width, width));
}

torch::Tensor TransformerBlockImpl::forward(torch::Tensor x) {
  x = x + attn_->forward(attn_norm_->forward(x));
  return x + mlp_out_->forward(torch::gelu(mlp_in_->forward(mlp_norm_->forward(x))));
}

TransformerLmImpl::TransformerLmImpl(std::int64_t vocabulary, std::int64_t context, std::int64_t layers,
                                     std::int64_t width, std::int64_t heads, bool activation_checkpointing)
    : activation_checkpointing_(activation_checkpointing) {
  token_embedding_ = register_module("token_embedding", torch::nn::Embedding(vocabulary, width));
  position_embedding_ = register_module("position_embedding", torch::nn::Embedding(context, width));
  for (std::int64_t i = 0; i < layers; ++i)
    blocks_.push_back(register_module("block" + std::to_string(i + 1), TransformerBlock(width, heads)));
  final_norm_ = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  head_ = register_module("head", torch::nn::Linear(width, vocabulary));
}

torch::Tensor TransformerLmImpl::forward(const torch::Tensor& tokens) {
  torch::Tensor positions = torch::arange(tokens.size(1), torch::TensorOptions(torch::kInt64).device(tokens.device()));
  torch::Tensor x = token_embedding_->forward(tokens) + position_embedding_->forward(positions);
  for (auto& block : blocks_) {
    if (activation_checkpointing_)
      x = checkpointed([b = block.ptr()](const torch::Tensor& in) { return b->forward(in); }, x, block->parameters());
    else
      x = block->forward(x);
  }
  return head_->forward(final_norm_->forward(x));
}

}  // namespace hpt::char_lm
