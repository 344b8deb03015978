// hpt_fused_l2_norms: the L2 norm of every tensor and of every group, in one launch, the
// same bits run after run (and on any GPU: the grid size does not enter the sums).
//
// The summation order, which kernels/reference/reference.cpp repeats on the host:
//  1. chunk: thread t of the block squares and adds in fp32 (fma) the elements i of the
//     chunk with (i / kVecElems) % kBlockThreads == t, in increasing i; the block adds the
//     threads' sums with a halving tree within each warp (lane l += lane l + 16, 8, 4, 2, 1),
//     then the warps' sums with the same tree over 32 lanes (zeros past the warps).
//  2. tensor: lane l of a warp adds in fp64 the chunk sums k = l, l + 32, ... of the tensor,
//     then the halving tree over the lanes; norm = (float)sqrt(sum).
//  3. group: the same over the tensor sums of the group's tensors, in tensor order.
// Steps 2 and 3 run in the last block to finish (a done-counter in the workspace, zeroed by
// the table upload): one launch, no atomics on the sums.
// Entry: in0 = the tensor.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "elementwise.cuh"
#include "multi_tensor_table.cuh"

namespace hpt::kernels::detail {
namespace {

struct L2Args {
  TableView table;
  DeviceTable ws;
  int n_groups;           // groups in the group lists; 0: no group norms
  float* out_norms;
  float* out_group_norms;
};

template <class S>
__device__ __forceinline__ S warp_tree_sum(S v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;  // lane 0's is the sum
}

// The block's sum of v (valid in thread 0). Every thread of the block calls it.
__device__ __forceinline__ float block_tree_sum(float v, float* warp_sums) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  v = warp_tree_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = 0.0f;
  if (warp == 0) total = warp_tree_sum(lane < kWarps ? warp_sums[lane] : 0.0f);
  __syncthreads();  // warp_sums may be reused
  return total;
}

template <class T>
__device__ __forceinline__ float square_add(T x, float acc) {
  const float f = to_f32(x);
  return __fmaf_rn(f, f, acc);
}

// Step 1 for one chunk: this thread's fp32 sum.
template <class T>
__device__ __forceinline__ float thread_chunk_sum(const T* x, int len) {
  const int tid = static_cast<int>(threadIdx.x);
  float acc = 0.0f;
  const int n_full = len / kVecElems;
  if (vec_phase(x, sizeof(T)) == 0) {
    for (int v = tid; v < n_full; v += kBlockThreads) {
      const Vec<T> xv = load_vec(x + v * kVecElems);
#pragma unroll
      for (int j = 0; j < kVecElems; ++j) acc = square_add(xv.v[j], acc);
    }
    // The last, partial vector belongs to thread n_full % kBlockThreads, after its full ones.
    if (n_full * kVecElems < len && tid == n_full % kBlockThreads) {
      for (int i = n_full * kVecElems; i < len; ++i) acc = square_add(x[i], acc);
    }
  } else {
    // Unaligned tensor: scalar loads, same order.
    for (int v = tid; v * kVecElems < len; v += kBlockThreads) {
      const int end = v * kVecElems + kVecElems < len ? v * kVecElems + kVecElems : len;
      for (int i = v * kVecElems; i < end; ++i) acc = square_add(x[i], acc);
    }
  }
  return acc;
}

// Steps 2 and 3: one warp per tensor, then one warp per group.
__device__ void finish_norms(const L2Args& a) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  for (int t = warp; t < a.table.n_tensors; t += kWarps) {
    const TensorEntry& e = a.table.entries[t];
    const int64_t n_chunks = (e.numel + kChunkElems - 1) / kChunkElems;
    double sum = 0.0;
    // __ldcg: the chunk sums were written by other blocks; read them from L2.
    for (int64_t k = lane; k < n_chunks; k += kWarpSize) sum += static_cast<double>(__ldcg(a.ws.chunk_sums + e.first_chunk + k));
    sum = warp_tree_sum(sum);
    if (lane == 0) {
      a.ws.tensor_sums[t] = sum;
      a.out_norms[t] = static_cast<float>(sqrt(sum));
    }
  }
  if (a.n_groups == 0) return;
  __syncthreads();  // the tensor sums, written by the other warps of this block
  for (int g = warp; g < a.n_groups; g += kWarps) {
    const int begin = a.ws.group_offsets[g];
    const int end = a.ws.group_offsets[g + 1];
    double sum = 0.0;
    for (int k = begin + lane; k < end; k += kWarpSize) sum += a.ws.tensor_sums[a.ws.group_members[k]];
    sum = warp_tree_sum(sum);
    if (lane == 0) a.out_group_norms[g] = static_cast<float>(sqrt(sum));
  }
}

template <class T>
__global__ void __launch_bounds__(kBlockThreads) l2_norms_kernel(L2Args a) {
  __shared__ float warp_sums[kWarps];
  __shared__ bool last_block;
  for_each_chunk(a.table, kChunkElems, [&](int64_t chunk, const TensorEntry& e, int64_t begin, int len) {
    const float sum = block_tree_sum(thread_chunk_sum(global_ptr(static_cast<const T*>(e.in0) + begin), len), warp_sums);
    if (threadIdx.x == 0) a.ws.chunk_sums[chunk] = sum;
  });
  // Last block done: thread 0 wrote this block's chunk sums; make them visible to all blocks
  // before counting this block as done.
  if (threadIdx.x == 0) {
    __threadfence();
    last_block = atomicAdd(a.ws.done_counter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  finish_norms(a);
  if (threadIdx.x == 0) *a.ws.done_counter = 0;  // left at zero (each call uploads a zero too)
}

}  // namespace
}  // namespace hpt::kernels::detail

extern "C" cudaError_t hpt_fused_l2_norms(int n_tensors, const void* const* tensors, hpt_dtype dtype,
                                          const int64_t* numels, const int32_t* groups, int n_groups,
                                          float* out_norms, float* out_group_norms, void* workspace,
                                          size_t workspace_bytes, cudaStream_t stream) {
  using namespace hpt::kernels::detail;
  if (!valid_numels(n_tensors, numels) || !valid_dtype(dtype) || !valid_pointers(n_tensors, tensors, numels) ||
      (n_tensors > 0 && out_norms == nullptr) || n_groups < 0 ||
      ((groups != nullptr || out_group_norms != nullptr) && !valid_groups(n_tensors, groups, n_groups)) ||
      !valid_workspace(workspace, workspace_bytes, n_tensors, numels, n_groups)) {
    return cudaErrorInvalidValue;
  }
  const bool group_norms = out_group_norms != nullptr && n_groups > 0;
  if (n_tensors == 0 && !group_norms) return cudaSuccess;
  std::vector<TensorEntry> entries(static_cast<size_t>(n_tensors));
  for (int i = 0; i < n_tensors; ++i) {
    entries[i].in0 = tensors[i];
    entries[i].numel = numels[i];
  }
  const int64_t chunks = assign_chunks(entries, kChunkElems);
  int blocks = 0;
  cudaError_t err = grid_blocks(chunks, &blocks);  // at least one block: it writes the norms
  if (err != cudaSuccess) return err;
  DeviceTable table{};
  err = upload_table(workspace, entries, group_norms, groups, group_norms ? n_groups : 0, chunks, stream, &table);
  if (err != cudaSuccess) return err;
  const L2Args args{{table.entries, n_tensors, chunks, table.next_chunk}, table, group_norms ? n_groups : 0, out_norms,
                    out_group_norms};
  switch (dtype) {
    case HPT_FLOAT32:
      return launch(l2_norms_kernel<float>, blocks, stream, args);
    case HPT_BFLOAT16:
      return launch(l2_norms_kernel<__nv_bfloat16>, blocks, stream, args);
    case HPT_FLOAT16:
      return launch(l2_norms_kernel<__half>, blocks, stream, args);
  }
  return cudaErrorInvalidValue;
}
