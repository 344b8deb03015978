// kernels_test: the kernels of hpt/kernels.h against the host reference (kernels/reference).
//
// Three kinds of tests:
//  - Reference.*: the reference against hand-computed values (no GPU);
//  - Api.* and ArgumentChecks.*: hpt_kernels_workspace_bytes and the argument checks, which
//    fail before anything touches the device (no GPU);
//  - Gpu.* / GpuDtype.*: every kernel on the device against the reference, several tensors of
//    awkward sizes (0, 1, 3, 65537, millions) and alignments, guard elements around every
//    output; they GTEST_SKIP when there is no usable GPU.
// Tolerances: fp32 results must be bit-identical to the reference (both do the same fp32
// operations with the same fmas); bf16/fp16 results within one rounding step (one ulp of
// the dtype; they should in fact be identical too); the l2 norms within 1e-5 relative and,
// as the summation order is the same, bit-identical.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime_api.h>

#include "hpt/kernels.h"
#include "reference.hpp"

namespace ref = hpt::kernels::reference;

namespace {

constexpr int64_t kChunk = 65536;  // the kernels' chunk (kernels/src/chunking.h)
constexpr int kGuard = 8;          // elements after every tensor that no kernel may touch

// Why the GPU tests cannot run here, or "" when they can.
std::string gpu_unavailable() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    return std::string("no usable CUDA device: cudaGetDeviceCount: ") + cudaGetErrorName(err) + ": " +
           cudaGetErrorString(err);
  }
  if (count == 0) return "no CUDA device";
  return "";
}
bool have_gpu() {
  static const bool have = gpu_unavailable().empty();
  return have;
}

void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// Device memory, freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) {
    if (bytes > 0) cuda_check(cudaMalloc(&ptr_, bytes), "cudaMalloc");
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  unsigned char* get() const { return static_cast<unsigned char*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

// One tensor as a host image [offset elements][numel elements][kGuard elements] and, on a
// GPU, the same image on the device. The offset makes the data unaligned; the padding is
// filled with a pattern no kernel may change.
struct Tensor {
  hpt_dtype dtype = HPT_FLOAT32;
  int64_t numel = 0;
  int offset = 0;
  std::vector<unsigned char> host;
  DeviceBuffer device;

  size_t elem() const { return ref::dtype_bytes(dtype); }
  size_t data_begin() const { return static_cast<size_t>(offset) * elem(); }
  size_t data_bytes() const { return static_cast<size_t>(numel) * elem(); }
  void* host_data() { return host.data() + data_begin(); }
  void* device_data() const { return device.get() + data_begin(); }
  void upload() {
    device = DeviceBuffer(host.size());
    cuda_check(cudaMemcpy(device.get(), host.data(), host.size(), cudaMemcpyHostToDevice), "upload");
  }
  std::vector<unsigned char> download() const {
    std::vector<unsigned char> out(host.size());
    cuda_check(cudaMemcpy(out.data(), device.get(), out.size(), cudaMemcpyDeviceToHost), "download");
    return out;
  }
};

Tensor make_tensor(hpt_dtype dtype, int64_t numel, int offset, std::mt19937& rng, float lo, float hi) {
  Tensor t;
  t.dtype = dtype;
  t.numel = numel;
  t.offset = offset;
  t.host.assign(static_cast<size_t>(offset + numel + kGuard) * t.elem(), 0xA5);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t j = 0; j < numel; ++j) ref::store_element(t.host_data(), dtype, j, dist(rng));
  return t;
}

// Bytes as an image of `dtype` elements: ULPs apart of two elements (sign-magnitude order).
int64_t ulps_apart(const unsigned char* a, const unsigned char* b, hpt_dtype dtype) {
  auto ordered = [dtype](const unsigned char* p) -> int64_t {
    if (dtype == HPT_FLOAT32) {
      uint32_t u;
      std::memcpy(&u, p, 4);
      return (u & 0x80000000u) ? -static_cast<int64_t>(u & 0x7fffffffu) : static_cast<int64_t>(u);
    }
    uint16_t u;
    std::memcpy(&u, p, 2);
    return (u & 0x8000u) ? -static_cast<int64_t>(u & 0x7fffu) : static_cast<int64_t>(u);
  };
  const int64_t d = ordered(a) - ordered(b);
  return d < 0 ? -d : d;
}

// The device image of t against the reference's host image: data within max_ulps, the
// padding before and after untouched.
void expect_image(const Tensor& t, const std::vector<unsigned char>& device, int64_t max_ulps, const std::string& what) {
  ASSERT_EQ(device.size(), t.host.size());
  const size_t begin = t.data_begin();
  const size_t end = begin + t.data_bytes();
  EXPECT_EQ(0, std::memcmp(device.data(), t.host.data(), begin)) << what << ": the padding before was written";
  EXPECT_EQ(0, std::memcmp(device.data() + end, t.host.data() + end, t.host.size() - end))
      << what << ": the guard after was written";
  int64_t bad = 0;
  for (int64_t j = 0; j < t.numel; ++j) {
    const size_t at = begin + static_cast<size_t>(j) * t.elem();
    const int64_t ulps = ulps_apart(device.data() + at, t.host.data() + at, t.dtype);
    if (ulps > max_ulps && ++bad <= 5) {
      ADD_FAILURE() << what << ": element " << j << " of " << t.numel << ": device "
                    << ref::load_element(device.data() + begin, t.dtype, j) << ", reference "
                    << ref::load_element(t.host.data() + begin, t.dtype, j) << " (" << ulps << " ulps apart, at most "
                    << max_ulps << ")";
    }
  }
  EXPECT_EQ(bad, 0) << what << ": elements off";
}

std::string dtype_name(hpt_dtype d) {
  switch (d) {
    case HPT_FLOAT32:
      return "F32";
    case HPT_BFLOAT16:
      return "BF16";
    case HPT_FLOAT16:
      return "F16";
  }
  return "Unknown";
}

uint32_t float_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

// ======================= Reference: hand-computed values (no GPU) =======================

TEST(Reference, ConvertsBf16AndFp16ToNearestEven) {
  EXPECT_EQ(ref::float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(ref::bf16_to_float(0x4040), 3.0f);
  EXPECT_EQ(ref::float_to_bf16(1.0f + 0x1p-8f), 0x3F80);      // half an ulp: tie, to even
  EXPECT_EQ(ref::float_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82);  // 1.5 ulps: tie, to even
  EXPECT_EQ(ref::float_to_bf16(1.0f + 0x1p-8f + 0x1p-12f), 0x3F81);
  EXPECT_EQ(ref::float_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(ref::fp16_to_float(0x4200), 3.0f);
  EXPECT_EQ(ref::float_to_fp16(1.0f + 0x1p-11f), 0x3C00);
  EXPECT_EQ(ref::float_to_fp16(1.0f + 3 * 0x1p-11f), 0x3C02);
  EXPECT_EQ(ref::float_to_fp16(65504.0f), 0x7BFF);
}

TEST(Reference, PredictedUpdateFp32) {
  std::vector<float> p0 = {1, 2, 3}, d0 = {1, -1, 0.5f}, o0 = {0.25f, 0, -1};
  std::vector<float> p1 = {4}, d1 = {2};
  void* params[] = {p0.data(), p1.data(), nullptr};
  const float* dirs[] = {d0.data(), d1.data(), nullptr};
  const float* offs[] = {o0.data(), nullptr, nullptr};
  const int64_t numels[] = {3, 1, 0};
  const int32_t groups[] = {0, 1, 1};
  const float scales[] = {2.0f, -0.5f};
  ref::predicted_update(3, params, HPT_FLOAT32, dirs, offs, numels, groups, scales, 2);
  EXPECT_EQ(p0, (std::vector<float>{3.25f, 0.0f, 3.0f}));  // 1+.25+2, 2+0-2, 3-1+1
  EXPECT_EQ(p1, (std::vector<float>{3.0f}));                // 4 - 0.5 * 2

  // No offsets at all, every tensor in group 0.
  std::vector<float> p2 = {10, -10};
  std::vector<float> d2 = {1, 3};
  void* params2[] = {p2.data()};
  const float* dirs2[] = {d2.data()};
  const int64_t numels2[] = {2};
  const float scale2[] = {0.5f};
  ref::predicted_update(1, params2, HPT_FLOAT32, dirs2, nullptr, numels2, nullptr, scale2, 1);
  EXPECT_EQ(p2, (std::vector<float>{10.5f, -8.5f}));
}

TEST(Reference, PredictedUpdateRoundsOnceToBf16AndFp16) {
  // delta = offset + scale * direction in fp32, then param + delta rounded once: just over
  // half an ulp rounds up (adding offset and direction one rounding at a time would not).
  const float offset = 0x1p-9f + 0x1p-10f;  // bf16 ulp at 1 is 2^-7: delta = 2^-8 + 2^-10
  const float direction = 0x1p-9f;
  const float scale = 1.0f;
  uint16_t bf = ref::float_to_bf16(1.0f);
  void* params[] = {&bf};
  const float* dirs[] = {&direction};
  const float* offs[] = {&offset};
  const int64_t numels[] = {1};
  ref::predicted_update(1, params, HPT_BFLOAT16, dirs, offs, numels, nullptr, &scale, 1);
  EXPECT_EQ(bf, 0x3F81);  // 1 + 2^-7

  const float offset16 = 0x1p-12f + 0x1p-13f;  // fp16 ulp at 1 is 2^-10: delta = 2^-11 + 2^-13
  const float direction16 = 0x1p-12f;
  uint16_t h = ref::float_to_fp16(1.0f);
  void* params16[] = {&h};
  const float* dirs16[] = {&direction16};
  const float* offs16[] = {&offset16};
  ref::predicted_update(1, params16, HPT_FLOAT16, dirs16, offs16, numels, nullptr, &scale, 1);
  EXPECT_EQ(h, 0x3C01);  // 1 + 2^-10
}

TEST(Reference, L2NormsPerTensorAndGroup) {
  const std::vector<float> a = {3, 4}, b = {12};
  const void* tensors[] = {a.data(), nullptr, b.data()};
  const int64_t numels[] = {2, 0, 1};
  const int32_t groups[] = {0, 1, 0};
  float norms[3] = {-1, -1, -1};
  float group_norms[3] = {-1, -1, -1};
  ref::l2_norms(3, tensors, HPT_FLOAT32, numels, groups, 3, norms, group_norms);
  EXPECT_EQ(norms[0], 5.0f);
  EXPECT_EQ(norms[1], 0.0f);
  EXPECT_EQ(norms[2], 12.0f);
  EXPECT_EQ(group_norms[0], 13.0f);  // sqrt(25 + 144)
  EXPECT_EQ(group_norms[1], 0.0f);   // only the empty tensor
  EXPECT_EQ(group_norms[2], 0.0f);   // no tensor

  // bf16 and fp16 values are squared in fp32; groups NULL puts all in group 0.
  const uint16_t bf[] = {ref::float_to_bf16(3), ref::float_to_bf16(4)};
  const uint16_t hf[] = {ref::float_to_fp16(-6), ref::float_to_fp16(8)};
  const void* halves[] = {bf, hf};
  const int64_t two[] = {2, 2};
  float out[2] = {};
  ref::l2_norms(1, halves, HPT_BFLOAT16, two, nullptr, 0, out, nullptr);
  EXPECT_EQ(out[0], 5.0f);
  float group = -1;
  ref::l2_norms(1, halves + 1, HPT_FLOAT16, two, nullptr, 1, out, &group);
  EXPECT_EQ(out[0], 10.0f);
  EXPECT_EQ(group, 10.0f);
}

TEST(Reference, L2NormsOverSeveralChunks) {
  // 2 chunks and 5 elements of ones: every chunk sum is exact, the norm is sqrt(131077).
  const std::vector<float> ones(static_cast<size_t>(2 * kChunk + 5), 1.0f);
  const void* tensors[] = {ones.data()};
  const int64_t numels[] = {static_cast<int64_t>(ones.size())};
  float norm = 0;
  ref::l2_norms(1, tensors, HPT_FLOAT32, numels, nullptr, 0, &norm, nullptr);
  EXPECT_EQ(norm, static_cast<float>(std::sqrt(131077.0)));
}

TEST(Reference, L2ChunkSumFollowsTheKernelOrder) {
  // Elements 0-3 go to thread 0, 4-7 to thread 1: 2^24 + (1 + 1 + 1 + 1) is exact, whereas
  // adding the ones one by one to 2^24 would lose every one of them (ties to even).
  const std::vector<float> x = {4096, 0, 0, 0, 1, 1, 1, 1};
  EXPECT_EQ(ref::chunk_sum_of_squares(x.data(), HPT_FLOAT32, 0, 8), 16777220.0f);
  float sequential = 0;
  for (float v : x) sequential += v * v;
  EXPECT_EQ(sequential, 16777216.0f);
  // Thread 0 also takes elements 1024-1027 (the next round of 256 threads x 4).
  std::vector<float> y(1025, 0.0f);
  y[0] = 4096;
  y[1024] = 1;
  EXPECT_EQ(ref::chunk_sum_of_squares(y.data(), HPT_FLOAT32, 0, 1025), 16777216.0f);
}

TEST(Reference, WeightAverage) {
  std::vector<float> avg = {1, 2};
  const std::vector<float> p = {3, 4};
  float* averages[] = {avg.data()};
  const void* params[] = {p.data()};
  const int64_t numels[] = {2};
  ref::weight_average(1, averages, params, HPT_FLOAT32, numels, 0.5f);
  EXPECT_EQ(avg, (std::vector<float>{2, 3}));
  ref::weight_average(1, averages, params, HPT_FLOAT32, numels, 0.75f);
  EXPECT_EQ(avg, (std::vector<float>{2.25f, 3.25f}));  // .75 * 2 + .25 * 3, .75 * 3 + .25 * 4

  // decay 0 copies without reading the averages (NaN stays out).
  avg = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()};
  const uint16_t bf[] = {ref::float_to_bf16(3), ref::float_to_bf16(-4)};
  const void* bf_params[] = {bf};
  ref::weight_average(1, averages, bf_params, HPT_BFLOAT16, numels, 0.0f);
  EXPECT_EQ(avg, (std::vector<float>{3, -4}));
}

TEST(Reference, CopyAndBadArguments) {
  const char src[] = "snapshot";
  char dst[9] = {};
  void* dsts[] = {dst, nullptr};
  const void* srcs[] = {src, nullptr};
  const int64_t bytes[] = {9, 0};
  ref::copy(2, dsts, srcs, bytes);
  EXPECT_STREQ(dst, "snapshot");

  const int64_t negative[] = {-1};
  EXPECT_THROW(ref::copy(1, dsts, srcs, negative), std::invalid_argument);
  float x = 1, d = 1, s = 1;
  void* params[] = {&x};
  const float* dirs[] = {&d};
  const int64_t one[] = {1};
  const int32_t bad_group[] = {1};
  EXPECT_THROW(ref::predicted_update(1, params, HPT_FLOAT32, dirs, nullptr, one, bad_group, &s, 1),
               std::invalid_argument);
  EXPECT_THROW(ref::predicted_update(1, params, static_cast<hpt_dtype>(7), dirs, nullptr, one, nullptr, &s, 1),
               std::invalid_argument);
}

// ======================= Api: no device needed =======================

TEST(Api, WorkspaceBytes) {
  const size_t none = hpt_kernels_workspace_bytes(0, nullptr, 0);
  EXPECT_GT(none, 0u);
  const int64_t small[] = {1, 2, 3};
  const int64_t one_chunk[] = {kChunk};
  const int64_t two_chunks[] = {kChunk + 1};
  EXPECT_GT(hpt_kernels_workspace_bytes(3, small, 0), none);
  EXPECT_GE(hpt_kernels_workspace_bytes(3, small, 4), hpt_kernels_workspace_bytes(3, small, 0));
  EXPECT_GT(hpt_kernels_workspace_bytes(1, two_chunks, 1), hpt_kernels_workspace_bytes(1, one_chunk, 1) - 1);
  const int64_t big[] = {int64_t{1} << 34};  // the per-chunk sums grow with the elements
  EXPECT_GT(hpt_kernels_workspace_bytes(1, big, 1), (size_t{1} << 34) / kChunk * sizeof(float));
  // Invalid arguments: 0.
  const int64_t negative[] = {-1};
  EXPECT_EQ(hpt_kernels_workspace_bytes(-1, nullptr, 0), 0u);
  EXPECT_EQ(hpt_kernels_workspace_bytes(1, nullptr, 0), 0u);
  EXPECT_EQ(hpt_kernels_workspace_bytes(1, negative, 0), 0u);
  EXPECT_EQ(hpt_kernels_workspace_bytes(3, small, -1), 0u);
}

// Bad arguments give cudaErrorInvalidValue before anything touches the device. Without a GPU
// the pointers are stand-ins that are never dereferenced, and the valid baseline is checked to
// fail differently (no device), so each case below tests exactly its one bad argument.
class ArgumentChecks : public ::testing::Test {
 protected:
  void SetUp() override {
    if (have_gpu()) {
      buffer_ = DeviceBuffer(1 << 16);
      dev_ = buffer_.get();
    } else {
      dev_ = reinterpret_cast<unsigned char*>(uintptr_t{1} << 40);  // never dereferenced
    }
  }
  void expect_baseline_valid(const std::function<cudaError_t()>& call) {
    if (have_gpu()) return;  // (the stand-in pointers must not reach a device)
    const cudaError_t err = call();
    EXPECT_NE(err, cudaErrorInvalidValue) << "the valid baseline was rejected";
    EXPECT_NE(err, cudaSuccess) << "no device, yet the call succeeded";
  }
  DeviceBuffer buffer_;
  unsigned char* dev_ = nullptr;
};

TEST_F(ArgumentChecks, PredictedUpdate) {
  struct Args {
    int n = 2;
    std::vector<void*> params;
    hpt_dtype dtype = HPT_FLOAT32;
    std::vector<const float*> dirs;
    const float* const* offsets = nullptr;
    std::vector<int64_t> numels = {5, 0};
    std::vector<int32_t> groups = {0, 1};
    const int32_t* groups_ptr = nullptr;
    std::vector<float> scales = {1.0f, 2.0f};
    const float* scales_ptr = nullptr;
    int n_groups = 2;
    void* ws = nullptr;
    size_t ws_bytes = 0;
  };
  auto base = [&] {
    Args a;
    a.params = {dev_, nullptr};  // an empty tensor may have no pointer
    a.dirs = {reinterpret_cast<const float*>(dev_ + 1024), nullptr};
    a.groups_ptr = a.groups.data();
    a.scales_ptr = a.scales.data();
    a.ws = dev_ + 4096;
    a.ws_bytes = hpt_kernels_workspace_bytes(2, a.numels.data(), 2);
    return a;
  };
  auto call = [](Args& a) {
    return hpt_fused_predicted_update(a.n, a.params.empty() ? nullptr : a.params.data(), a.dtype,
                                      a.dirs.empty() ? nullptr : a.dirs.data(), a.offsets, a.numels.data(),
                                      a.groups_ptr, a.scales_ptr, a.n_groups, a.ws, a.ws_bytes, nullptr);
  };
  const std::vector<std::pair<const char*, std::function<void(Args&)>>> cases = {
      {"n_tensors < 0", [](Args& a) { a.n = -1; }},
      {"negative count", [](Args& a) { a.numels[1] = -1; }},
      {"no params list", [](Args& a) { a.params.clear(); }},
      {"NULL param of a non-empty tensor", [](Args& a) { a.params[0] = nullptr; }},
      {"no directions list", [](Args& a) { a.dirs.clear(); }},
      {"NULL direction of a non-empty tensor", [](Args& a) { a.dirs[0] = nullptr; }},
      {"bad dtype", [](Args& a) { a.dtype = static_cast<hpt_dtype>(3); }},
      {"group == n_groups", [](Args& a) { a.groups[1] = 2; }},
      {"negative group", [](Args& a) { a.groups[0] = -1; }},
      {"groups NULL without group 0", [](Args& a) { a.groups_ptr = nullptr;
         a.n_groups = 0; }},
      {"n_groups < 0", [](Args& a) { a.n_groups = -1; }},
      {"no group scales", [](Args& a) { a.scales_ptr = nullptr; }},
      {"no workspace", [](Args& a) { a.ws = nullptr; }},
      {"workspace one byte short", [](Args& a) { --a.ws_bytes; }},
  };
  {
    Args a = base();
    expect_baseline_valid([&] { return call(a); });
  }
  for (const auto& [what, mutate] : cases) {
    Args a = base();
    mutate(a);
    EXPECT_EQ(call(a), cudaErrorInvalidValue) << what;
  }
  // No counts list is fine only for no tensors.
  Args none = base();
  none.n = 0;
  EXPECT_EQ(hpt_fused_predicted_update(0, nullptr, HPT_FLOAT32, nullptr, nullptr, nullptr, nullptr, nullptr, 0,
                                       none.ws, hpt_kernels_workspace_bytes(0, nullptr, 0), nullptr),
            cudaSuccess);
  EXPECT_EQ(hpt_fused_predicted_update(2, none.params.data(), HPT_FLOAT32, none.dirs.data(), nullptr, nullptr,
                                       nullptr, none.scales.data(), 1, none.ws, none.ws_bytes, nullptr),
            cudaErrorInvalidValue);
}

TEST_F(ArgumentChecks, L2Norms) {
  const int64_t numels[] = {5, 0, 3};
  const void* tensors[] = {dev_, nullptr, dev_ + 64};
  const int32_t groups[] = {0, 1, 1};
  const int32_t bad_groups[] = {0, 2, 1};
  float* out = reinterpret_cast<float*>(dev_ + 1024);
  float* gout = reinterpret_cast<float*>(dev_ + 2048);
  void* ws = dev_ + 4096;
  const size_t bytes = hpt_kernels_workspace_bytes(3, numels, 2);
  auto call = [&](int n, const void* const* t, hpt_dtype d, const int64_t* c, const int32_t* g, int ng, float* o,
                  float* go, void* w, size_t wb) { return hpt_fused_l2_norms(n, t, d, c, g, ng, o, go, w, wb, nullptr); };
  expect_baseline_valid([&] { return call(3, tensors, HPT_FLOAT32, numels, groups, 2, out, gout, ws, bytes); });
  EXPECT_EQ(call(-1, tensors, HPT_FLOAT32, numels, groups, 2, out, gout, ws, bytes), cudaErrorInvalidValue);
  EXPECT_EQ(call(3, nullptr, HPT_FLOAT32, numels, groups, 2, out, gout, ws, bytes), cudaErrorInvalidValue);
  EXPECT_EQ(call(3, tensors, HPT_FLOAT32, nullptr, groups, 2, out, gout, ws, bytes), cudaErrorInvalidValue);
  EXPECT_EQ(call(3, tensors, static_cast<hpt_dtype>(-1), numels, groups, 2, out, gout, ws, bytes),
            cudaErrorInvalidValue);
  EXPECT_EQ(call(3, tensors, HPT_FLOAT32, numels, bad_groups, 2, out, gout, ws, bytes), cudaErrorInvalidValue)
      << "group out of range";
  EXPECT_EQ(call(3, tensors, HPT_FLOAT32, numels, nullptr, 0, out, gout, ws, bytes), cudaErrorInvalidValue)
      << "group norms of all-in-group-0 without a group 0";
  EXPECT_EQ(call(3, tensors, HPT_FLOAT32, numels, groups, -1, out, nullptr, ws, bytes), cudaErrorInvalidValue);
  EXPECT_EQ(call(3, tensors, HPT_FLOAT32, numels, groups, 2, nullptr, gout, ws, bytes), cudaErrorInvalidValue)
      << "no out_norms";
  EXPECT_EQ(call(3, tensors, HPT_FLOAT32, numels, groups, 2, out, gout, nullptr, bytes), cudaErrorInvalidValue);
  EXPECT_EQ(call(3, tensors, HPT_FLOAT32, numels, groups, 2, out, gout, ws, bytes - 1), cudaErrorInvalidValue);
}

TEST_F(ArgumentChecks, WeightAverageAndCopy) {
  const int64_t numels[] = {5, 0};
  float* averages[] = {reinterpret_cast<float*>(dev_), nullptr};
  float* null_average[] = {nullptr, nullptr};
  const void* params[] = {dev_ + 1024, nullptr};
  void* ws = dev_ + 4096;
  const size_t bytes = hpt_kernels_workspace_bytes(2, numels, 0);
  expect_baseline_valid([&] { return hpt_fused_weight_average(2, averages, params, HPT_BFLOAT16, numels, 0.9f, ws, bytes, nullptr); });
  EXPECT_EQ(hpt_fused_weight_average(-1, averages, params, HPT_FLOAT32, numels, 0.9f, ws, bytes, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(hpt_fused_weight_average(2, nullptr, params, HPT_FLOAT32, numels, 0.9f, ws, bytes, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(hpt_fused_weight_average(2, null_average, params, HPT_FLOAT32, numels, 0.9f, ws, bytes, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(hpt_fused_weight_average(2, averages, nullptr, HPT_FLOAT32, numels, 0.9f, ws, bytes, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(hpt_fused_weight_average(2, averages, params, static_cast<hpt_dtype>(3), numels, 0.9f, ws, bytes, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(hpt_fused_weight_average(2, averages, params, HPT_FLOAT32, numels, 0.9f, ws, bytes - 1, nullptr),
            cudaErrorInvalidValue);

  const int64_t sizes[] = {7, 0};
  const int64_t negative[] = {7, -2};
  void* dst[] = {dev_, nullptr};
  const void* src[] = {dev_ + 1024, nullptr};
  const void* null_src[] = {nullptr, nullptr};
  const size_t copy_bytes = hpt_kernels_workspace_bytes(2, sizes, 0);
  expect_baseline_valid([&] { return hpt_fused_copy(2, dst, src, sizes, ws, copy_bytes, nullptr); });
  EXPECT_EQ(hpt_fused_copy(2, nullptr, src, sizes, ws, copy_bytes, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(hpt_fused_copy(2, dst, null_src, sizes, ws, copy_bytes, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(hpt_fused_copy(2, dst, src, negative, ws, copy_bytes, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(hpt_fused_copy(2, dst, src, nullptr, ws, copy_bytes, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(hpt_fused_copy(2, dst, src, sizes, nullptr, copy_bytes, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(hpt_fused_copy(2, dst, src, sizes, ws, copy_bytes - 1, nullptr), cudaErrorInvalidValue);
}

// ======================= GPU: the kernels against the reference =======================

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = gpu_unavailable();
    if (!why.empty()) GTEST_SKIP() << why;
    ASSERT_EQ(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), cudaSuccess);
  }
  void TearDown() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  DeviceBuffer workspace(int n, const int64_t* numels, int n_groups, size_t* bytes) {
    *bytes = hpt_kernels_workspace_bytes(n, numels, n_groups);
    return DeviceBuffer(*bytes);
  }
  void sync() { ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess); }

  cudaStream_t stream_ = nullptr;
  std::mt19937 rng_{20240607};
};

class GpuDtypeTest : public GpuTest, public ::testing::WithParamInterface<hpt_dtype> {};

// Sizes: empty, tiny, one chunk and one element, millions, exactly one chunk, a tail.
const std::vector<int64_t> kSizes = {0, 1, 3, kChunk + 1, 2'500'003, kChunk, 7, 4100};
// 1: the tensor starts one element past an aligned address.
const std::vector<int> kOffsets = {0, 1, 0, 1, 1, 0, 1, 0};

TEST_P(GpuDtypeTest, PredictedUpdate) {
  const hpt_dtype dtype = GetParam();
  const int n = static_cast<int>(kSizes.size());
  // Directions and offsets share the parameters' offset, except: tensor 6's directions and
  // tensor 7's offsets are shifted against their parameters (no common vector alignment).
  const std::vector<int> dir_offsets = {0, 1, 0, 1, 1, 0, 0, 0};
  const std::vector<int> off_offsets = {0, 1, 0, 1, 1, 0, 1, 1};
  const std::vector<bool> has_offset = {true, true, false, true, true, false, true, true};
  const std::vector<int32_t> groups = {0, 1, 2, 0, 1, 2, 0, 1};
  const std::vector<float> scales = {0.5f, -1.25f, 3e-3f};

  std::vector<Tensor> params, dirs, offs;
  for (int i = 0; i < n; ++i) {
    params.push_back(make_tensor(dtype, kSizes[i], kOffsets[i], rng_, -2.0f, 2.0f));
    dirs.push_back(make_tensor(HPT_FLOAT32, kSizes[i], dir_offsets[i], rng_, -1.0f, 1.0f));
    offs.push_back(make_tensor(HPT_FLOAT32, kSizes[i], off_offsets[i], rng_, -0.01f, 0.01f));
    params[i].upload();
    dirs[i].upload();
    offs[i].upload();
  }
  size_t ws_bytes = 0;
  DeviceBuffer ws = workspace(n, kSizes.data(), 3, &ws_bytes);
  {
    // Host lists that die (and are scribbled over) before the work runs.
    std::vector<void*> p(n);
    std::vector<const float*> d(n), o(n);
    std::vector<int64_t> numels = kSizes;
    std::vector<int32_t> g = groups;
    std::vector<float> s = scales;
    for (int i = 0; i < n; ++i) {
      p[i] = params[i].device_data();
      d[i] = static_cast<const float*>(dirs[i].device_data());
      o[i] = has_offset[i] ? static_cast<const float*>(offs[i].device_data()) : nullptr;
    }
    ASSERT_EQ(hpt_fused_predicted_update(n, p.data(), dtype, d.data(), o.data(), numels.data(), g.data(), s.data(),
                                         3, ws.get(), ws_bytes, stream_),
              cudaSuccess);
    std::fill(p.begin(), p.end(), nullptr);
    std::fill(numels.begin(), numels.end(), -1);
    std::fill(g.begin(), g.end(), 99);
    std::fill(s.begin(), s.end(), 1e30f);
  }
  sync();

  std::vector<void*> hp(n);
  std::vector<const float*> hd(n), ho(n);
  for (int i = 0; i < n; ++i) {
    hp[i] = params[i].host_data();
    hd[i] = static_cast<const float*>(dirs[i].host_data());
    ho[i] = has_offset[i] ? static_cast<const float*>(offs[i].host_data()) : nullptr;
  }
  ref::predicted_update(n, hp.data(), dtype, hd.data(), ho.data(), kSizes.data(), groups.data(), scales.data(), 3);
  const int64_t ulps = dtype == HPT_FLOAT32 ? 0 : 1;
  for (int i = 0; i < n; ++i) {
    expect_image(params[i], params[i].download(), ulps, "tensor " + std::to_string(i));
    expect_image(dirs[i], dirs[i].download(), 0, "directions " + std::to_string(i));
  }
}

TEST_P(GpuDtypeTest, PredictedUpdateWithoutOffsetsOrGroups) {
  const hpt_dtype dtype = GetParam();
  const std::vector<int64_t> sizes = {3, kChunk + 1, 1000};
  const int n = static_cast<int>(sizes.size());
  std::vector<Tensor> params, dirs;
  std::vector<void*> p, hp;
  std::vector<const float*> d, hd;
  for (int i = 0; i < n; ++i) {
    params.push_back(make_tensor(dtype, sizes[i], i % 2, rng_, -2.0f, 2.0f));
    dirs.push_back(make_tensor(HPT_FLOAT32, sizes[i], i % 2, rng_, -1.0f, 1.0f));
    params[i].upload();
    dirs[i].upload();
  }
  for (int i = 0; i < n; ++i) {
    p.push_back(params[i].device_data());
    d.push_back(static_cast<const float*>(dirs[i].device_data()));
    hp.push_back(params[i].host_data());
    hd.push_back(static_cast<const float*>(dirs[i].host_data()));
  }
  const float scale = -0.75f;
  size_t ws_bytes = 0;
  DeviceBuffer ws = workspace(n, sizes.data(), 1, &ws_bytes);
  ASSERT_EQ(hpt_fused_predicted_update(n, p.data(), dtype, d.data(), nullptr, sizes.data(), nullptr, &scale, 1,
                                       ws.get(), ws_bytes, stream_),
            cudaSuccess);
  sync();
  ref::predicted_update(n, hp.data(), dtype, hd.data(), nullptr, sizes.data(), nullptr, &scale, 1);
  for (int i = 0; i < n; ++i) {
    expect_image(params[i], params[i].download(), dtype == HPT_FLOAT32 ? 0 : 1, "tensor " + std::to_string(i));
  }
}

TEST_P(GpuDtypeTest, L2Norms) {
  const hpt_dtype dtype = GetParam();
  const int n = static_cast<int>(kSizes.size());
  // Group 3 has no tensor; group 2 only the empty one and a tiny one.
  const std::vector<int32_t> groups = {2, 0, 2, 1, 0, 1, 0, 4};
  const int n_groups = 5;
  std::vector<Tensor> tensors;
  std::vector<const void*> dev, host;
  for (int i = 0; i < n; ++i) {
    tensors.push_back(make_tensor(dtype, kSizes[i], kOffsets[i], rng_, -1.5f, 1.5f));
    tensors[i].upload();
  }
  for (int i = 0; i < n; ++i) {
    dev.push_back(tensors[i].device_data());
    host.push_back(tensors[i].host_data());
  }
  size_t ws_bytes = 0;
  DeviceBuffer ws = workspace(n, kSizes.data(), n_groups, &ws_bytes);
  DeviceBuffer out(sizeof(float) * (n + n_groups));
  auto* norms = reinterpret_cast<float*>(out.get());
  float* group_norms = norms + n;

  std::vector<float> want(n + n_groups);
  ref::l2_norms(n, host.data(), dtype, kSizes.data(), groups.data(), n_groups, want.data(), want.data() + n);

  std::vector<float> first, got(n + n_groups);
  for (int run = 0; run < 3; ++run) {
    ASSERT_EQ(cudaMemsetAsync(out.get(), 0xFF, sizeof(float) * (n + n_groups), stream_), cudaSuccess);
    ASSERT_EQ(hpt_fused_l2_norms(n, dev.data(), dtype, kSizes.data(), groups.data(), n_groups, norms, group_norms,
                                 ws.get(), ws_bytes, stream_),
              cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(got.data(), out.get(), sizeof(float) * got.size(), cudaMemcpyDeviceToHost, stream_),
              cudaSuccess);
    sync();
    if (run == 0) {
      first = got;
      for (size_t k = 0; k < got.size(); ++k) {
        const std::string what = k < static_cast<size_t>(n) ? "norm of tensor " + std::to_string(k)
                                                            : "norm of group " + std::to_string(k - n);
        EXPECT_NEAR(got[k], want[k], 1e-5 * want[k]) << what;
        EXPECT_EQ(float_bits(got[k]), float_bits(want[k]))
            << what << ": not bit-identical to the reference (same summation order): " << got[k] << " vs " << want[k];
      }
    } else {
      for (size_t k = 0; k < got.size(); ++k) {
        EXPECT_EQ(float_bits(got[k]), float_bits(first[k])) << "run " << run << " differs at " << k;
      }
    }
  }
  // Without group norms: the same tensor norms.
  ASSERT_EQ(hpt_fused_l2_norms(n, dev.data(), dtype, kSizes.data(), nullptr, 0, norms, nullptr, ws.get(), ws_bytes,
                               stream_),
            cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(got.data(), out.get(), sizeof(float) * n, cudaMemcpyDeviceToHost, stream_), cudaSuccess);
  sync();
  for (int k = 0; k < n; ++k) EXPECT_EQ(float_bits(got[k]), float_bits(first[k])) << "tensor " << k;
}

TEST_P(GpuDtypeTest, WeightAverage) {
  const hpt_dtype dtype = GetParam();
  const int n = static_cast<int>(kSizes.size());
  std::vector<Tensor> avgs, params;
  std::vector<float*> da, ha;
  std::vector<const void*> dp, hp;
  for (int i = 0; i < n; ++i) {
    avgs.push_back(make_tensor(HPT_FLOAT32, kSizes[i], kOffsets[i], rng_, -1.0f, 1.0f));
    // Tensor 6's params are shifted against its averages (no common vector alignment).
    params.push_back(make_tensor(dtype, kSizes[i], i == 6 ? 0 : kOffsets[i], rng_, -3.0f, 3.0f));
    avgs[i].upload();
    params[i].upload();
  }
  for (int i = 0; i < n; ++i) {
    da.push_back(static_cast<float*>(avgs[i].device_data()));
    ha.push_back(static_cast<float*>(avgs[i].host_data()));
    dp.push_back(params[i].device_data());
    hp.push_back(params[i].host_data());
  }
  size_t ws_bytes = 0;
  DeviceBuffer ws = workspace(n, kSizes.data(), 0, &ws_bytes);
  for (const float decay : {0.999f, 0.9f}) {
    ASSERT_EQ(hpt_fused_weight_average(n, da.data(), dp.data(), dtype, kSizes.data(), decay, ws.get(), ws_bytes,
                                       stream_),
              cudaSuccess);
    ref::weight_average(n, ha.data(), hp.data(), dtype, kSizes.data(), decay);
  }
  sync();
  for (int i = 0; i < n; ++i) expect_image(avgs[i], avgs[i].download(), 0, "average " + std::to_string(i));

  // decay 0: a copy, even over NaN averages.
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(cudaMemsetAsync(avgs[i].device_data(), 0xFF, avgs[i].data_bytes(), stream_), cudaSuccess);
  }
  ASSERT_EQ(hpt_fused_weight_average(n, da.data(), dp.data(), dtype, kSizes.data(), 0.0f, ws.get(), ws_bytes, stream_),
            cudaSuccess);
  sync();
  ref::weight_average(n, ha.data(), hp.data(), dtype, kSizes.data(), 0.0f);
  for (int i = 0; i < n; ++i) expect_image(avgs[i], avgs[i].download(), 0, "copied average " + std::to_string(i));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GpuDtypeTest, ::testing::Values(HPT_FLOAT32, HPT_BFLOAT16, HPT_FLOAT16),
                         [](const ::testing::TestParamInfo<hpt_dtype>& info) { return dtype_name(info.param); });

TEST_F(GpuTest, Copy) {
  // Byte sizes and (dst, src) byte offsets: same offset mod 16 (16-byte copies after a head),
  // same mod 4 only (4-byte copies), different (single bytes), several chunks.
  struct Case {
    int64_t bytes;
    int dst_offset, src_offset;
  };
  const std::vector<Case> cases = {{0, 0, 0},          {1, 1, 1},     {3, 0, 3},           {17, 2, 2},
                                   {4 * kChunk + 5, 1, 3}, {3'000'001, 4, 8}, {4 * kChunk, 0, 0}, {1'000'003, 5, 5}};
  const int n = static_cast<int>(cases.size());
  std::vector<Tensor> dst, src;
  std::vector<void*> dd, hd;
  std::vector<const void*> ds, hs;
  std::vector<int64_t> bytes;
  for (const Case& c : cases) {
    // Bytes as fp16 elements would not do (odd sizes): build the images by hand.
    Tensor d, s;
    for (Tensor* t : {&d, &s}) {
      t->dtype = HPT_FLOAT32;  // unused: offsets and sizes below are in bytes
      t->numel = 0;
      t->offset = 0;
    }
    const size_t image = static_cast<size_t>(c.bytes) + 16 + kGuard;
    d.host.assign(image, 0x5A);
    s.host.resize(image);
    for (auto& b : s.host) b = static_cast<unsigned char>(rng_());
    d.upload();
    s.upload();
    dd.push_back(d.device.get() + c.dst_offset);
    hd.push_back(d.host.data() + c.dst_offset);
    ds.push_back(s.device.get() + c.src_offset);
    hs.push_back(s.host.data() + c.src_offset);
    bytes.push_back(c.bytes);
    dst.push_back(std::move(d));
    src.push_back(std::move(s));
  }
  size_t ws_bytes = 0;
  DeviceBuffer ws = workspace(n, bytes.data(), 0, &ws_bytes);
  ASSERT_EQ(hpt_fused_copy(n, dd.data(), ds.data(), bytes.data(), ws.get(), ws_bytes, stream_), cudaSuccess);
  sync();
  ref::copy(n, hd.data(), hs.data(), bytes.data());
  for (int i = 0; i < n; ++i) {
    const std::vector<unsigned char> got = dst[i].download();
    EXPECT_TRUE(got == dst[i].host) << "copy " << i << " (" << cases[i].bytes << " bytes, dst +" << cases[i].dst_offset
                                    << ", src +" << cases[i].src_offset << ") differs from the reference";
  }
}

TEST_F(GpuTest, ThousandsOfTensorsPackedUnaligned) {
  // 3000 tensors of 0..100 elements packed back to back in one buffer (every alignment: the
  // update peels up to 3 elements before its vectors, the norms read unaligned tensors with
  // scalar loads), 7 groups: one launch each for the update and the norms.
  const int n = 3000, n_groups = 7;
  std::vector<int64_t> sizes(n);
  std::vector<int32_t> groups(n);
  std::vector<size_t> starts(n);
  size_t total = 0;
  for (int i = 0; i < n; ++i) {
    sizes[i] = (i * 37) % 101;
    groups[i] = (i * 5) % n_groups;
    starts[i] = total;
    total += static_cast<size_t>(sizes[i]);
  }
  Tensor params = make_tensor(HPT_FLOAT32, static_cast<int64_t>(total), 0, rng_, -2.0f, 2.0f);
  Tensor dirs = make_tensor(HPT_FLOAT32, static_cast<int64_t>(total), 0, rng_, -1.0f, 1.0f);
  params.upload();
  dirs.upload();
  std::vector<void*> dp(n), hp(n);
  std::vector<const float*> dd(n), hd(n);
  for (int i = 0; i < n; ++i) {
    dp[i] = static_cast<float*>(params.device_data()) + starts[i];
    hp[i] = static_cast<float*>(params.host_data()) + starts[i];
    dd[i] = static_cast<const float*>(dirs.device_data()) + starts[i];
    hd[i] = static_cast<const float*>(dirs.host_data()) + starts[i];
  }
  const std::vector<float> scales = {1, -1, 0.5f, 2, 0, 0.25f, -3};
  size_t ws_bytes = 0;
  DeviceBuffer ws = workspace(n, sizes.data(), n_groups, &ws_bytes);
  ASSERT_EQ(hpt_fused_predicted_update(n, dp.data(), HPT_FLOAT32, dd.data(), nullptr, sizes.data(), groups.data(),
                                       scales.data(), n_groups, ws.get(), ws_bytes, stream_),
            cudaSuccess);
  DeviceBuffer out(sizeof(float) * (n + n_groups));
  auto* norms = reinterpret_cast<float*>(out.get());
  std::vector<const void*> dpc(dp.begin(), dp.end()), hpc(hp.begin(), hp.end());
  ASSERT_EQ(hpt_fused_l2_norms(n, dpc.data(), HPT_FLOAT32, sizes.data(), groups.data(), n_groups, norms, norms + n,
                               ws.get(), ws_bytes, stream_),
            cudaSuccess);
  std::vector<float> got(n + n_groups);
  ASSERT_EQ(cudaMemcpyAsync(got.data(), out.get(), sizeof(float) * got.size(), cudaMemcpyDeviceToHost, stream_),
            cudaSuccess);
  sync();

  ref::predicted_update(n, hp.data(), HPT_FLOAT32, hd.data(), nullptr, sizes.data(), groups.data(), scales.data(),
                        n_groups);
  std::vector<float> want(n + n_groups);
  ref::l2_norms(n, hpc.data(), HPT_FLOAT32, sizes.data(), groups.data(), n_groups, want.data(), want.data() + n);
  expect_image(params, params.download(), 0, "packed params");
  for (int k = 0; k < n + n_groups; ++k) {
    EXPECT_EQ(float_bits(got[k]), float_bits(want[k])) << "norm " << k << ": " << got[k] << " vs " << want[k];
  }
}

TEST_F(GpuTest, NothingToDoAndEmptyNorms) {
  // No tensors, only empty tensors: success; norms of empty tensors and groups are 0.
  const int64_t empty[] = {0, 0};
  const void* none[] = {nullptr, nullptr};
  const int32_t groups[] = {1, 1};
  size_t ws_bytes = 0;
  DeviceBuffer ws = workspace(2, empty, 3, &ws_bytes);
  DeviceBuffer out(sizeof(float) * 5);
  auto* norms = reinterpret_cast<float*>(out.get());
  ASSERT_EQ(cudaMemsetAsync(out.get(), 0xFF, sizeof(float) * 5, stream_), cudaSuccess);
  ASSERT_EQ(hpt_fused_l2_norms(2, none, HPT_BFLOAT16, empty, groups, 3, norms, norms + 2, ws.get(), ws_bytes, stream_),
            cudaSuccess);
  std::vector<float> got(5, -1.0f);
  ASSERT_EQ(cudaMemcpyAsync(got.data(), out.get(), sizeof(float) * 5, cudaMemcpyDeviceToHost, stream_), cudaSuccess);
  sync();
  EXPECT_EQ(got, (std::vector<float>(5, 0.0f)));

  // No tensors at all, yet group norms asked for: zeros.
  ASSERT_EQ(cudaMemsetAsync(out.get(), 0xFF, sizeof(float) * 5, stream_), cudaSuccess);
  ASSERT_EQ(hpt_fused_l2_norms(0, nullptr, HPT_FLOAT32, nullptr, nullptr, 3, nullptr, norms, ws.get(), ws_bytes,
                               stream_),
            cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(got.data(), out.get(), sizeof(float) * 3, cudaMemcpyDeviceToHost, stream_), cudaSuccess);
  sync();
  EXPECT_EQ(std::vector<float>(got.begin(), got.begin() + 3), (std::vector<float>(3, 0.0f)));

  void* pnone[] = {nullptr, nullptr};
  const float* fnone[] = {nullptr, nullptr};
  const float scale = 1;
  EXPECT_EQ(hpt_fused_predicted_update(2, pnone, HPT_FLOAT16, fnone, nullptr, empty, nullptr, &scale, 1, ws.get(),
                                       ws_bytes, stream_),
            cudaSuccess);
  EXPECT_EQ(hpt_fused_copy(2, pnone, none, empty, ws.get(), ws_bytes, stream_), cudaSuccess);
  sync();
}

TEST_F(GpuTest, BadArgumentsQueueNothing) {
  const std::vector<int64_t> sizes = {1000, 5};
  Tensor a = make_tensor(HPT_FLOAT32, sizes[0], 0, rng_, -1, 1);
  Tensor b = make_tensor(HPT_FLOAT32, sizes[1], 0, rng_, -1, 1);
  Tensor d = make_tensor(HPT_FLOAT32, sizes[0], 0, rng_, -1, 1);
  a.upload();
  b.upload();
  d.upload();
  void* p[] = {a.device_data(), b.device_data()};
  const float* dirs[] = {static_cast<const float*>(d.device_data()), static_cast<const float*>(d.device_data())};
  const int32_t bad_groups[] = {0, 1};
  const float scales[] = {1, 1};
  size_t ws_bytes = 0;
  DeviceBuffer ws = workspace(2, sizes.data(), 2, &ws_bytes);
  EXPECT_EQ(hpt_fused_predicted_update(2, p, HPT_FLOAT32, dirs, nullptr, sizes.data(), bad_groups, scales, 1,
                                       ws.get(), ws_bytes, stream_),
            cudaErrorInvalidValue);
  EXPECT_EQ(hpt_fused_predicted_update(2, p, HPT_FLOAT32, dirs, nullptr, sizes.data(), bad_groups, scales, 2,
                                       ws.get(), hpt_kernels_workspace_bytes(2, sizes.data(), 2) - 1, stream_),
            cudaErrorInvalidValue);
  void* dst[] = {a.device_data(), b.device_data()};
  const void* src[] = {d.device_data(), nullptr};
  EXPECT_EQ(hpt_fused_copy(2, dst, src, sizes.data(), ws.get(), ws_bytes, stream_), cudaErrorInvalidValue);
  sync();
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  expect_image(a, a.download(), 0, "params after rejected calls");
  expect_image(b, b.download(), 0, "params after rejected calls");
}

}  // namespace
