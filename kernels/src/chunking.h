// The fixed work split every kernel shares and the l2 summation order depends on: chunk
// sizes, threads per block, elements per vector. Plain C++ constants, included both by the
// CUDA sources and by the host reference (kernels/reference), so the two cannot drift.
#ifndef HPT_KERNELS_CHUNKING_H
#define HPT_KERNELS_CHUNKING_H

#include <cstdint>

namespace hpt::kernels::detail {

// Elements per chunk for hpt_fused_predicted_update, hpt_fused_l2_norms and
// hpt_fused_weight_average. A tensor of n elements has ceil(n / kChunkElems) chunks; the
// l2 norm sums squares in fp32 within a chunk and the chunks' sums in fp64.
constexpr int64_t kChunkElems = 65536;
// Bytes per chunk for hpt_fused_copy (a multiple of 16, so every chunk of a tensor has the
// alignment of the tensor's start).
constexpr int64_t kCopyChunkBytes = 4 * kChunkElems;
// Threads per block, fixed: the l2 order within a chunk depends on it, the grid size does not.
constexpr int kBlockThreads = 256;
constexpr int kWarpSize = 32;
constexpr int kWarps = kBlockThreads / kWarpSize;
// Elements per vectorised load (16 bytes of fp32, 8 bytes of bf16/fp16).
constexpr int kVecElems = 4;

static_assert(kChunkElems % kVecElems == 0, "a chunk holds whole vectors");
static_assert(kCopyChunkBytes % 16 == 0, "copy chunks keep 16-byte alignment");
static_assert(kBlockThreads % kWarpSize == 0 && kWarps <= kWarpSize, "one warp reduces the warps");

}  // namespace hpt::kernels::detail

#endif  // HPT_KERNELS_CHUNKING_H
