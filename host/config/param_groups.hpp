// [[param_groups]]: torch.optim-style parameter groups declared in the manifest. Each
// group names its parameters by glob patterns over the model's parameter names
// ("*.bias", "*norm*.weight"), and may set a learning-rate multiplier and a weight decay
// that replaces the optimizer's. A parameter goes to the first group with a matching
// pattern; parameters in no group keep the optimizer's options.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "hpt/optimizer.hpp"
#include "hpt/options.hpp"

namespace hpt::host {

struct ParamGroupSpec {
  std::string name;                   // "group 1", ... when the manifest gives none
  std::vector<std::string> patterns;  // fnmatch(3) globs; '*' also matches dots
  double lr_scale = 1.0;
  std::optional<double> weight_decay;  // unset: the optimizer's own
  std::string where;                   // "file:line: [[param_groups]] #n", for messages
};

// The keys one [[param_groups]] table accepts (for validation and the docs).
const std::vector<OptionSpec>& param_group_option_specs();

// Which parameters (indices into `names`, the model's named_parameters order) each group
// holds. Throws hpt::BadInput when a pattern matches no parameter (naming the group, the
// pattern and some of the names there are), as a typo would otherwise go unnoticed.
std::vector<ParameterGroup> assign_parameter_groups(const std::vector<ParamGroupSpec>& specs,
                                                    const std::vector<std::string>& names);

// One line for the log: the group, how many tensors it holds, its settings.
std::string param_group_summary(const ParamGroupSpec& spec, const ParameterGroup& group,
                                const std::vector<std::string>& names);

}  // namespace hpt::host
