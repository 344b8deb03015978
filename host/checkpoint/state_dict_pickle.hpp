// Reads a state_dict that Python saved with torch.save(model.state_dict(), path).
//
// Written by hand because LibTorch cannot: its unpickler (torch::pickle_load) turns every
// collections.OrderedDict into None (it expects one only as a tensor's empty backward
// hooks) and has no BUILD for the `_metadata` attribute a state_dict carries, so a
// state_dict fails to load with "Expected GenericDict but got None". This reads the
// pickle protocol 2 subset torch.save writes -- dicts and OrderedDicts, lists, tuples,
// strings, numbers, tensors (torch._utils._rebuild_tensor_v2 and _rebuild_parameter over
// storages in the zip's data/ records) -- and refuses anything else, naming it. Records
// are read with LibTorch's own zip reader (caffe2::serialize::PyTorchStreamReader).
#pragma once

#include <string>

#include <ATen/core/ivalue.h>

namespace hpt::host {

// The object pickled in the zip file `bytes` (what torch.load would return), with dicts
// and OrderedDicts as c10 generic dicts (their attributes, such as _metadata, dropped).
// Throws hpt::BadInput "<what>: ..." when it is not a torch.save zip file or holds
// something else than the subset above.
c10::IValue read_torch_save_pickle(const std::string& bytes, const std::string& what);

}  // namespace hpt::host
