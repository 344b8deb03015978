// hpt_fused_weight_average: averages[i][j] = decay * averages[i][j] + (1 - decay) * params[i][j]
// (fp32 averages, params of any dtype) over any number of tensors in one launch; decay 0
// copies the params without reading the averages. Entry: out = averages, in0 = params.
#include "elementwise.cuh"
#include "multi_tensor_table.cuh"

namespace hpt::kernels::detail {
namespace {

struct AverageArgs {
  TableView table;
  float decay;
  float keep;  // 1 - decay, rounded once on the host
};

// fma(decay, average, keep * param): the host reference computes the same bits.
__device__ __forceinline__ float averaged_value(float average, float param, float decay, float keep) {
  return __fmaf_rn(decay, average, __fmul_rn(keep, param));
}

template <class T>
__global__ void __launch_bounds__(kBlockThreads) weight_average_kernel(AverageArgs args) {
  const float decay = args.decay;
  const float keep = args.keep;
  const bool copy = decay == 0.0f;
  for_each_chunk(args.table, kChunkElems, [&](int64_t, const TensorEntry& e, int64_t begin, int len) {
    float* a = global_ptr(static_cast<float*>(e.out) + begin);
    const T* p = global_ptr(static_cast<const T*>(e.in0) + begin);
    const int phase = same_phase(vec_phase(a, sizeof(float)), vec_phase(p, sizeof(T)));
    for_each_element<kVecElems>(
        len, vec_head(phase),
        [&](int i) {
          const Vec<T> pv = load_vec(p + i);
          Vec<float> av = {};
          if (!copy) av = load_vec(a + i);
#pragma unroll
          for (int j = 0; j < kVecElems; ++j) {
            av.v[j] = copy ? to_f32(pv.v[j]) : averaged_value(av.v[j], to_f32(pv.v[j]), decay, keep);
          }
          store_vec(a + i, av);
        },
        [&](int i) { a[i] = copy ? to_f32(p[i]) : averaged_value(a[i], to_f32(p[i]), decay, keep); });
  });
}

}  // namespace
}  // namespace hpt::kernels::detail

extern "C" cudaError_t hpt_fused_weight_average(int n_tensors, float* const* averages, const void* const* params,
                                                hpt_dtype param_dtype, const int64_t* numels, float decay,
                                                void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  using namespace hpt::kernels::detail;
  if (!valid_numels(n_tensors, numels) || !valid_dtype(param_dtype) || !valid_pointers(n_tensors, averages, numels) ||
      !valid_pointers(n_tensors, params, numels) || !valid_workspace(workspace, workspace_bytes, n_tensors, numels, 0)) {
    return cudaErrorInvalidValue;
  }
  std::vector<TensorEntry> entries(static_cast<size_t>(n_tensors));
  for (int i = 0; i < n_tensors; ++i) {
    entries[i].out = averages[i];
    entries[i].in0 = params[i];
    entries[i].numel = numels[i];
  }
  LaunchPlan plan;
  const cudaError_t err = plan_launch(entries, kChunkElems, workspace, stream, &plan);
  if (err != cudaSuccess || plan.chunks == 0) return err;
  const AverageArgs args{plan.view(n_tensors), decay, 1.0f - decay};
  switch (param_dtype) {
    case HPT_FLOAT32:
      return launch(weight_average_kernel<float>, plan.blocks, stream, args);
    case HPT_BFLOAT16:
      return launch(weight_average_kernel<__nv_bfloat16>, plan.blocks, stream, args);
    case HPT_FLOAT16:
      return launch(weight_average_kernel<__half>, plan.blocks, stream, args);
  }
  return cudaErrorInvalidValue;
}
