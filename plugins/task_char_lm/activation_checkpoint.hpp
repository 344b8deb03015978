// Activation checkpointing (activation recomputation): a part of a model whose
// intermediate tensors are not kept for backward; backward runs its forward again to
// get them. Memory for activations falls from every tensor the part's operations save
// to just the part's input, for one more forward pass of the part per step.
//
// Written by hand because LibTorch's C++ API has no torch.utils.checkpoint (that is
// Python only). This is its reentrant variant as a torch::autograd::Function, with
// the same guarantees: the recomputation sees the random state the forward saw (so a
// dropout mask is the same both times; the CPU generator's state, and the CUDA
// generator's for an input on a CUDA device) and the autocast state the forward ran
// under (bf16/fp16 recomputed as they were computed). The part must not change state
// in its forward other than through those generators (no running statistics:
// BatchNorm would count each batch twice), and double backward is not supported.
#pragma once

#include <functional>
#include <vector>

#include <torch/types.h>

namespace hpt::char_lm {

using TensorFunction = std::function<torch::Tensor(const torch::Tensor&)>;

// part(input), with the graph cut around it: autograd keeps `input` and an edge to each
// of `parameters` (the tensors `part` reads that want gradients: a module's
// parameters()), not the tensors in between. Gradients of the result reach `input`
// and `parameters` exactly as they would through part(input) itself. With grad mode
// off it is part(input).
torch::Tensor checkpointed(const TensorFunction& part, const torch::Tensor& input,
                           const std::vector<torch::Tensor>& parameters);

}  // namespace hpt::char_lm
