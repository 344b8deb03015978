// hpt SDK version. A plugin records these numbers in its descriptor; the host refuses
// a plugin whose SDK ABI major differs from its own or whose minor is newer.
#pragma once

#define HPT_VERSION_STRING "0.1.0"

// Bump the major when an interface in sdk/include/hpt changes incompatibly
// (a virtual function added, removed or reordered, a struct changed); bump the minor
// when something is added that old plugins can ignore.
#define HPT_SDK_ABI_MAJOR 6
#define HPT_SDK_ABI_MINOR 0

#include <torch/version.h>

// "1.13.0"-style string of the LibTorch headers this translation unit was compiled with.
#define HPT_TORCH_VERSION_STRING TORCH_VERSION

#if defined(_GLIBCXX_USE_CXX11_ABI)
#define HPT_CXX11_ABI _GLIBCXX_USE_CXX11_ABI
#else
#define HPT_CXX11_ABI -1
#endif

// 1 when the LibTorch headers are a CUDA build (they carry ATen/cuda/CUDAConfig.h, which
// only CUDA and ROCm builds generate), 0 for a CPU-only build. Plugins and host must agree:
// a CPU build's types and a CUDA build's are not interchangeable even at the same version.
#ifndef HPT_TORCH_CUDA
#if defined(__has_include)
#if __has_include(<ATen/cuda/CUDAConfig.h>)
#define HPT_TORCH_CUDA 1
#else
#define HPT_TORCH_CUDA 0
#endif
#else
#define HPT_TORCH_CUDA 0
#endif
#endif

// LibTorch 2.x changed a few APIs (autocast, c10d Work); code that uses them checks this.
#define HPT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))
