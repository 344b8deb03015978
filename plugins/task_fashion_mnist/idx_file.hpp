// Reads IDX files (the MNIST family's format), gzip-compressed or not, into tensors.
// Shared by the fashion_mnist task and the raw LibTorch reference loop in bench/reference.
#pragma once

#include <string>

#include <torch/types.h>

namespace hpt::data {

// The IDX file at `path` (".gz" is decompressed with zlib) as a uint8 tensor of the
// shape its header gives, e.g. {60000, 28, 28} for images or {60000} for labels.
// Throws hpt::BadInput naming the file when it is missing or malformed;
// `missing_hint` is appended to the "missing file" message (which package provides it).
torch::Tensor read_idx(const std::string& path, const std::string& missing_hint = "");

}  // namespace hpt::data
