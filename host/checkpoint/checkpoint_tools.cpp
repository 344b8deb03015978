#include "checkpoint/checkpoint_tools.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>

#include <boost/json.hpp>
#include <torch/serialize.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "checkpoint/archive_io.hpp"
#include "checkpoint/zip_check.hpp"
#include "checkpoint_format/checkpoint_manifest.hpp"
#include "checkpoint_format/checkpoint_writer.hpp"
#include "hpt/error.hpp"
#include "output/run_directory.hpp"

namespace hpt::host {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

constexpr const char* kModelFile = "model.pt";
constexpr const char* kFinalWeightsFile = "final_weights.pt";  // in a run directory

torch::serialize::InputArchive open_archive(const std::string& bytes, const std::string& what) {
  check_module_archive(bytes, what);
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(bytes.data(), bytes.size());
  } catch (const std::exception& e) {
    throw BadInput(what + " is not a LibTorch archive: " + e.what());
  }
  return archive;
}

void collect_tensors(torch::serialize::InputArchive& archive, const std::string& prefix,
                     std::vector<std::pair<std::string, torch::Tensor>>& out) {
  for (const std::string& key : archive.keys()) {
    torch::Tensor tensor;
    if (archive.try_read(key, tensor)) {
      out.emplace_back(prefix + key, tensor.detach());
      continue;
    }
    torch::serialize::InputArchive child;
    if (archive.try_read(key, child)) collect_tensors(child, prefix + key + ".", out);
    // Anything else (TorchScript's `training` flag) is not a weight.
  }
}

const std::string& model_bytes(const checkpoint::VerifiedCheckpoint& c, const std::string& dir) {
  for (const auto& f : c.files)
    if (f.name == kModelFile) return f.bytes;
  throw BadInput("checkpoint " + dir + " has no " + kModelFile);
}

// "float32", "int64", ...: the names PyTorch prints.
std::string dtype_name(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat32: return "float32";
    case torch::kFloat64: return "float64";
    case torch::kFloat16: return "float16";
    case torch::kBFloat16: return "bfloat16";
    case torch::kInt64: return "int64";
    case torch::kInt32: return "int32";
    case torch::kInt16: return "int16";
    case torch::kInt8: return "int8";
    case torch::kUInt8: return "uint8";
    case torch::kBool: return "bool";
    default: throw BadInput(std::string("cannot export a tensor of type ") + c10::toString(type));
  }
}

json::value tensor_to_json(const torch::Tensor& tensor) {
  json::object o;
  json::array shape;
  for (auto d : tensor.sizes()) shape.push_back(d);
  o["shape"] = std::move(shape);
  o["dtype"] = dtype_name(tensor.scalar_type());
  json::array values;
  values.reserve(static_cast<std::size_t>(tensor.numel()));
  torch::Tensor flat = tensor.to(torch::kCPU).contiguous().reshape({-1});
  if (tensor.is_floating_point()) {
    torch::Tensor d = flat.to(torch::kFloat64);
    const double* p = d.data_ptr<double>();
    for (std::int64_t i = 0; i < d.numel(); ++i) values.push_back(p[i]);
  } else if (tensor.scalar_type() == torch::kBool) {
    const bool* p = flat.data_ptr<bool>();
    for (std::int64_t i = 0; i < flat.numel(); ++i) values.push_back(p[i]);
  } else {
    torch::Tensor l = flat.to(torch::kInt64);
    const std::int64_t* p = l.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < l.numel(); ++i) values.push_back(p[i]);
  }
  o["values"] = std::move(values);
  return o;
}

std::string shape_text(const torch::Tensor& t) {
  std::string s = "[";
  for (std::int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

// Averages one archive level of every checkpoint into `out`, recursing into submodules.
void average_archives(std::vector<torch::serialize::InputArchive>& inputs, const std::vector<std::string>& dirs,
                      const std::string& prefix, torch::serialize::OutputArchive& out) {
  const std::vector<std::string> keys = inputs[0].keys();
  for (const std::string& key : keys) {
    const std::string name = prefix + key;
    torch::Tensor first;
    if (inputs[0].try_read(key, first)) {
      first = first.detach();
      torch::Tensor sum = first.is_floating_point() ? first.to(torch::kFloat64) : torch::Tensor();
      for (std::size_t i = 1; i < inputs.size(); ++i) {
        torch::Tensor other;
        if (!inputs[i].try_read(key, other))
          throw BadInput("checkpoint " + dirs[i] + ": " + kModelFile + " has no tensor '" + name + "', which " +
                         dirs[0] + " has (a different model?)");
        if (!other.sizes().equals(first.sizes()))
          throw BadInput("checkpoint " + dirs[i] + ": '" + name + "' has shape " + shape_text(other) + ", but " +
                         shape_text(first) + " in " + dirs[0] + " (a different model?)");
        if (sum.defined()) sum += other.detach().to(torch::kFloat64);
      }
      torch::Tensor result =
          sum.defined() ? (sum / static_cast<double>(inputs.size())).to(first.scalar_type()) : first;
      out.write(key, result, /*is_buffer=*/!first.requires_grad());
      continue;
    }
    std::vector<torch::serialize::InputArchive> children(inputs.size());
    if (!inputs[0].try_read(key, children[0])) continue;  // not a weight (the `training` flag)
    for (std::size_t i = 1; i < inputs.size(); ++i)
      if (!inputs[i].try_read(key, children[i]))
        throw BadInput("checkpoint " + dirs[i] + ": " + kModelFile + " has no submodule '" + name + "', which " +
                       dirs[0] + " has (a different model?)");
    torch::serialize::OutputArchive child;
    average_archives(children, dirs, name + ".", child);
    out.write(key, child);
  }
  // A tensor only the others have is a mismatch too.
  for (std::size_t i = 1; i < inputs.size(); ++i)
    for (const std::string& key : inputs[i].keys()) {
      torch::Tensor t;
      if (std::find(keys.begin(), keys.end(), key) == keys.end() && inputs[i].try_read(key, t))
        throw BadInput("checkpoint " + dirs[i] + ": " + kModelFile + " has a tensor '" + prefix + key + "', which " +
                       dirs[0] + " lacks (a different model?)");
    }
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> read_model_tensors(const std::string& bytes, const std::string& what) {
  torch::serialize::InputArchive archive = open_archive(bytes, what);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  collect_tensors(archive, "", tensors);
  return tensors;
}

void export_checkpoint(const std::string& checkpoint_dir, const std::string& format, const std::string& output_path) {
  if (format != "torch" && format != "json")
    throw BadInput("export format '" + format + "' is not one of: torch, json");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::error_code ec;
  const fs::path final_weights = fs::path(checkpoint_dir) / kFinalWeightsFile;
  if (!fs::exists(fs::path(checkpoint_dir) / checkpoint::kManifestName, ec) && fs::exists(final_weights, ec)) {
    // A run directory: its final weights.
    std::ifstream in(final_weights, std::ios::binary);
    std::string weights((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    tensors = read_model_tensors(weights, final_weights.string());
  } else {
    checkpoint::VerifiedCheckpoint c = checkpoint::read_checkpoint(checkpoint_dir);
    tensors = read_model_tensors(model_bytes(c, checkpoint_dir), "checkpoint " + checkpoint_dir + ": " + kModelFile);
  }
  std::string bytes;
  if (format == "json") {
    json::object o;
    for (const auto& [name, tensor] : tensors) o[name] = tensor_to_json(tensor);
    bytes = json::serialize(o) + "\n";
  } else {
    c10::Dict<std::string, torch::Tensor> dict;
    for (const auto& [name, tensor] : tensors) dict.insert(name, tensor);
    std::vector<char> pickled = torch::pickle_save(dict);
    bytes.assign(pickled.begin(), pickled.end());
  }
  write_file_atomic(output_path, bytes);
}

std::string default_export_path(const std::string& checkpoint_dir, const std::string& format) {
  std::error_code ec;
  if (!fs::exists(fs::path(checkpoint_dir) / checkpoint::kManifestName, ec) &&
      fs::exists(fs::path(checkpoint_dir) / kFinalWeightsFile, ec))  // a run directory: the file goes inside it
    return (fs::path(checkpoint_dir) / (format == "json" ? "final_weights.json" : "final_weights.state_dict.pt"))
        .lexically_normal()
        .string();
  fs::path dir = fs::weakly_canonical(checkpoint_dir, ec);
  if (ec) dir = fs::path(checkpoint_dir).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // a trailing slash
  return (dir.parent_path() / (dir.filename().string() + (format == "json" ? ".weights.json" : ".weights.pt"))).string();
}

void average_checkpoints(const std::vector<std::string>& checkpoint_dirs, const std::string& output_dir) {
  if (checkpoint_dirs.size() < 2)
    throw BadInput("averaging needs at least two checkpoints, got " + std::to_string(checkpoint_dirs.size()));
  if (fs::exists(fs::symlink_status(output_dir)))
    throw BadInput(output_dir + " exists already; a checkpoint is never overwritten: choose another output directory");
  std::vector<checkpoint::VerifiedCheckpoint> checkpoints;
  std::vector<torch::serialize::InputArchive> models;
  for (const auto& dir : checkpoint_dirs) {
    checkpoints.push_back(checkpoint::read_checkpoint(dir));
    models.push_back(open_archive(model_bytes(checkpoints.back(), dir), "checkpoint " + dir + ": " + kModelFile));
  }
  torch::serialize::OutputArchive averaged;
  average_archives(models, checkpoint_dirs, "", averaged);

  std::vector<CheckpointFile> files = std::move(checkpoints.front().files);
  for (auto& f : files)
    if (f.name == kModelFile) f.bytes = archive_bytes(averaged);
  fs::path out = fs::path(output_dir).lexically_normal();
  if (!out.has_filename()) out = out.parent_path();
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  checkpoint::write_checkpoint(out, checkpoints.front().manifest.step, files, {}, checkpoint::WhenExists::Refuse);
}

}  // namespace hpt::host
