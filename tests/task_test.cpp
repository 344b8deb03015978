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

#include "plugins/plugin_loader.hpp"
#include "hpt/torch_compat.hpp"
#include "test_support.hpp"

using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

using Overrides = std::map<std::string, hpt::OptionValue>;

hpt::host::PluginLoader& loader() {
  static hpt::host::PluginLoader instance({std::string(HPT_BINARY_DIR) + "/plugins"});
  return instance;
}

std::shared_ptr<hpt::Task> make_task(const std::string& name, const Overrides& overrides, std::uint64_t seed = 0,
                                     bool inference_only = false) {
  auto info = loader().find(hpt::PluginKind::Task, name);
  hpt::Options options = hpt::Options::defaults(info->options);
  for (const auto& [key, value] : overrides) options.set(key, value);
  hpt::PluginContext context;
  context.seed = seed;
  context.inference_only = inference_only;
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
    hpt::zero_grad(adam);
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
    hpt::StateWriter archive_state(archive, /*copy=*/true);
    original->save(archive_state);
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

// ---- char_lm ----

const Overrides kCharLmSmall = {{"eval_batches", std::int64_t{2}}};

TEST(CharLmTask, TrainingLossFalls) {
  auto task = make_task("char_lm", kCharLmSmall);
  expect_loss_falls(train(*task, 40, 3e-3), 5, 0.8);
}

TEST(CharLmTask, EvaluateReportsLossAndBitsPerCharacter) {
  auto task = make_task("char_lm", kCharLmSmall);
  expect_metrics_as_named(*task);
  torch::NoGradGuard no_grad;
  hpt::Metrics metrics = task->evaluate();
  EXPECT_NEAR(metrics.at("val_bpc"), metrics.at("val_loss") / std::log(2.0), 1e-9);
  hpt::Batch batch = task->next_batch();
  EXPECT_EQ(batch.inputs.at(0).sizes().vec(), (std::vector<std::int64_t>{32, 64}));
  // Targets are the inputs shifted by one character.
  EXPECT_TRUE(torch::equal(batch.inputs.at(0).narrow(1, 1, 63), batch.targets.narrow(1, 0, 63)));
}

TEST(CharLmTask, SameSeedSameStart) { expect_same_start_for_same_seed("char_lm", kCharLmSmall); }

TEST(CharLmTask, ResumeGivesSameBatches) { expect_resume_gives_same_batches("char_lm", kCharLmSmall, 7); }

TEST(CharLmTask, FolderCorpusReadsOnlyFilesWithoutExtension) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 200; ++i) text += "abcdefgh ";
  dir.write("first", text);
  dir.write("second", text + "xyz");
  dir.write("first.dat", "QRST");
  std::filesystem::create_symlink(dir.path() + "/first", dir.path() + "/first.u8");
  auto task = make_task("char_lm", {{"corpus", dir.path()}, {"context", std::int64_t{16}}, {"batch_size", std::int64_t{4}}});
  for (const auto& p : task->model().named_parameters(true))
    if (p.key() == "token_embedding.weight") EXPECT_EQ(p.value().size(0), 12);  // "abcdefgh xyz"
}

// The task's saved state as bytes, and loaded into `task`.
std::string saved_state(const hpt::Task& task) {
  std::ostringstream bytes;
  torch::serialize::OutputArchive archive;
  hpt::StateWriter state(archive, /*copy=*/true);
  task.save(state);
  archive.save_to(bytes);
  return bytes.str();
}

void load_state(hpt::Task& task, const std::string& bytes) {
  std::istringstream in(bytes);
  torch::serialize::InputArchive archive;
  archive.load_from(in);
  task.load(archive);
}

TEST(CharLmTask, InferenceOnlyReadsNoCorpusAndSamplesLikeTheTrainedTask) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 100; ++i) text += "hello world, ";
  dir.write("corpus.txt", text);
  const Overrides small = {{"corpus", dir.path() + "/corpus.txt"}, {"context", std::int64_t{16}},
                           {"batch_size", std::int64_t{4}}, {"eval_batches", std::int64_t{1}}};
  auto trained = make_task("char_lm", small, 5);
  train(*trained, 5, 1e-2);
  auto inference = make_task("char_lm", with(small, "corpus", dir.path() + "/missing"), 5, /*inference_only=*/true);
  EXPECT_THROW(inference->model(), hpt::RunError);  // built by load()
  load_state(*inference, saved_state(*trained));
  {
    torch::NoGradGuard no_grad;
    auto from = trained->model().named_parameters(true);
    auto to = inference->model().named_parameters(true);
    ASSERT_EQ(from.size(), to.size());
    for (std::size_t i = 0; i < from.size(); ++i) to[i].value().copy_(from[i].value());
  }
  EXPECT_TRUE(inference->can_sample());
  hpt::SampleRequest request{"hello", 30, 0.8, 11};
  const std::string text_sampled = inference->sample(request);
  EXPECT_EQ(text_sampled, trained->sample(request));
  EXPECT_EQ(text_sampled.size(), 35u);
  EXPECT_EQ(text_sampled.substr(0, 5), "hello");
  for (char c : text_sampled) EXPECT_NE(std::string("helo wrd,").find(c), std::string::npos) << c;
  EXPECT_THROW(inference->next_batch(), hpt::RunError);
  request.prompt = "HELLO\n";
  try {
    inference->sample(request);
    ADD_FAILURE() << "a prompt outside the vocabulary was accepted";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("lacks: 'H' 'E' 'L' 'O' '\\n'"));
  }
}

TEST(CharLmTask, StateFromAnotherCorpusIsRefused) {
  TempDir dir;
  dir.write("a.txt", std::string(2000, 'a') + "bc");
  dir.write("b.txt", std::string(2000, 'a') + "bd");
  const Overrides small = {{"context", std::int64_t{16}}, {"batch_size", std::int64_t{4}}, {"eval_batches", std::int64_t{1}}};
  auto a = make_task("char_lm", with(small, "corpus", dir.path() + "/a.txt"));
  auto b = make_task("char_lm", with(small, "corpus", dir.path() + "/b.txt"));
  EXPECT_THROW(load_state(*b, saved_state(*a)), hpt::BadInput);
}

TEST(CharLmTask, MissingCorpusNamesThePathAndThePackage) {
  TempDir dir;
  std::string missing = dir.path() + "/no-fortunes";
  std::string message = creation_error("char_lm", {{"corpus", missing}});
  EXPECT_THAT(message, HasSubstr(missing));
  EXPECT_THAT(message, HasSubstr("install the Debian package fortunes"));
}

// ---- torchscript ----
// The fixtures are made here in C++ -- a TorchScript module built with torch::jit::Module
// and define(), a data file written with torch::pickle_save -- so no Python is needed.

// A layer y = x W^T + b as a TorchScript module of class `class_name`.
torch::jit::Module affine_module(const std::string& class_name, std::int64_t in, std::int64_t out) {
  torch::jit::Module layer(class_name);
  layer.register_parameter("weight", torch::randn({out, in}) / std::sqrt(static_cast<double>(in)), false);
  layer.register_parameter("bias", torch::zeros({out}), false);
  layer.define(R"(
def forward(self, x):
    return torch.matmul(x, self.weight.t()) + self.bias
)");
  return layer;
}

// A two-layer perceptron in TorchScript, saved to `path`.
void write_script_mlp(const std::string& path, std::int64_t in, std::int64_t hidden, std::int64_t out) {
  torch::manual_seed(1);
  torch::jit::Module net("Net");
  net.register_module("hidden", affine_module("Hidden", in, hidden));
  net.register_module("out", affine_module("Output", hidden, out));
  net.define(R"(
def forward(self, x):
    return self.out.forward(torch.relu(self.hidden.forward(x)))
)");
  net.save(path);
}

void write_tensor_file(const std::string& path, const torch::Tensor& inputs, const torch::Tensor& targets) {
  std::vector<char> bytes = torch::pickle_save(std::vector<torch::Tensor>{inputs, targets});
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A module and a regression (or, with `classes`, classification) data set in a temp dir.
struct ScriptFixture {
  TempDir dir;
  std::string module_path = dir.path() + "/net.pt";
  std::string data_path = dir.path() + "/data.pt";

  explicit ScriptFixture(std::int64_t classes = 0) {
    write_script_mlp(module_path, 6, 16, classes ? classes : 2);
    torch::manual_seed(2);
    torch::Tensor x = torch::randn({320, 6});
    torch::Tensor y = x.matmul(torch::randn({6, classes ? classes : 2}));
    write_tensor_file(data_path, x, classes ? y.argmax(1) : y);
  }

  Overrides options() const { return {{"module_path", module_path}, {"data_path", data_path}}; }
};

TEST(TorchScriptTask, ParametersKeepTheScriptModulesNames) {
  ScriptFixture fixture;
  auto task = make_task("torchscript", fixture.options());
  std::vector<std::string> names;
  for (const auto& p : task->model().named_parameters(true)) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"hidden.weight", "hidden.bias", "out.weight", "out.bias"}));
  torch::jit::Module original = torch::jit::load(fixture.module_path);
  EXPECT_TRUE(torch::equal(task->model().named_parameters()["hidden.weight"], original.attr("hidden").toModule().attr("weight").toTensor()));
  // The very same tensors: a step on the wrapper's parameters moves the script module's.
  torch::NoGradGuard no_grad;
  hpt::Batch batch = task->next_batch();
  const double before = task->loss(batch).item<double>();
  task->model().named_parameters()["out.bias"].add_(1.0);
  EXPECT_NE(task->loss(batch).item<double>(), before);
}

TEST(TorchScriptTask, BuffersKeepTheirNamesInNestedModules) {
  TempDir dir;
  torch::jit::Module norm("Norm");
  norm.register_buffer("running_mean", torch::zeros({3}));
  norm.define("def forward(self, x):\n    return x - self.running_mean\n");
  torch::jit::Module block("Block");
  block.register_module("0", norm);
  block.define("def forward(self, x):\n    return x\n");
  torch::jit::Module net("Net");
  net.register_module("encoder", block);
  net.register_parameter("scale", torch::ones({3}), false);
  net.define("def forward(self, x):\n    return self.encoder.forward(x) * self.scale\n");
  net.save(dir.path() + "/net.pt");
  write_tensor_file(dir.path() + "/data.pt", torch::randn({20, 3}), torch::randn({20, 3}));
  auto task = make_task("torchscript", {{"module_path", dir.path() + "/net.pt"}, {"data_path", dir.path() + "/data.pt"}});
  std::vector<std::string> buffers;
  for (const auto& b : task->model().named_buffers(true)) buffers.push_back(b.key());
  EXPECT_EQ(buffers, (std::vector<std::string>{"encoder.0.running_mean"}));
}

TEST(TorchScriptTask, RegressionLossFalls) {
  ScriptFixture fixture;
  auto task = make_task("torchscript", fixture.options());
  expect_loss_falls(train(*task, 60, 1e-2), 5, 0.5);
  expect_metrics_as_named(*task);
}

TEST(TorchScriptTask, ClassificationLossFallsAndReportsAccuracy) {
  ScriptFixture fixture(3);
  auto task = make_task("torchscript", with(fixture.options(), "loss", std::string("cross_entropy")));
  expect_loss_falls(train(*task, 60, 1e-2), 5, 0.7);
  expect_metrics_as_named(*task);
  EXPECT_EQ(task->metric_names(), (std::vector<std::string>{"val_loss", "val_accuracy"}));
}

TEST(TorchScriptTask, SameSeedSameFirstBatch) {
  ScriptFixture fixture;
  auto a = make_task("torchscript", fixture.options(), 7), b = make_task("torchscript", fixture.options(), 7);
  auto c = make_task("torchscript", fixture.options(), 8);
  EXPECT_TRUE(same_weights(*a, *c));  // the weights are the module file's
  hpt::Batch first_a = a->next_batch();
  EXPECT_TRUE(same_batch(first_a, b->next_batch()));
  EXPECT_FALSE(same_batch(first_a, c->next_batch()));
}

TEST(TorchScriptTask, DataKeptOnTheHostGivesTheSameBatchesAndMetrics) {
  // data_on_device = false gathers each batch from host memory (pinned, copied
  // asynchronously, when the model is on a GPU): the same rows in the same order.
  ScriptFixture fixture(3);
  auto options = with(fixture.options(), "loss", std::string("cross_entropy"));
  auto on_device = make_task("torchscript", options, 7);
  auto on_host = make_task("torchscript", with(options, "data_on_device", false), 7);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(same_batch(on_device->next_batch(), on_host->next_batch())) << "batch " << i;
  EXPECT_TRUE(same_batch(on_device->probe_batch(), on_host->probe_batch()));
  EXPECT_EQ(on_device->evaluate(), on_host->evaluate());
}

TEST(TorchScriptTask, ResumeGivesSameBatches) {
  ScriptFixture fixture;
  expect_resume_gives_same_batches("torchscript", fixture.options(), 9);  // 8 batches an epoch
}

TEST(TorchScriptTask, MissingFilesAreNamed) {
  ScriptFixture fixture;
  std::string missing = fixture.dir.path() + "/missing.pt";
  EXPECT_THAT(creation_error("torchscript", with(fixture.options(), "module_path", missing)),
              HasSubstr("TorchScript module " + missing + " does not exist"));
  EXPECT_THAT(creation_error("torchscript", with(fixture.options(), "data_path", missing)),
              HasSubstr("data file " + missing + " does not exist"));
}

void write_pickle(const std::string& path, const torch::IValue& value) {
  std::vector<char> bytes = torch::pickle_save(value);
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

torch::IValue tensor_dict(const std::vector<std::pair<std::string, torch::Tensor>>& items) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [key, tensor] : items) dict.insert(key, tensor);
  return dict;
}

TEST(TorchScriptTask, DataFilesAsPyTorchUsersSaveThem) {
  ScriptFixture fixture;
  torch::manual_seed(4);
  torch::Tensor x = torch::randn({80, 6}), y = torch::randn({80, 2});
  auto first_batch = [&](const torch::IValue& layout) {
    write_pickle(fixture.data_path, layout);
    return make_task("torchscript", fixture.options(), 7)->next_batch();
  };
  hpt::Batch pair = first_batch(std::vector<torch::Tensor>{x, y});
  EXPECT_TRUE(same_batch(first_batch(tensor_dict({{"inputs", x}, {"targets", y}})), pair));
  EXPECT_TRUE(same_batch(first_batch(tensor_dict({{"x", x}, {"y", y}})), pair));
  EXPECT_TRUE(same_batch(first_batch(c10::ivalue::Tuple::create(x, y)), pair));  // a TensorDataset's tensors

  write_pickle(fixture.data_path, tensor_dict({{"features", x}, {"labels", y}}));
  std::string message = creation_error("torchscript", fixture.options());
  EXPECT_THAT(message, HasSubstr("holds a dict {'features': Tensor [80, 6], 'labels': Tensor [80, 2]}"));
  EXPECT_THAT(message, HasSubstr("expected {\"inputs\": X, \"targets\": Y}"));
  write_pickle(fixture.data_path, c10::ivalue::Tuple::create(x, y, y));
  EXPECT_THAT(creation_error("torchscript", fixture.options()), HasSubstr("holds a tuple of 3 (Tensor [80, 6]"));
}

// Targets 0 for the first 80 rows and 100 for the last 20: the validation loss says which
// rows were held out (the module's outputs are small).
struct SplitFixture : ScriptFixture {
  SplitFixture() {
    torch::manual_seed(3);
    write_tensor_file(data_path, torch::randn({100, 6}),
                      torch::cat({torch::zeros({80, 2}), torch::full({20, 2}, 100.0)}));
  }
  double val_loss(const Overrides& overrides, std::uint64_t seed = 0) const {
    auto task = make_task("torchscript", overrides, seed);
    torch::NoGradGuard no_grad;
    return task->evaluate().at("val_loss");
  }
};

TEST(TorchScriptTask, RowsAreShuffledWithTheRunSeedBeforeTheSplitUnlessShuffleIsOff) {
  SplitFixture fixture;
  const double tail = fixture.val_loss(with(fixture.options(), "shuffle", false));
  EXPECT_GT(tail, 9000.0);  // every held-out row is a 100
  const double shuffled = fixture.val_loss(fixture.options());
  EXPECT_LT(shuffled, 6000.0);  // about a fifth are
  EXPECT_EQ(fixture.val_loss(fixture.options()), shuffled);  // the run seed decides
  EXPECT_NE(fixture.val_loss(fixture.options(), 1), shuffled);
}

TEST(TorchScriptTask, AValidationFileReplacesTheHeldOutRows) {
  SplitFixture fixture;
  const std::string val_path = fixture.dir.path() + "/val.pt";
  write_tensor_file(val_path, torch::randn({10, 6}), torch::full({10, 2}, 100.0));
  auto options = with(with(fixture.options(), "val_data_path", val_path), "val_fraction", 0.0);
  EXPECT_GT(fixture.val_loss(options), 9000.0);
  // Without it, val_fraction = 0 holds nothing out.
  EXPECT_THAT(creation_error("torchscript", with(fixture.options(), "val_fraction", 0.0)),
              HasSubstr("or set val_data_path to a validation file"));
  write_tensor_file(val_path, torch::randn({10, 5}), torch::randn({10, 2}));
  EXPECT_THAT(creation_error("torchscript", options),
              HasSubstr("validation file " + val_path + " has rows of inputs [5] and targets [2], but"));
}

TEST(TorchScriptTask, MismatchedDataIsABadInput) {
  ScriptFixture fixture;
  write_tensor_file(fixture.data_path, torch::randn({40, 5}), torch::randn({40, 2}));  // the module takes 6 inputs
  EXPECT_THAT(creation_error("torchscript", fixture.options()), HasSubstr("fails on the data's inputs (rows of shape [5])"));
}

}  // namespace
