// Checks a LibTorch archive before LibTorch parses it: its zip structure, every record's
// CRC-32, and, for the module archives hpt writes (model.pt), the TorchScript class
// source LibTorch would compile while loading it.
#pragma once

#include <string>
#include <string_view>

namespace hpt::host {

// Throws hpt::BadInput "<what> is damaged: ..." unless `bytes` is a zip archive whose
// directory is consistent (entry counts, sizes, unique names), whose records lie inside
// it, are stored or deflated (as LibTorch writes them) and match their CRC-32, and whose
// code records hold only what an archive of a module's parameters and buffers holds: a
// class per module with its parameter and buffer names, Tensor attributes and submodules.
void check_module_archive(std::string_view bytes, const std::string& what);

}  // namespace hpt::host
