// Out-of-line destructors keep every interface's vtable and type info in libhpt_sdk,
// so a plugin's objects and the host agree on them.
#include "hpt/hpt.hpp"

namespace hpt {

Plugin::~Plugin() = default;
void Plugin::save(StateWriter&) const {}
void Plugin::load(torch::serialize::InputArchive&) {}

Task::~Task() = default;
std::string Task::sample(const SampleRequest&) {
  throw BadInput("this task does not generate samples (tasks that model sequences, such as char_lm, do)");
}
torch::Tensor Task::score_examples() {
  throw BadInput("this task cannot score its training examples, so [curriculum] cannot order them "
                 "(the synthetic and fashion_mnist tasks can)");
}
void Task::restrict_examples(const torch::Tensor&) {
  throw BadInput("this task cannot restrict its training examples, so [curriculum] cannot be used with it "
                 "(the synthetic and fashion_mnist tasks can)");
}
Optimizer::~Optimizer() = default;
void Optimizer::set_parameter_groups(const std::vector<ParameterGroup>&) {
  throw BadInput("this optimizer does not take [[param_groups]] (sgd, adam, adamw and schedule_free do)");
}

std::int64_t Optimizer::planned_state_bytes(const std::vector<torch::Tensor>& parameters) const {
  std::int64_t bytes = 0;
  for (const auto& p : parameters) bytes += p.numel() * static_cast<std::int64_t>(p.element_size());
  return 2 * bytes;
}
Backend::~Backend() = default;
DynamicsModel::~DynamicsModel() = default;
CorrectionStrategy::~CorrectionStrategy() = default;
PhaseController::~PhaseController() = default;
Checkpointer::~Checkpointer() = default;

BadInput::BadInput(const std::string& message) : std::runtime_error(message) {}
BadInput::~BadInput() = default;
RunError::RunError(const std::string& message) : std::runtime_error(message) {}
RunError::~RunError() = default;

const char* section_name(PluginKind kind) {
  switch (kind) {
    case PluginKind::Task: return "task";
    case PluginKind::Optimizer: return "optimizer";
    case PluginKind::DynamicsModel: return "dynamics";
    case PluginKind::CorrectionStrategy: return "correction";
    case PluginKind::PhaseController: return "phase";
    case PluginKind::Backend: return "backend";
    case PluginKind::Checkpointer: return "checkpointer";
  }
  return "unknown";
}

const char* interface_name(PluginKind kind) {
  switch (kind) {
    case PluginKind::Task: return "Task";
    case PluginKind::Optimizer: return "Optimizer";
    case PluginKind::DynamicsModel: return "DynamicsModel";
    case PluginKind::CorrectionStrategy: return "CorrectionStrategy";
    case PluginKind::PhaseController: return "PhaseController";
    case PluginKind::Backend: return "Backend";
    case PluginKind::Checkpointer: return "Checkpointer";
  }
  return "unknown";
}

const std::vector<PluginKind>& all_plugin_kinds() {
  static const std::vector<PluginKind> kinds = {
      PluginKind::Task,          PluginKind::Optimizer,          PluginKind::Backend,
      PluginKind::DynamicsModel, PluginKind::CorrectionStrategy, PluginKind::PhaseController,
      PluginKind::Checkpointer};
  return kinds;
}

const char* to_string(StepKind kind) {
  switch (kind) {
    case StepKind::Full: return "full";
    case StepKind::Predicted: return "predicted";
    case StepKind::Probe: return "probe";
    case StepKind::Correct: return "correct";
  }
  return "unknown";
}

const char* to_string(PhaseKind kind) {
  switch (kind) {
    case PhaseKind::Full: return "full";
    case PhaseKind::Predict: return "predict";
    case PhaseKind::Correct: return "correct";
  }
  return "unknown";
}

const char* to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::Continue: return "continue";
    case Verdict::Stop: return "stop";
    case Verdict::Rollback: return "rollback";
  }
  return "unknown";
}

}  // namespace hpt
