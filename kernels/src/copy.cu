// hpt_fused_copy: bytes[i] bytes from src[i] to dst[i] for every tensor in one launch
// (snapshot and restore). 16-byte accesses where dst and src agree modulo 16, 4-byte ones
// where they agree modulo 4, single bytes otherwise. Entry: out = dst, in0 = src, numel = bytes.
#include "elementwise.cuh"
#include "multi_tensor_table.cuh"

namespace hpt::kernels::detail {
namespace {

// (No __launch_bounds__ here: with it, nvcc 13 caps this kernel at 32 registers and spills.)
__global__ void copy_kernel(TableView table) {
  for_each_chunk(table, kCopyChunkBytes, [&](int64_t, const TensorEntry& e, int64_t begin, int len) {
    unsigned char* d = global_ptr(static_cast<unsigned char*>(e.out) + begin);
    const unsigned char* s = global_ptr(static_cast<const unsigned char*>(e.in0) + begin);
    const auto da = reinterpret_cast<uintptr_t>(d);
    const auto sa = reinterpret_cast<uintptr_t>(s);
    auto byte = [&](int i) { d[i] = s[i]; };
    if (((da ^ sa) & 15u) == 0) {
      for_each_element<16>(
          len, static_cast<int>((16u - (da & 15u)) & 15u),
          [&](int i) { *reinterpret_cast<uint4*>(d + i) = *reinterpret_cast<const uint4*>(s + i); }, byte);
    } else if (((da ^ sa) & 3u) == 0) {
      for_each_element<4>(
          len, static_cast<int>((4u - (da & 3u)) & 3u),
          [&](int i) { *reinterpret_cast<uint32_t*>(d + i) = *reinterpret_cast<const uint32_t*>(s + i); }, byte);
    } else {
      for_each_element<1>(len, -1, byte, byte);
    }
  });
}

}  // namespace
}  // namespace hpt::kernels::detail

extern "C" cudaError_t hpt_fused_copy(int n_tensors, void* const* dst, const void* const* src, const int64_t* bytes,
                                      void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  using namespace hpt::kernels::detail;
  if (!valid_numels(n_tensors, bytes) || !valid_pointers(n_tensors, dst, bytes) ||
      !valid_pointers(n_tensors, src, bytes) || !valid_workspace(workspace, workspace_bytes, n_tensors, bytes, 0)) {
    return cudaErrorInvalidValue;
  }
  std::vector<TensorEntry> entries(static_cast<size_t>(n_tensors));
  for (int i = 0; i < n_tensors; ++i) {
    entries[i].out = dst[i];
    entries[i].in0 = src[i];
    entries[i].numel = bytes[i];
  }
  LaunchPlan plan;
  const cudaError_t err = plan_launch(entries, kCopyChunkBytes, workspace, stream, &plan);
  if (err != cudaSuccess || plan.chunks == 0) return err;
  return launch(copy_kernel, plan.blocks, stream, plan.view(n_tensors));
}
