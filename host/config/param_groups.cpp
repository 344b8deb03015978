#include "config/param_groups.hpp"

#include <fnmatch.h>

#include <sstream>

#include "hpt/error.hpp"

namespace hpt::host {

const std::vector<OptionSpec>& param_group_option_specs() {
  static const std::vector<OptionSpec> specs = {
      option_string("name", "", "a name for messages and the log (default: \"group N\")"),
      option_string_list("params", {},
                         "glob patterns over the model's parameter names, e.g. [\"*.bias\", \"*norm*\"]; "
                         "a parameter goes to the first group with a matching pattern"),
      option_float("lr_scale", 1.0, "the group's learning rate as a multiple of the optimizer's, after its schedule (0 freezes the group)",
                   0.0),
      option_float("weight_decay", 0.0, "the group's weight decay, replacing the optimizer's (unset: the optimizer's)",
                   0.0),
  };
  return specs;
}

std::vector<ParameterGroup> assign_parameter_groups(const std::vector<ParamGroupSpec>& specs,
                                                    const std::vector<std::string>& names) {
  std::vector<ParameterGroup> groups(specs.size());
  std::vector<bool> taken(names.size(), false);
  for (std::size_t g = 0; g < specs.size(); ++g) {
    groups[g].name = specs[g].name;
    groups[g].lr_scale = specs[g].lr_scale;
    groups[g].weight_decay = specs[g].weight_decay;
    for (const std::string& pattern : specs[g].patterns) {
      bool matched = false;
      for (std::size_t i = 0; i < names.size(); ++i) {
        if (fnmatch(pattern.c_str(), names[i].c_str(), 0) != 0) continue;
        matched = true;
        if (taken[i]) continue;  // an earlier group has it
        taken[i] = true;
        groups[g].parameters.push_back(i);
      }
      if (!matched) {
        std::ostringstream some;
        for (std::size_t i = 0; i < names.size() && i < 8; ++i) some << (i ? ", " : "") << names[i];
        if (names.size() > 8) some << ", ... (" << names.size() << " in all)";
        throw BadInput(specs[g].where + ": [[param_groups]] '" + specs[g].name + "': pattern \"" + pattern +
                       "\" matches no parameter of the model (its parameters: " + some.str() + ")");
      }
    }
  }
  return groups;
}

std::string param_group_summary(const ParamGroupSpec& spec, const ParameterGroup& group,
                                const std::vector<std::string>& names) {
  std::ostringstream os;
  os << "parameter group '" << spec.name << "': " << group.parameters.size() << " tensors";
  if (!group.parameters.empty()) os << " (" << names[group.parameters.front()] << (group.parameters.size() > 1 ? ", ...)" : ")");
  os << ", lr x" << spec.lr_scale;
  if (spec.weight_decay) os << ", weight_decay " << *spec.weight_decay;
  return os.str();
}

}  // namespace hpt::host
