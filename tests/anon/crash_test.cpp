// A worker killed with SIGKILL in the middle of a job loses no job: `anvil anon-worker` runs
// as a real process, stops at a point of its job (ANVIL_ANON_PAUSE: after the claim, or
// with the result sealed but not yet written), is killed, and a restarted worker (the same
// id: at once; another id: once the lease expires) does the job once and writes its result
// once. On SQLite and on Redis.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <random>

#include "anvil/error.h"
#include "runtime/anon/service.h"
#include "tests/anon/test_util.h"

namespace anvil::anon {
namespace {

const std::string kModels = ANVIL_ANON_MODELS;
using Clock = std::chrono::steady_clock;

// A child process running the CLI with stderr on a pipe.
class Process {
 public:
  Process(const std::vector<std::string>& args, const std::string& pauseAt) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      if (!pauseAt.empty()) setenv("ANVIL_ANON_PAUSE", pauseAt.c_str(), 1);
      else unsetenv("ANVIL_ANON_PAUSE");
      std::vector<char*> argv;
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    err_ = fds[0];
  }
  ~Process() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(err_);
  }
  // Reads stderr until a line contains `text` (true) or the timeout passes (false).
  bool waitFor(const std::string& text, double seconds) {
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (Clock::now() < end) {
      if (log_.find(text) != std::string::npos) return true;
      pollfd p{err_, POLLIN, 0};
      if (poll(&p, 1, 50) > 0) {
        char buf[4096];
        const ssize_t n = read(err_, buf, sizeof buf);
        if (n <= 0) return log_.find(text) != std::string::npos;
        log_.append(buf, size_t(n));
      }
    }
    return log_.find(text) != std::string::npos;
  }
  void sigkill() {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    reaped_ = true;
    killedBySigkill_ = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  }
  // Exit code, or -1 after the timeout.
  int wait(double seconds) {
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (Clock::now() < end) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      waitFor("\x01", 0.05);  // drain stderr meanwhile
    }
    return -1;
  }
  bool killedBySigkill() const { return killedBySigkill_; }
  const std::string& log() const { return log_; }

 private:
  pid_t pid_ = -1;
  int err_ = -1;
  bool reaped_ = false, killedBySigkill_ = false;
  std::string log_;
};

struct CrashCase {
  std::string store, pauseAt;
  bool sameId;  // restart with the same worker id (at once) or another (after the lease)
};

class AnonCrash : public ::testing::TestWithParam<CrashCase> {};

TEST_P(AnonCrash, AKilledWorkersJobIsDoneOnceAfterTheRestart) {
  const CrashCase c = GetParam();
  const auto dir = testing::tempDir("crash");
  std::unique_ptr<testing::RedisServer> redis;
  std::string spec = "sqlite:" + (dir / "s.db").string();
  if (c.store == "redis") {
    if (!testing::haveRedisServer()) GTEST_SKIP() << "redis-server is not installed (apt-get install redis-server)";
    redis = std::make_unique<testing::RedisServer>();
    spec = redis->spec();
  }
  AnonBuildOptions bo;
  bo.timingRuns = 20;
  const AnonEngine e = AnonEngine::build(kModels + "/anon_cnn.onnx", parseShapeBuckets("input:1x1x32x32,8x1x32x32"), bo);
  const std::string enginePath = (dir / "anon.engine").string();
  {
    std::ofstream os(enginePath, std::ios::binary);
    const std::string bytes = e.serialize();
    os.write(bytes.data(), std::streamsize(bytes.size()));
  }
  auto store = openStore(spec);
  auto args = [&](const std::string& id) {
    return std::vector<std::string>{ANVIL_CLI,          "anon-worker",        "--loadEngine=" + enginePath,
                                    "--store=" + spec,  "--workerKey=" + (dir / "w.key").string(),
                                    "--workerId=" + id, "--jobs=1",           "--lease=1"};
  };
  Process first(args("alpha"), c.pauseAt);
  ASSERT_TRUE(first.waitFor("ready", 30)) << first.log();
  std::mt19937 rng(3);
  std::normal_distribution<float> n;
  ir::Tensor x(DataType::kF32, {3, 1, 32, 32});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = n(rng);
  const Capability cap = submit(*store, {{"input", x}});
  ASSERT_TRUE(first.waitFor("paused (" + c.pauseAt + ") in job 1", 30)) << first.log();
  first.sigkill();
  ASSERT_TRUE(first.killedBySigkill());
  // Killed mid-job: claimed, nothing written but the request box.
  EXPECT_EQ(store->job(1).state, "claimed");
  EXPECT_EQ(store->job(1).attempts, 1);
  EXPECT_EQ(store->countBoxes(), 1);
  EXPECT_THROW(fetch(*store, cap, 0), Error);

  Process second(args(c.sameId ? "alpha" : "beta"), "");
  ASSERT_EQ(second.wait(60), 0) << second.log();
  EXPECT_EQ(store->job(1).state, "done");
  EXPECT_EQ(store->job(1).attempts, 2);
  EXPECT_EQ(store->countBoxes(), 2);  // the request box and the one result
  EXPECT_TRUE(store->served(cap.requestId));
  AnonRunner direct(e);
  EXPECT_TRUE(fetch(*store, cap, 0)[0].second.sameAs(direct.run({{"input", x}}, -1)[0].second));
  EXPECT_FALSE(store->claim("gamma", 30).has_value());  // no job left, none twice
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Points, AnonCrash,
                         ::testing::Values(CrashCase{"sqlite", "claimed", true}, CrashCase{"sqlite", "computed", true},
                                           CrashCase{"sqlite", "computed", false}, CrashCase{"redis", "claimed", true},
                                           CrashCase{"redis", "computed", false}),
                         [](const auto& info) {
                           return info.param.store + "_" + info.param.pauseAt + (info.param.sameId ? "_sameId" : "_otherId");
                         });

}  // namespace
}  // namespace anvil::anon
