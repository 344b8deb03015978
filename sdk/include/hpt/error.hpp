// Errors that plugins and the host raise. The host maps BadInput to exit code 2 and
// every other exception to exit code 1, and always prints the message.
#pragma once

#include <stdexcept>
#include <string>

namespace hpt {

// Bad input from the user: a manifest value, a missing file, a mismatched checkpoint.
// The message names what was wrong and what was expected.
class BadInput : public std::runtime_error {
 public:
  explicit BadInput(const std::string& message);
  ~BadInput() override;
};

// A failure while running (NaN loss, I/O error, a plugin broke its contract).
class RunError : public std::runtime_error {
 public:
  explicit RunError(const std::string& message);
  ~RunError() override;
};

}  // namespace hpt
