// Compressed checkpoints (`[checkpointer] compression = "zstd"`): the stored files are
// zstd frames and smaller, the manifest hashes what is stored, every reader (load,
// export, average, task.init_from, resume) decompresses transparently, a directory of
// older uncompressed and newer compressed checkpoints loads, damage is hpt::BadInput
// naming the file, and bad option values exit 2.
#include <filesystem>

#include <torch/serialize.h>

#include "checkpoint/checkpoint_tools.hpp"
#include "checkpoint/weights_file.hpp"
#include "checkpoint_format/checkpoint_compression.hpp"
#include "checkpoint_format/checkpoint_manifest.hpp"
#include "test_support.hpp"

using hpt::test::read_file;
using hpt::test::run_hpt;
using hpt::test::run_to_end;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

namespace fs = std::filesystem;
namespace ckpt = hpt::checkpoint;

std::string bytes_of_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void overwrite(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// A model archive as the engine's model.pt is, of a small MLP.
std::string model_archive(std::uint64_t seed) {
  torch::manual_seed(seed);
  torch::nn::Sequential net(torch::nn::Linear(16, 32), torch::nn::ReLU(), torch::nn::Linear(32, 4));
  torch::serialize::OutputArchive archive;
  net->save(archive);
  std::ostringstream os;
  archive.save_to(os);
  return os.str();
}

std::vector<hpt::CheckpointFile> engine_like_files(std::uint64_t seed) {
  return {{"model.pt", model_archive(seed)},
          {"state.json", "{\"step\": " + std::to_string(seed) + ", \"note\": \"" + std::string(200, 'x') + "\"}"},
          {"engine.pt", "step"}};
}

const std::string& named(const std::vector<hpt::CheckpointFile>& files, const std::string& name) {
  for (const auto& f : files)
    if (f.name == name) return f.bytes;
  throw std::runtime_error("no " + name);
}

class CompressedCheckpoint : public ::testing::Test {
 protected:
  std::shared_ptr<hpt::Checkpointer> make(const std::string& compression, std::int64_t level = 3) {
    auto info = loader_.find(hpt::PluginKind::Checkpointer, "torch");
    hpt::Options options = hpt::Options::defaults(info->options);
    options.set("compression", compression);
    options.set("compression_level", level);
    options.set("keep_last", std::int64_t{0});
    hpt::PluginContext context;
    context.run_dir = run_.path();
    return loader_.create<hpt::Checkpointer>(*info, context, options);
  }
  std::string dir(const std::string& name) const { return run_.path() + "/checkpoints/" + name; }

  std::uint64_t stored_bytes(const std::string& checkpoint) const {
    std::uint64_t total = 0;
    for (const auto& e : fs::directory_iterator(checkpoint))
      if (e.path().filename() != ckpt::kManifestName) total += fs::file_size(e.path());
    return total;
  }

  TempDir run_;
  hpt::host::PluginLoader loader_{{std::string(HPT_BINARY_DIR) + "/plugins"}};
};

TEST_F(CompressedCheckpoint, StoredFilesAreZstdFramesHashedAsStoredAndLoadAsGiven) {
  const auto files = engine_like_files(1);
  auto zstd = make("zstd");
  const std::string path = zstd->save(1, files, {}).path;
  auto plain = make("none");
  const std::string plain_path = plain->save(2, files, {}).path;

  // Each stored file is a zstd frame, and the manifest's size and SHA-256 are of those bytes.
  const ckpt::Manifest manifest = ckpt::read_manifest(path);
  ASSERT_EQ(manifest.files.size(), files.size());
  for (const auto& entry : manifest.files) {
    const std::string stored = bytes_of_file(path + "/" + entry.name);
    EXPECT_TRUE(ckpt::is_zstd_frame(stored)) << entry.name;
    EXPECT_EQ(entry.size, stored.size()) << entry.name;
    EXPECT_EQ(entry.sha256, ckpt::sha256_hex(stored)) << entry.name;
  }
  EXPECT_FALSE(ckpt::is_zstd_frame(bytes_of_file(plain_path + "/model.pt")));
  EXPECT_LT(stored_bytes(path), stored_bytes(plain_path));
  EXPECT_LT(fs::file_size(path + "/model.pt"), fs::file_size(plain_path + "/model.pt"));

  // Verified and handed back as they were given.
  for (const auto& loaded : {zstd->load(path), make("none")->load(path)}) {
    ASSERT_EQ(loaded.size(), files.size());
    for (std::size_t i = 0; i < files.size(); ++i) {
      EXPECT_EQ(loaded[i].name, files[i].name);
      EXPECT_EQ(loaded[i].bytes, files[i].bytes) << files[i].name;
    }
  }
}

TEST_F(CompressedCheckpoint, HigherLevelIsNoBiggerAndEveryLevelReadsBack) {
  const auto files = engine_like_files(2);
  std::uint64_t size_1 = 0, size_19 = 0;
  {
    auto c = make("zstd", 1);
    size_1 = stored_bytes(c->save(1, files, {}).path);
  }
  {
    auto c = make("zstd", 19);
    const std::string path = c->save(2, files, {}).path;
    size_19 = stored_bytes(path);
    EXPECT_EQ(named(c->load(path), "model.pt"), named(files, "model.pt"));
  }
  EXPECT_LE(size_19, size_1);
}

// Older uncompressed checkpoints and newer compressed ones in one directory: listed,
// loaded, exported and averaged alike; init_from reads a compressed model.pt.
TEST_F(CompressedCheckpoint, MixedDirectoryLoadsExportsAndAverages) {
  const std::string old_path = make("none")->save(10, engine_like_files(3), {{"val_loss", 1.0}}).path;
  auto zstd = make("zstd");
  const std::string new_path = zstd->save(20, engine_like_files(4), {{"val_loss", 0.5}}).path;
  ASSERT_TRUE(ckpt::is_zstd_frame(bytes_of_file(new_path + "/model.pt")));
  ASSERT_FALSE(ckpt::is_zstd_frame(bytes_of_file(old_path + "/model.pt")));

  const auto listed = zstd->list();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].step, 20);
  EXPECT_EQ(listed[1].step, 10);
  EXPECT_EQ(named(zstd->load(old_path), "model.pt"), model_archive(3));
  EXPECT_EQ(named(zstd->load(new_path), "model.pt"), model_archive(4));

  // hpt export on the compressed one gives the model's tensors.
  const std::string exported = run_.path() + "/new.weights.pt";
  hpt::host::export_checkpoint(new_path, "torch", exported);
  const auto expected = hpt::host::read_model_tensors(model_archive(4), "model 4");
  const auto from_export = hpt::host::read_weights_file(exported);
  ASSERT_EQ(from_export.size(), expected.size());

  // task.init_from on a compressed model.pt (read_weights_file) reads the same tensors.
  const auto from_file = hpt::host::read_weights_file(new_path + "/model.pt");
  ASSERT_EQ(from_file.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(from_file[i].first, expected[i].first);
    EXPECT_TRUE(torch::equal(from_file[i].second, expected[i].second)) << expected[i].first;
  }

  // hpt average over one of each kind: the mean of the two models.
  const std::string averaged = run_.path() + "/averaged";
  hpt::host::average_checkpoints({old_path, new_path}, averaged);
  const auto mean = hpt::host::read_model_tensors(named(ckpt::read_checkpoint(averaged).files, "model.pt"), "avg");
  const auto a = hpt::host::read_model_tensors(model_archive(3), "a");
  ASSERT_EQ(mean.size(), a.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::allclose(mean[i].second, (a[i].second + expected[i].second) / 2)) << a[i].first;
}

TEST_F(CompressedCheckpoint, DamagedCompressedFilesAreRefusedNamingTheFile) {
  const auto files = engine_like_files(5);
  const std::string path = make("zstd")->save(1, files, {}).path;
  const std::string model = path + "/model.pt";
  const std::string stored = bytes_of_file(model);

  // Changed bytes fail the manifest's hash of the stored bytes.
  std::string flipped = stored;
  flipped[flipped.size() / 2] ^= 0x10;
  overwrite(model, flipped);
  try {
    make("zstd")->load(path);
    ADD_FAILURE() << "a corrupt checkpoint loaded";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("model.pt fails its SHA-256 check"));
  }

  // Where no manifest is checked (task.init_from), the frame's own checks refuse it: a
  // changed byte (content checksum or block structure) and a truncated frame.
  for (const std::string& damaged : {flipped, stored.substr(0, stored.size() - 9), stored.substr(0, 6)}) {
    overwrite(model, damaged);
    try {
      hpt::host::read_weights_file(model);
      ADD_FAILURE() << "a damaged frame of " << damaged.size() << " bytes was read";
    } catch (const hpt::BadInput& e) {
      EXPECT_THAT(e.what(), HasSubstr(fs::absolute(model).lexically_normal().string()));
      EXPECT_THAT(e.what(), HasSubstr("is a damaged zstd frame"));
    }
  }

  // A manifest rewritten to match damaged bytes: the hash passes, decompression refuses.
  std::string manifest = read_file(path + "/" + ckpt::kManifestName);
  const std::string old_hash = ckpt::sha256_hex(stored);
  overwrite(model, flipped);
  manifest.replace(manifest.find(old_hash), old_hash.size(), ckpt::sha256_hex(flipped));
  overwrite(path + "/" + ckpt::kManifestName, manifest);
  try {
    make("zstd")->load(path);
    ADD_FAILURE() << "a damaged frame loaded";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("checkpoint " + path + ": model.pt is a damaged zstd frame"));
  }
}

TEST(ZstdFrames, ConcatenatedFramesDecompressAndOtherBytesPassThrough) {
  const std::string a = "first part " + std::string(5000, 'a'), b = "second part";
  std::string both = ckpt::zstd_compress(a, 3) + ckpt::zstd_compress(b, 3);
  ckpt::decompress_if_zstd(both, "both");
  EXPECT_EQ(both, a + b);

  std::string not_zstd = "PK\x03\x04 a zip archive";
  ckpt::decompress_if_zstd(not_zstd, "zip");
  EXPECT_EQ(not_zstd, "PK\x03\x04 a zip archive");

  std::string trailing = ckpt::zstd_compress(a, 3) + "trailing bytes";
  EXPECT_THROW(ckpt::decompress_if_zstd(trailing, "trailing"), hpt::BadInput);

  std::string empty = ckpt::zstd_compress("", 3);
  ckpt::decompress_if_zstd(empty, "empty");
  EXPECT_EQ(empty, "");
}

std::string run_manifest(const std::string& runs_dir, const std::string& checkpointer_extra) {
  return "[run]\nname = \"r\"\nseed = 11\nmax_steps = 40\neval_every = 20\nruns_dir = \"" + runs_dir +
         "\"\n[task]\nplugin = \"synthetic\"\nsamples = 256\n[optimizer]\nplugin = \"adam\"\nlr = 0.01\n"
         "[checkpointer]\nplugin = \"torch\"\nevery_steps = 5\nkeep_last = 2\n" +
         checkpointer_extra;
}

// An uncompressed run of 40 steps against a compressed one stopped at 20 and resumed to
// 40: the same weights bit for bit, from stored files that are zstd frames and smaller;
// `hpt eval` reads the compressed checkpoint.
TEST(CompressedCheckpointRun, ResumesToTheSameResultAsAnUncompressedRun) {
  TempDir dir;
  const std::string plain = dir.write("plain.toml", run_manifest(dir.path() + "/a", ""));
  const std::string zstd = dir.write("zstd.toml", run_manifest(dir.path() + "/b", "compression = \"zstd\"\n"));
  ASSERT_EQ(run_to_end({"run", plain, "--no-progress"}, dir.path() + "/a.log"), 0) << read_file(dir.path() + "/a.log");
  ASSERT_EQ(run_to_end({"run", zstd, "run.max_steps=20", "--no-progress"}, dir.path() + "/b.log"), 0)
      << read_file(dir.path() + "/b.log");
  ASSERT_EQ(run_to_end({"resume", dir.path() + "/b/r", "run.max_steps=40", "--no-progress"}, dir.path() + "/b.log"), 0)
      << read_file(dir.path() + "/b.log");
  EXPECT_THAT(read_file(dir.path() + "/b.log"), HasSubstr("resumed from"));

  const std::string a = fs::canonical(dir.path() + "/a/r/checkpoints/latest").string();
  const std::string b = fs::canonical(dir.path() + "/b/r/checkpoints/latest").string();
  EXPECT_EQ(fs::path(a).filename(), fs::path(b).filename());
  std::uint64_t a_bytes = 0, b_bytes = 0;
  for (const auto& e : fs::directory_iterator(b)) {
    const std::string name = e.path().filename().string();
    if (name == ckpt::kManifestName) continue;
    EXPECT_TRUE(ckpt::is_zstd_frame(bytes_of_file(e.path().string()))) << name;
    EXPECT_FALSE(ckpt::is_zstd_frame(bytes_of_file(a + "/" + name))) << name;
    a_bytes += fs::file_size(a + "/" + name);
    b_bytes += fs::file_size(e.path());
  }
  EXPECT_LT(b_bytes, a_bytes);

  const auto wa = ckpt::read_checkpoint(a), wb = ckpt::read_checkpoint(b);
  ASSERT_EQ(wa.files.size(), wb.files.size());
  const auto ta = hpt::host::read_model_tensors(named(wa.files, "model.pt"), a);
  const auto tb = hpt::host::read_model_tensors(named(wb.files, "model.pt"), b);
  ASSERT_EQ(ta.size(), tb.size());
  ASSERT_FALSE(ta.empty());
  for (std::size_t i = 0; i < ta.size(); ++i) EXPECT_TRUE(torch::equal(ta[i].second, tb[i].second)) << ta[i].first;

  auto eval_a = run_hpt({"eval", a, "--json"});
  auto eval_b = run_hpt({"eval", b, "--json"});
  ASSERT_EQ(eval_b.code, 0) << eval_b.err;
  EXPECT_THAT(eval_b.out, HasSubstr("\"val_loss\""));
  EXPECT_EQ(eval_a.out, eval_b.out);
}

TEST(CompressedCheckpointRun, BadOptionValuesExit2NamingTheKey) {
  TempDir dir;
  const std::string manifest = dir.write("m.toml", run_manifest(dir.path(), ""));
  for (const std::string& bad : {"checkpointer.compression=\"lz4\"", "checkpointer.compression_level=99",
                                 "checkpointer.compression_level=\"high\""}) {
    auto r = run_hpt({"validate", manifest, bad});
    EXPECT_EQ(r.code, 2) << bad << ": " << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr(bad.substr(0, bad.find('=')).substr(std::string("checkpointer.").size()))) << r.err;
  }
  auto ok = run_hpt({"validate", manifest, "checkpointer.compression=\"zstd\"", "checkpointer.compression_level=19"});
  EXPECT_EQ(ok.code, 0) << ok.err;
}

}  // namespace
