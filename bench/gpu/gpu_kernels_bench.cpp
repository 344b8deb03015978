// gpu_kernels_bench: the fused multi-tensor kernels of kernels/ (hpt/kernels.h) against
// the same work done with LibTorch ops, on one GPU.
//
//   gpu_kernels_bench --out DIR [--sizes 1e6,1e8,1e9] [--peak-gbps 4800] [--reps 20]
//                     [--warmup 5] [--device 0]
//
// Parameters: float32, split like a decoder-only transformer's (token and position
// embeddings; per block two layer norms, the qkv and output projections, the two MLP
// matrices, each with its bias; a final layer norm), in four scale groups (embeddings,
// attention, MLP, norms), at each of --sizes parameters (rounded to whole blocks).
//
// Operations, each fused against its LibTorch forms:
//   update   p += s[group] * d             (the predicted step; Backend::add_scaled)
//            fused | loop of add_ | _foreach_mul(ScalarList) + _foreach_add_ |
//            _foreach_add_ with one alpha (LibTorch's best case: one scale for all)
//   norms    ||t||_2 of every tensor       (Backend::norms)
//            fused | stack(_foreach_norm)
//   average  a = decay a + (1 - decay) p   (weight averaging)
//            fused | _foreach_mul_ + _foreach_add_ | _foreach_lerp_ (2.1+) | loop of lerp_
//   copy     dst = src                     (Backend::snapshot / restore)
//            fused | loop of copy_ | _foreach_copy_ (2.2+) | loop of clone (allocates)
//
// Timing: everything runs on one stream from LibTorch's pool (current for LibTorch's
// ops); each variant gets --warmup untimed runs, then --reps runs each between two CUDA
// events; the median is reported (min and max too). Where one set of tensors would fit in
// the L2 cache several times over, the runs rotate through enough sets of fresh tensors to
// overrun it four times, so the numbers are memory's, not the cache's.
// Bandwidth: the bytes the operation must move at least (each input read once, each output
// written once; the same count for every variant of an operation) over the median time,
// and that as a fraction of --peak-gbps (default 4800: the H200's datasheet HBM3e rate;
// a device-to-device copy reaches about 4300 there).
// Checks: each operation's fused result is compared with LibTorch's on fresh random data
// (outputs poisoned with NaN first): relative error for update, norms (against float64)
// and average; bit equality for copy. A failed check makes the exit code 1.
// Memory: a size whose tensors do not fit in free device memory is skipped with the
// reason, as is one that runs out of memory part way.
// Output: DIR/kernels_bench.json (every number) and DIR/kernels_bench.md (a table per size).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/version.h>

#include "hpt/kernels.h"

#define BENCH_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace {

void cuda_check(cudaError_t error, const char* what, int line) {
  if (error != cudaSuccess)
    throw std::runtime_error(std::string(what) + " (line " + std::to_string(line) + "): " +
                             cudaGetErrorString(error));
}
#define CUDA_CHECK(expr) cuda_check((expr), #expr, __LINE__)

struct Args {
  std::string out = ".";
  std::vector<std::int64_t> sizes = {1000000, 100000000, 1000000000};
  double peak_gbps = 4800.0;
  int reps = 20;
  int warmup = 5;
  int device = 0;
};

std::vector<std::int64_t> parse_sizes(const std::string& text) {
  std::vector<std::int64_t> sizes;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const double v = std::stod(item);
    if (!(v >= 1000)) throw std::invalid_argument("--sizes: each size must be at least 1000, got " + item);
    sizes.push_back(static_cast<std::int64_t>(v));
  }
  if (sizes.empty()) throw std::invalid_argument("--sizes: give at least one size");
  return sizes;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--out") a.out = value();
    else if (arg == "--sizes") a.sizes = parse_sizes(value());
    else if (arg == "--peak-gbps") a.peak_gbps = std::stod(value());
    else if (arg == "--reps") a.reps = std::max(1, std::stoi(value()));
    else if (arg == "--warmup") a.warmup = std::max(0, std::stoi(value()));
    else if (arg == "--device") a.device = std::stoi(value());
    else if (arg == "-h" || arg == "--help") {
      std::cout << "gpu_kernels_bench --out DIR [--sizes 1e6,1e8,1e9] [--peak-gbps 4800] [--reps 20] [--warmup 5] "
                   "[--device 0]\n";
      std::exit(0);
    } else {
      throw std::invalid_argument("unknown argument " + arg + " (see --help)");
    }
  }
  return a;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// ---- the parameter layout ------------------------------------------------------------

struct Layout {
  std::vector<std::int64_t> numels;
  std::vector<std::int32_t> groups;  // 0 embeddings, 1 attention, 2 MLP, 3 norms
  std::int64_t total = 0;
  std::int64_t width = 0, layers = 0;
};

Layout transformer_layout(std::int64_t target) {
  const std::int64_t d = target <= 4000000 ? 128 : target <= 300000000 ? 768 : 2048;
  const std::int64_t vocab = target <= 4000000 ? 256 : 32000;
  const std::int64_t context = target <= 4000000 ? 256 : target <= 300000000 ? 1024 : 2048;
  const std::int64_t per_block = 12 * d * d + 13 * d;
  const std::int64_t fixed = vocab * d + context * d + 2 * d;
  const std::int64_t layers = std::max<std::int64_t>(1, std::llround(static_cast<double>(target - fixed) / per_block));
  Layout l;
  l.width = d;
  l.layers = layers;
  auto add = [&](std::int64_t n, std::int32_t g) {
    l.numels.push_back(n);
    l.groups.push_back(g);
    l.total += n;
  };
  add(vocab * d, 0);
  add(context * d, 0);
  for (std::int64_t b = 0; b < layers; ++b) {
    add(d, 3), add(d, 3);                  // attention layer norm
    add(3 * d * d, 1), add(3 * d, 1);      // qkv
    add(d * d, 1), add(d, 1);              // output projection
    add(d, 3), add(d, 3);                  // MLP layer norm
    add(4 * d * d, 2), add(4 * d, 2);      // MLP in
    add(4 * d * d, 2), add(d, 2);          // MLP out
  }
  add(d, 3), add(d, 3);  // final layer norm
  return l;
}

using Tensors = std::vector<at::Tensor>;

Tensors make_tensors(const Layout& l, const at::TensorOptions& options, bool random) {
  Tensors out;
  out.reserve(l.numels.size());
  for (std::int64_t n : l.numels) out.push_back(random ? at::randn({n}, options) : at::empty({n}, options));
  return out;
}

std::vector<void*> pointers(const Tensors& ts) {
  std::vector<void*> p;
  for (const auto& t : ts) p.push_back(t.data_ptr());
  return p;
}
std::vector<const void*> const_pointers(const Tensors& ts) {
  std::vector<const void*> p;
  for (const auto& t : ts) p.push_back(t.data_ptr());
  return p;
}
std::vector<const float*> float_pointers(const Tensors& ts) {
  std::vector<const float*> p;
  for (const auto& t : ts) p.push_back(t.data_ptr<float>());
  return p;
}

// ---- timing ----------------------------------------------------------------------------

struct Timing {
  double median_ms = NAN, min_ms = NAN, max_ms = NAN;
};

// `run(r)` queues run r (r picks the rotation set) on `stream`.
Timing time_it(const std::function<void(int)>& run, int warmup, int reps, cudaStream_t stream) {
  for (int w = 0; w < warmup; ++w) run(w);
  CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<cudaEvent_t> start(reps), end(reps);
  for (int r = 0; r < reps; ++r) {
    CUDA_CHECK(cudaEventCreate(&start[r]));
    CUDA_CHECK(cudaEventCreate(&end[r]));
  }
  for (int r = 0; r < reps; ++r) {
    CUDA_CHECK(cudaEventRecord(start[r], stream));
    run(warmup + r);
    CUDA_CHECK(cudaEventRecord(end[r], stream));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream));
  CUDA_CHECK(cudaGetLastError());
  std::vector<double> ms(reps);
  for (int r = 0; r < reps; ++r) {
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, start[r], end[r]));
    ms[r] = t;
    CUDA_CHECK(cudaEventDestroy(start[r]));
    CUDA_CHECK(cudaEventDestroy(end[r]));
  }
  std::sort(ms.begin(), ms.end());
  Timing t;
  t.median_ms = reps % 2 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
  t.min_ms = ms.front();
  t.max_ms = ms.back();
  return t;
}

struct Row {
  std::string op, variant;
  double bytes = 0;
  Timing t;
};

struct Check {
  std::string op;
  double error = NAN;
  double tolerance = 0;
  bool ok = false;
  std::string what;
};

struct SizeResult {
  std::int64_t target = 0;
  Layout layout;
  int sets = 1;
  std::string skipped;  // why, when skipped
  std::vector<Row> rows;
  std::vector<Check> checks;
  double seconds = 0;
};

// The workspace the kernels need for these tensors, as a device buffer kept by the caller.
struct Workspace {
  at::Tensor buffer;
  std::size_t bytes = 0;
  void* get(const at::Device& device, std::size_t need) {
    if (need > bytes) {
      buffer = at::empty({static_cast<std::int64_t>(need)}, at::TensorOptions().dtype(at::kByte).device(device));
      bytes = need;
    }
    return buffer.data_ptr();
  }
};

// ---- one size ----------------------------------------------------------------------------

class SizeBench {
 public:
  SizeBench(const Args& args, const at::Device& device, cudaStream_t stream, std::int64_t l2_bytes, SizeResult& r)
      : args_(args), device_(device), stream_(stream), l2_bytes_(l2_bytes), r_(r) {
    floats_ = at::TensorOptions().dtype(at::kFloat).device(device_);
    bytes4_ = static_cast<double>(r_.layout.total) * 4.0;
    // Enough sets to overrun the L2 cache four times with the tensors of one variant.
    const double per_set = 2.0 * bytes4_;
    r_.sets = static_cast<int>(std::min<double>(32.0, std::max(1.0, std::ceil(4.0 * l2_bytes_ / per_set))));
    n_ = static_cast<int>(r_.layout.numels.size());
    scales_ = {1e-3f, 2e-3f, 1.5e-3f, 5e-4f};
  }

  void run_all() {
    update();
    norms();
    average();
    copy();
  }

 private:
  void add(const std::string& op, const std::string& variant, double bytes, const Timing& t) {
    r_.rows.push_back({op, variant, bytes, t});
    std::printf("  %-8s %-24s %10.3f ms  %8.1f GB/s\n", op.c_str(), variant.c_str(), t.median_ms,
                bytes / (t.median_ms * 1e-3) / 1e9);
    std::fflush(stdout);
  }

  Timing time(const std::function<void(int)>& run) { return time_it(run, args_.warmup, args_.reps, stream_); }

  std::vector<Tensors> sets(bool random) {
    std::vector<Tensors> s;
    for (int i = 0; i < r_.sets; ++i) s.push_back(make_tensors(r_.layout, floats_, random));
    return s;
  }

  void fused_update(const Tensors& p, const Tensors& d) {
    auto pp = pointers(p);
    auto dp = float_pointers(d);
    const std::size_t need = hpt_kernels_workspace_bytes(n_, r_.layout.numels.data(), 4);
    void* w = ws_.get(device_, need);
    CUDA_CHECK(hpt_fused_predicted_update(n_, pp.data(), HPT_FLOAT32, dp.data(), nullptr, r_.layout.numels.data(),
                                          r_.layout.groups.data(), scales_.data(), 4, w, ws_.bytes, stream_));
  }

  void update() {
    const double bytes = 3.0 * bytes4_;
    auto P = sets(true), D = sets(true);
    std::vector<at::Scalar> per_tensor;
    for (int i = 0; i < n_; ++i) per_tensor.emplace_back(static_cast<double>(scales_[r_.layout.groups[i]]));
    auto k = [&](int r) { return static_cast<std::size_t>(r % r_.sets); };
    add("update", "fused", bytes, time([&](int r) { fused_update(P[k(r)], D[k(r)]); }));
    add("update", "loop add_", bytes, time([&](int r) {
          for (int i = 0; i < n_; ++i) P[k(r)][i].add_(D[k(r)][i], per_tensor[i]);
        }));
    add("update", "foreach mul + add_", bytes, time([&](int r) {
          at::_foreach_add_(P[k(r)], at::_foreach_mul(D[k(r)], per_tensor));
        }));
    add("update", "foreach add_ (one alpha)", bytes,
        time([&](int r) { at::_foreach_add_(P[k(r)], D[k(r)], scales_[0]); }));
    P.clear();
    D.clear();

    // Check: fused against the loop of add_, from the same start.
    Tensors p0 = make_tensors(r_.layout, floats_, true), d = make_tensors(r_.layout, floats_, true);
    Tensors pf, pr;
    for (const auto& t : p0) pf.push_back(t.clone()), pr.push_back(t.clone());
    fused_update(pf, d);
    for (int i = 0; i < n_; ++i) pr[i].add_(d[i], per_tensor[i]);
    double diff2 = 0, ref2 = 0;
    for (int i = 0; i < n_; ++i) {
      diff2 += (pf[i].to(at::kDouble) - pr[i].to(at::kDouble)).pow(2).sum().item<double>();
      ref2 += pr[i].to(at::kDouble).pow(2).sum().item<double>();
    }
    check("update", std::sqrt(diff2 / ref2), 1e-6, "||fused - loop add_|| / ||loop add_||");
  }

  void fused_norms(const Tensors& t, float* out) {
    auto tp = const_pointers(t);
    const std::size_t need = hpt_kernels_workspace_bytes(n_, r_.layout.numels.data(), 1);
    void* w = ws_.get(device_, need);
    CUDA_CHECK(hpt_fused_l2_norms(n_, tp.data(), HPT_FLOAT32, r_.layout.numels.data(), nullptr, 1, out, nullptr, w,
                                  ws_.bytes, stream_));
  }

  void norms() {
    const double bytes = bytes4_;
    auto T = sets(true);
    at::Tensor out = at::empty({n_}, floats_);
    auto k = [&](int r) { return static_cast<std::size_t>(r % r_.sets); };
    add("norms", "fused", bytes, time([&](int r) { fused_norms(T[k(r)], out.data_ptr<float>()); }));
    at::Tensor keep;
    add("norms", "stack(foreach_norm)", bytes, time([&](int r) { keep = at::stack(at::_foreach_norm(T[k(r)])); }));
    T.clear();

    Tensors t = make_tensors(r_.layout, floats_, true);
    at::Tensor got = at::full({n_}, NAN, floats_);
    fused_norms(t, got.data_ptr<float>());
    std::vector<at::Tensor> ref;
    for (const auto& x : t) ref.push_back(x.to(at::kDouble).norm());
    at::Tensor want = at::stack(ref);
    const double err = ((got.to(at::kDouble) - want).abs() / want).max().item<double>();
    check("norms", err, 1e-5, "max over tensors of |fused - float64| / float64");
  }

  void fused_average(const Tensors& a, const Tensors& p, float decay) {
    std::vector<float*> ap;
    for (const auto& t : a) ap.push_back(t.data_ptr<float>());
    auto pp = const_pointers(p);
    const std::size_t need = hpt_kernels_workspace_bytes(n_, r_.layout.numels.data(), 1);
    void* w = ws_.get(device_, need);
    CUDA_CHECK(hpt_fused_weight_average(n_, ap.data(), pp.data(), HPT_FLOAT32, r_.layout.numels.data(), decay, w,
                                        ws_.bytes, stream_));
  }

  void average() {
    const double bytes = 3.0 * bytes4_;
    const float decay = 0.99f;
    auto A = sets(true), P = sets(true);
    auto k = [&](int r) { return static_cast<std::size_t>(r % r_.sets); };
    add("average", "fused", bytes, time([&](int r) { fused_average(A[k(r)], P[k(r)], decay); }));
    add("average", "foreach mul_ + add_", bytes, time([&](int r) {
          at::_foreach_mul_(A[k(r)], static_cast<double>(decay));
          at::_foreach_add_(A[k(r)], P[k(r)], 1.0 - static_cast<double>(decay));
        }));
#if BENCH_TORCH_AT_LEAST(2, 1)
    add("average", "foreach lerp_", bytes,
        time([&](int r) { at::_foreach_lerp_(A[k(r)], P[k(r)], 1.0 - static_cast<double>(decay)); }));
#endif
    add("average", "loop lerp_", bytes, time([&](int r) {
          for (int i = 0; i < n_; ++i) A[k(r)][i].lerp_(P[k(r)][i], 1.0 - static_cast<double>(decay));
        }));
    A.clear();
    P.clear();

    Tensors a0 = make_tensors(r_.layout, floats_, true), p = make_tensors(r_.layout, floats_, true);
    Tensors af;
    for (const auto& t : a0) af.push_back(t.clone());
    fused_average(af, p, decay);
    double diff2 = 0, ref2 = 0;
    for (int i = 0; i < n_; ++i) {
      at::Tensor want = a0[i].to(at::kDouble) * decay + p[i].to(at::kDouble) * (1.0 - decay);
      diff2 += (af[i].to(at::kDouble) - want).pow(2).sum().item<double>();
      ref2 += want.pow(2).sum().item<double>();
    }
    check("average", std::sqrt(diff2 / ref2), 1e-6, "||fused - float64|| / ||float64||");
  }

  void fused_copy(const Tensors& dst, const Tensors& src) {
    auto dp = pointers(dst);
    auto sp = const_pointers(src);
    std::vector<std::int64_t> bytes;
    for (const auto& t : src) bytes.push_back(t.numel() * static_cast<std::int64_t>(t.element_size()));
    const std::size_t need = hpt_kernels_workspace_bytes(n_, bytes.data(), 1);
    void* w = ws_.get(device_, need);
    CUDA_CHECK(hpt_fused_copy(n_, dp.data(), sp.data(), bytes.data(), w, ws_.bytes, stream_));
  }

  void copy() {
    const double bytes = 2.0 * bytes4_;
    auto S = sets(true), Dst = sets(false);
    auto k = [&](int r) { return static_cast<std::size_t>(r % r_.sets); };
    add("copy", "fused", bytes, time([&](int r) { fused_copy(Dst[k(r)], S[k(r)]); }));
    add("copy", "loop copy_", bytes, time([&](int r) {
          for (int i = 0; i < n_; ++i) Dst[k(r)][i].copy_(S[k(r)][i]);
        }));
#if BENCH_TORCH_AT_LEAST(2, 2)
    add("copy", "foreach copy_", bytes, time([&](int r) { at::_foreach_copy_(Dst[k(r)], S[k(r)]); }));
#endif
    Dst.clear();
    {
      Tensors keep;
      add("copy", "loop clone (allocates)", bytes, time([&](int r) {
            Tensors c;
            c.reserve(n_);
            for (int i = 0; i < n_; ++i) c.push_back(S[k(r)][i].clone());
            keep = std::move(c);  // the previous copies go back to the allocator, as a snapshot's would
          }));
    }
    S.clear();

    Tensors src = make_tensors(r_.layout, floats_, true), dst = make_tensors(r_.layout, floats_, false);
    for (auto& t : dst) t.fill_(NAN);
    fused_copy(dst, src);
    bool equal = true;
    for (int i = 0; i < n_; ++i) equal = equal && at::equal(dst[i], src[i]);
    check("copy", equal ? 0.0 : 1.0, 0.0, "bit equality of every tensor (0: equal)");
  }

  void check(const std::string& op, double error, double tolerance, const std::string& what) {
    Check c{op, error, tolerance, std::isfinite(error) && error <= tolerance, what};
    std::printf("  check %-8s %s: %.3g (tolerance %.1g) %s\n", op.c_str(), what.c_str(), error, tolerance,
                c.ok ? "ok" : "FAIL");
    r_.checks.push_back(c);
  }

  const Args& args_;
  at::Device device_;
  cudaStream_t stream_;
  std::int64_t l2_bytes_;
  SizeResult& r_;
  at::TensorOptions floats_;
  double bytes4_ = 0;
  int n_ = 0;
  std::vector<float> scales_;
  Workspace ws_;
};

// Device memory the largest operation holds at once, sets included, plus its check.
double bytes_needed(const Layout& l, int sets) {
  const double one = static_cast<double>(l.total) * 4.0;
  // update: the P and D sets plus a foreach temporary; copy: the S and Dst sets, then S and
  // two sets of clones; each check: four sets and a float64 copy of the largest tensor.
  return std::max(one * (2.0 * sets + 2.0), one * 4.5) * 1.15 + 256.0 * (1 << 20);
}

void write_outputs(const Args& a, const std::string& device_name, const cudaDeviceProp& prop,
                   const std::vector<SizeResult>& results) {
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  std::ofstream json(a.out + "/kernels_bench.json");
  json << "{\n  \"device\": " << json_string(device_name) << ",\n  \"multiprocessors\": " << prop.multiProcessorCount
       << ",\n  \"l2_bytes\": " << prop.l2CacheSize << ",\n  \"total_memory_bytes\": " << prop.totalGlobalMem
       << ",\n  \"torch_version\": " << json_string(TORCH_VERSION) << ",\n  \"cuda_runtime\": " << runtime
       << ",\n  \"cuda_driver\": " << driver << ",\n  \"peak_gbps\": " << num(a.peak_gbps)
       << ",\n  \"reps\": " << a.reps << ",\n  \"warmup\": " << a.warmup << ",\n  \"sizes\": [";
  for (std::size_t s = 0; s < results.size(); ++s) {
    const SizeResult& r = results[s];
    json << (s ? "," : "") << "\n    {\"target\": " << r.target << ", \"params\": " << r.layout.total
         << ", \"tensors\": " << r.layout.numels.size() << ", \"width\": " << r.layout.width
         << ", \"layers\": " << r.layout.layers << ", \"rotation_sets\": " << r.sets
         << ", \"seconds\": " << num(r.seconds);
    if (!r.skipped.empty()) json << ", \"skipped\": " << json_string(r.skipped);
    json << ",\n     \"rows\": [";
    for (std::size_t i = 0; i < r.rows.size(); ++i) {
      const Row& row = r.rows[i];
      const double gbps = row.bytes / (row.t.median_ms * 1e-3) / 1e9;
      json << (i ? "," : "") << "\n      {\"op\": " << json_string(row.op) << ", \"variant\": "
           << json_string(row.variant) << ", \"bytes\": " << num(row.bytes) << ", \"median_ms\": "
           << num(row.t.median_ms) << ", \"min_ms\": " << num(row.t.min_ms) << ", \"max_ms\": "
           << num(row.t.max_ms) << ", \"gbps\": " << num(gbps) << ", \"fraction_of_peak\": "
           << num(gbps / a.peak_gbps) << "}";
    }
    json << "],\n     \"checks\": [";
    for (std::size_t i = 0; i < r.checks.size(); ++i) {
      const Check& c = r.checks[i];
      json << (i ? "," : "") << "\n      {\"op\": " << json_string(c.op) << ", \"error\": " << num(c.error)
           << ", \"tolerance\": " << num(c.tolerance) << ", \"ok\": " << (c.ok ? "true" : "false")
           << ", \"what\": " << json_string(c.what) << "}";
    }
    json << "]}";
  }
  json << "\n  ]\n}\n";

  std::ofstream md(a.out + "/kernels_bench.md");
  md << "# Fused kernels against LibTorch ops on " << device_name << "\n\n"
     << "float32 parameters split like a transformer's; median of " << a.reps << " CUDA-event-timed runs after "
     << a.warmup << " warm-up runs; bandwidth = the least bytes the operation must move / median time; "
     << "peak = " << num(a.peak_gbps) << " GB/s; LibTorch " << TORCH_VERSION << ", CUDA runtime " << runtime
     << ", driver " << driver << ".\n";
  for (const SizeResult& r : results) {
    md << "\n## " << num(static_cast<double>(r.layout.total) / 1e6) << "M parameters (" << r.layout.numels.size()
       << " tensors, width " << r.layout.width << ", " << r.layout.layers << " blocks";
    if (r.sets > 1) md << ", " << r.sets << " rotating sets";
    md << ")\n\n";
    if (!r.skipped.empty()) {
      md << "Skipped: " << r.skipped << "\n";
      if (r.rows.empty()) continue;
      md << "\n";
    }
    md << "| op | variant | median ms | GB/s | % of peak | time / fused |\n| --- | --- | ---: | ---: | ---: | ---: |\n";
    double fused_ms = NAN;
    for (const Row& row : r.rows) {
      if (row.variant == "fused") fused_ms = row.t.median_ms;
      const double gbps = row.bytes / (row.t.median_ms * 1e-3) / 1e9;
      char line[256];
      std::snprintf(line, sizeof line, "| %s | %s | %.3f | %.0f | %.1f | %.2f |\n", row.op.c_str(),
                    row.variant.c_str(), row.t.median_ms, gbps, 100.0 * gbps / a.peak_gbps,
                    row.t.median_ms / fused_ms);
      md << line;
    }
    md << "\nChecks:";
    for (const Check& c : r.checks) md << " " << c.op << " " << num(c.error) << (c.ok ? " ok;" : " FAIL;");
    md << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "gpu_kernels_bench: " << e.what() << "\n";
    return 2;
  }
  try {
    int count = 0;
    CUDA_CHECK(cudaGetDeviceCount(&count));
    if (args.device < 0 || args.device >= count)
      throw std::invalid_argument("--device " + std::to_string(args.device) + ": this machine has " +
                                  std::to_string(count) + " CUDA devices");
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(args.device));
    const at::Device device(at::kCUDA, static_cast<c10::DeviceIndex>(args.device));
    c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(args.device));
    c10::cuda::setCurrentCUDAStream(stream);
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, args.device));
    const std::string name = prop.name;
    std::printf("gpu_kernels_bench: %s, %d SMs, L2 %.0f MB, %.1f GiB; LibTorch %s; peak %.0f GB/s\n", name.c_str(),
                prop.multiProcessorCount, prop.l2CacheSize / 1e6, prop.totalGlobalMem / 1073741824.0, TORCH_VERSION,
                args.peak_gbps);
    at::manual_seed(0);

    std::vector<SizeResult> results;
    bool all_ok = true;
    for (std::int64_t target : args.sizes) {
      SizeResult r;
      r.target = target;
      r.layout = transformer_layout(target);
      const auto t0 = std::chrono::steady_clock::now();
      std::printf("%.0fM parameters: %zu tensors, width %lld, %lld blocks\n", r.layout.total / 1e6,
                  r.layout.numels.size(), static_cast<long long>(r.layout.width),
                  static_cast<long long>(r.layout.layers));
      std::size_t free_bytes = 0, total_bytes = 0;
      c10::cuda::CUDACachingAllocator::emptyCache();
      CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
      SizeBench probe_sets(args, device, stream.stream(), prop.l2CacheSize, r);  // sets r.sets
      const double need = bytes_needed(r.layout, r.sets);
      if (need > static_cast<double>(free_bytes)) {
        char why[160];
        std::snprintf(why, sizeof why, "needs about %.1f GiB of device memory, %.1f GiB free", need / 1073741824.0,
                      free_bytes / 1073741824.0);
        r.skipped = why;
        std::printf("  skipped: %s\n", why);
      } else {
        try {
          probe_sets.run_all();
        } catch (const c10::Error& e) {
          const std::string what = e.what_without_backtrace();
          if (what.find("out of memory") == std::string::npos) throw;
          r.skipped = "ran out of device memory part way: " + what.substr(0, 200);
          std::printf("  skipped: %s\n", r.skipped.c_str());
          CUDA_CHECK(cudaStreamSynchronize(stream.stream()));
          c10::cuda::CUDACachingAllocator::emptyCache();
        }
      }
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (const Check& c : r.checks) all_ok = all_ok && c.ok;
      results.push_back(std::move(r));
      write_outputs(args, name, prop, results);  // after every size: a later failure keeps the earlier numbers
    }
    std::printf("wrote %s/kernels_bench.json and %s/kernels_bench.md\n", args.out.c_str(), args.out.c_str());
    return all_ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "gpu_kernels_bench: " << e.what() << "\n";
    return 2;
  }
}
