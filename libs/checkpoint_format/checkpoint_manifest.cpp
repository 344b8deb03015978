#include "checkpoint_format/checkpoint_manifest.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>

#include <openssl/evp.h>

#include <boost/json.hpp>

#include "checkpoint_format/checkpoint_compression.hpp"
#include "hpt/error.hpp"
#include "hpt/version.hpp"

namespace hpt::checkpoint {

namespace json = boost::json;

namespace {

// An incremental SHA-256 (OpenSSL EVP), so that a file can be hashed as it is read.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) fail();
  }
  void update(const char* data, std::size_t size) {
    if (EVP_DigestUpdate(ctx_.get(), data, size) != 1) fail();
  }
  // 64 lower-case hex digits.
  std::string hex_digest() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), digest, &length) != 1) fail();
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * length);
    for (unsigned int i = 0; i < length; ++i) {
      out.push_back(hex[digest[i] >> 4]);
      out.push_back(hex[digest[i] & 0xf]);
    }
    return out;
  }

 private:
  [[noreturn]] static void fail() { throw RunError("OpenSSL could not compute a SHA-256 digest"); }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  Sha256 sha;
  sha.update(bytes.data(), bytes.size());
  return sha.hex_digest();
}

std::string utc_now_iso8601() {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

Manifest make_manifest(std::int64_t step, const std::vector<CheckpointFile>& files, const Metrics& metrics) {
  Manifest m;
  m.hpt_version = HPT_VERSION_STRING;
  m.torch_version = HPT_TORCH_VERSION_STRING;
  m.created = utc_now_iso8601();
  m.step = step;
  m.metrics = metrics;
  for (const auto& f : files) m.files.push_back({f.name, f.bytes.size(), sha256_hex(f.bytes)});
  return m;
}

std::string manifest_to_json(const Manifest& manifest) {
  json::object o;
  o["format_version"] = manifest.format_version;
  o["hpt_version"] = manifest.hpt_version;
  o["torch_version"] = manifest.torch_version;
  o["created"] = manifest.created;
  o["step"] = manifest.step;
  json::object metrics;
  for (const auto& [name, value] : manifest.metrics) metrics[name] = value;
  o["metrics"] = std::move(metrics);
  json::array files;
  for (const auto& f : manifest.files) files.push_back(json::object{{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}});
  o["files"] = std::move(files);
  return json::serialize(o) + "\n";
}

namespace {

// Field access that names the checkpoint and the field in its errors.
class ManifestReader {
 public:
  explicit ManifestReader(const std::string& checkpoint_dir) : dir_(checkpoint_dir) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw BadInput("checkpoint " + dir_ + ": " + kManifestName + " " + what);
  }

  const json::value& field(const json::object& o, const char* key, const char* where) const {
    const json::value* v = o.if_contains(key);
    if (v == nullptr) fail(std::string("has no '") + key + "'" + where);
    return *v;
  }

  std::int64_t integer(const json::object& o, const char* key, const char* where = "") const {
    const json::value& v = field(o, key, where);
    if (v.is_int64()) return v.get_int64();
    if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
      return static_cast<std::int64_t>(v.get_uint64());
    fail(std::string("has a '") + key + "' that is not an integer" + where);
  }

  std::string string(const json::object& o, const char* key, const char* where = "") const {
    const json::value& v = field(o, key, where);
    if (!v.is_string()) fail(std::string("has a '") + key + "' that is not a string" + where);
    return std::string(v.get_string());
  }

 private:
  std::string dir_;
};

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name != kManifestName;
}

bool is_sha256_hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// An open file, closed when it goes out of scope.
class File {
 public:
  explicit File(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

constexpr std::size_t kChunk = std::size_t{4} << 20;

// Reserves room for a file of `size` bytes in the empty `bytes`. A big buffer is fresh
// memory, and faulting it in 4 KiB pages costs about as much as reading the file;
// asking for transparent huge pages first makes that a small fraction.
void reserve_for_reading(std::string& bytes, std::size_t size) {
  bytes.reserve(size);
#ifdef MADV_HUGEPAGE
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<std::uintptr_t>(bytes.data());
  const std::uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1), last = (begin + size) & ~(kHuge - 1);
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);  // a hint: failure is fine
#endif
}

// Appends up to `size` bytes of `fd` to `bytes` (room reserved: it never moves), chunk
// by chunk, calling `progress(bytes read)` after each. The string grows a chunk at a
// time, so that zeroing it happens just before the read overwrites it rather than in a
// pass of its own. Stops early at the end of the file (it shrank). Returns false with
// errno in `error` when a read fails.
template <typename Progress>
bool read_chunks(int fd, std::string& bytes, std::size_t size, int& error, Progress&& progress) {
  std::size_t done = 0;
  while (done < size) {
    const std::size_t want = std::min(kChunk, size - done);
    bytes.resize(done + want);
    ssize_t n = ::read(fd, bytes.data() + done, want);
    if (n < 0 && errno == EINTR) n = 0;
    else if (n <= 0) {
      if (n < 0) error = errno;
      bytes.resize(done);
      return n == 0;
    }
    done += static_cast<std::size_t>(n);
    bytes.resize(done);
    if (n > 0) progress(done);
  }
  return true;
}

// Reads the file on a second thread while this one hashes the chunks already read, so
// that the disk and SHA-256 work at the same time: one pass over the bytes, in about
// the time of the slower of the two. Only the reader touches the string object; this
// thread reads the reserved memory through `data`, below what the reader published.
bool read_and_hash_pipelined(int fd, std::string& bytes, std::size_t size, Sha256& sha, int& error) {
  const char* data = bytes.data();
  std::mutex mutex;
  std::condition_variable more;
  std::size_t readable = 0;  // data[0, readable) is read and may be hashed
  bool finished = false;
  bool ok = true;
  int read_error = 0;
  std::thread reader([&] {
    bool read_ok = read_chunks(fd, bytes, size, read_error, [&](std::size_t done) {
      std::lock_guard<std::mutex> lock(mutex);
      readable = done;
      more.notify_one();
    });
    std::lock_guard<std::mutex> lock(mutex);
    ok = read_ok;
    finished = true;
    more.notify_one();
  });
  std::size_t hashed = 0;
  try {
    for (;;) {
      std::unique_lock<std::mutex> lock(mutex);
      more.wait(lock, [&] { return readable > hashed || finished; });
      const std::size_t upto = readable;
      const bool last = finished;
      lock.unlock();
      if (upto > hashed) sha.update(data + hashed, upto - hashed);
      hashed = upto;
      if (last) break;
    }
  } catch (...) {
    reader.join();  // it writes into `bytes`: never leave it running
    throw;
  }
  reader.join();
  if (!ok) error = read_error;
  return ok;
}

// Reads the whole file `path` into `bytes`, feeding `sha` (when given) in the same pass;
// on failure returns false with errno in `error`. A file that shrinks while it is read
// comes back shorter.
bool read_whole_file(const std::string& path, std::string& bytes, Sha256* sha, int& error) {
  File file(path);
  if (file.fd() < 0) {
    error = errno;
    return false;
  }
  struct stat st {};
  if (::fstat(file.fd(), &st) != 0) {
    error = errno;
    return false;
  }
  ::posix_fadvise(file.fd(), 0, 0, POSIX_FADV_SEQUENTIAL);
  const auto size = static_cast<std::size_t>(st.st_size);
  bytes.clear();
  reserve_for_reading(bytes, size);
  if (sha && size > 2 * kChunk) return read_and_hash_pipelined(file.fd(), bytes, size, *sha, error);
  if (!read_chunks(file.fd(), bytes, size, error, [](std::size_t) {})) return false;
  if (sha) sha->update(bytes.data(), bytes.size());
  return true;
}

}  // namespace

Manifest parse_manifest(const std::string& text, const std::string& checkpoint_dir) {
  ManifestReader r(checkpoint_dir);
  json::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec) r.fail("is not valid JSON (" + ec.message() + ")");
  if (!root.is_object()) r.fail("is not a JSON object");
  const json::object& o = root.get_object();

  Manifest m;
  m.format_version = r.integer(o, "format_version");
  if (m.format_version > kFormatVersion)
    throw BadInput("checkpoint " + checkpoint_dir + " has format version " + std::to_string(m.format_version) +
                   ", newer than this hpt's " + std::to_string(kFormatVersion) + ": upgrade hpt");
  if (m.format_version < 1) r.fail("has format version " + std::to_string(m.format_version) + " (must be >= 1)");
  m.hpt_version = r.string(o, "hpt_version");
  m.torch_version = r.string(o, "torch_version");
  m.created = r.string(o, "created");
  m.step = r.integer(o, "step");

  const json::value& metrics = r.field(o, "metrics", "");
  if (!metrics.is_object()) r.fail("has 'metrics' that is not an object");
  for (const auto& [name, value] : metrics.get_object()) {
    if (!value.is_number()) r.fail("has a metric '" + std::string(name) + "' that is not a number");
    m.metrics[std::string(name)] = value.to_number<double>();
  }

  const json::value& files = r.field(o, "files", "");
  if (!files.is_array()) r.fail("has 'files' that is not an array");
  for (const json::value& entry : files.get_array()) {
    if (!entry.is_object()) r.fail("has a 'files' entry that is not an object");
    const json::object& e = entry.get_object();
    ManifestEntry f;
    f.name = r.string(e, "name", " in a 'files' entry");
    if (!is_plain_file_name(f.name)) r.fail("lists '" + f.name + "', which is not a plain file name");
    std::int64_t size = r.integer(e, "size", " in a 'files' entry");
    if (size < 0) r.fail("gives " + f.name + " a negative size");
    f.size = static_cast<std::uint64_t>(size);
    f.sha256 = r.string(e, "sha256", " in a 'files' entry");
    if (!is_sha256_hex(f.sha256)) r.fail("gives " + f.name + " a sha256 that is not 64 hex digits");
    m.files.push_back(std::move(f));
  }
  return m;
}

Manifest read_manifest(const std::string& checkpoint_dir) {
  std::string path = checkpoint_dir + "/" + kManifestName;
  std::string text;
  int error = 0;
  if (!read_whole_file(path, text, nullptr, error)) {
    if (error == ENOENT)
      throw BadInput("checkpoint " + checkpoint_dir + ": " + kManifestName +
                     " is missing (not a checkpoint, or one whose writing never finished)");
    throw BadInput("checkpoint " + checkpoint_dir + ": cannot read " + kManifestName + ": " + std::strerror(error));
  }
  return parse_manifest(text, checkpoint_dir);
}

VerifiedCheckpoint read_checkpoint(const std::string& checkpoint_dir) {
  VerifiedCheckpoint checkpoint;
  checkpoint.manifest = read_manifest(checkpoint_dir);
  for (const ManifestEntry& entry : checkpoint.manifest.files) {
    const std::string where = "checkpoint " + checkpoint_dir + ": " + entry.name;
    CheckpointFile file{entry.name, {}};
    Sha256 sha;
    int error = 0;
    if (!read_whole_file(checkpoint_dir + "/" + entry.name, file.bytes, &sha, error)) {
      if (error == ENOENT) throw BadInput(where + " is missing");
      throw BadInput(where + " cannot be read: " + std::strerror(error));
    }
    const std::uint64_t size = file.bytes.size();
    if (size < entry.size)
      throw BadInput(where + " is truncated (" + std::to_string(size) + " of " + std::to_string(entry.size) + " bytes)");
    if (size > entry.size)
      throw BadInput(where + " is longer than its manifest says (" + std::to_string(size) + " bytes, not " +
                     std::to_string(entry.size) + "; corrupt)");
    if (sha.hex_digest() != entry.sha256) throw BadInput(where + " fails its SHA-256 check (corrupt)");
    decompress_if_zstd(file.bytes, where);  // verified as stored, handed on as written
    checkpoint.files.push_back(std::move(file));
  }
  return checkpoint;
}

}  // namespace hpt::checkpoint
