// Weights in and out, eval and sample, and bring-your-own data (issue 16, items 3 to 5),
// through the hpt command line:
//   - a PyTorch module with nested, dotted names, scripted and trained by hpt, exported,
//     loads with load_state_dict(strict=True) into the original module class under
//     Debian's python3-torch and gives the outputs (and the val_loss) hpt gives;
//   - task.init_from starts a run from a PyTorch state_dict or from hpt's own files, is
//     refused naming the file and the tensors when it does not fit, and a resumed
//     checkpoint wins over it;
//   - `hpt eval` prints the task's metrics of a checkpoint or a finished run;
//   - `hpt sample` generates text from a trained char_lm without reading its corpus;
//   - paths in a manifest resolve against the manifest's folder, overrides against the
//     working directory, and a missing file's error shows the absolute path tried.
// The Python fixtures are tests/tools/weights_roundtrip.py; the tests that need them are
// skipped, saying why, when /usr/bin/python3 cannot import torch.
#include <unistd.h>

#include <cstdio>
#include <set>

#include <boost/json.hpp>

#include "checkpoint/state_dict_pickle.hpp"
#include "checkpoint/weights_file.hpp"
#include "test_support.hpp"

using hpt::test::read_file;
using hpt::test::run_hpt;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

namespace fs = std::filesystem;

const std::string kTool = std::string(HPT_SOURCE_DIR) + "/tests/tools/weights_roundtrip.py";

// Runs `command` through the shell, bounded in time; its exit code and output (stdout and stderr).
std::pair<int, std::string> shell(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen(("timeout 300 " + command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

bool python_has_torch() {
  static const bool has = shell("/usr/bin/python3 -c 'import torch'").first == 0;
  return has;
}

#define SKIP_WITHOUT_PYTHON_TORCH() \
  if (!python_has_torch()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch (Debian: apt install python3-torch)"

// The Python fixtures (weights_roundtrip.py make), made once per test program.
const TempDir& fixtures() {
  static TempDir dir;
  static const bool made = [] {
    auto [code, output] = shell("/usr/bin/python3 " + kTool + " make " + dir.path());
    EXPECT_EQ(code, 0) << output;
    return code == 0;
  }();
  (void)made;
  return dir;
}

// A torchscript run on the fixtures: a manifest in `dir` whose paths are relative to it.
std::string write_torchscript_manifest(const TempDir& dir, const std::string& task_extra = "",
                                       const std::string& optimizer_extra = "lr = 0.01\n", int max_steps = 30) {
  for (const char* file : {"net.pt", "train.pt", "val.pt", "dataset.pt", "start.pt"})
    fs::copy_file(fixtures().path() + "/" + file, dir.path() + "/" + file, fs::copy_options::overwrite_existing);
  return dir.write("run.toml", "[run]\nname = \"ts\"\nmax_steps = " + std::to_string(max_steps) +
                                   "\neval_every = 0\nruns_dir = \"" + dir.path() + "/runs\"\n"
                                   "[task]\nplugin = \"torchscript\"\nmodule_path = \"net.pt\"\n"
                                   "data_path = \"train.pt\"\nval_data_path = \"val.pt\"\nbatch_size = 32\n" +
                                   task_extra + "[optimizer]\nplugin = \"adam\"\n" + optimizer_extra +
                                   "[checkpointer]\nplugin = \"torch\"\nevery_steps = 1000\n");
}

boost::json::object json_of(const std::string& text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  return v.is_object() ? v.as_object() : boost::json::object{};
}

std::map<std::string, torch::Tensor> weights_in(const std::string& path) {
  auto named = hpt::host::read_weights_file(path);
  return {named.begin(), named.end()};
}

bool is_parameter(const std::string& name) {
  return name.find("running_") == std::string::npos && name.find("num_batches_tracked") == std::string::npos;
}

// Parameters (not BatchNorm's statistics, which training mode updates even at lr = 0) equal.
void expect_same_parameters(const std::string& a, const std::string& b) {
  auto wa = weights_in(a), wb = weights_in(b);
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, tensor] : wa) {
    ASSERT_TRUE(wb.count(name)) << name << " is in " << a << " but not in " << b;
    if (is_parameter(name)) EXPECT_TRUE(torch::equal(tensor, wb.at(name))) << name << " differs";
  }
}

// ---- weights out ----

TEST(WeightsOut, ExportLoadsIntoTheOriginalPyTorchModuleWithTheSameOutputs) {
  SKIP_WITHOUT_PYTHON_TORCH();
  TempDir dir;
  auto run = run_hpt({"run", write_torchscript_manifest(dir)});
  ASSERT_EQ(run.code, 0) << run.err;
  const std::string run_dir = dir.path() + "/runs/ts";
  auto exported = run_hpt({"export", run_dir + "/checkpoints/latest", "-o", dir.path() + "/export.pt"});
  ASSERT_EQ(exported.code, 0) << exported.err;

  auto [code, output] = shell("/usr/bin/python3 " + kTool + " check " + dir.path() + " " + dir.path() + "/export.pt");
  ASSERT_EQ(code, 0) << output;  // load_state_dict(strict=True) raises on any name that does not match
  boost::json::object checked = json_of(output);
  std::set<std::string> names;
  for (const auto& n : checked["names"].as_array()) names.insert(std::string(n.as_string()));
  for (const char* name : {"encoder.0.weight", "encoder.1.weight", "encoder.1.bias", "encoder.4.running_mean",
                           "encoder.4.num_batches_tracked", "head.bias"})
    EXPECT_TRUE(names.count(name)) << name;
  EXPECT_TRUE(checked["scripted_equal"].as_bool());
  EXPECT_TRUE(checked["trained"].as_bool());

  // hpt's own evaluation of the same weights gives the loss PyTorch computes with them.
  auto eval = run_hpt({"eval", run_dir, "--json"});
  ASSERT_EQ(eval.code, 0) << eval.err;
  const double hpt_loss = json_of(eval.out)["val_loss"].to_number<double>();
  const double python_loss = checked["val_loss"].to_number<double>();
  EXPECT_NEAR(hpt_loss, python_loss, 1e-5 * python_loss);

  // A run directory exports its final weights: the checkpoint's, as the run ended there.
  auto from_run = run_hpt({"export", run_dir});
  ASSERT_EQ(from_run.code, 0) << from_run.err;
  EXPECT_THAT(from_run.out, HasSubstr(run_dir + "/final_weights.state_dict.pt"));
  auto a = weights_in(dir.path() + "/export.pt"), b = weights_in(run_dir + "/final_weights.state_dict.pt");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) EXPECT_TRUE(b.count(name) && torch::equal(tensor, b.at(name))) << name;
}

// ---- weights in ----

TEST(InitFrom, StartsFromAPyTorchStateDictAndFromHptsOwnFiles) {
  SKIP_WITHOUT_PYTHON_TORCH();
  TempDir dir;
  // lr = 0: the run ends with the weights it started from.
  const std::string manifest = write_torchscript_manifest(dir, "init_from = \"start.pt\"\n", "lr = 0.0\n", 3);
  auto from_python = run_hpt({"run", manifest});
  ASSERT_EQ(from_python.code, 0) << from_python.err;
  const std::string run_dir = dir.path() + "/runs/ts";
  expect_same_parameters(run_dir + "/final_weights.pt", dir.path() + "/start.pt");
  // Why hpt reads such a file by hand (checkpoint/state_dict_pickle.hpp): LibTorch cannot.
  const std::string state_dict = read_file(dir.path() + "/start.pt");
  EXPECT_THROW(torch::pickle_load(std::vector<char>(state_dict.begin(), state_dict.end())), c10::Error);
  EXPECT_THAT(read_file(run_dir + "/config.resolved.toml"), HasSubstr("init_from = \"" + dir.path() + "/start.pt\""));

  // hpt's final_weights.pt (a module archive) and `hpt export`'s file (a pickled dict).
  ASSERT_EQ(run_hpt({"export", run_dir, "-o", dir.path() + "/exported.pt"}).code, 0);
  for (const std::string& file : {run_dir + "/final_weights.pt", dir.path() + "/exported.pt"}) {
    fs::copy_file(file, dir.path() + "/again.pt", fs::copy_options::overwrite_existing);
    auto again = run_hpt({"run", manifest, "task.init_from=\"" + dir.path() + "/again.pt\"", "run.name=\"again\""});
    ASSERT_EQ(again.code, 0) << again.err;
    expect_same_parameters(dir.path() + "/runs/again/final_weights.pt", dir.path() + "/start.pt");
    fs::remove_all(dir.path() + "/runs/again");
  }
}

TEST(InitFrom, AFileThatDoesNotFitNamesTheFileAndEveryTensor) {
  SKIP_WITHOUT_PYTHON_TORCH();
  TempDir dir;
  const std::string manifest = write_torchscript_manifest(dir, "init_from = \"bad.pt\"\n");
  c10::Dict<std::string, torch::Tensor> bad;
  for (const auto& [name, tensor] : weights_in(dir.path() + "/start.pt"))
    if (name != "head.bias") bad.insert(name, name == "head.weight" ? torch::zeros({3, 16}) : tensor);
  bad.insert("extra.weight", torch::zeros({4}));
  std::vector<char> bytes = torch::pickle_save(bad);
  std::ofstream(dir.path() + "/bad.pt", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));

  auto r = run_hpt({"run", manifest});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("task.init_from: weights file " + dir.path() + "/bad.pt does not fit the model"));
  EXPECT_THAT(r.err, HasSubstr("'head.weight' has shape [3, 16], the model's has [2, 16]"));
  EXPECT_THAT(r.err, HasSubstr("'head.bias' (shape [2]) is missing"));
  EXPECT_THAT(r.err, HasSubstr("'extra.weight' (shape [4]) is not in the model"));

  dir.write("notes.txt", "not weights");
  auto text = run_hpt({"run", manifest, "task.init_from=\"" + dir.path() + "/notes.txt\""});
  EXPECT_EQ(text.code, 2);
  EXPECT_THAT(text.err, HasSubstr("weights file " + dir.path() + "/notes.txt: not a zip file torch.save wrote"));

  auto missing = run_hpt({"run", manifest, "task.init_from=\"nowhere.pt\""});
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.err,
              HasSubstr("task.init_from: weights file " + fs::current_path().string() + "/nowhere.pt does not exist"));
}

TEST(InitFrom, AResumedCheckpointWins) {
  SKIP_WITHOUT_PYTHON_TORCH();
  TempDir dir;
  const std::string manifest = write_torchscript_manifest(dir, "", "lr = 0.0\n", 4);
  ASSERT_EQ(run_hpt({"run", manifest}).code, 0);
  const std::string run_dir = dir.path() + "/runs/ts";
  auto resumed = run_hpt({"resume", run_dir, "run.max_steps=8", "task.init_from=\"" + dir.path() + "/start.pt\""});
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  // The weights are still the script module's own (lr = 0), not start.pt's.
  auto final_weights = weights_in(run_dir + "/final_weights.pt"), start = weights_in(dir.path() + "/start.pt");
  EXPECT_FALSE(torch::equal(final_weights.at("head.weight"), start.at("head.weight")));
}

// ---- eval ----

TEST(Eval, PrintsTheTasksMetricsOfACheckpointWithOverrides) {
  SKIP_WITHOUT_PYTHON_TORCH();
  TempDir dir;
  ASSERT_EQ(run_hpt({"run", write_torchscript_manifest(dir)}).code, 0);
  const std::string checkpoint = dir.path() + "/runs/ts/checkpoints/latest";
  auto text = run_hpt({"eval", checkpoint});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_THAT(text.out, ::testing::MatchesRegex("val_loss [0-9.e-]+\n"));
  auto on_val = json_of(run_hpt({"eval", checkpoint, "--json"}).out);
  auto on_train = json_of(run_hpt({"eval", checkpoint, "--json", "task.val_data_path=\"" + dir.path() + "/train.pt\""}).out);
  EXPECT_NE(on_val["val_loss"].to_number<double>(), on_train["val_loss"].to_number<double>());
}

TEST(Eval, APathThatIsNeitherACheckpointNorARunIsRefused) {
  TempDir dir;
  auto missing = run_hpt({"eval", dir.path() + "/nothing"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.err, HasSubstr(dir.path() + "/nothing does not exist"));
  auto neither = run_hpt({"eval", dir.path()});
  EXPECT_EQ(neither.code, 2);
  EXPECT_THAT(neither.err, HasSubstr("is neither a checkpoint directory (no manifest.json) nor a run directory"));
  dir.write("run/config.resolved.toml", "");
  auto unfinished = run_hpt({"eval", dir.path() + "/run"});
  EXPECT_EQ(unfinished.code, 2);
  EXPECT_THAT(unfinished.err, HasSubstr("has no final_weights.pt (the run has not finished)"));
}

// ---- sample ----

// A char_lm trained a few dozen steps on a small corpus beside its manifest.
struct CharLmRun {
  TempDir dir;
  std::string corpus_text;
  std::string run_dir = dir.path() + "/runs/lm";

  CharLmRun() {
    const char* words[] = {"the cat sat", "on the mat", "a dog ran", "to the sea", "and back"};
    for (int i = 0; i < 300; ++i) corpus_text += std::string(words[(i * 7) % 5]) + (i % 4 == 3 ? ".\n" : " ");
    dir.write("corpus.txt", corpus_text);
    const std::string manifest = dir.write(
        "lm.toml", "[run]\nname = \"lm\"\nmax_steps = 40\neval_every = 0\nruns_dir = \"" + dir.path() +
                       "/runs\"\n[task]\nplugin = \"char_lm\"\ncorpus = \"corpus.txt\"\nlayers = 1\nwidth = 32\n"
                       "heads = 2\ncontext = 16\nbatch_size = 16\neval_batches = 1\n[optimizer]\nplugin = \"adam\"\n"
                       "lr = 0.01\n[checkpointer]\nplugin = \"torch\"\nevery_steps = 40\n");
    auto r = run_hpt({"run", manifest});
    EXPECT_EQ(r.code, 0) << r.err;
  }

  std::string sample(const std::string& from, const std::vector<std::string>& options) const {
    std::vector<std::string> args = {"sample", from};
    args.insert(args.end(), options.begin(), options.end());
    auto r = run_hpt(args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_FALSE(r.out.empty());
    return r.out.empty() ? r.out : r.out.substr(0, r.out.size() - 1);  // without the line break hpt adds
  }
};

TEST(Sample, GeneratesTextFromACheckpointWithoutReadingTheCorpus) {
  CharLmRun lm;
  fs::remove(lm.dir.path() + "/corpus.txt");  // the vocabulary comes from the checkpoint
  const std::string checkpoint = lm.run_dir + "/checkpoints/latest";
  const std::string text = lm.sample(checkpoint, {"--prompt", "the ", "--length", "60", "--seed", "3"});
  ASSERT_EQ(text.size(), 4u + 60u) << text;
  EXPECT_EQ(text.substr(0, 4), "the ");
  const std::set<char> alphabet(lm.corpus_text.begin(), lm.corpus_text.end());
  for (char c : text) EXPECT_TRUE(alphabet.count(c)) << "'" << c << "' is not in the corpus";
  EXPECT_EQ(lm.sample(checkpoint, {"--prompt", "the ", "--length", "60", "--seed", "3"}), text);
  EXPECT_NE(lm.sample(checkpoint, {"--prompt", "the ", "--length", "60", "--seed", "4"}), text);
  // A finished run directory: final_weights.pt and final_task_state.pt.
  EXPECT_EQ(lm.sample(lm.run_dir, {"--prompt", "the ", "--length", "60", "--seed", "3"}), text);
  EXPECT_EQ(lm.sample(lm.run_dir, {"--length", "25", "--temperature", "0.5"}).size(), 25u);
}

TEST(Sample, CharactersOutsideTheVocabularyAndTasksThatCannotSampleAreRefused) {
  CharLmRun lm;
  auto r = run_hpt({"sample", lm.run_dir, "--prompt", "the ZOO"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("the prompt has characters the model's vocabulary lacks: 'Z' 'O'"));
  auto cold = run_hpt({"sample", lm.run_dir, "--temperature", "0"});
  EXPECT_EQ(cold.code, 2);
  EXPECT_THAT(cold.err, HasSubstr("--temperature must be a finite number > 0"));

  TempDir dir;
  const std::string manifest = dir.write("s.toml", "[run]\nmax_steps = 3\nruns_dir = \"" + dir.path() +
                                                        "\"\n[task]\nplugin = \"synthetic\"\n[optimizer]\nplugin = \"sgd\"\n");
  ASSERT_EQ(run_hpt({"run", manifest}).code, 0);
  auto synthetic = run_hpt({"sample", dir.path() + "/s"});
  EXPECT_EQ(synthetic.code, 2);
  EXPECT_THAT(synthetic.err, HasSubstr("task 'synthetic' does not generate samples"));
}

// ---- paths relative to the manifest ----

// While alive, the working directory is `dir`.
class WorkingDirectory {
 public:
  explicit WorkingDirectory(const std::string& dir) : saved_(fs::current_path()) { fs::current_path(dir); }
  ~WorkingDirectory() { fs::current_path(saved_); }

 private:
  fs::path saved_;
};

TEST(ManifestPaths, ResolveAgainstTheManifestsFolderAndOverridesAgainstTheWorkingDirectory) {
  SKIP_WITHOUT_PYTHON_TORCH();
  TempDir dir, elsewhere;
  fs::create_directories(dir.path() + "/cfg");
  for (const char* file : {"net.pt", "dataset.pt"})
    fs::copy_file(fixtures().path() + "/" + file, dir.path() + "/cfg/" + file);
  const std::string manifest = dir.write(
      "cfg/run.toml", "[run]\nname = \"rel\"\nmax_steps = 3\nruns_dir = \"" + dir.path() +
                          "/runs\"\n[task]\nplugin = \"torchscript\"\nmodule_path = \"net.pt\"\n"
                          "data_path = \"dataset.pt\"\n[optimizer]\nplugin = \"adam\"\n");
  {
    WorkingDirectory cwd(elsewhere.path());
    auto r = run_hpt({"run", manifest});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(read_file(dir.path() + "/runs/rel/config.resolved.toml"),
                HasSubstr("data_path = \"" + dir.path() + "/cfg/dataset.pt\""));
    auto bad = run_hpt({"run", manifest, "run.name=\"bad\"", "task.data_path=\"missing.pt\""});
    EXPECT_EQ(bad.code, 2);
    // An override resolves against the working directory.
    EXPECT_THAT(bad.err, HasSubstr("data file " + elsewhere.path() + "/missing.pt does not exist"));
  }
  std::string typo = read_file(manifest);
  typo.replace(typo.find("dataset.pt"), 10, "datset.pt");
  dir.write("cfg/typo.toml", typo);
  WorkingDirectory cwd(elsewhere.path());
  auto r = run_hpt({"run", dir.path() + "/cfg/typo.toml", "run.name=\"typo\""});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("data file " + dir.path() + "/cfg/datset.pt does not exist"));
}

// The hand-written reader of torch.save files: what Python wrote reads back (the fuzz
// corpus, written by torch 1.13), and every damaged file -- cut short, or one the fuzzer
// found (fuzz/regressions/state_dict_pickle/) -- is hpt::BadInput, nothing else.
TEST(StateDictPickle, ReadsWhatPythonWroteAndDamageIsBadInput) {
  auto bytes_of = [](const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const std::string good = bytes_of(HPT_SOURCE_DIR "/fuzz/corpus/state_dict_pickle/sequential_state_dict.pt");
  const c10::IValue dict = hpt::host::read_torch_save_pickle(good, "sequential_state_dict.pt");
  ASSERT_TRUE(dict.isGenericDict());
  EXPECT_TRUE(dict.toGenericDict().contains("0.weight"));
  EXPECT_TRUE(dict.toGenericDict().contains("2.running_mean"));
  for (std::size_t length : {std::size_t{0}, std::size_t{30}, good.size() / 2, good.size() - 1})
    EXPECT_THROW(hpt::host::read_torch_save_pickle(good.substr(0, length), "cut.pt"), hpt::BadInput) << length;
  int found = 0;
  for (const auto& entry : fs::directory_iterator(HPT_SOURCE_DIR "/fuzz/regressions/state_dict_pickle")) {
    EXPECT_THROW(hpt::host::read_torch_save_pickle(bytes_of(entry.path()), entry.path().string()), hpt::BadInput)
        << entry.path();
    ++found;
  }
  EXPECT_GE(found, 1);
}

}  // namespace
