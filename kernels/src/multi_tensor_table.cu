// Host side of the multi-tensor table (see multi_tensor_table.cuh): the workspace layout
// and hpt_kernels_workspace_bytes, the shared argument checks, building and uploading the
// table, and the grid size.
#include "multi_tensor_table.cuh"

#include <atomic>
#include <cstring>

namespace hpt::kernels::detail {
namespace {

size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

// Chunks of kChunkElems over the counts, or -1 when the arguments are invalid.
int64_t workspace_chunks(int n_tensors, const int64_t* numels) {
  if (!valid_numels(n_tensors, numels)) return -1;
  int64_t chunks = 0;
  for (int i = 0; i < n_tensors; ++i) chunks += (numels[i] + kChunkElems - 1) / kChunkElems;
  return chunks;
}

}  // namespace

Layout make_layout(int n_tensors, int n_groups, int64_t chunks, bool with_groups) {
  const size_t n = static_cast<size_t>(n_tensors);
  Layout l;
  size_t at = 0;
  l.done_counter = at;
  l.next_chunk = at + 8;
  at += 16;
  l.entries = at;
  at += n * sizeof(TensorEntry);
  l.group_offsets = at;
  if (with_groups) at += (static_cast<size_t>(n_groups) + 1) * sizeof(int32_t);
  l.group_members = at;
  if (with_groups) at += n * sizeof(int32_t);
  at = align_up(at, kWorkspaceAlign);
  l.upload_end = at;
  l.tensor_sums = at;
  at += n * sizeof(double);
  l.chunk_sums = at;
  at += static_cast<size_t>(chunks) * sizeof(float);
  l.total = align_up(at, kWorkspaceAlign);
  return l;
}

bool valid_dtype(hpt_dtype dtype) {
  return dtype == HPT_FLOAT32 || dtype == HPT_BFLOAT16 || dtype == HPT_FLOAT16;
}

bool valid_numels(int n_tensors, const int64_t* numels) {
  if (n_tensors < 0) return false;
  if (n_tensors > 0 && numels == nullptr) return false;
  for (int i = 0; i < n_tensors; ++i) {
    if (numels[i] < 0 || numels[i] > kMaxNumel) return false;
  }
  return true;
}

bool valid_pointers(int n_tensors, const void* const* list, const int64_t* numels) {
  if (n_tensors > 0 && list == nullptr) return false;
  for (int i = 0; i < n_tensors; ++i) {
    if (numels[i] > 0 && list[i] == nullptr) return false;
  }
  return true;
}

bool valid_groups(int n_tensors, const int32_t* groups, int n_groups) {
  if (n_groups < 0) return false;
  if (groups == nullptr) return n_tensors == 0 || n_groups >= 1;
  for (int i = 0; i < n_tensors; ++i) {
    if (groups[i] < 0 || groups[i] >= n_groups) return false;
  }
  return true;
}

bool valid_workspace(const void* workspace, size_t workspace_bytes, int n_tensors, const int64_t* numels,
                     int n_groups) {
  const size_t needed = hpt_kernels_workspace_bytes(n_tensors, numels, n_groups);
  return workspace != nullptr && needed > 0 && workspace_bytes >= needed;
}

int64_t assign_chunks(std::vector<TensorEntry>& entries, int64_t chunk_size) {
  int64_t chunks = 0;
  for (TensorEntry& e : entries) {
    e.first_chunk = chunks;
    chunks += (e.numel + chunk_size - 1) / chunk_size;
  }
  return chunks;
}

cudaError_t upload_table(void* workspace, const std::vector<TensorEntry>& entries, bool with_groups,
                         const int32_t* groups, int n_groups, int64_t chunks, cudaStream_t stream,
                         DeviceTable* table) {
  const int n = static_cast<int>(entries.size());
  const Layout l = make_layout(n, n_groups, chunks, with_groups);
  // The checked workspace size has kWorkspaceAlign - 1 bytes to spare for this.
  auto* base = reinterpret_cast<unsigned char*>(
      align_up(reinterpret_cast<uintptr_t>(workspace), kWorkspaceAlign));

  std::vector<unsigned char> host(l.upload_end, 0);  // both counters start at 0
  if (n > 0) std::memcpy(host.data() + l.entries, entries.data(), entries.size() * sizeof(TensorEntry));
  if (with_groups) {
    // Counting sort of the tensors by group, stable: tensor order within a group.
    std::vector<int32_t> offsets(static_cast<size_t>(n_groups) + 1, 0);
    for (int i = 0; i < n; ++i) ++offsets[static_cast<size_t>(groups ? groups[i] : 0) + 1];
    for (int g = 0; g < n_groups; ++g) offsets[g + 1] += offsets[g];
    std::vector<int32_t> members(static_cast<size_t>(n));
    std::vector<int32_t> next(offsets.begin(), offsets.end() - 1);
    for (int i = 0; i < n; ++i) members[next[groups ? groups[i] : 0]++] = i;
    std::memcpy(host.data() + l.group_offsets, offsets.data(), offsets.size() * sizeof(int32_t));
    if (n > 0) std::memcpy(host.data() + l.group_members, members.data(), members.size() * sizeof(int32_t));
  }
  // Pageable source: the copy is staged before cudaMemcpyAsync returns, so `host` may go.
  const cudaError_t err = cudaMemcpyAsync(base, host.data(), host.size(), cudaMemcpyHostToDevice, stream);
  if (err != cudaSuccess) return err;
  table->done_counter = reinterpret_cast<unsigned int*>(base + l.done_counter);
  table->next_chunk = reinterpret_cast<unsigned long long*>(base + l.next_chunk);
  table->entries = reinterpret_cast<const TensorEntry*>(base + l.entries);
  table->group_offsets = reinterpret_cast<const int32_t*>(base + l.group_offsets);
  table->group_members = reinterpret_cast<const int32_t*>(base + l.group_members);
  table->tensor_sums = reinterpret_cast<double*>(base + l.tensor_sums);
  table->chunk_sums = reinterpret_cast<float*>(base + l.chunk_sums);
  return cudaSuccess;
}

cudaError_t grid_blocks(int64_t chunks, int* blocks) {
  constexpr int kCachedDevices = 64;
  static std::atomic<int> sm_counts[kCachedDevices];  // 0: not queried yet
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  int sms = device >= 0 && device < kCachedDevices ? sm_counts[device].load(std::memory_order_relaxed) : 0;
  if (sms <= 0) {
    err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    if (err != cudaSuccess) return err;
    if (sms <= 0) sms = 1;
    if (device >= 0 && device < kCachedDevices) sm_counts[device].store(sms, std::memory_order_relaxed);
  }
  const int64_t most = 8 * static_cast<int64_t>(sms);
  *blocks = static_cast<int>(chunks < 1 ? 1 : (chunks < most ? chunks : most));
  return cudaSuccess;
}

cudaError_t plan_launch(std::vector<TensorEntry>& entries, int64_t chunk_size, void* workspace, cudaStream_t stream,
                        LaunchPlan* plan) {
  plan->chunks = assign_chunks(entries, chunk_size);
  if (plan->chunks == 0) return cudaSuccess;
  cudaError_t err = grid_blocks(plan->chunks, &plan->blocks);
  if (err != cudaSuccess) return err;
  return upload_table(workspace, entries, false, nullptr, 0, 0, stream, &plan->table);
}

}  // namespace hpt::kernels::detail

extern "C" size_t hpt_kernels_workspace_bytes(int n_tensors, const int64_t* numels, int n_groups) {
  using namespace hpt::kernels::detail;
  const int64_t chunks = workspace_chunks(n_tensors, numels);
  if (chunks < 0 || n_groups < 0) return 0;
  return make_layout(n_tensors, n_groups, chunks, true).total + (kWorkspaceAlign - 1);
}
