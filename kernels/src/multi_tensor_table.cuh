// The multi-tensor table: what every call uploads into its workspace (one entry per tensor,
// the tensors' chunk offsets, the tensors by group), how the workspace is laid out, the
// argument checks the calls share, and how a block finds the tensor of a chunk.
//
// One call = one cudaMemcpyAsync of the table (from pageable host memory, so the host copy
// may be freed once it returns) + one kernel launch. A chunk is kChunkElems elements
// (kCopyChunkBytes bytes for the copy) of one tensor. The kernel's blocks claim chunks one at
// a time from a counter in the workspace (zeroed by the upload), so a block that starts late or
// shares its SM with other work just claims fewer; a block finds its chunk's tensor by binary
// search over the entries' first chunks. Which block takes which chunk never changes a result.
#ifndef HPT_KERNELS_MULTI_TENSOR_TABLE_CUH
#define HPT_KERNELS_MULTI_TENSOR_TABLE_CUH

#include <cstddef>
#include <cstdint>
#include <vector>

#include <cuda_runtime.h>

#include "chunking.h"
#include "hpt/kernels.h"

namespace hpt::kernels::detail {

// One tensor of a call. out/in0/in1 are the call's pointers for that tensor (see each kernel).
struct alignas(16) TensorEntry {
  void* out;
  const void* in0;
  const void* in1;
  int64_t numel;        // elements (bytes for the copy)
  int64_t first_chunk;  // chunks of the tensors before this one
  float scale;          // the predicted update's group scale
  int32_t unused;
};
static_assert(sizeof(TensorEntry) == 48, "entries are 48 bytes");

// What a kernel gets of the table (by value).
struct TableView {
  const TensorEntry* entries;
  int n_tensors;
  int64_t total_chunks;
  unsigned long long* next_chunk;  // the chunk the next claim gets; 0 at launch
};

// Byte offsets of the workspace's parts from its 16-byte aligned start. The part up to
// upload_end is uploaded by the call (its done-counter as 0); the rest only the kernel writes.
struct Layout {
  size_t done_counter = 0;   // unsigned int: blocks of the l2 kernel that have finished
  size_t next_chunk = 0;     // unsigned long long: the chunk the next claim gets
  size_t entries = 0;        // TensorEntry[n_tensors]
  size_t group_offsets = 0;  // int32[n_groups + 1]: group g's tensors are group_members[offsets[g], offsets[g+1])
  size_t group_members = 0;  // int32[n_tensors]: tensor indices by group, in tensor order within a group
  size_t upload_end = 0;
  size_t tensor_sums = 0;  // double[n_tensors]: the l2 kernel's sums of squares per tensor
  size_t chunk_sums = 0;   // float[chunks]: the l2 kernel's sums of squares per chunk
  size_t total = 0;
};
constexpr size_t kWorkspaceAlign = 16;
Layout make_layout(int n_tensors, int n_groups, int64_t chunks, bool with_groups);

// Device addresses of the parts of one call's workspace.
struct DeviceTable {
  unsigned int* done_counter;
  unsigned long long* next_chunk;
  const TensorEntry* entries;
  const int32_t* group_offsets;
  const int32_t* group_members;
  double* tensor_sums;
  float* chunk_sums;
};

// ---- argument checks (host; nothing touches the device) ----
bool valid_dtype(hpt_dtype dtype);
// n_tensors >= 0, a count list when n_tensors > 0, every count in [0, kMaxNumel].
constexpr int64_t kMaxNumel = INT64_MAX / 16;
bool valid_numels(int n_tensors, const int64_t* numels);
// A list when n_tensors > 0, and a non-null pointer for every tensor that is not empty.
bool valid_pointers(int n_tensors, const void* const* list, const int64_t* numels);
template <class T>
bool valid_pointers(int n_tensors, T* const* list, const int64_t* numels) {
  return valid_pointers(n_tensors, reinterpret_cast<const void* const*>(list), numels);
}
// n_groups >= 0; every listed group in [0, n_groups); groups NULL (all in group 0) needs
// n_groups >= 1 unless there are no tensors.
bool valid_groups(int n_tensors, const int32_t* groups, int n_groups);
// Not NULL and at least hpt_kernels_workspace_bytes(n_tensors, numels, n_groups) bytes.
bool valid_workspace(const void* workspace, size_t workspace_bytes, int n_tensors, const int64_t* numels,
                     int n_groups);

// ---- building and uploading the table (host) ----
// Sets every entry's first_chunk from the counts; returns the total number of chunks.
int64_t assign_chunks(std::vector<TensorEntry>& entries, int64_t chunk_size);
// Uploads the table with one cudaMemcpyAsync on stream: zero counters, the entries and,
// when with_groups, the tensors by group (groups NULL: all in group 0). Sets *table.
cudaError_t upload_table(void* workspace, const std::vector<TensorEntry>& entries, bool with_groups,
                         const int32_t* groups, int n_groups, int64_t chunks, cudaStream_t stream,
                         DeviceTable* table);
// Blocks of a launch over `chunks` chunks: min(chunks, 8 * SMs of the current device), at
// least 1 (blocks beyond what fits on the device at once find the chunks claimed and end).
// The SM count is queried once per device.
cudaError_t grid_blocks(int64_t chunks, int* blocks);

// What every elementwise kernel does before its launch: the chunks of `entries`, the grid
// over them, and their table uploaded into `workspace`. plan->chunks == 0: nothing to do
// (nothing was uploaded).
struct LaunchPlan {
  int64_t chunks = 0;
  int blocks = 0;
  DeviceTable table{};
  TableView view(int n_tensors) const { return {table.entries, n_tensors, chunks, table.next_chunk}; }
};
cudaError_t plan_launch(std::vector<TensorEntry>& entries, int64_t chunk_size, void* workspace, cudaStream_t stream,
                        LaunchPlan* plan);

// One launch of kernel(arg) with kBlockThreads threads per block; returns its launch error.
template <class Arg>
cudaError_t launch(void (*kernel)(Arg), int blocks, cudaStream_t stream, Arg arg) {
  void* args[] = {&arg};
  return cudaLaunchKernel(reinterpret_cast<const void*>(kernel), dim3(static_cast<unsigned>(blocks)),
                          dim3(kBlockThreads), args, 0, stream);
}

// ---- device side ----
// The tensor that holds `chunk`: the last entry whose first chunk is <= chunk (empty tensors
// own no chunk, so it is never an empty one). `from` is an entry at or before it (chunks only
// grow along a block's walk).
__device__ __forceinline__ int find_tensor(const TableView& table, int64_t chunk, int from) {
  int lo = from, hi = table.n_tensors;  // entries[lo].first_chunk <= chunk < entries[hi].first_chunk
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    if (table.entries[mid].first_chunk <= chunk) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// Calls body(chunk, entry, begin, len) for every chunk this block claims (in increasing chunk
// order): elements [begin, begin + len) of the entry's tensor, len <= chunk_size. Every thread
// of the block calls it.
template <class Body>
__device__ __forceinline__ void for_each_chunk(const TableView& table, int64_t chunk_size, Body&& body) {
  __shared__ unsigned long long claimed;
  int tensor = 0;
  for (;;) {
    if (threadIdx.x == 0) claimed = atomicAdd(table.next_chunk, 1ull);
    __syncthreads();
    const auto chunk = static_cast<int64_t>(claimed);
    __syncthreads();  // all have read `claimed` before thread 0 claims again
    if (chunk >= table.total_chunks) return;
    tensor = find_tensor(table, chunk, tensor);
    const TensorEntry entry = table.entries[tensor];
    const int64_t begin = (chunk - entry.first_chunk) * chunk_size;
    const int64_t left = entry.numel - begin;
    body(chunk, entry, begin, static_cast<int>(left < chunk_size ? left : chunk_size));
  }
}

}  // namespace hpt::kernels::detail

#endif  // HPT_KERNELS_MULTI_TENSOR_TABLE_CUH
