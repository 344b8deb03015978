// Element access for the kernels: the parameter dtypes (fp32, bf16, fp16) as fp32 and back
// (rounded once, to nearest even), vectors of kVecElems elements, and the per-chunk loop
// that uses vectors where every pointer allows them and scalars elsewhere.
#ifndef HPT_KERNELS_ELEMENTWISE_CUH
#define HPT_KERNELS_ELEMENTWISE_CUH

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "chunking.h"

namespace hpt::kernels::detail {

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }

template <class T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) {
  return __float2half_rn(x);
}

// p, known to point to global memory (every tensor pointer does: device, managed or mapped
// memory), so the compiler uses global loads and stores instead of generic ones. Not NULL.
template <class T>
__device__ __forceinline__ T* global_ptr(T* p) {
  __builtin_assume(__isGlobal(p));
  return p;
}

// kVecElems elements, loaded and stored as one access (16 bytes of fp32, 8 of bf16/fp16).
template <class T>
struct alignas(sizeof(T) * kVecElems) Vec {
  T v[kVecElems];
};
template <class T>
__device__ __forceinline__ Vec<T> load_vec(const T* p) {
  return *reinterpret_cast<const Vec<T>*>(p);
}
template <class T>
__device__ __forceinline__ void store_vec(T* p, const Vec<T>& x) {
  *reinterpret_cast<Vec<T>*>(p) = x;
}

// The position of p within a vector of elem_bytes-sized elements (0 when p is vector
// aligned), or -1 when p is not even element aligned.
__device__ __forceinline__ int vec_phase(const void* p, int elem_bytes) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  if (a % static_cast<uintptr_t>(elem_bytes) != 0) return -1;
  return static_cast<int>((a / static_cast<uintptr_t>(elem_bytes)) % kVecElems);
}
// Both pointers' phase when they agree, else -1 (no index where both are vector aligned).
__device__ __forceinline__ int same_phase(int a, int b) { return a == b ? a : -1; }
// Elements before the first vector-aligned one for a phase; -1 for none.
__device__ __forceinline__ int vec_head(int phase) { return phase < 0 ? -1 : (kVecElems - phase) % kVecElems; }

// Over the elements [0, len) of a chunk, spread over the block's threads: scalar(i) for the
// first `head` elements (head < V), vec(i) for the V elements from i for every aligned run
// after them, scalar(i) for the rest; with head -1, scalar(i) for every element. Adjacent
// threads take adjacent elements or vectors (coalesced).
template <int V, class VecBody, class ScalarBody>
__device__ __forceinline__ void for_each_element(int len, int head, VecBody&& vec, ScalarBody&& scalar) {
  const int tid = static_cast<int>(threadIdx.x);
  int rest = 0;
  if (head >= 0) {
    head = head < len ? head : len;
    if (tid < head) scalar(tid);
    const int n_vec = (len - head) / V;
    for (int v = tid; v < n_vec; v += kBlockThreads) vec(head + v * V);
    rest = head + n_vec * V;
  }
  for (int i = rest + tid; i < len; i += kBlockThreads) scalar(i);
}

}  // namespace hpt::kernels::detail

#endif  // HPT_KERNELS_ELEMENTWISE_CUH
