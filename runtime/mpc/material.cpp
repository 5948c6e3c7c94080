// The mpc mode's offline material store (material.h): one checksummed file per run,
// written atomically, claimed once under a directory lock with a consumed log that
// outlives the files (so a run copied back into the directory is still refused).
#include "runtime/mpc/material.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "anvil/error.h"

namespace anvil::mpc {
namespace {

namespace fs = std::filesystem;

// File layout (little-endian): magic, version, party i32, runIndex i64, runs i64,
// programId (u32 length + bytes), setId (u32 length + bytes), payload (u64 length +
// bytes), then a 32-byte crypto_generichash of everything before it.
constexpr char kMagic[8] = {'A', 'N', 'V', 'L', 'M', 'A', 'T', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kChecksumBytes = 32;
constexpr const char* kLockFile = ".lock";
constexpr const char* kConsumedLog = "consumed.log";

void initSodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    ANVIL_CHECK(sodium_init() >= 0, ErrorCode::kRuntimeError, "libsodium failed to initialize");
  });
}

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) out += digits[c >> 4], out += digits[c & 15];
  return out;
}

std::string errnoText() { return std::strerror(errno); }

void putBytes(std::string& out, const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }
template <typename T>
void putInt(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out += char(uint64_t(v) >> (8 * i));
}

// Reads the fields of a material file in order; any read past the end is a truncated file.
class Reader {
 public:
  Reader(const std::string& bytes, const std::string& path) : bytes_(bytes), path_(path) {}
  template <typename T>
  T getInt() {
    need(sizeof(T));
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= uint64_t(uint8_t(bytes_[pos_ + i])) << (8 * i);
    pos_ += sizeof(T);
    return T(v);
  }
  std::string getBytes(uint64_t n) {
    need(n);
    std::string s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  size_t pos() const { return pos_; }

 private:
  void need(uint64_t n) {
    ANVIL_CHECK(n <= bytes_.size() - pos_, ErrorCode::kInvalidEngine, "offline material file ", path_,
                " is truncated: expected ", n, " more bytes at offset ", pos_, ", the file has ", bytes_.size());
  }
  const std::string& bytes_;
  const std::string& path_;
  size_t pos_ = 0;
};

std::string runFileName(int64_t runIndex) { return "run-" + std::to_string(runIndex) + ".bin"; }

// The run index of a file named run-<index>.bin, or -1 for any other name.
int64_t runIndexOfName(const std::string& name) {
  if (name.size() < 9 || name.rfind("run-", 0) != 0 || name.substr(name.size() - 4) != ".bin") return -1;
  std::string digits = name.substr(4, name.size() - 8);
  if (digits.empty() || digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return -1;
  return std::stoll(digits);
}

void writeAll(int fd, const std::string& bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ANVIL_CHECK(n > 0, ErrorCode::kIoError, "cannot write ", path, ": ", errnoText());
    done += size_t(n);
  }
}

void fsyncDir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  ANVIL_CHECK(in.good(), ErrorCode::kIoError, "cannot read offline material file ", path.string());
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// Parses and verifies one material file (checksum first, so a corrupt length field is
// reported as corruption rather than as a strange size).
ClaimedMaterial parseMaterial(const std::string& bytes, const std::string& path) {
  ANVIL_CHECK(bytes.size() >= sizeof kMagic + kChecksumBytes, ErrorCode::kInvalidEngine, "offline material file ",
              path, " is truncated: ", bytes.size(), " bytes");
  ANVIL_CHECK(std::memcmp(bytes.data(), kMagic, sizeof kMagic) == 0, ErrorCode::kInvalidEngine, "file ", path,
              " is not anvil offline material (bad magic)");
  size_t body = bytes.size() - kChecksumBytes;
  unsigned char sum[kChecksumBytes];
  crypto_generichash(sum, sizeof sum, reinterpret_cast<const unsigned char*>(bytes.data()), body, nullptr, 0);
  ANVIL_CHECK(sodium_memcmp(sum, bytes.data() + body, kChecksumBytes) == 0, ErrorCode::kInvalidEngine,
              "offline material file ", path, " is corrupt or truncated: its checksum does not match");
  std::string bodyBytes = bytes.substr(0, body);
  Reader r(bodyBytes, path);
  r.getBytes(sizeof kMagic);
  uint32_t version = r.getInt<uint32_t>();
  ANVIL_CHECK(version == kVersion, ErrorCode::kInvalidEngine, "offline material file ", path, " has version ",
              version, ", expected ", kVersion);
  ClaimedMaterial m;
  m.header.party = r.getInt<int32_t>();
  m.header.runIndex = r.getInt<int64_t>();
  m.header.runs = r.getInt<int64_t>();
  m.header.programId = r.getBytes(r.getInt<uint32_t>());
  m.header.setId = r.getBytes(r.getInt<uint32_t>());
  std::string payload = r.getBytes(r.getInt<uint64_t>());
  ANVIL_CHECK(r.pos() == body, ErrorCode::kInvalidEngine, "offline material file ", path, " has ",
              body - r.pos(), " unexpected bytes after its payload");
  m.payload.assign(payload.begin(), payload.end());
  return m;
}

std::string consumedKey(const std::string& setId, int64_t runIndex) {
  return hex(setId) + " " + std::to_string(runIndex);
}

std::set<std::string> readConsumed(const fs::path& dir) {
  std::set<std::string> keys;
  std::ifstream in(dir / kConsumedLog);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) keys.insert(line);
  return keys;
}

// The run files of DIR in ascending run order.
std::vector<std::pair<int64_t, fs::path>> runFiles(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> files;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    int64_t index = runIndexOfName(entry.path().filename().string());
    if (index >= 0 && entry.is_regular_file(ec)) files.emplace_back(index, entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Holds an exclusive flock on DIR/.lock for its lifetime: claims in two processes are
// serialized, so each run goes to exactly one of them.
class DirLock {
 public:
  explicit DirLock(const fs::path& dir) {
    fs::path path = dir / kLockFile;
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ANVIL_CHECK(fd_ >= 0, ErrorCode::kIoError, "cannot open the lock file ", path.string(), ": ", errnoText());
    int rc;
    do rc = ::flock(fd_, LOCK_EX);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      std::string reason = errnoText();
      ::close(fd_);
      ANVIL_THROW(ErrorCode::kIoError, "cannot lock ", path.string(), ": ", reason);
    }
  }
  ~DirLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

const char* partyName(int32_t party) { return party == 0 ? "client (party 0)" : party == 1 ? "server (party 1)" : "?"; }

}  // namespace

void writeMaterial(const std::string& dir, const MaterialHeader& header, const std::vector<uint8_t>& payload) {
  initSodium();
  ANVIL_CHECK(header.runIndex >= 0 && header.runIndex < header.runs, ErrorCode::kInvalidArgument,
              "material run index ", header.runIndex, " is outside the set of ", header.runs, " runs");
  ANVIL_CHECK(header.party == 0 || header.party == 1, ErrorCode::kInvalidArgument,
              "material party must be 0 (client) or 1 (server), got ", header.party);
  std::error_code ec;
  fs::create_directories(dir, ec);
  ANVIL_CHECK(!ec && fs::is_directory(dir), ErrorCode::kIoError, "cannot create the offline material directory ",
              dir, ": ", ec.message());

  std::string bytes;
  putBytes(bytes, kMagic, sizeof kMagic);
  putInt<uint32_t>(bytes, kVersion);
  putInt<int32_t>(bytes, header.party);
  putInt<int64_t>(bytes, header.runIndex);
  putInt<int64_t>(bytes, header.runs);
  putInt<uint32_t>(bytes, uint32_t(header.programId.size()));
  bytes += header.programId;
  putInt<uint32_t>(bytes, uint32_t(header.setId.size()));
  bytes += header.setId;
  putInt<uint64_t>(bytes, payload.size());
  putBytes(bytes, payload.data(), payload.size());
  unsigned char sum[kChecksumBytes];
  crypto_generichash(sum, sizeof sum, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), nullptr, 0);
  putBytes(bytes, sum, sizeof sum);

  // A crash leaves at most a hidden temp file, never a half-written run-N.bin.
  fs::path final = fs::path(dir) / runFileName(header.runIndex);
  fs::path temp = fs::path(dir) / ("." + runFileName(header.runIndex) + ".tmp." + std::to_string(::getpid()));
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ANVIL_CHECK(fd >= 0, ErrorCode::kIoError, "cannot create ", temp.string(), ": ", errnoText());
  try {
    writeAll(fd, bytes, temp.string());
    ANVIL_CHECK(::fsync(fd) == 0, ErrorCode::kIoError, "cannot sync ", temp.string(), ": ", errnoText());
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(temp.c_str(), final.c_str()) != 0) {
    std::string reason = errnoText();
    ::unlink(temp.c_str());
    ANVIL_THROW(ErrorCode::kIoError, "cannot rename ", temp.string(), " to ", final.string(), ": ", reason);
  }
  fsyncDir(dir);
}

ClaimedMaterial claimMaterial(const std::string& dir, const std::string& programId, int32_t party) {
  initSodium();
  std::error_code ec;
  ANVIL_CHECK(fs::is_directory(dir, ec), ErrorCode::kIoError, "no offline material left in ", dir,
              ": the directory does not exist (run anvil mpc-dealer)");
  DirLock lock(dir);
  auto files = runFiles(dir);
  ANVIL_CHECK(!files.empty(), ErrorCode::kRuntimeError, "no offline material left in ", dir,
              ": run anvil mpc-dealer");
  const auto& [index, path] = files.front();
  ClaimedMaterial m = parseMaterial(readFile(path), path.string());
  ANVIL_CHECK(m.header.programId == programId, ErrorCode::kInvalidEngine, "offline material ", path.string(),
              " was made for another engine (program id ", hex(m.header.programId), ", this engine is ",
              hex(programId), ")");
  ANVIL_CHECK(m.header.party == party, ErrorCode::kInvalidEngine, "offline material ", path.string(),
              " belongs to the ", partyName(m.header.party), ", expected the ", partyName(party),
              "'s (the dealer's OFF/client and OFF/server directories are swapped?)");
  ANVIL_CHECK(m.header.runIndex == index, ErrorCode::kInvalidEngine, "offline material ", path.string(),
              " holds run ", m.header.runIndex, ", not run ", index, " as its name says");
  std::string key = consumedKey(m.header.setId, m.header.runIndex);
  ANVIL_CHECK(!readConsumed(dir).count(key), ErrorCode::kInvalidEngine, "offline material ", path.string(),
              " was already used (run ", m.header.runIndex, " of set ", hex(m.header.setId),
              " is in consumed.log): a run is never used twice; run anvil mpc-dealer for fresh material");

  // Log first, delete second: a crash in between leaves a file the log refuses, never a
  // run that can be claimed twice.
  fs::path log = fs::path(dir) / kConsumedLog;
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  ANVIL_CHECK(fd >= 0, ErrorCode::kIoError, "cannot open ", log.string(), ": ", errnoText());
  try {
    writeAll(fd, key + "\n", log.string());
    ANVIL_CHECK(::fsync(fd) == 0, ErrorCode::kIoError, "cannot sync ", log.string(), ": ", errnoText());
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  ANVIL_CHECK(::unlink(path.c_str()) == 0, ErrorCode::kIoError, "cannot remove the claimed material ", path.string(),
              ": ", errnoText());
  fsyncDir(dir);
  return m;
}

int64_t countMaterial(const std::string& dir, const std::string& programId, int32_t party) {
  initSodium();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  auto consumed = readConsumed(dir);
  int64_t count = 0;
  for (const auto& [index, path] : runFiles(dir)) {
    try {
      ClaimedMaterial m = parseMaterial(readFile(path), path.string());
      if (m.header.programId == programId && m.header.party == party && m.header.runIndex == index &&
          !consumed.count(consumedKey(m.header.setId, m.header.runIndex)))
        ++count;
    } catch (const Error&) {
      // Not usable: claimMaterial reports why when it reaches this file.
    }
  }
  return count;
}

}  // namespace anvil::mpc
