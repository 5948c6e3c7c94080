// Tests of the mpc offline material store (runtime/mpc/material.*) on real files: claim
// order, consume-once, refusal of copied-back, corrupt, truncated and foreign files, and
// two processes claiming from one directory at once.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "anvil/error.h"
#include "runtime/mpc/material.h"

namespace anvil::mpc {
namespace {

namespace fs = std::filesystem;

const std::string kProgram = std::string("prog-id-16bytes\x01", 16);
const std::string kOtherProgram = std::string("other-program-id", 16);

// A fresh directory per test, removed afterwards.
class MpcMaterial : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/anvil-mpc-material-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = (fs::path(root_) / "OFF" / "server").string();
  }
  void TearDown() override { fs::remove_all(root_); }

  MaterialHeader header(int64_t run, int64_t runs, int32_t party = 1, const std::string& setId = "set-A-0123456789") {
    MaterialHeader h;
    h.programId = kProgram;
    h.setId = setId;
    h.party = party;
    h.runIndex = run;
    h.runs = runs;
    return h;
  }
  static std::vector<uint8_t> payloadOf(int64_t run, size_t size = 1000) {
    std::vector<uint8_t> p(size);
    for (size_t i = 0; i < size; ++i) p[i] = uint8_t(i * 31 + run * 7);
    return p;
  }
  void writeRuns(int64_t runs, int32_t party = 1) {
    for (int64_t r = 0; r < runs; ++r) writeMaterial(dir_, header(r, runs, party), payloadOf(r));
  }
  std::string runPath(int64_t run) const { return (fs::path(dir_) / ("run-" + std::to_string(run) + ".bin")).string(); }

  template <typename F>
  static std::string expectError(F&& f, const std::string& needle) {
    try {
      f();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
      return e.what();
    }
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
    return "";
  }

  std::string root_, dir_;
};

TEST_F(MpcMaterial, ClaimsInRunOrderWithHeaderAndPayload) {
  // Written out of order: claims still come lowest run first.
  for (int64_t r : {2, 0, 3, 1}) writeMaterial(dir_, header(r, 4), payloadOf(r, 100 + size_t(r)));
  EXPECT_EQ(countMaterial(dir_, kProgram, 1), 4);
  for (int64_t r = 0; r < 4; ++r) {
    ClaimedMaterial m = claimMaterial(dir_, kProgram, 1);
    EXPECT_EQ(m.header.runIndex, r);
    EXPECT_EQ(m.header.runs, 4);
    EXPECT_EQ(m.header.party, 1);
    EXPECT_EQ(m.header.programId, kProgram);
    EXPECT_EQ(m.header.setId, "set-A-0123456789");
    EXPECT_EQ(m.payload, payloadOf(r, 100 + size_t(r)));
    EXPECT_FALSE(fs::exists(runPath(r))) << "a claimed run's file stays";
    EXPECT_EQ(countMaterial(dir_, kProgram, 1), 3 - r);
  }
  expectError([&] { claimMaterial(dir_, kProgram, 1); }, "no offline material left in " + dir_);
}

TEST_F(MpcMaterial, EmptyPayloadAndLargePayloadRoundTrip) {
  writeMaterial(dir_, header(0, 2), {});
  writeMaterial(dir_, header(1, 2), payloadOf(1, 5 << 20));
  EXPECT_TRUE(claimMaterial(dir_, kProgram, 1).payload.empty());
  EXPECT_EQ(claimMaterial(dir_, kProgram, 1).payload, payloadOf(1, 5 << 20));
}

TEST_F(MpcMaterial, ConsumedLogRecordsEachClaim) {
  writeRuns(2);
  claimMaterial(dir_, kProgram, 1);
  claimMaterial(dir_, kProgram, 1);
  std::ifstream log(fs::path(dir_) / "consumed.log");
  std::vector<std::string> lines;
  for (std::string line; std::getline(log, line);) lines.push_back(line);
  // setId "set-A-0123456789" in hex, then the run.
  const std::string setHex = "7365742d412d30313233343536373839";
  EXPECT_EQ(lines, (std::vector<std::string>{setHex + " 0", setHex + " 1"}));
}

TEST_F(MpcMaterial, CopiedBackRunIsRefused) {
  writeRuns(2);
  std::string saved = (fs::path(root_) / "saved.bin").string();
  fs::copy_file(runPath(0), saved);
  claimMaterial(dir_, kProgram, 1);
  fs::copy_file(saved, runPath(0));  // someone puts the used run back
  EXPECT_EQ(countMaterial(dir_, kProgram, 1), 1) << "a used run is counted as usable";
  expectError([&] { claimMaterial(dir_, kProgram, 1); }, "was already used");
  // Still refused on every later try, and the file is not consumed by the refusal.
  expectError([&] { claimMaterial(dir_, kProgram, 1); }, "was already used");
  EXPECT_TRUE(fs::exists(runPath(0)));
}

TEST_F(MpcMaterial, CorruptFileIsRefused) {
  writeRuns(2);
  {
    std::fstream f(runPath(0), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    char c;
    f.read(&c, 1);
    f.seekp(200);
    c ^= 0x10;
    f.write(&c, 1);
  }
  EXPECT_EQ(countMaterial(dir_, kProgram, 1), 1);
  expectError([&] { claimMaterial(dir_, kProgram, 1); }, "is corrupt or truncated");
  EXPECT_TRUE(fs::exists(runPath(0))) << "a refused file must not be consumed";
}

TEST_F(MpcMaterial, TruncatedFileIsRefused) {
  writeRuns(1);
  auto size = fs::file_size(runPath(0));
  for (auto cut : {size - 1, size / 2, uintmax_t(20), uintmax_t(3), uintmax_t(0)}) {
    writeMaterial(dir_, header(0, 1), payloadOf(0));
    fs::resize_file(runPath(0), cut);
    EXPECT_EQ(countMaterial(dir_, kProgram, 1), 0) << "cut at " << cut;
    expectError([&] { claimMaterial(dir_, kProgram, 1); }, "truncated");
  }
}

TEST_F(MpcMaterial, NotMaterialIsRefused) {
  fs::create_directories(dir_);
  std::ofstream(runPath(0)) << std::string(100, 'z');
  expectError([&] { claimMaterial(dir_, kProgram, 1); }, "is not anvil offline material");
}

TEST_F(MpcMaterial, OtherProgramIsRefused) {
  writeRuns(2);
  EXPECT_EQ(countMaterial(dir_, kOtherProgram, 1), 0);
  expectError([&] { claimMaterial(dir_, kOtherProgram, 1); }, "made for another engine");
  EXPECT_EQ(countMaterial(dir_, kProgram, 1), 2) << "a refused claim consumed material";
}

TEST_F(MpcMaterial, OtherPartyIsRefused) {
  writeRuns(2, /*party=*/0);
  EXPECT_EQ(countMaterial(dir_, kProgram, 1), 0);
  EXPECT_EQ(countMaterial(dir_, kProgram, 0), 2);
  expectError([&] { claimMaterial(dir_, kProgram, 1); }, "belongs to the client (party 0), expected the server");
  EXPECT_EQ(claimMaterial(dir_, kProgram, 0).header.party, 0);
}

TEST_F(MpcMaterial, RenamedRunFileIsRefused) {
  writeRuns(2);
  fs::remove(runPath(0));
  fs::rename(runPath(1), runPath(0));
  expectError([&] { claimMaterial(dir_, kProgram, 1); }, "holds run 1, not run 0");
}

TEST_F(MpcMaterial, MissingDirectoryHasNoMaterial) {
  EXPECT_EQ(countMaterial(dir_, kProgram, 1), 0);
  expectError([&] { claimMaterial(dir_, kProgram, 1); }, "run anvil mpc-dealer");
}

TEST_F(MpcMaterial, ANewSetReusesRunNumbers) {
  // A second dealer invocation writes runs 0.. again under a new set id: those are fresh.
  writeRuns(1);
  claimMaterial(dir_, kProgram, 1);
  writeMaterial(dir_, header(0, 1, 1, "set-B-0123456789"), payloadOf(5));
  EXPECT_EQ(countMaterial(dir_, kProgram, 1), 1);
  EXPECT_EQ(claimMaterial(dir_, kProgram, 1).payload, payloadOf(5));
}

TEST_F(MpcMaterial, AtomicWriteLeavesNoTempFiles) {
  writeRuns(3);
  writeMaterial(dir_, header(1, 3), payloadOf(9));  // overwrite in place
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_)) names.insert(e.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"run-0.bin", "run-1.bin", "run-2.bin"}));
  claimMaterial(dir_, kProgram, 1);
  EXPECT_EQ(claimMaterial(dir_, kProgram, 1).payload, payloadOf(9));
}

TEST_F(MpcMaterial, BadHeadersAreNotWritten) {
  EXPECT_THROW(writeMaterial(dir_, header(3, 3), {}), Error);
  EXPECT_THROW(writeMaterial(dir_, header(0, 3, 2), {}), Error);
}

// Two processes claim from one directory at once: every run goes to exactly one of them.
TEST_F(MpcMaterial, ConcurrentProcessesClaimDistinctRuns) {
  const int runs = 40;
  writeRuns(runs);
  std::string outs[2];
  pid_t pids[2];
  for (int k = 0; k < 2; ++k) {
    outs[k] = (fs::path(root_) / ("claims-" + std::to_string(k))).string();
    pids[k] = fork();
    ASSERT_GE(pids[k], 0);
    if (pids[k] == 0) {
      std::ofstream out(outs[k]);
      try {
        for (;;) out << claimMaterial(dir_, kProgram, 1).header.runIndex << "\n" << std::flush;
      } catch (const Error& e) {
        out << "end " << e.what() << "\n" << std::flush;
      }
      _exit(0);
    }
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::vector<int> all;
  for (int k = 0; k < 2; ++k) {
    std::ifstream in(outs[k]);
    std::string line, last;
    while (std::getline(in, line)) {
      if (line.rfind("end ", 0) == 0) {
        last = line;
        continue;
      }
      all.push_back(std::stoi(line));
    }
    EXPECT_NE(last.find("no offline material left"), std::string::npos) << "child " << k << ": " << last;
  }
  std::sort(all.begin(), all.end());
  std::vector<int> expected(runs);
  for (int i = 0; i < runs; ++i) expected[i] = i;
  EXPECT_EQ(all, expected) << "a run was claimed twice or lost";
  EXPECT_EQ(countMaterial(dir_, kProgram, 1), 0);
}

}  // namespace
}  // namespace anvil::mpc
