// Tools over checkpoints written by the `torch` checkpointer (a directory with
// model.pt, the other state files and manifest.json): export the weights in another
// form (`hpt export`), and average several checkpoints into a new one (`hpt average`).
// Both verify every file against manifest.json first.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace hpt::host {

// Every tensor of a model.pt archive (as torch::nn::Module::save writes it: parameters
// and buffers, submodules as nested archives), in archive order, named the way
// named_parameters() names them ("conv1.weight"). Throws hpt::BadInput when `bytes`
// is not such an archive; `what` names it in the message.
std::vector<std::pair<std::string, torch::Tensor>> read_model_tensors(const std::string& bytes, const std::string& what);

// Writes the weights of the checkpoint's model.pt -- or, for a run directory (no
// manifest.json, a final_weights.pt), of its final_weights.pt -- to `output_path`
// (replaced atomically), named as the model names them ("encoder.0.weight"):
//   format "torch": a pickled dict {name: tensor} — torch::pickle_load reads it, and
//                   Python's torch.load reads it as a state_dict;
//   format "json":  {"name": {"shape": [...], "dtype": "float32", "values": [...]}, ...},
//                   values flattened in row-major order.
// Throws hpt::BadInput for another format or a missing, corrupt or foreign checkpoint.
void export_checkpoint(const std::string& checkpoint_dir, const std::string& format, const std::string& output_path);

// Where `hpt export` writes without -o: beside the checkpoint directory, named after it
// (links such as `latest` resolved): .../checkpoints/step_000123.weights.pt or .json; for
// a run directory, inside it: final_weights.state_dict.pt or final_weights.json.
std::string default_export_path(const std::string& checkpoint_dir, const std::string& format);

// Averages every floating-point tensor of model.pt across `checkpoint_dirs` (at least
// two; same names and shapes, else hpt::BadInput naming the first mismatching tensor
// and both shapes) and writes a new checkpoint directory `output_dir` in the same
// layout: the averaged model.pt, the other files copied from the first checkpoint, a
// fresh manifest.json (the first checkpoint's step, no metrics). Integer tensors (such
// as batch-norm counters) are copied from the first checkpoint. `output_dir` must not
// exist; it is written atomically.
void average_checkpoints(const std::vector<std::string>& checkpoint_dirs, const std::string& output_dir);

}  // namespace hpt::host
