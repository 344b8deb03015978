// Curriculum ([curriculum], engine/curriculum.hpp) and the task hooks behind it
// (Task::score_examples, Task::restrict_examples): a task's scores are its model's loss
// on each example; restricted, it draws batches only from the pool and a saved task
// resumes to the same batches; in a run, the batches after scoring come from the
// easiest examples only, the pool grows along the pacing function to every example by
// full_at_step (recorded in metrics.jsonl), a curriculum that never narrows the pool
// leaves the run as it was, a resumed run equals a straight one bit for bit, and a task
// without the hooks or a bad key is exit code 2 with a message naming it.
#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include <boost/json.hpp>

#include "checkpoint/checkpoint_tools.hpp"
#include "config/curriculum_settings.hpp"
#include "test_support.hpp"

using hpt::test::read_file;
using hpt::test::run_hpt;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

const char* kSynthetic = R"(
[run]
name = "cur"
seed = 3
max_steps = 60
eval_every = 10
[task]
plugin = "synthetic"
samples = 512
batch_size = 32
[optimizer]
plugin = "sgd"
lr = 0.05
)";

const char* kCurriculum = R"(
[curriculum]
score_at_step = 10
start_fraction = 0.25
full_at_step = 40
)";

// The index of each row of `rows` in `all` (rows of the same width); -1 for a row not there.
std::vector<std::int64_t> row_indices(const torch::Tensor& rows, const torch::Tensor& all) {
  torch::Tensor same = (rows.unsqueeze(1) == all.unsqueeze(0)).all(2);  // [rows, all]
  std::vector<std::int64_t> out;
  for (std::int64_t r = 0; r < rows.size(0); ++r) {
    torch::Tensor hits = same[r].nonzero();
    out.push_back(hits.numel() == 1 ? hits.item<std::int64_t>() : -1);
  }
  return out;
}

torch::Tensor scores_of(hpt::Task& task) {
  torch::NoGradGuard no_grad;
  task.model().eval();
  torch::Tensor scores = task.score_examples();
  task.model().train();
  return scores;
}

// The `count` easiest examples (lowest score; ties by index), as a set.
std::set<std::int64_t> easiest(const torch::Tensor& scores, std::int64_t count) {
  torch::Tensor order = std::get<1>(scores.sort(/*stable=*/true, 0, false));
  std::set<std::int64_t> out;
  for (std::int64_t i = 0; i < count; ++i) out.insert(order[i].item<std::int64_t>());
  return out;
}

std::string state_bytes(const hpt::Task& task) {
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

std::vector<boost::json::object> lines_of(const std::string& run_dir, const std::string& type) {
  std::vector<boost::json::object> lines;
  std::istringstream in(read_file(run_dir + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) {
      auto o = boost::json::parse(line).as_object();
      if (o.at("type").as_string() == type) lines.push_back(o);
    }
  return lines;
}

// val_loss by step, of the evaluations every eval_every (10) steps.
std::map<std::int64_t, double> val_losses(const std::string& run_dir) {
  std::map<std::int64_t, double> out;
  for (const auto& e : lines_of(run_dir, "eval"))
    if (e.at("step").as_int64() % 10 == 0) out[e.at("step").as_int64()] = e.at("val_loss").as_double();
  return out;
}

// ---- the tasks' hooks ----

TEST(CurriculumTask, SyntheticScoresAreEachExamplesLoss) {
  for (const char* kind : {"regression", "classification"}) {
    auto task = hpt::test::make_plugin<hpt::Task>(hpt::PluginKind::Task, "synthetic",
                                                  {{"samples", std::int64_t{64}}, {"kind", std::string(kind)}}, 4);
    ASSERT_TRUE(task->can_score_examples());
    torch::Tensor scores = scores_of(*task);
    ASSERT_EQ(scores.dim(), 1);
    ASSERT_EQ(scores.numel(), 64);
    EXPECT_TRUE(scores.device().is_cpu());
    // The probe batch is the whole training set, in index order: each row's own loss.
    const hpt::Batch& all = task->probe_batch();
    torch::NoGradGuard no_grad;
    task->model().eval();
    for (std::int64_t i : {0, 17, 63}) {
      hpt::Batch one{{all.inputs.at(0).narrow(0, i, 1)}, all.targets.narrow(0, i, 1)};
      EXPECT_NEAR(scores[i].item<double>(), task->loss(one).item<double>(), 1e-5) << kind << " example " << i;
    }
    EXPECT_GT((scores.max() - scores.min()).item<double>(), 0.0);
  }
}

// Restricted, a task's batches come from the pool only, across epochs; lifted, from all.
TEST(CurriculumTask, SyntheticBatchesComeFromThePoolOnly) {
  auto task = hpt::test::make_plugin<hpt::Task>(hpt::PluginKind::Task, "synthetic",
                                                {{"samples", std::int64_t{64}}, {"batch_size", std::int64_t{8}}}, 4);
  const torch::Tensor all = task->probe_batch().inputs.at(0);
  task->next_batch();  // mid-epoch: the restriction starts a new one
  const std::set<std::int64_t> pool = {3, 5, 8, 13, 21, 34, 40, 41, 42, 55, 60, 63};
  task->restrict_examples(torch::tensor(std::vector<std::int64_t>(pool.rbegin(), pool.rend()), torch::kInt64));
  std::set<std::int64_t> seen;
  for (int b = 0; b < 12; ++b)  // 12 epochs of one batch (12 examples, batches of 8)
    for (std::int64_t i : row_indices(task->next_batch().inputs.at(0), all)) {
      EXPECT_TRUE(pool.count(i)) << "example " << i << " is not in the pool";
      seen.insert(i);
    }
  EXPECT_EQ(seen, pool);  // every epoch is a new permutation of the pool
  task->restrict_examples(torch::Tensor());
  std::set<std::int64_t> after;
  for (int b = 0; b < 8; ++b)
    for (std::int64_t i : row_indices(task->next_batch().inputs.at(0), all)) after.insert(i);
  EXPECT_EQ(after.size(), 64u);  // one epoch of all 64
}

TEST(CurriculumTask, BadPoolsAreRefused) {
  auto task = hpt::test::make_plugin<hpt::Task>(hpt::PluginKind::Task, "synthetic",
                                                {{"samples", std::int64_t{64}}, {"batch_size", std::int64_t{8}}});
  auto refusal = [&](const torch::Tensor& pool) {
    try {
      task->restrict_examples(pool);
    } catch (const hpt::BadInput& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_THAT(refusal(torch::arange(4, torch::kInt64)), HasSubstr("smaller than a global batch of 8"));
  EXPECT_THAT(refusal(torch::arange(60, 70, torch::kInt64)), HasSubstr("example 69, outside the 64"));
  EXPECT_THAT(refusal(torch::tensor({1, 2, 3, 4, 5, 6, 7, 7}, torch::kInt64)), HasSubstr("example 7 more than once"));
  auto full = hpt::test::make_plugin<hpt::Task>(hpt::PluginKind::Task, "synthetic",
                                                {{"samples", std::int64_t{64}}, {"batch_size", std::int64_t{0}}});
  EXPECT_THROW(full->restrict_examples(torch::arange(32, torch::kInt64)), hpt::BadInput);
}

// The pool is part of the task's state: a saved restricted task resumes to the same batches.
TEST(CurriculumTask, RestrictedTasksResumeToTheSameBatches) {
  struct Case {
    const char* name;
    hpt::test::Overrides options;
  };
  const std::vector<Case> cases = {
      {"synthetic", {{"samples", std::int64_t{64}}, {"batch_size", std::int64_t{8}}}},
      {"fashion_mnist",
       {{"train_limit", std::int64_t{256}}, {"eval_limit", std::int64_t{64}}, {"batch_size", std::int64_t{16}},
        {"probe_size", std::int64_t{16}}, {"model", std::string("mlp")}, {"hidden", std::vector<std::int64_t>{32}}}},
  };
  for (const Case& c : cases) {
    auto original = hpt::test::make_plugin<hpt::Task>(hpt::PluginKind::Task, c.name, c.options, 9);
    torch::Tensor scores = scores_of(*original);
    ASSERT_EQ(scores.dim(), 1) << c.name;
    const std::int64_t n = scores.numel();
    torch::Tensor order = std::get<1>(scores.sort(/*stable=*/true, 0, false));
    original->next_batch();
    original->restrict_examples(order.narrow(0, 0, n / 4));
    for (int i = 0; i < 5; ++i) original->next_batch();  // past the first epoch of the pool
    const std::string bytes = state_bytes(*original);
    auto resumed = hpt::test::make_plugin<hpt::Task>(hpt::PluginKind::Task, c.name, c.options, 9);
    load_state(*resumed, bytes);
    for (int i = 0; i < 6; ++i) {
      hpt::Batch expected = original->next_batch(), got = resumed->next_batch();
      EXPECT_TRUE(torch::equal(expected.inputs.at(0), got.inputs.at(0))) << c.name << " batch " << i;
      EXPECT_TRUE(torch::equal(expected.targets, got.targets)) << c.name << " batch " << i;
    }
  }
}

// fashion_mnist: a restricted batch holds only images among the easiest (their own loss
// is at most the pool's largest score).
TEST(CurriculumTask, FashionMnistBatchesComeFromTheEasiest) {
  auto task = hpt::test::make_plugin<hpt::Task>(
      hpt::PluginKind::Task, "fashion_mnist",
      {{"train_limit", std::int64_t{512}}, {"eval_limit", std::int64_t{64}}, {"batch_size", std::int64_t{32}},
       {"probe_size", std::int64_t{16}}},
      2);
  ASSERT_TRUE(task->can_score_examples());
  torch::Tensor scores = scores_of(*task);
  ASSERT_EQ(scores.numel(), 512);
  torch::Tensor order = std::get<1>(scores.sort(/*stable=*/true, 0, false));
  const std::int64_t pool = 64;
  const double hardest_in_pool = scores[order[pool - 1]].item<double>();
  const double easiest_outside = scores[order[pool]].item<double>();
  ASSERT_LT(hardest_in_pool, easiest_outside);
  task->restrict_examples(order.narrow(0, 0, pool));
  torch::NoGradGuard no_grad;
  task->model().eval();
  for (int b = 0; b < 4; ++b) {
    hpt::Batch batch = task->next_batch();
    for (std::int64_t r = 0; r < batch.targets.size(0); ++r) {
      hpt::Batch one{{batch.inputs.at(0).narrow(0, r, 1)}, batch.targets.narrow(0, r, 1)};
      EXPECT_LE(task->loss(one).item<double>(), hardest_in_pool + 1e-4 * (1.0 + std::abs(hardest_in_pool)))
          << "batch " << b << " row " << r;
    }
  }
}

// ---- the engine's driver ----

TEST(Curriculum, PacingFunctions) {
  hpt::host::CurriculumSettings s;
  s.score_at_step = 10;
  s.full_at_step = 110;
  s.start_fraction = 0.2;
  s.pacing = "linear";
  EXPECT_DOUBLE_EQ(s.fraction_at(10), 0.2);
  EXPECT_DOUBLE_EQ(s.fraction_at(60), 0.6);
  EXPECT_DOUBLE_EQ(s.fraction_at(110), 1.0);
  EXPECT_DOUBLE_EQ(s.fraction_at(500), 1.0);
  s.pacing = "root";
  EXPECT_DOUBLE_EQ(s.fraction_at(10), 0.2);
  EXPECT_DOUBLE_EQ(s.fraction_at(60), std::sqrt(0.04 + 0.96 * 0.5));
  EXPECT_DOUBLE_EQ(s.fraction_at(110), 1.0);
}

// score_at_step = 10: ten steps on everything, then the examples are scored with the model
// of step 10 and the next batches come only from the easiest quarter of them.
TEST(Curriculum, BatchesAfterScoringComeFromTheEasiest) {
  auto built = hpt::test::build_engine(std::string(kSynthetic) + kCurriculum, {});
  hpt::host::Engine& engine = *built.engine;
  for (int i = 0; i < 10; ++i) engine.real_step(hpt::StepKind::Full);
  EXPECT_FALSE(engine.curriculum().scored());
  const std::set<std::int64_t> expected = easiest(scores_of(engine.task()), 128);  // the model of step 10

  engine.real_step(hpt::StepKind::Full);  // scores, restricts, then trains on a pool batch
  ASSERT_TRUE(engine.curriculum().scored());
  EXPECT_EQ(engine.curriculum().examples(), 512);
  EXPECT_EQ(engine.curriculum().pool_size(), 128);
  const torch::Tensor order = engine.curriculum().order();
  std::set<std::int64_t> pool;
  for (std::int64_t i = 0; i < 128; ++i) pool.insert(order[i].item<std::int64_t>());
  EXPECT_EQ(pool, expected);

  const torch::Tensor all = engine.task().probe_batch().inputs.at(0);
  for (int b = 0; b < 8; ++b)
    for (std::int64_t i : row_indices(engine.task().next_batch().inputs.at(0), all))
      EXPECT_TRUE(pool.count(i)) << "batch " << b << ": example " << i << " is not among the easiest 128";
}

// The pool grows along the pacing function, re-restricted when it has grown by min_growth
// of the examples, and holds everything from full_at_step on; metrics.jsonl records it.
TEST(Curriculum, PoolGrowsToEverythingByFullAtStep) {
  TempDir dir;
  const std::string manifest = dir.write("m.toml", std::string(kSynthetic) + kCurriculum + "min_growth = 0.05\n");
  auto r = run_hpt({"run", manifest, "run.runs_dir=\"" + dir.path() + "\"", "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto changes = lines_of(dir.path() + "/cur", "curriculum");
  ASSERT_GE(changes.size(), 3u);
  EXPECT_EQ(changes.front().at("step").as_int64(), 10);
  EXPECT_EQ(changes.front().at("pool").as_int64(), 128);
  EXPECT_TRUE(changes.front().at("scored").as_bool());
  std::int64_t last_pool = 0;
  for (const auto& c : changes) {
    const std::int64_t step = c.at("step").as_int64(), pool = c.at("pool").as_int64();
    EXPECT_EQ(c.at("examples").as_int64(), 512);
    // linear pacing: ceil(512 * (0.25 + 0.75 * (step - 10) / 30)) at a change
    EXPECT_EQ(pool, std::min<std::int64_t>(512, static_cast<std::int64_t>(
                                                    std::ceil(512 * (0.25 + 0.75 * (step - 10) / 30.0) - 1e-9))))
        << "step " << step;
    if (last_pool > 0 && pool < 512) EXPECT_GE(pool - last_pool, 26) << "step " << step;  // 5% of 512
    EXPECT_GT(pool, last_pool);
    last_pool = pool;
  }
  EXPECT_EQ(changes.back().at("pool").as_int64(), 512);
  EXPECT_LE(changes.back().at("step").as_int64(), 40);
  EXPECT_THAT(read_file(dir.path() + "/cur/config.resolved.toml"), HasSubstr("[curriculum]"));
  EXPECT_THAT(read_file(dir.path() + "/cur/hpt.log"), HasSubstr("batches come from the easiest 128 of 512 examples"));
}

// start_fraction = 1: the examples are scored, but the pool is everything from the start,
// so nothing is restricted and the run is the run without [curriculum], bit for bit.
TEST(Curriculum, APoolOfEverythingLeavesTheRunUnchanged) {
  TempDir dir;
  const std::string plain = dir.write("plain.toml", kSynthetic);
  const std::string curriculum = dir.write("curriculum.toml", std::string(kSynthetic) + kCurriculum);
  const std::vector<std::array<std::string, 3>> runs = {
      {plain, "plain", ""}, {curriculum, "whole", "curriculum.start_fraction=1.0"}, {curriculum, "narrowed", ""}};
  for (const auto& [file, name, extra] : runs) {
    std::vector<std::string> args = {"run", file, "run.runs_dir=\"" + dir.path() + "\"", "run.name=\"" + name + "\"",
                                     "--no-progress"};
    if (!extra.empty()) args.push_back(extra);
    auto r = run_hpt(args);
    ASSERT_EQ(r.code, 0) << name << ": " << r.err;
  }
  const auto a = val_losses(dir.path() + "/plain"), b = val_losses(dir.path() + "/whole"),
             c = val_losses(dir.path() + "/narrowed");
  ASSERT_EQ(a.size(), 6u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);  // a curriculum that narrows the pool does change the run
  EXPECT_EQ(lines_of(dir.path() + "/whole", "curriculum").size(), 1u);  // scored, nothing restricted
}

// Stopped mid-curriculum (pool partly grown) and resumed: the run equals a straight one.
TEST(Curriculum, ResumeMidCurriculumEqualsAStraightRun) {
  TempDir dir;
  const std::string manifest =
      dir.write("m.toml", std::string(kSynthetic) + kCurriculum + "pacing = \"root\"\n" +
                              "[checkpointer]\nplugin = \"torch\"\nevery_steps = 5\nkeep_last = 2\n");
  auto a = run_hpt({"run", manifest, "run.runs_dir=\"" + dir.path() + "/a\"", "--no-progress"});
  ASSERT_EQ(a.code, 0) << a.err;
  auto b = run_hpt({"run", manifest, "run.runs_dir=\"" + dir.path() + "/b\"", "run.max_steps=23", "--no-progress"});
  ASSERT_EQ(b.code, 0) << b.err;
  const auto before = lines_of(dir.path() + "/b/cur", "curriculum");
  ASSERT_FALSE(before.empty());
  ASSERT_LT(before.back().at("pool").as_int64(), 512);  // stopped with the pool still growing
  auto resumed = run_hpt({"resume", dir.path() + "/b/cur", "run.max_steps=60", "--no-progress"});
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_EQ(val_losses(dir.path() + "/a/cur"), val_losses(dir.path() + "/b/cur"));
  auto wa = hpt::host::read_model_tensors(read_file(dir.path() + "/a/cur/final_weights.pt"), "a");
  auto wb = hpt::host::read_model_tensors(read_file(dir.path() + "/b/cur/final_weights.pt"), "b");
  ASSERT_EQ(wa.size(), wb.size());
  for (std::size_t i = 0; i < wa.size(); ++i) EXPECT_TRUE(torch::equal(wa[i].second, wb[i].second)) << wa[i].first;
  // The pool changes after the resume are the straight run's.
  auto pools = [](const std::vector<boost::json::object>& lines) {
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    for (const auto& l : lines) out.emplace_back(l.at("step").as_int64(), l.at("pool").as_int64());
    return out;
  };
  EXPECT_EQ(pools(lines_of(dir.path() + "/a/cur", "curriculum")), pools(lines_of(dir.path() + "/b/cur", "curriculum")));
}

TEST(Curriculum, ATaskThatCannotScoreItsExamplesIsExitCode2) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 200; ++i) text += "the quick brown fox jumps over the lazy dog. ";
  const std::string corpus = dir.write("corpus.txt", text);
  const std::string manifest = dir.write(
      "m.toml", "[run]\nname = \"lm\"\nmax_steps = 5\n[task]\nplugin = \"char_lm\"\ncorpus = \"" + corpus +
                    "\"\ncontext = 16\nbatch_size = 4\n[optimizer]\nplugin = \"adam\"\n" + kCurriculum);
  auto r = run_hpt({"run", manifest, "run.runs_dir=\"" + dir.path() + "\"", "--no-progress"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("[curriculum]: task 'char_lm' cannot score its examples"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/lm"));  // nothing ran: no run directory left
}

TEST(Curriculum, BadKeysAreExitCode2NamingTheKey) {
  TempDir dir;
  struct Case {
    std::string section;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"[curriculum]\nfull_at_step = 40\nstart_fractoin = 0.3\n",
       "unknown key 'start_fractoin' in [curriculum]; did you mean 'start_fraction'?"},
      {"[curriculum]\nscore_at_step = 10\n", "'curriculum.full_at_step' is required and must be greater than"},
      {"[curriculum]\nscore_at_step = 10\nfull_at_step = 10\n", "'curriculum.full_at_step' is required"},
      {"[curriculum]\nfull_at_step = 40\nstart_fraction = 0.0\n", "'curriculum.start_fraction' must be a float in (0, 1]"},
      {"[curriculum]\nfull_at_step = 40\nstart_fraction = 1.5\n", "'curriculum.start_fraction' must be a float in [0, 1]"},
      {"[curriculum]\nfull_at_step = 40\npacing = \"cubic\"\n", "'curriculum.pacing' must be one of linear, root"},
      {"[curriculum]\nfull_at_step = 40\nmin_growth = 0\n", "'curriculum.min_growth' must be a float in (0, 1]"},
  };
  for (const Case& c : cases) {
    const std::string manifest = dir.write("m.toml", std::string(kSynthetic) + c.section);
    auto r = run_hpt({"validate", manifest});
    EXPECT_EQ(r.code, 2) << c.section;
    EXPECT_THAT(r.err, HasSubstr(c.expected)) << c.section;
    EXPECT_THAT(r.err, HasSubstr("m.toml")) << c.section;
  }
}

}  // namespace
