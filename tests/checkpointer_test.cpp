// The `torch` checkpointer plugin (loaded like the engine loads it) and the checkpoint
// tools: round trips, every kind of corruption named by file, crash leftovers,
// retention, due(), the latest/best links, export and averaging.
#include <filesystem>

#include <boost/json.hpp>
#include <torch/serialize.h>

#include "checkpoint_format/checkpoint_manifest.hpp"
#include "checkpoint/checkpoint_tools.hpp"
#include "plugins/plugin_loader.hpp"
#include "test_support.hpp"

using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

namespace fs = std::filesystem;

// A small model with parameters in submodules and batch-norm buffers (one of them int64).
struct NetImpl : torch::nn::Module {
  explicit NetImpl(std::int64_t hidden = 8)
      : fc1(register_module("fc1", torch::nn::Linear(4, hidden))),
        norm(register_module("norm", torch::nn::BatchNorm1d(hidden))),
        fc2(register_module("fc2", torch::nn::Linear(hidden, 3))) {}
  torch::Tensor forward(const torch::Tensor& x) { return fc2(torch::relu(norm(fc1(x)))); }
  torch::nn::Linear fc1;
  torch::nn::BatchNorm1d norm;
  torch::nn::Linear fc2;
};
TORCH_MODULE(Net);

Net make_net(std::uint64_t seed, std::int64_t hidden = 8) {
  torch::manual_seed(seed);
  Net net(hidden);
  net->train();
  net->forward(torch::randn({16, 4}));  // moves the batch-norm statistics off their defaults
  net->eval();
  return net;
}

std::string model_bytes(const torch::nn::Module& model) {
  torch::serialize::OutputArchive archive;
  model.save(archive);
  std::ostringstream os;
  archive.save_to(os);
  return os.str();
}

void load_model(torch::nn::Module& model, const std::string& bytes) {
  torch::serialize::InputArchive archive;
  archive.load_from(bytes.data(), bytes.size());
  model.load(archive);
}

const std::string& bytes_of(const std::vector<hpt::CheckpointFile>& files, const std::string& name) {
  for (const auto& f : files)
    if (f.name == name) return f.bytes;
  throw std::runtime_error("no " + name);
}

// Engine-like files: a real model archive plus opaque state with NUL bytes in it.
std::vector<hpt::CheckpointFile> state_files(const torch::nn::Module& model, std::int64_t step) {
  std::string opaque = "optimizer state of step " + std::to_string(step);
  opaque.push_back('\0');
  opaque += "\xff\x01 tail";
  return {{"model.pt", model_bytes(model)}, {"optimizer.pt", opaque}, {"engine.pt", "step=" + std::to_string(step)}};
}

std::vector<hpt::CheckpointFile> small_files(std::int64_t step) {
  return {{"model.pt", std::string(1000, static_cast<char>('a' + step % 26))}, {"engine.pt", std::to_string(step)}};
}

class CheckpointerTest : public ::testing::Test {
 protected:
  std::shared_ptr<hpt::Checkpointer> make(const std::map<std::string, hpt::OptionValue>& settings = {}) {
    auto info = loader_.find(hpt::PluginKind::Checkpointer, "torch");
    hpt::Options options = hpt::Options::defaults(info->options);
    for (const auto& [name, value] : settings) options.set(name, value);
    context_.run_dir = run_.path();
    return loader_.create<hpt::Checkpointer>(*info, context_, options);
  }

  std::string dir() const { return run_.path() + "/checkpoints"; }
  std::string step_dir(const std::string& name) const { return dir() + "/" + name; }

  // The names in the checkpoint directory, sorted.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir())) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string link_target(const std::string& name) const { return fs::read_symlink(dir() + "/" + name).string(); }

  TempDir run_;
  hpt::host::PluginLoader loader_{{std::string(HPT_BINARY_DIR) + "/plugins"}};
  hpt::PluginContext context_;
};

// Runs `load` and expects hpt::BadInput whose message holds every one of `parts`.
template <class F>
void expect_bad_input(F&& load, const std::vector<std::string>& parts) {
  try {
    load();
    ADD_FAILURE() << "expected hpt::BadInput";
  } catch (const hpt::BadInput& e) {
    for (const auto& p : parts) EXPECT_THAT(e.what(), HasSubstr(p));
  }
}

void overwrite(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

TEST(CheckpointManifest, Sha256MatchesTheStandardTestVector) {
  EXPECT_EQ(hpt::checkpoint::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(CheckpointerTest, RoundTripOfBytes) {
  auto ckpt = make();
  Net net = make_net(1);
  auto files = state_files(*net, 7);
  hpt::CheckpointInfo info = ckpt->save(7, files, {{"val_loss", 0.25}});
  EXPECT_EQ(info.path, step_dir("step_000007"));
  EXPECT_EQ(info.step, 7);

  auto list = ckpt->list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].path, info.path);
  EXPECT_EQ(list[0].step, 7);
  EXPECT_DOUBLE_EQ(list[0].metrics.at("val_loss"), 0.25);

  auto loaded = make()->load(info.path);
  ASSERT_EQ(loaded.size(), files.size());
  for (std::size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(loaded[i].name, files[i].name);
    EXPECT_EQ(loaded[i].bytes, files[i].bytes);
  }
}

TEST_F(CheckpointerTest, RoundTripOfAModelGivesTheSameOutputs) {
  Net saved = make_net(1);
  make()->save(3, state_files(*saved, 3), {});

  Net restored = make_net(2);
  torch::Tensor x = torch::randn({5, 4});
  ASSERT_GT((restored->forward(x) - saved->forward(x)).abs().max().item<double>(), 1e-3);
  load_model(*restored, bytes_of(make()->load(step_dir("step_000003")), "model.pt"));
  EXPECT_LE((restored->forward(x) - saved->forward(x)).abs().max().item<double>(), 1e-6);
}

TEST_F(CheckpointerTest, ManifestDescribesEveryFile) {
  auto files = small_files(12);
  make()->save(12, files, {{"val_accuracy", 0.875}});
  auto dir_files = listing();
  EXPECT_EQ(dir_files, (std::vector<std::string>{"latest", "step_000012"}));

  auto manifest = boost::json::parse(hpt::test::read_file(step_dir("step_000012/manifest.json"))).as_object();
  EXPECT_EQ(manifest.at("format_version").as_int64(), 1);
  EXPECT_EQ(manifest.at("hpt_version").as_string(), HPT_VERSION_STRING);
  EXPECT_EQ(manifest.at("torch_version").as_string(), HPT_TORCH_VERSION_STRING);
  EXPECT_THAT(std::string(manifest.at("created").as_string()), ::testing::MatchesRegex("....-..-..T..:..:..Z"));
  EXPECT_EQ(manifest.at("step").as_int64(), 12);
  EXPECT_DOUBLE_EQ(manifest.at("metrics").at("val_accuracy").as_double(), 0.875);
  const auto& entries = manifest.at("files").as_array();
  ASSERT_EQ(entries.size(), files.size());
  for (std::size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(entries[i].at("name").as_string(), files[i].name);
    EXPECT_EQ(entries[i].at("size").to_number<std::uint64_t>(), files[i].bytes.size());
    EXPECT_EQ(entries[i].at("sha256").as_string(), hpt::checkpoint::sha256_hex(files[i].bytes));
    EXPECT_EQ(hpt::test::read_file(step_dir("step_000012/" + files[i].name)), files[i].bytes);
  }
}

TEST_F(CheckpointerTest, TruncatedFileIsNamed) {
  auto info = make()->save(1, small_files(1), {});
  fs::resize_file(info.path + "/model.pt", 600);
  expect_bad_input([&] { make()->load(info.path); },
                   {"checkpoint " + info.path + ": model.pt is truncated (600 of 1000 bytes)"});
}

TEST_F(CheckpointerTest, FlippedBitIsNamed) {
  auto info = make()->save(1, small_files(1), {});
  std::string bytes = hpt::test::read_file(info.path + "/model.pt");
  bytes[500] = static_cast<char>(bytes[500] ^ 0x04);
  overwrite(info.path + "/model.pt", bytes);
  expect_bad_input([&] { make()->load(info.path); },
                   {"checkpoint " + info.path + ": model.pt fails its SHA-256 check (corrupt)"});
}

// Files of several read chunks go through the pipelined read (one thread reads, the
// other hashes): the bytes come back whole, and damage anywhere is still caught.
std::vector<hpt::CheckpointFile> big_files() {
  std::string big(std::size_t{21} << 20, '\0');
  std::uint32_t x = 12345;
  for (auto& c : big) c = static_cast<char>((x = x * 1664525u + 1013904223u) >> 24);
  return {{"model.pt", big}, {"engine.pt", "step"}};
}

TEST_F(CheckpointerTest, BigFileRoundTripsThroughThePipelinedRead) {
  auto files = big_files();
  auto info = make()->save(1, files, {});
  auto loaded = make()->load(info.path);
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_TRUE(loaded[0].bytes == files[0].bytes);
}

TEST_F(CheckpointerTest, BigFileTruncatedOrFlippedIsNamed) {
  auto files = big_files();
  const std::size_t size = files[0].bytes.size();
  auto info = make()->save(1, files, {});
  std::string model = info.path + "/model.pt";
  for (std::size_t at : {std::size_t{0}, size / 2 + 3, size - 1}) {  // first chunk, a middle one, the last byte
    std::string bytes = files[0].bytes;
    bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
    overwrite(model, bytes);
    expect_bad_input([&] { make()->load(info.path); },
                     {"checkpoint " + info.path + ": model.pt fails its SHA-256 check (corrupt)"});
  }
  overwrite(model, files[0].bytes.substr(0, size - 4096 * 3));  // half-written: cut inside a chunk
  expect_bad_input([&] { make()->load(info.path); },
                   {"checkpoint " + info.path + ": model.pt is truncated (" + std::to_string(size - 4096 * 3) +
                    " of " + std::to_string(size) + " bytes)"});
}

TEST_F(CheckpointerTest, MissingFileIsNamed) {
  auto info = make()->save(1, small_files(1), {});
  fs::remove(info.path + "/engine.pt");
  expect_bad_input([&] { make()->load(info.path); }, {"checkpoint " + info.path + ": engine.pt is missing"});
}

TEST_F(CheckpointerTest, MissingManifestIsNamedAndNotListed) {
  auto ckpt = make();
  auto info = ckpt->save(1, small_files(1), {});
  fs::remove(info.path + "/manifest.json");
  EXPECT_TRUE(ckpt->list().empty());
  expect_bad_input([&] { ckpt->load(info.path); }, {"checkpoint " + info.path + ": manifest.json is missing"});
}

TEST_F(CheckpointerTest, GarbledManifestIsNamedButListed) {
  auto ckpt = make();
  auto info = ckpt->save(4, small_files(4), {});
  overwrite(info.path + "/manifest.json", "{\"format_version\": 1, \"files\": [");
  auto list = ckpt->list();  // listed, so that resume tries it and falls back with a clear warning
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].step, 4);
  expect_bad_input([&] { ckpt->load(info.path); }, {"checkpoint " + info.path + ": manifest.json is not valid JSON"});

  overwrite(info.path + "/manifest.json", "{\"format_version\": 1}");
  expect_bad_input([&] { ckpt->load(info.path); }, {"manifest.json has no 'hpt_version'"});
}

TEST_F(CheckpointerTest, NewerFormatVersionSaysUpgrade) {
  auto info = make()->save(1, small_files(1), {});
  auto manifest = boost::json::parse(hpt::test::read_file(info.path + "/manifest.json")).as_object();
  manifest["format_version"] = 2;
  overwrite(info.path + "/manifest.json", boost::json::serialize(manifest));
  expect_bad_input([&] { make()->load(info.path); },
                   {"checkpoint " + info.path + " has format version 2, newer than this hpt's 1: upgrade hpt"});
}

TEST_F(CheckpointerTest, HalfWrittenTemporaryDirectoryIsIgnoredThenCleanedUp) {
  auto ckpt = make();
  ckpt->save(1, small_files(1), {});
  // What a crash in the middle of a save leaves behind: complete-looking, but never renamed.
  fs::create_directories(dir() + "/.tmp-step_000002-4242");
  overwrite(dir() + "/.tmp-step_000002-4242/model.pt", "half");
  fs::copy_file(step_dir("step_000001/manifest.json"), dir() + "/.tmp-step_000002-4242/manifest.json");
  fs::create_directories(step_dir("step_000003"));  // no manifest.json: never completed
  auto list = ckpt->list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].step, 1);

  ckpt->save(4, small_files(4), {});
  EXPECT_FALSE(fs::exists(dir() + "/.tmp-step_000002-4242"));
  list = ckpt->list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].step, 4);
  EXPECT_EQ(list[1].step, 1);
}

TEST_F(CheckpointerTest, ListIsNewestFirstByStep) {
  auto ckpt = make({{"keep_last", std::int64_t{0}}});
  for (std::int64_t step : {5, 120, 40, 1000000, 7}) ckpt->save(step, small_files(step), {});
  std::vector<std::int64_t> steps;
  for (const auto& c : ckpt->list()) steps.push_back(c.step);
  EXPECT_EQ(steps, (std::vector<std::int64_t>{1000000, 120, 40, 7, 5}));
  EXPECT_TRUE(fs::is_directory(step_dir("step_1000000")));
  EXPECT_EQ(link_target("latest"), "step_000007");  // the one written last
}

TEST_F(CheckpointerTest, RetentionKeepsLastNAndBestK) {
  auto ckpt = make({{"keep_last", std::int64_t{2}}, {"keep_best", std::int64_t{1}}, {"best_metric", std::string("val_loss")}});
  const double losses[] = {0.5, 0.3, 0.4, 0.6, 0.7, 0.8};
  for (std::int64_t step = 1; step <= 6; ++step) ckpt->save(step, small_files(step), {{"val_loss", losses[step - 1]}});
  EXPECT_EQ(listing(), (std::vector<std::string>{"best", "latest", "step_000002", "step_000005", "step_000006"}));
  EXPECT_EQ(link_target("latest"), "step_000006");
  EXPECT_EQ(link_target("best"), "step_000002");
  EXPECT_EQ(bytes_of(ckpt->load(dir() + "/best"), "engine.pt"), "2");
}

TEST_F(CheckpointerTest, BestModeMaxKeepsTheHighest) {
  auto ckpt = make({{"keep_last", std::int64_t{1}},
                    {"keep_best", std::int64_t{2}},
                    {"best_metric", std::string("val_accuracy")}});
  const double accuracy[] = {0.70, 0.90, 0.80, 0.60, 0.85};
  for (std::int64_t step = 1; step <= 5; ++step)
    ckpt->save(step, small_files(step), {{"val_accuracy", accuracy[step - 1]}});
  EXPECT_EQ(listing(), (std::vector<std::string>{"best", "latest", "step_000002", "step_000005"}));
  EXPECT_EQ(link_target("best"), "step_000002");

  auto by_min = make({{"keep_last", std::int64_t{1}}, {"best_metric", std::string("val_accuracy")},
                      {"best_mode", std::string("min")}});
  by_min->save(6, small_files(6), {{"val_accuracy", 0.10}});
  EXPECT_EQ(link_target("best"), "step_000006");
}

// Bits per character fall as a language model learns: `best` is the lowest bpc.
TEST_F(CheckpointerTest, BestOfBitsPerCharacterIsTheLowest) {
  auto ckpt = make({{"keep_last", std::int64_t{1}}, {"keep_best", std::int64_t{1}}, {"best_metric", std::string("val_bpc")}});
  const double bpc[] = {3.1, 2.2, 2.6};
  for (std::int64_t step = 1; step <= 3; ++step) ckpt->save(step, small_files(step), {{"val_bpc", bpc[step - 1]}});
  EXPECT_EQ(link_target("best"), "step_000002");
}

// One rule for a metric's direction, for run.target, early stopping, the plateau
// schedule and the checkpointer alike.
TEST(MetricDirection, LowerIsBetterForLossesErrorsPerplexitiesAndBitsPerCharacter) {
  for (const char* low : {"val_loss", "train_loss", "val_error", "perplexity", "val_ppl", "val_bpc"})
    EXPECT_TRUE(hpt::lower_is_better(low)) << low;
  for (const char* high : {"val_accuracy", "f1", "val_acc"}) EXPECT_FALSE(hpt::lower_is_better(high)) << high;
  EXPECT_TRUE(hpt::lower_is_better("val_accuracy", "min"));
  EXPECT_FALSE(hpt::lower_is_better("val_loss", "max"));
  EXPECT_THROW(hpt::lower_is_better("val_loss", "lower"), hpt::BadInput);
}

TEST_F(CheckpointerTest, RetentionNeverDeletesTheCheckpointLoadedLast) {
  auto first = make({{"keep_last", std::int64_t{1}}});
  first->save(1, small_files(1), {});
  first->save(2, small_files(2), {});
  EXPECT_EQ(listing(), (std::vector<std::string>{"latest", "step_000002"}));

  auto resumed = make({{"keep_last", std::int64_t{1}}});
  resumed->load(dir() + "/latest");  // through the link: the same checkpoint
  for (std::int64_t step = 3; step <= 5; ++step) resumed->save(step, small_files(step), {});
  EXPECT_EQ(listing(), (std::vector<std::string>{"latest", "step_000002", "step_000005"}));
}

TEST_F(CheckpointerTest, SaveAtAnExistingStepReplacesItAtomically) {
  auto ckpt = make();
  ckpt->save(4, small_files(4), {{"val_loss", 1.0}});
  auto replacement = small_files(30);
  auto info = ckpt->save(4, replacement, {{"val_loss", 0.5}});
  EXPECT_EQ(listing(), (std::vector<std::string>{"latest", "step_000004"}));
  EXPECT_EQ(bytes_of(ckpt->load(info.path), "model.pt"), replacement[0].bytes);
  EXPECT_DOUBLE_EQ(ckpt->list().at(0).metrics.at("val_loss"), 0.5);
}

TEST_F(CheckpointerTest, SaveAtTheResumedStepKeepsTheResumedCheckpoint) {
  make()->save(4, small_files(4), {});
  auto resumed = make();
  resumed->load(step_dir("step_000004"));
  auto info = resumed->save(4, small_files(30), {});
  EXPECT_EQ(info.path, step_dir("step_000004"));
  EXPECT_EQ(bytes_of(resumed->load(info.path), "model.pt"), small_files(4)[0].bytes);
}

TEST_F(CheckpointerTest, DueEveryStepsAndEverySeconds) {
  auto by_default = make();
  EXPECT_TRUE(by_default->due(1000, 0.0));
  EXPECT_FALSE(by_default->due(999, 1e9));

  auto by_steps = make({{"every_steps", std::int64_t{10}}});
  EXPECT_FALSE(by_steps->due(0, 0.0));  // the untrained start
  EXPECT_FALSE(by_steps->due(9, 0.0));
  EXPECT_TRUE(by_steps->due(10, 0.0));
  EXPECT_FALSE(by_steps->due(11, 0.0));
  EXPECT_TRUE(by_steps->due(20, 0.0));
  by_steps->save(20, small_files(20), {});
  EXPECT_FALSE(by_steps->due(20, 0.0));  // never twice for one step

  auto by_seconds = make({{"every_steps", std::int64_t{0}}, {"every_seconds", 30.0}});
  EXPECT_FALSE(by_seconds->due(1000, 29.9));
  EXPECT_TRUE(by_seconds->due(7, 30.0));

  auto never = make({{"every_steps", std::int64_t{0}}});
  EXPECT_FALSE(never->due(1000, 1e9));
}

// A hybrid run may jump over a multiple of every_steps inside a predicted phase: the
// checkpoint is due at the first step after it, once.
TEST_F(CheckpointerTest, DueOnceAMultipleWasCrossed) {
  auto by_steps = make({{"every_steps", std::int64_t{25}}});
  EXPECT_FALSE(by_steps->due(24, 0.0));
  EXPECT_TRUE(by_steps->due(53, 0.0));   // 25 and 50 were crossed
  EXPECT_FALSE(by_steps->due(60, 0.0));  // asked for at 53 already
  EXPECT_FALSE(by_steps->due(74, 0.0));
  EXPECT_TRUE(by_steps->due(76, 0.0));
  auto resumed = make({{"every_steps", std::int64_t{25}}});
  by_steps->save(76, small_files(76), {});
  resumed->load(step_dir("step_000076"));
  EXPECT_FALSE(resumed->due(99, 0.0));
  EXPECT_TRUE(resumed->due(101, 0.0));
}

TEST_F(CheckpointerTest, KeepBestNeedsABestMetric) {
  expect_bad_input([&] { make({{"keep_best", std::int64_t{2}}}); }, {"keep_best = 2 needs checkpointer.best_metric"});
}

// --- tools ------------------------------------------------------------------------

// Every named parameter and buffer of `net`, as named_parameters() names them.
std::vector<std::pair<std::string, torch::Tensor>> weights_of(const Net& net) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : net->named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : net->named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

TEST_F(CheckpointerTest, ExportToJsonRoundTrips) {
  Net net = make_net(1);
  auto info = make()->save(9, state_files(*net, 9), {});
  std::string out = run_.path() + "/weights.json";
  hpt::host::export_checkpoint(info.path, "json", out);

  auto json = boost::json::parse(hpt::test::read_file(out)).as_object();
  auto weights = weights_of(net);
  EXPECT_EQ(json.size(), weights.size());
  for (const auto& [name, tensor] : weights) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(json.contains(name));
    const auto& entry = json.at(name).as_object();
    std::vector<std::int64_t> shape;
    for (const auto& d : entry.at("shape").as_array()) shape.push_back(d.as_int64());
    EXPECT_EQ(shape, tensor.sizes().vec());
    EXPECT_EQ(entry.at("dtype").as_string(), tensor.scalar_type() == torch::kInt64 ? "int64" : "float32");
    std::vector<double> values;
    for (const auto& v : entry.at("values").as_array()) values.push_back(v.to_number<double>());
    torch::Tensor back = torch::tensor(values, torch::kFloat64).reshape(shape).to(tensor.scalar_type());
    EXPECT_TRUE(torch::equal(back, tensor)) << "values differ";
  }
}

TEST_F(CheckpointerTest, TheDirectoryStaysInsideTheRunDirectory) {
  for (const char* outside : {"/tmp/checkpoints", "../../elsewhere", "a/../../b", ""})
    expect_bad_input([&] { make({{"directory", std::string(outside)}}); },
                     {"checkpointer.directory must be a relative path inside the run directory"});
  EXPECT_NO_THROW(make({{"directory", std::string("saves/nested")}}));
}

// `hpt export -o DIR` with an existing directory writes the file into it and leaves no
// temporary file behind.
TEST_F(CheckpointerTest, ExportIntoAnExistingDirectoryWritesTheFileInside) {
  Net net = make_net(1);
  make()->save(9, state_files(*net, 9), {});
  const std::string out = dir() + "/exported";
  fs::create_directories(out);
  auto r = hpt::test::run_hpt({"export", dir() + "/latest", "-o", out});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(out)) names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"step_000009.weights.pt"});
}

TEST_F(CheckpointerTest, ExportToTorchRoundTrips) {
  Net net = make_net(1);
  auto info = make()->save(9, state_files(*net, 9), {});
  std::string out = hpt::host::default_export_path(dir() + "/latest", "torch");
  EXPECT_EQ(out, fs::weakly_canonical(step_dir("step_000009")).string() + ".weights.pt");
  hpt::host::export_checkpoint(dir() + "/latest", "torch", out);
  EXPECT_EQ(make()->list().size(), 1u);  // the export is no checkpoint

  std::string bytes = hpt::test::read_file(out);
  auto dict = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
  auto weights = weights_of(net);
  EXPECT_EQ(dict.size(), weights.size());
  for (const auto& [name, tensor] : weights) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(dict.contains(name));
    EXPECT_TRUE(torch::equal(dict.at(name).toTensor(), tensor));
  }
  EXPECT_LT(bytes.size(), hpt::test::read_file(info.path + "/model.pt").size());

  expect_bad_input([&] { hpt::host::export_checkpoint(info.path, "onnx", out); }, {"'onnx' is not one of: torch, json"});
}

TEST_F(CheckpointerTest, AverageOfTwoCheckpointsIsTheMean) {
  Net a = make_net(1), b = make_net(2);
  auto ckpt = make();
  auto first = ckpt->save(10, state_files(*a, 10), {});
  auto second = ckpt->save(20, state_files(*b, 20), {});
  std::string out = run_.path() + "/averaged/step_000020";
  hpt::host::average_checkpoints({first.path, second.path}, out);

  auto files = make()->load(out);  // a complete checkpoint, verified by its fresh manifest
  EXPECT_EQ(bytes_of(files, "optimizer.pt"), bytes_of(state_files(*a, 10), "optimizer.pt"));
  EXPECT_EQ(bytes_of(files, "engine.pt"), "step=10");
  Net mean = make_net(3);
  load_model(*mean, bytes_of(files, "model.pt"));
  auto wa = weights_of(a), wb = weights_of(b), wm = weights_of(mean);
  for (std::size_t i = 0; i < wm.size(); ++i) {
    SCOPED_TRACE(wm[i].first);
    if (wm[i].second.is_floating_point())
      EXPECT_LE((wm[i].second - (wa[i].second + wb[i].second) / 2).abs().max().item<double>(), 1e-6);
    else
      EXPECT_TRUE(torch::equal(wm[i].second, wa[i].second));  // counters come from the first
  }
  expect_bad_input([&] { hpt::host::average_checkpoints({first.path, second.path}, out); }, {"exists already"});
}

TEST_F(CheckpointerTest, AverageNamesTheFirstMismatchingTensorAndBothShapes) {
  Net small = make_net(1, 8), wide = make_net(2, 6);
  auto ckpt = make();
  auto first = ckpt->save(1, state_files(*small, 1), {});
  auto second = ckpt->save(2, state_files(*wide, 2), {});
  expect_bad_input([&] { hpt::host::average_checkpoints({first.path, second.path}, run_.path() + "/avg"); },
                   {"checkpoint " + second.path + ": 'fc1.weight' has shape [6, 4], but [8, 4] in " + first.path});
  EXPECT_FALSE(fs::exists(run_.path() + "/avg"));
}

TEST_F(CheckpointerTest, AverageVerifiesItsInputs) {
  auto ckpt = make();
  auto first = ckpt->save(1, state_files(*make_net(1), 1), {});
  auto second = ckpt->save(2, state_files(*make_net(2), 2), {});
  fs::resize_file(second.path + "/model.pt", 10);
  expect_bad_input([&] { hpt::host::average_checkpoints({first.path, second.path}, run_.path() + "/avg"); },
                   {second.path + ": model.pt is truncated"});
}

// model.pt as export, average and resume read it: damage is named before LibTorch parses
// the archive (its parser crashes on some damaged records), including every input the
// fuzzers found (fuzz/regressions/checkpoint_model/).
TEST(ModelArchive, DamageIsNamedBeforeLibTorchParsesIt) {
  const std::string good = model_bytes(*make_net(1));
  EXPECT_FALSE(hpt::host::read_model_tensors(good, "model.pt").empty());

  std::string flipped = good;
  const std::size_t code = flipped.find("class Module");
  ASSERT_NE(code, std::string::npos);
  flipped[code + 2] ^= 0x20;
  try {
    hpt::host::read_model_tensors(flipped, "model.pt");
    ADD_FAILURE() << "a damaged record was read";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("model.pt is damaged: record '"));
    EXPECT_THAT(e.what(), HasSubstr("' fails its CRC-32"));
  }
  for (std::size_t length : {std::size_t{0}, std::size_t{21}, good.size() / 2, good.size() - 1})
    EXPECT_THROW(hpt::host::read_model_tensors(good.substr(0, length), "model.pt"), hpt::BadInput) << length;

  int found = 0;
  for (const auto& entry : fs::directory_iterator(HPT_SOURCE_DIR "/fuzz/regressions/checkpoint_model")) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_THROW(hpt::host::read_model_tensors(bytes, entry.path().string()), hpt::BadInput) << entry.path();
    ++found;
  }
  EXPECT_GE(found, 1);
}

}  // namespace
