// Running the Optuna driver of `hpt tune` (tools/tune/hpt_tune.py, the only Python hpt runs)
// with Debian's python3.
#pragma once

#include <string>
#include <vector>

namespace hpt::host {

// The driver script: <hpt's folder>/../share/hpt/tune/hpt_tune.py in an installed hpt,
// else tools/tune/hpt_tune.py of the source tree hpt was built from. hpt::BadInput when
// neither exists.
std::string tune_driver_path();

// The Python that runs it: $HPT_PYTHON, else /usr/bin/python3 (Debian's, with python3-optuna).
std::string tune_python();

// Runs `python driver spec_json args...` with hpt's stdout and stderr, passing SIGINT and
// SIGTERM on to it while it runs (it stops its trials and exits 128 + signal). Returns its
// exit code (128 + signal when a signal ended it; 127 when python could not be started).
int run_tune_driver(const std::string& spec_json, const std::vector<std::string>& args);

}  // namespace hpt::host
