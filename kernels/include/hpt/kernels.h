/* hpt kernels: multi-tensor CUDA kernels behind a plain C API.
 *
 * Raw device pointers, element counts and a cudaStream_t; no LibTorch types, so the
 * kernels can be reused and tested without the host (kernels/tests) and called by any
 * backend (plugins/backend_cuda).
 *
 * Every function:
 *  - works on `n_tensors` tensors at once with one kernel launch (a pointer table in
 *    `workspace`, uploaded with one cudaMemcpyAsync on `stream`, the way multi-tensor-apply
 *    does it) and returns at once; the work is queued on `stream`;
 *  - reads the host arrays it is given (pointer lists, element counts, groups, scales)
 *    before it returns, so they may be freed right after;
 *  - needs `workspace`: device memory (any alignment) of at least
 *    hpt_kernels_workspace_bytes(n_tensors, numels, n_groups) bytes (n_groups 0 for the weight
 *    average and the copy), not used by other work on other streams until this call's work is done;
 *  - returns cudaSuccess, cudaErrorInvalidValue for bad arguments (checked before anything
 *    is queued), or the error of the copy or launch; with nothing to do (no tensors, or only
 *    empty ones, and no group norms) it returns cudaSuccess and queues nothing.
 * Threading: the functions keep no state; calls on different streams with different
 * workspaces may run concurrently from any thread.
 * Element counts may be 0 (an empty tensor's pointers may then be NULL); tensors must be
 * contiguous, in device (or managed or mapped) memory, aligned to their element size, and
 * an output must not overlap another tensor of the call. Every float32 argument that is not a
 * parameter (directions, offsets, averages) is float32 whatever the parameters' dtype: the
 * dynamics model always works in fp32.
 */
#ifndef HPT_KERNELS_H
#define HPT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HPT_KERNELS_API_VERSION 1

typedef enum hpt_dtype {
  HPT_FLOAT32 = 0,
  HPT_BFLOAT16 = 1,
  HPT_FLOAT16 = 2
} hpt_dtype;

/* Device workspace bytes any of the calls below needs over these n_tensors tensors
 * (numels: their element counts; for hpt_fused_copy, their byte counts) in n_groups groups;
 * 0 when the arguments are invalid (n_tensors < 0, no numels, a negative count, n_groups < 0). */
size_t hpt_kernels_workspace_bytes(int n_tensors, const int64_t* numels, int n_groups);

/* The predicted update: for every tensor i and element j,
 *   params[i][j] += offsets[i][j] + group_scales[groups[i]] * directions[i][j]
 * computed in fp32 and rounded once to the parameters' dtype.
 * offsets: NULL, or a list whose entries may be NULL (no offset for that tensor).
 * groups: NULL puts every tensor in group 0; each in [0, n_groups). group_scales: a host
 * array of n_groups. */
cudaError_t hpt_fused_predicted_update(int n_tensors, void* const* params, hpt_dtype param_dtype,
                                       const float* const* directions, const float* const* offsets,
                                       const int64_t* numels, const int32_t* groups,
                                       const float* group_scales, int n_groups, void* workspace,
                                       size_t workspace_bytes, cudaStream_t stream);

/* L2 norms: out_norms[i] = ||tensors[i]||_2 (device array of n_tensors floats) and, when
 * out_group_norms is not NULL, out_group_norms[g] = sqrt(sum of squares over the tensors of
 * group g) (device array of n_groups floats, 0 for a group without elements; groups NULL puts
 * every tensor in group 0; each group in [0, n_groups)).
 * Squares are summed in fp32 within fixed chunks and the chunks in fp64 in a fixed order:
 * the same input gives the same bits, run after run (and on any GPU). */
cudaError_t hpt_fused_l2_norms(int n_tensors, const void* const* tensors, hpt_dtype dtype,
                               const int64_t* numels, const int32_t* groups, int n_groups,
                               float* out_norms, float* out_group_norms, void* workspace,
                               size_t workspace_bytes, cudaStream_t stream);

/* Weight averaging: averages[i][j] = decay * averages[i][j] + (1 - decay) * params[i][j]
 * (EMA; decay 0 copies, without reading the averages, which may then be uninitialised).
 * averages are fp32, params of param_dtype. */
cudaError_t hpt_fused_weight_average(int n_tensors, float* const* averages, const void* const* params,
                                     hpt_dtype param_dtype, const int64_t* numels, float decay,
                                     void* workspace, size_t workspace_bytes, cudaStream_t stream);

/* Copies bytes[i] bytes from src[i] to dst[i] for every i (snapshot and restore); any byte
 * alignment; src and dst must not overlap. */
cudaError_t hpt_fused_copy(int n_tensors, void* const* dst, const void* const* src, const int64_t* bytes,
                           void* workspace, size_t workspace_bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* HPT_KERNELS_H */
