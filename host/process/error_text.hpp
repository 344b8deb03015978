// One line for an error, the way hpt prints it: LibTorch's errors come with a C++
// backtrace of 30 frames that tells a user nothing; what they asked for and what failed
// is its first line.
#pragma once

#include <exception>
#include <string>

namespace hpt::host {

std::string error_text(const std::exception& e);

}  // namespace hpt::host
