// Helpers of the anon tests: temp dirs, a real redis-server on a free loopback port.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "runtime/anon/store.h"

namespace anvil::anon::testing {

inline std::filesystem::path tempDir(const std::string& tag) {
  std::random_device rd;
  auto p = std::filesystem::temp_directory_path() / ("anvil_anon_" + tag + "_" + std::to_string(getpid()) + "_" +
                                                     std::to_string(rd() % 1000000));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

inline int freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

inline bool haveRedisServer() { return std::system("command -v redis-server >/dev/null 2>&1") == 0; }

// redis-server --port P --save "" --appendonly no on loopback, killed by the destructor.
class RedisServer {
 public:
  RedisServer() {
    port_ = freePort();
    pid_ = fork();
    if (pid_ == 0) {
      const std::string port = std::to_string(port_);
      freopen("/dev/null", "w", stdout);
      execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--loglevel", "warning", static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 200; ++i) {  // up to 10 s for it to listen
      try {
        openRedisStore("127.0.0.1", port_);
        return;
      } catch (const std::exception&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    throw std::runtime_error("redis-server did not start on port " + std::to_string(port_));
  }
  ~RedisServer() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  std::string spec() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace anvil::anon::testing
