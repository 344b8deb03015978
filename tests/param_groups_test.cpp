// [[param_groups]]: torch.optim-style parameter groups from the manifest. TorchOptimizer
// splits its one group as torch.optim's param groups would (same path as a torch
// optimizer built with those groups, bit for bit; hand-computed first step), keeps
// reporting updates in bind()'s order and resumes; the manifest names parameters by
// glob and refuses what would go unnoticed.
#include <torch/optim.h>

#include "hpt/optimizer.hpp"
#include "optimizer_state_bytes.hpp"
#include "test_support.hpp"

using ::testing::HasSubstr;

namespace {

using hpt::test::load_bytes;
using hpt::test::save_bytes;

// y = tanh(x W^T + b), mean squared error; parameters W [3, 4] and b [3].
struct Problem {
  std::vector<torch::Tensor> params;
  torch::Tensor x, y;

  static Problem make() {
    torch::manual_seed(11);
    Problem p;
    p.params = {torch::randn({3, 4}).requires_grad_(), torch::randn({3}).requires_grad_()};
    p.x = torch::randn({16, 4});
    p.y = torch::randn({16, 3}).mul_(0.5);
    return p;
  }
  Problem copy() const {
    Problem p = *this;
    for (auto& t : p.params) t = t.detach().clone().requires_grad_();
    return p;
  }
  hpt::Closure closure() const {
    return [this]() {
      for (const auto& p : params)
        if (p.grad().defined()) p.grad().zero_();
      torch::Tensor l = torch::tanh(x.matmul(params[0].t()) + params[1]).sub(y).square().mean();
      l.backward();
      return l.detach();
    };
  }
  std::vector<torch::Tensor> snapshot() const {
    std::vector<torch::Tensor> out;
    for (const auto& t : params) out.push_back(t.detach().clone());
    return out;
  }
};

std::shared_ptr<hpt::Optimizer> adamw(double lr, double weight_decay) {
  return hpt::test::make_plugin<hpt::Optimizer>(hpt::PluginKind::Optimizer, "adamw",
                                                {{"lr", lr}, {"weight_decay", weight_decay}});
}

// The bias (index 1) in its own group: no weight decay, half the learning rate.
std::vector<hpt::ParameterGroup> bias_group() {
  hpt::ParameterGroup g;
  g.name = "bias";
  g.parameters = {1};
  g.lr_scale = 0.5;
  g.weight_decay = 0.0;
  return {g};
}

TEST(ParamGroups, AdamWWithGroupsFollowsTorchParamGroupsBitForBit) {
  Problem ours = Problem::make();
  Problem theirs = ours.copy();
  auto optimizer = adamw(0.01, 0.1);
  optimizer->set_parameter_groups(bias_group());
  optimizer->bind(ours.params, /*track_updates=*/true);

  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{theirs.params[0]},
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(0.01).weight_decay(0.1)));
  groups.emplace_back(std::vector<torch::Tensor>{theirs.params[1]},
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(0.005).weight_decay(0.0)));
  torch::optim::AdamW reference(std::move(groups), torch::optim::AdamWOptions(0.01));

  for (int s = 1; s <= 6; ++s) {
    auto before = ours.snapshot();
    EXPECT_EQ(optimizer->step(ours.closure(), s).item<double>(), reference.step(theirs.closure()).item<double>());
    for (std::size_t i = 0; i < 2; ++i) {
      EXPECT_TRUE(torch::equal(ours.params[i], theirs.params[i])) << "parameter " << i << " step " << s;
      // last_update() stays in bind()'s order although the torch groups are reordered.
      EXPECT_TRUE(torch::equal(optimizer->last_update()[i], ours.params[i].detach() - before[i]));
    }
  }
}

TEST(ParamGroups, FirstStepMatchesTheHandComputedUpdateOfEachGroup) {
  Problem p = Problem::make();
  const auto start = p.snapshot();
  // The gradient at the start, computed apart.
  Problem g = p.copy();
  g.closure()();
  const torch::Tensor grad_w = g.params[0].grad().clone(), grad_b = g.params[1].grad().clone();

  auto optimizer = adamw(0.01, 0.1);
  optimizer->set_parameter_groups(bias_group());
  optimizer->bind(p.params, false);
  optimizer->step(p.closure(), 1);
  // Adam's first step: m^ = g, v^ = g^2, so the step is lr * g / (|g| + eps); AdamW decays
  // the weights by lr * weight_decay first.
  const double eps = 1e-8;
  torch::Tensor w = start[0] * (1 - 0.01 * 0.1) - 0.01 * grad_w / (grad_w.abs() + eps);
  torch::Tensor b = start[1] - 0.005 * grad_b / (grad_b.abs() + eps);  // lr x 0.5, no decay
  EXPECT_TRUE(torch::allclose(p.params[0].detach(), w, 1e-6, 1e-7));
  EXPECT_TRUE(torch::allclose(p.params[1].detach(), b, 1e-6, 1e-7));
  // Without the group the bias would have decayed and moved twice as far.
  EXPECT_FALSE(torch::allclose(p.params[1].detach(), start[1] * (1 - 0.001) - 0.01 * grad_b / (grad_b.abs() + eps),
                               1e-6, 1e-7));
}

TEST(ParamGroups, GroupedStateSavesAndLoadsIntoTheSameGroups) {
  Problem a = Problem::make();
  auto first = adamw(0.01, 0.1);
  first->set_parameter_groups(bias_group());
  first->bind(a.params, false);
  for (int s = 1; s <= 3; ++s) first->step(a.closure(), s);
  const std::string bytes = save_bytes(*first);

  Problem b = a.copy();
  auto second = adamw(0.01, 0.1);
  second->set_parameter_groups(bias_group());
  second->bind(b.params, false);
  load_bytes(*second, bytes);
  for (int s = 4; s <= 6; ++s) {
    first->step(a.closure(), s);
    second->step(b.closure(), s);
  }
  for (std::size_t i = 0; i < 2; ++i) EXPECT_TRUE(torch::equal(a.params[i], b.params[i]));
}

TEST(ParamGroups, ScheduleFreeGroupsStepAsTwoOptimizersWithTheGroupsSettings) {
  // One schedule_free over [W, b] with b's group at half the lr and no decay, against one
  // schedule_free per parameter with those settings: c (the average's weight) is the
  // same in both, so the paths agree up to rounding.
  Problem ours = Problem::make();
  Problem theirs = ours.copy();
  const hpt::test::Overrides base = {{"lr", 0.01}, {"weight_decay", 0.1}, {"warmup_steps", std::int64_t{3}}};
  auto grouped = hpt::test::make_plugin<hpt::Optimizer>(hpt::PluginKind::Optimizer, "schedule_free", base);
  grouped->set_parameter_groups(bias_group());
  grouped->bind(ours.params, true);
  auto for_w = hpt::test::make_plugin<hpt::Optimizer>(hpt::PluginKind::Optimizer, "schedule_free", base);
  auto for_b = hpt::test::make_plugin<hpt::Optimizer>(
      hpt::PluginKind::Optimizer, "schedule_free",
      {{"lr", 0.005}, {"weight_decay", 0.0}, {"warmup_steps", std::int64_t{3}}});
  for_w->bind({theirs.params[0]}, false);
  for_b->bind({theirs.params[1]}, false);
  const auto start = ours.snapshot();
  for (int s = 1; s <= 6; ++s) {
    grouped->step(ours.closure(), s);
    torch::Tensor loss = for_w->step(theirs.closure(), s);  // the gradients of both
    for_b->step([&]() { return loss; }, s);
  }
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(torch::allclose(ours.params[i], theirs.params[i], 1e-6, 1e-7)) << "parameter " << i;
    EXPECT_GT((ours.params[i] - start[i]).abs().max().item<double>(), 1e-3) << "parameter " << i << " did not move";
  }
  // And the evaluation point x agrees too.
  grouped->use_evaluation_weights(true);
  for_w->use_evaluation_weights(true);
  for_b->use_evaluation_weights(true);
  for (std::size_t i = 0; i < 2; ++i) EXPECT_TRUE(torch::allclose(ours.params[i], theirs.params[i], 1e-6, 1e-7));
}

TEST(ParamGroups, OptimizersThatCannotTakeGroupsSaySo) {
  Problem p = Problem::make();
  auto lbfgs = hpt::test::make_plugin<hpt::Optimizer>(hpt::PluginKind::Optimizer, "lbfgs");
  try {
    lbfgs->set_parameter_groups(bias_group());
    ADD_FAILURE() << "lbfgs took parameter groups";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("one parameter group"));
  }
}

// ---------------------------------------------------------------------------------
// The manifest

const char* kRun = R"(
[run]
name = "groups"
seed = 3
max_steps = 30
eval_every = 10
[task]
plugin = "synthetic"
hidden = [8]
[optimizer]
plugin = "sgd"
lr = 0.05
)";

TEST(ParamGroupsManifest, AFrozenGroupKeepsItsParametersWhileTheOthersTrain) {
  auto b = hpt::test::build_engine(std::string(kRun) + "[[param_groups]]\nname = \"frozen biases\"\n"
                                                      "params = [\"*.bias\"]\nlr_scale = 0.0\n",
                                   {});
  const auto& names = b.engine->layout().names;
  std::vector<torch::Tensor> start;
  for (const auto& t : b.engine->parameters()) start.push_back(t.detach().clone());
  b.engine->run();
  int biases = 0, weights = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const bool bias = names[i].size() >= 5 && names[i].compare(names[i].size() - 5, 5, ".bias") == 0;
    const bool moved = !torch::equal(start[i], b.engine->parameters()[i].detach());
    EXPECT_EQ(moved, !bias) << names[i];
    (bias ? biases : weights)++;
  }
  EXPECT_GT(biases, 0);
  EXPECT_GT(weights, 0);
}

TEST(ParamGroupsManifest, TheResolvedManifestKeepsTheGroups) {
  hpt::test::TempDir dir;
  auto b = hpt::test::build_engine(std::string(kRun) + "[[param_groups]]\nparams = [\"*.bias\"]\nweight_decay = 0.0\n"
                                                      "lr_scale = 2.0\n",
                                   {"run.max_steps=2"}, dir.path());
  b.engine->run();
  // Resolved manifests are read back by `hpt run` / resume: the groups must survive.
  std::string text;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path()))
    if (e.path().filename() == "config.resolved.toml") text = hpt::test::read_file(e.path().string());
  ASSERT_FALSE(text.empty());
  EXPECT_THAT(text, HasSubstr("[[param_groups]]"));
  EXPECT_THAT(text, HasSubstr("name = \"group 1\""));
  EXPECT_THAT(text, HasSubstr("lr_scale = 2.0"));
  EXPECT_THAT(text, HasSubstr("weight_decay = 0.0"));
  hpt::host::Manifest again = hpt::host::Manifest::parse(text, "resolved.toml");
  hpt::host::PluginLoader loader(hpt::host::PluginLoader::default_dirs({}));
  auto resolved = hpt::host::resolve(again, loader);
  ASSERT_EQ(resolved.param_groups.size(), 1u);
  EXPECT_EQ(resolved.param_groups[0].lr_scale, 2.0);
  EXPECT_EQ(resolved.param_groups[0].weight_decay, 0.0);
}

std::string bad_input(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    hpt::test::build_engine(text, overrides);
  } catch (const hpt::BadInput& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted:\n" << text;
  return "";
}

TEST(ParamGroupsManifest, MistakesAreBadInputNamingTheGroup) {
  EXPECT_THAT(bad_input(std::string(kRun) + "[[param_groups]]\nparams = [\"*.bais\"]\n"),
              AllOf(HasSubstr("test.toml:13"), HasSubstr("pattern \"*.bais\" matches no parameter"),
                    HasSubstr("fc1.bias")));
  EXPECT_THAT(bad_input(std::string(kRun) + "[[param_groups]]\nparams = [\"*.bias\"]\nlr_scal = 2.0\n"),
              AllOf(HasSubstr("test.toml:15"), HasSubstr("unknown key 'lr_scal'"), HasSubstr("did you mean 'lr_scale'")));
  EXPECT_THAT(bad_input(std::string(kRun) + "[[param_groups]]\nname = \"x\"\n"), HasSubstr("needs 'params'"));
  EXPECT_THAT(bad_input(std::string(kRun) + "[param_groups]\nparams = [\"*\"]\n"),
              HasSubstr("must be an array of tables ([[param_groups]])"));
  EXPECT_THAT(bad_input(std::string(kRun) + "[[param_groups]]\nparams = [\"*.bias\"]\nlr_scale = -1.0\n"),
              HasSubstr("lr_scale"));
  EXPECT_THAT(bad_input(std::string(kRun) + "[[param_groups]]\nparams = [\"*.bias\"]\n",
                        {"optimizer.plugin=\"lbfgs\"", "optimizer.lr=0.01"}),
              AllOf(HasSubstr("test.toml: [[param_groups]]: optimizer 'lbfgs'"),
                    HasSubstr("does not take [[param_groups]]")));
}

}  // namespace
