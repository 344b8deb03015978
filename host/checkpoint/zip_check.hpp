// Checks a LibTorch archive's zip structure and every record's CRC-32 before LibTorch
// parses it.
#pragma once

#include <string>
#include <string_view>

namespace hpt::host {

// Throws hpt::BadInput "<what> is damaged: ..." when `bytes` is not a zip archive whose
// records lie inside it, are stored or deflated (as LibTorch writes them) and match their
// CRC-32.
void check_zip_records(std::string_view bytes, const std::string& what);

}  // namespace hpt::host
