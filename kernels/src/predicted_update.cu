// hpt_fused_predicted_update: params[i][j] += offsets[i][j] + scale[group of i] * directions[i][j]
// over any number of tensors in one launch. Entry: out = params, in0 = directions,
// in1 = offsets (or NULL), scale = the tensor's group scale.
#include "elementwise.cuh"
#include "multi_tensor_table.cuh"

namespace hpt::kernels::detail {
namespace {

// fp32: the offset plus the scaled direction as one fma, then one add (no contraction, so
// the host reference gets the same bits); the caller rounds once to the parameter dtype.
__device__ __forceinline__ float predicted_value(float param, float direction, float offset, float scale) {
  return __fadd_rn(param, __fmaf_rn(scale, direction, offset));
}

template <class T>
__global__ void __launch_bounds__(kBlockThreads) predicted_update_kernel(TableView table) {
  for_each_chunk(table, kChunkElems, [&](int64_t, const TensorEntry& e, int64_t begin, int len) {
    T* p = global_ptr(static_cast<T*>(e.out) + begin);
    const float* d = global_ptr(static_cast<const float*>(e.in0) + begin);
    const bool has_offset = e.in1 != nullptr;  // o is only read when it has one
    const float* o = global_ptr(static_cast<const float*>(has_offset ? e.in1 : e.in0) + begin);
    const float s = e.scale;
    int phase = same_phase(vec_phase(p, sizeof(T)), vec_phase(d, sizeof(float)));
    if (has_offset) phase = same_phase(phase, vec_phase(o, sizeof(float)));
    for_each_element<kVecElems>(
        len, vec_head(phase),
        [&](int i) {
          Vec<T> pv = load_vec(p + i);
          const Vec<float> dv = load_vec(d + i);
          Vec<float> ov = {};
          if (has_offset) ov = load_vec(o + i);
#pragma unroll
          for (int j = 0; j < kVecElems; ++j) pv.v[j] = from_f32<T>(predicted_value(to_f32(pv.v[j]), dv.v[j], ov.v[j], s));
          store_vec(p + i, pv);
        },
        [&](int i) { p[i] = from_f32<T>(predicted_value(to_f32(p[i]), d[i], has_offset ? o[i] : 0.0f, s)); });
  });
}

}  // namespace
}  // namespace hpt::kernels::detail

extern "C" cudaError_t hpt_fused_predicted_update(int n_tensors, void* const* params, hpt_dtype param_dtype,
                                                  const float* const* directions, const float* const* offsets,
                                                  const int64_t* numels, const int32_t* groups,
                                                  const float* group_scales, int n_groups, void* workspace,
                                                  size_t workspace_bytes, cudaStream_t stream) {
  using namespace hpt::kernels::detail;
  if (!valid_numels(n_tensors, numels) || !valid_dtype(param_dtype) || !valid_pointers(n_tensors, params, numels) ||
      !valid_pointers(n_tensors, directions, numels) || !valid_groups(n_tensors, groups, n_groups) ||
      (n_groups > 0 && group_scales == nullptr) ||
      !valid_workspace(workspace, workspace_bytes, n_tensors, numels, n_groups)) {
    return cudaErrorInvalidValue;
  }
  std::vector<TensorEntry> entries(static_cast<size_t>(n_tensors));
  for (int i = 0; i < n_tensors; ++i) {
    TensorEntry& e = entries[i];
    e.out = params[i];
    e.in0 = directions[i];
    e.in1 = offsets != nullptr ? offsets[i] : nullptr;
    e.numel = numels[i];
    e.scale = group_scales[groups != nullptr ? groups[i] : 0];
  }
  LaunchPlan plan;
  const cudaError_t err = plan_launch(entries, kChunkElems, workspace, stream, &plan);
  if (err != cudaSuccess || plan.chunks == 0) return err;
  const TableView view = plan.view(n_tensors);
  switch (param_dtype) {
    case HPT_FLOAT32:
      return launch(predicted_update_kernel<float>, plan.blocks, stream, view);
    case HPT_BFLOAT16:
      return launch(predicted_update_kernel<__nv_bfloat16>, plan.blocks, stream, view);
    case HPT_FLOAT16:
      return launch(predicted_update_kernel<__half>, plan.blocks, stream, view);
  }
  return cudaErrorInvalidValue;
}
