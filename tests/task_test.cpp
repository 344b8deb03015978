// The task plugins, loaded as the engine loads them: a few optimizer steps make their
// training loss fall, evaluate() reports exactly metric_names(), one seed gives one
// first batch and one set of initial weights, a saved data position resumes to the
// same next batches, and a missing data file is a BadInput naming the file and the
// Debian package that provides it.
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>

#include <torch/script.h>

#include "plugin_loader.hpp"
#include "test_support.hpp"

using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

using Overrides = std::map<std::string, hpt::OptionValue>;

hpt::host::PluginLoader& loader() {
  static hpt::host::PluginLoader instance({std::string(HPT_BINARY_DIR) + "/plugins"});
  return instance;
}

std::shared_ptr<hpt::Task> make_task(const std::string& name, const Overrides& overrides, std::uint64_t seed = 0) {
  auto info = loader().find(hpt::PluginKind::Task, name);
  hpt::Options options = hpt::Options::defaults(info->options);
  for (const auto& [key, value] : overrides) options.set(key, value);
  hpt::PluginContext context;
  context.seed = seed;
  return loader().create<hpt::Task>(*info, context, options);
}

// The message of the BadInput that creating the task throws ("" when none is thrown).
std::string creation_error(const std::string& name, const Overrides& overrides) {
  try {
    make_task(name, overrides);
  } catch (const hpt::BadInput& e) {
    return e.what();
  }
  return "";
}

// Training losses of `steps` Adam steps, the way the engine runs a step.
std::vector<double> train(hpt::Task& task, int steps, double lr) {
  task.model().train();
  torch::optim::Adam adam(task.model().parameters(), torch::optim::AdamOptions(lr));
  std::vector<double> losses;
  for (int i = 0; i < steps; ++i) {
    hpt::Batch batch = task.next_batch();
    adam.zero_grad();
    torch::Tensor loss = task.loss(batch);
    loss.backward();
    adam.step();
    losses.push_back(loss.item<double>());
  }
  return losses;
}

double mean(std::vector<double>::const_iterator begin, std::vector<double>::const_iterator end) {
  return std::accumulate(begin, end, 0.0) / static_cast<double>(end - begin);
}

// The mean of the last `window` losses is below `fraction` of the mean of the first.
void expect_loss_falls(const std::vector<double>& losses, std::size_t window, double fraction) {
  ASSERT_GE(losses.size(), 2 * window);
  double first = mean(losses.begin(), losses.begin() + window);
  double last = mean(losses.end() - window, losses.end());
  EXPECT_LT(last, fraction * first) << "first losses " << first << ", last " << last;
}

bool same_batch(const hpt::Batch& a, const hpt::Batch& b) {
  if (a.inputs.size() != b.inputs.size() || !torch::equal(a.targets, b.targets)) return false;
  for (std::size_t i = 0; i < a.inputs.size(); ++i)
    if (!torch::equal(a.inputs[i], b.inputs[i])) return false;
  return true;
}

bool same_weights(hpt::Task& a, hpt::Task& b) {
  auto pa = a.model().named_parameters(true), pb = b.model().named_parameters(true);
  if (pa.size() != pb.size()) return false;
  for (std::size_t i = 0; i < pa.size(); ++i)
    if (pa[i].key() != pb[i].key() || !torch::equal(pa[i].value(), pb[i].value())) return false;
  return true;
}

void expect_metrics_as_named(hpt::Task& task) {
  torch::NoGradGuard no_grad;
  task.model().eval();
  hpt::Metrics metrics = task.evaluate();
  task.model().train();
  std::set<std::string> reported, named;
  for (const auto& [key, value] : metrics) {
    reported.insert(key);
    EXPECT_TRUE(std::isfinite(value)) << key;
  }
  for (const auto& name : task.metric_names()) named.insert(name);
  EXPECT_EQ(reported, named);
}

void expect_same_start_for_same_seed(const std::string& name, const Overrides& overrides) {
  auto a = make_task(name, overrides, 7), b = make_task(name, overrides, 7), c = make_task(name, overrides, 8);
  EXPECT_TRUE(same_weights(*a, *b));
  EXPECT_FALSE(same_weights(*a, *c));
  hpt::Batch first_a = a->next_batch(), first_b = b->next_batch(), first_c = c->next_batch();
  EXPECT_TRUE(same_batch(first_a, first_b));
  EXPECT_FALSE(same_batch(first_a, first_c));
}

// A task saved after `consumed` batches, loaded into a fresh task, gives the same next
// batches as the original (and not the fresh task's own first batches).
void expect_resume_gives_same_batches(const std::string& name, const Overrides& overrides, int consumed) {
  auto original = make_task(name, overrides, 3);
  for (int i = 0; i < consumed; ++i) original->next_batch();
  std::ostringstream bytes;
  {
    torch::serialize::OutputArchive archive;
    original->save(archive);
    archive.save_to(bytes);
  }
  auto resumed = make_task(name, overrides, 3);
  {
    std::istringstream in(bytes.str());
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    resumed->load(archive);
  }
  hpt::Batch fresh_first = make_task(name, overrides, 3)->next_batch();
  for (int i = 0; i < 3; ++i) {
    hpt::Batch expected = original->next_batch(), got = resumed->next_batch();
    EXPECT_TRUE(same_batch(expected, got)) << "batch " << i;
    if (i == 0) EXPECT_FALSE(same_batch(fresh_first, got));
  }
}

// ---- synthetic ----

const Overrides kSyntheticSmall = {{"samples", std::int64_t{64}}, {"batch_size", std::int64_t{16}}};

TEST(SyntheticTask, RegressionTrainsToLowLoss) {
  auto task = make_task("synthetic", {});
  auto losses = train(*task, 200, 1e-2);
  expect_loss_falls(losses, 10, 0.1);
  torch::NoGradGuard no_grad;
  EXPECT_LT(task->evaluate().at("val_loss"), 0.05);
}

TEST(SyntheticTask, ClassificationTrainsToHighAccuracy) {
  auto task = make_task("synthetic", {{"kind", std::string("classification")}});
  auto losses = train(*task, 200, 1e-2);
  expect_loss_falls(losses, 10, 0.5);
  torch::NoGradGuard no_grad;
  EXPECT_GT(task->evaluate().at("val_accuracy"), 0.8);
}

TEST(SyntheticTask, EvaluateReportsItsMetricNames) {
  expect_metrics_as_named(*make_task("synthetic", {}));
  expect_metrics_as_named(*make_task("synthetic", {{"kind", std::string("classification")}}));
}

TEST(SyntheticTask, SameSeedSameStart) { expect_same_start_for_same_seed("synthetic", kSyntheticSmall); }

TEST(SyntheticTask, ResumeGivesSameBatchesAcrossEpochs) {
  expect_resume_gives_same_batches("synthetic", kSyntheticSmall, 3);  // 4 batches an epoch
  expect_resume_gives_same_batches("synthetic", kSyntheticSmall, 4);
}

TEST(SyntheticTask, FullBatchIsTheWholeTrainingSet) {
  auto task = make_task("synthetic", {{"samples", std::int64_t{64}}, {"batch_size", std::int64_t{0}}});
  EXPECT_TRUE(task->full_batch());
  hpt::Batch batch = task->next_batch();
  EXPECT_EQ(batch.inputs.at(0).size(0), 64);
  EXPECT_TRUE(same_batch(batch, task->next_batch()));
  EXPECT_FALSE(make_task("synthetic", {})->full_batch());
}

TEST(SyntheticTask, EmptyHiddenIsALinearModel) {
  auto task = make_task("synthetic", {{"hidden", std::vector<std::int64_t>{}}});
  EXPECT_EQ(task->model().parameters().size(), 2u);
  expect_loss_falls(train(*task, 150, 3e-2), 10, 0.1);
}

TEST(SyntheticTask, CreatingATaskLeavesTheGlobalRandomStreamAlone) {
  torch::manual_seed(11);
  torch::Tensor expected = torch::randn({4});
  torch::manual_seed(11);
  make_task("synthetic", {});
  EXPECT_TRUE(torch::equal(torch::randn({4}), expected));
}

// ---- fashion_mnist ----

// A small slice of the data keeps these tests fast; creating a task still reads the files.
const Overrides kFashionSmall = {{"train_limit", std::int64_t{2048}}, {"eval_limit", std::int64_t{500}}};

Overrides with(Overrides overrides, const std::string& key, hpt::OptionValue value) {
  overrides[key] = std::move(value);
  return overrides;
}

TEST(FashionMnistTask, CnnTrainingLossFalls) {
  auto task = make_task("fashion_mnist", kFashionSmall);
  expect_loss_falls(train(*task, 40, 6e-3), 5, 0.8);
}

TEST(FashionMnistTask, MlpTrainingLossFalls) {
  auto task = make_task("fashion_mnist", with(with(kFashionSmall, "model", std::string("mlp")), "hidden",
                                              std::vector<std::int64_t>{64}));
  expect_loss_falls(train(*task, 40, 3e-3), 5, 0.6);
}

TEST(FashionMnistTask, CnnIsNinoFm16) {
  auto task = make_task("fashion_mnist", kFashionSmall);
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (const auto& p : task->model().named_parameters(true)) shapes[p.key()] = p.value().sizes().vec();
  using Shape = std::vector<std::int64_t>;
  EXPECT_EQ(shapes.size(), 8u);
  EXPECT_EQ(shapes["conv1.weight"], (Shape{16, 1, 3, 3}));
  EXPECT_EQ(shapes["conv2.weight"], (Shape{32, 16, 3, 3}));
  EXPECT_EQ(shapes["conv3.weight"], (Shape{32, 32, 3, 3}));
  EXPECT_EQ(shapes["fc.weight"], (Shape{10, 32}));
  hpt::Batch batch = task->next_batch();
  EXPECT_EQ(batch.inputs.at(0).sizes().vec(), (Shape{128, 1, 28, 28}));
  EXPECT_EQ(task->probe_batch().targets.size(0), 512);
}

TEST(FashionMnistTask, EvaluateReportsItsMetricNames) {
  auto task = make_task("fashion_mnist", kFashionSmall);
  expect_metrics_as_named(*task);
  torch::NoGradGuard no_grad;
  double accuracy = task->evaluate().at("val_accuracy");
  EXPECT_GT(accuracy, 0.0);
  EXPECT_LT(accuracy, 0.5);  // untrained: near chance
}

TEST(FashionMnistTask, SameSeedSameStart) { expect_same_start_for_same_seed("fashion_mnist", kFashionSmall); }

TEST(FashionMnistTask, ResumeGivesSameBatches) {
  expect_resume_gives_same_batches("fashion_mnist", with(kFashionSmall, "train_limit", std::int64_t{512}), 5);
}

TEST(FashionMnistTask, MissingFilesNameTheFileAndThePackage) {
  TempDir empty;
  std::string message = creation_error("fashion_mnist", {{"data_dir", empty.path()}});
  EXPECT_THAT(message, HasSubstr(empty.path() + "/train-images-idx3-ubyte.gz"));
  EXPECT_THAT(message, HasSubstr("install the Debian package dataset-fashion-mnist"));
}

}  // namespace
