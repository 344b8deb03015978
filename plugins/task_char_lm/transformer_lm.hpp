// A small decoder-only transformer (GPT-style, pre-LayerNorm) over a byte vocabulary:
// token and learned position embeddings, `layers` blocks of causal multi-head
// self-attention and a 4x-wide GELU MLP, each behind a LayerNorm and a residual
// connection, then a final LayerNorm and a Linear head to the vocabulary. No dropout,
// so a step is a deterministic function of the weights and the batch. With activation
// checkpointing each block keeps only its input for backward, which recomputes the
// block's forward (activation_checkpoint.hpp): less memory, the same gradients.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

namespace hpt::char_lm {

// Multi-head self-attention where position t attends to positions <= t only.
class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(std::int64_t width, std::int64_t heads);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, width] -> [B, T, width]

 private:
  std::int64_t heads_;
  torch::nn::Linear qkv_{nullptr};   // queries, keys and values in one projection
  torch::nn::Linear proj_{nullptr};  // the heads' outputs back to the residual stream
};
TORCH_MODULE(CausalSelfAttention);

class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(std::int64_t width, std::int64_t heads);
  torch::Tensor forward(torch::Tensor x);  // [B, T, width] -> [B, T, width]

 private:
  torch::nn::LayerNorm attn_norm_{nullptr};
  CausalSelfAttention attn_{nullptr};
  torch::nn::LayerNorm mlp_norm_{nullptr};
  torch::nn::Linear mlp_in_{nullptr};
  torch::nn::Linear mlp_out_{nullptr};
};
TORCH_MODULE(TransformerBlock);

class TransformerLmImpl : public torch::nn::Module {
 public:
  TransformerLmImpl(std::int64_t vocabulary, std::int64_t context, std::int64_t layers, std::int64_t width,
                    std::int64_t heads, bool activation_checkpointing = false);

  // tokens: int64 [B, T] with T <= context; returns next-token logits [B, T, vocabulary].
  torch::Tensor forward(const torch::Tensor& tokens);

 private:
  torch::nn::Embedding token_embedding_{nullptr};
  torch::nn::Embedding position_embedding_{nullptr};
  std::vector<TransformerBlock> blocks_;
  torch::nn::LayerNorm final_norm_{nullptr};
  torch::nn::Linear head_{nullptr};
  bool activation_checkpointing_;
};
TORCH_MODULE(TransformerLm);

}  // namespace hpt::char_lm
