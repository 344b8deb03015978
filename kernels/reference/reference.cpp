// Host reference of the kernels (see reference.hpp): plain loops over host memory that
// repeat the kernels' arithmetic, including the l2 kernel's summation order.
#include "reference.hpp"

#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "chunking.h"

namespace hpt::kernels::reference {
namespace {

using detail::kBlockThreads;
using detail::kChunkElems;
using detail::kVecElems;
using detail::kWarps;
using detail::kWarpSize;

void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("hpt::kernels::reference: ") + what);
}

void check_dtype(hpt_dtype dtype) {
  require(dtype == HPT_FLOAT32 || dtype == HPT_BFLOAT16 || dtype == HPT_FLOAT16, "unknown dtype");
}

void check_numels(int n_tensors, const int64_t* numels) {
  require(n_tensors >= 0, "n_tensors < 0");
  require(n_tensors == 0 || numels != nullptr, "no counts");
  for (int i = 0; i < n_tensors; ++i) require(numels[i] >= 0, "negative count");
}

template <class P>
void check_pointers(int n_tensors, P* const* list, const int64_t* numels, const char* what) {
  require(n_tensors == 0 || list != nullptr, what);
  for (int i = 0; i < n_tensors; ++i) require(numels[i] == 0 || list[i] != nullptr, what);
}

void check_groups(int n_tensors, const int32_t* groups, int n_groups) {
  require(n_groups >= 0, "n_groups < 0");
  if (groups == nullptr) {
    require(n_tensors == 0 || n_groups >= 1, "groups NULL needs group 0");
    return;
  }
  for (int i = 0; i < n_tensors; ++i) require(groups[i] >= 0 && groups[i] < n_groups, "group out of range");
}

// The kernels' halving tree over 32 lanes: lane l += lane l + 16, 8, 4, 2, 1; lane 0's sum.
template <class S>
S warp_tree_sum(std::array<S, kWarpSize> v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    for (int l = 0; l < offset; ++l) v[l] = v[l] + v[l + offset];
  }
  return v[0];
}

// Step 2/3 of the l2 order: lane l adds values k = l, l + 32, ... in fp64, then the tree.
template <class Get>
double lane_tree_sum(int64_t count, Get get) {
  std::array<double, kWarpSize> lanes{};
  for (int64_t k = 0; k < count; ++k) lanes[k % kWarpSize] += get(k);
  return warp_tree_sum(lanes);
}

}  // namespace

size_t dtype_bytes(hpt_dtype dtype) {
  check_dtype(dtype);
  return dtype == HPT_FLOAT32 ? 4 : 2;
}

float bf16_to_float(uint16_t bits) { return __bfloat162float(__ushort_as_bfloat16(bits)); }
uint16_t float_to_bf16(float x) { return __bfloat16_as_ushort(__float2bfloat16_rn(x)); }
float fp16_to_float(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }
uint16_t float_to_fp16(float x) { return __half_as_ushort(__float2half_rn(x)); }

float load_element(const void* base, hpt_dtype dtype, int64_t i) {
  switch (dtype) {
    case HPT_FLOAT32:
      return static_cast<const float*>(base)[i];
    case HPT_BFLOAT16:
      return bf16_to_float(static_cast<const uint16_t*>(base)[i]);
    case HPT_FLOAT16:
      return fp16_to_float(static_cast<const uint16_t*>(base)[i]);
  }
  throw std::invalid_argument("hpt::kernels::reference: unknown dtype");
}

void store_element(void* base, hpt_dtype dtype, int64_t i, float x) {
  switch (dtype) {
    case HPT_FLOAT32:
      static_cast<float*>(base)[i] = x;
      return;
    case HPT_BFLOAT16:
      static_cast<uint16_t*>(base)[i] = float_to_bf16(x);
      return;
    case HPT_FLOAT16:
      static_cast<uint16_t*>(base)[i] = float_to_fp16(x);
      return;
  }
  throw std::invalid_argument("hpt::kernels::reference: unknown dtype");
}

float predicted_value(float param, float direction, float offset, float scale) {
  const float delta = std::fma(scale, direction, offset);
  return param + delta;
}

float averaged_value(float average, float param, float decay) {
  if (decay == 0.0f) return param;  // a copy: the average is not read (it may be garbage)
  const float keep = 1.0f - decay;
  const float kept = keep * param;
  return std::fma(decay, average, kept);
}

void predicted_update(int n_tensors, void* const* params, hpt_dtype param_dtype, const float* const* directions,
                      const float* const* offsets, const int64_t* numels, const int32_t* groups,
                      const float* group_scales, int n_groups) {
  check_numels(n_tensors, numels);
  check_dtype(param_dtype);
  check_pointers(n_tensors, params, numels, "no params");
  check_pointers(n_tensors, directions, numels, "no directions");
  check_groups(n_tensors, groups, n_groups);
  require(n_groups == 0 || group_scales != nullptr, "no group scales");
  for (int t = 0; t < n_tensors; ++t) {
    const float scale = group_scales[groups != nullptr ? groups[t] : 0];
    const float* offset = offsets != nullptr ? offsets[t] : nullptr;
    for (int64_t j = 0; j < numels[t]; ++j) {
      const float p = load_element(params[t], param_dtype, j);
      store_element(params[t], param_dtype, j,
                    predicted_value(p, directions[t][j], offset != nullptr ? offset[j] : 0.0f, scale));
    }
  }
}

float chunk_sum_of_squares(const void* base, hpt_dtype dtype, int64_t begin, int64_t len) {
  require(len >= 0 && len <= kChunkElems, "chunk length");
  // Thread t of the block takes the elements i with (i / kVecElems) % kBlockThreads == t, in order.
  std::array<float, kBlockThreads> threads{};
  for (int64_t i = 0; i < len; ++i) {
    const float x = load_element(base, dtype, begin + i);
    float& acc = threads[static_cast<size_t>((i / kVecElems) % kBlockThreads)];
    acc = std::fma(x, x, acc);
  }
  // Each warp's tree, then the tree over the warps' sums padded with zeros to 32 lanes.
  std::array<float, kWarpSize> warps{};
  for (int w = 0; w < kWarps; ++w) {
    std::array<float, kWarpSize> lanes{};
    std::memcpy(lanes.data(), threads.data() + static_cast<size_t>(w) * kWarpSize, sizeof(lanes));
    warps[w] = warp_tree_sum(lanes);
  }
  return warp_tree_sum(warps);
}

void l2_norms(int n_tensors, const void* const* tensors, hpt_dtype dtype, const int64_t* numels,
              const int32_t* groups, int n_groups, float* out_norms, float* out_group_norms) {
  check_numels(n_tensors, numels);
  check_dtype(dtype);
  check_pointers(n_tensors, tensors, numels, "no tensors");
  require(n_tensors == 0 || out_norms != nullptr, "no out_norms");
  require(n_groups >= 0, "n_groups < 0");
  if (groups != nullptr || out_group_norms != nullptr) check_groups(n_tensors, groups, n_groups);

  std::vector<double> tensor_sums(static_cast<size_t>(n_tensors));
  for (int t = 0; t < n_tensors; ++t) {
    const int64_t n_chunks = (numels[t] + kChunkElems - 1) / kChunkElems;
    std::vector<float> chunk_sums(static_cast<size_t>(n_chunks));
    for (int64_t c = 0; c < n_chunks; ++c) {
      const int64_t begin = c * kChunkElems;
      const int64_t len = numels[t] - begin < kChunkElems ? numels[t] - begin : kChunkElems;
      chunk_sums[static_cast<size_t>(c)] = chunk_sum_of_squares(tensors[t], dtype, begin, len);
    }
    tensor_sums[t] = lane_tree_sum(n_chunks, [&](int64_t k) { return static_cast<double>(chunk_sums[k]); });
    out_norms[t] = static_cast<float>(std::sqrt(tensor_sums[t]));
  }
  if (out_group_norms == nullptr) return;
  for (int g = 0; g < n_groups; ++g) {
    std::vector<int> members;  // in tensor order
    for (int t = 0; t < n_tensors; ++t) {
      if ((groups != nullptr ? groups[t] : 0) == g) members.push_back(t);
    }
    const double sum = lane_tree_sum(static_cast<int64_t>(members.size()),
                                     [&](int64_t k) { return tensor_sums[members[static_cast<size_t>(k)]]; });
    out_group_norms[g] = static_cast<float>(std::sqrt(sum));
  }
}

void weight_average(int n_tensors, float* const* averages, const void* const* params, hpt_dtype param_dtype,
                    const int64_t* numels, float decay) {
  check_numels(n_tensors, numels);
  check_dtype(param_dtype);
  check_pointers(n_tensors, averages, numels, "no averages");
  check_pointers(n_tensors, params, numels, "no params");
  for (int t = 0; t < n_tensors; ++t) {
    for (int64_t j = 0; j < numels[t]; ++j) {
      const float p = load_element(params[t], param_dtype, j);
      averages[t][j] = decay == 0.0f ? p : averaged_value(averages[t][j], p, decay);
    }
  }
}

void copy(int n_tensors, void* const* dst, const void* const* src, const int64_t* bytes) {
  check_numels(n_tensors, bytes);
  check_pointers(n_tensors, dst, bytes, "no dst");
  check_pointers(n_tensors, src, bytes, "no src");
  for (int t = 0; t < n_tensors; ++t) {
    if (bytes[t] > 0) std::memmove(dst[t], src[t], static_cast<size_t>(bytes[t]));
  }
}

}  // namespace hpt::kernels::reference
