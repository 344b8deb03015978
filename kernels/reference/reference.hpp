// Host reference of the kernels of hpt/kernels.h: the same four operations on host memory,
// with the same semantics and roundings (fp32 arithmetic with the same fmas, one rounding to
// bf16/fp16 to nearest even) and, for the l2 norms, the same summation order as the kernel
// (see kernels/src/l2_norms.cu), so the two agree to the bit. Plain C++17; throws
// std::invalid_argument where the C API returns cudaErrorInvalidValue (workspace aside).
// bf16 and fp16 values are passed as their uint16_t bit patterns.
#ifndef HPT_KERNELS_REFERENCE_HPP
#define HPT_KERNELS_REFERENCE_HPP

#include <cstddef>
#include <cstdint>

#include "hpt/kernels.h"

namespace hpt::kernels::reference {

// ---- element conversions (cuda_bf16.h / cuda_fp16.h host functions) ----
size_t dtype_bytes(hpt_dtype dtype);
float bf16_to_float(uint16_t bits);
uint16_t float_to_bf16(float x);  // round to nearest even
float fp16_to_float(uint16_t bits);
uint16_t float_to_fp16(float x);  // round to nearest even
// Element i of a host array of dtype, as fp32; and stored, rounded once.
float load_element(const void* base, hpt_dtype dtype, int64_t i);
void store_element(void* base, hpt_dtype dtype, int64_t i, float x);

// ---- the per-element formulas ----
// param + (offset + scale * direction), the inner expression as one fma, all fp32.
float predicted_value(float param, float direction, float offset, float scale);
// fma(decay, average, (1 - decay) * param), with 1 - decay rounded once; decay 0 gives param.
float averaged_value(float average, float param, float decay);

// ---- the operations (arguments as in hpt/kernels.h, host pointers, no workspace) ----
void predicted_update(int n_tensors, void* const* params, hpt_dtype param_dtype, const float* const* directions,
                      const float* const* offsets, const int64_t* numels, const int32_t* groups,
                      const float* group_scales, int n_groups);
void l2_norms(int n_tensors, const void* const* tensors, hpt_dtype dtype, const int64_t* numels,
              const int32_t* groups, int n_groups, float* out_norms, float* out_group_norms);
void weight_average(int n_tensors, float* const* averages, const void* const* params, hpt_dtype param_dtype,
                    const int64_t* numels, float decay);
void copy(int n_tensors, void* const* dst, const void* const* src, const int64_t* bytes);

// The fp32 sum of squares of one chunk (len <= the chunk size) in the kernel's order.
float chunk_sum_of_squares(const void* base, hpt_dtype dtype, int64_t begin, int64_t len);

}  // namespace hpt::kernels::reference

#endif  // HPT_KERNELS_REFERENCE_HPP
