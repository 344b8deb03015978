#include "process/error_text.hpp"

#include <new>

#include <c10/util/Exception.h>

namespace hpt::host {

std::string error_text(const std::exception& e) {
  std::string text;
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) text = c10_error->what_without_backtrace();
  else if (dynamic_cast<const std::bad_alloc*>(&e)) text = "out of memory (an allocation failed)";
  else text = e.what();
  if (dynamic_cast<const c10::Error*>(&e)) {
    // LibTorch appends "Exception raised from ... (most recent call first):" and frames.
    std::size_t cut = text.find("\nException raised from");
    if (cut != std::string::npos) text.resize(cut);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  }
  return text;
}

}  // namespace hpt::host
