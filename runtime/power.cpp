// Energy sources (RAPL, NVML) and the meter that brackets the CLI's timed loop with them.
#include "runtime/power.h"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "anvil/error.h"

namespace anvil::runtime {

namespace {

using Clock = std::chrono::steady_clock;

bool isDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A number with as many digits as its size deserves: 23.4, 4.27, 0.0123.
std::string shortNumber(double v, int decimalsAbove1) {
  char buf[48];
  if (v >= 100)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (v >= 1)
    std::snprintf(buf, sizeof buf, "%.*f", decimalsAbove1, v);
  else
    std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

// ---- RAPL ---------------------------------------------------------------------------------

RaplSource::RaplSource(std::string root, OpenFn openFile)
    : root_(std::move(root)), open_(openFile ? openFile : +[](const char* p, int f) { return ::open(p, f); }) {}

std::string RaplSource::name() const {
  std::string n = "RAPL ";
  for (size_t i = 0; i < zones_.size(); ++i) n += (i ? "+" : "") + zones_[i].name;
  return n;
}

// Reads one decimal counter into *v without touching the heap (the sampling thread calls it
// while the timed loop runs). false with *err = errno on failure.
bool RaplSource::read(const std::string& path, uint64_t* v, int* err) const {
  int fd = open_(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return false;
  }
  char buf[32];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  *err = n < 0 ? errno : EINVAL;
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = 0;
  char* end = nullptr;
  errno = 0;
  unsigned long long x = std::strtoull(buf, &end, 10);
  if (end == buf || errno != 0) return false;
  *v = x;
  return true;
}

bool RaplSource::start(std::string* why) {
  std::lock_guard<std::mutex> lock(mu_);
  zones_.clear();
  DIR* dir = ::opendir(root_.c_str());
  if (!dir) {
    *why = "RAPL: no counters (" + root_ + " " + (errno == ENOENT ? "absent" : std::strerror(errno)) + ")";
    return false;
  }
  std::vector<std::pair<long, std::string>> found;  // (index, directory)
  const std::string prefix = "intel-rapl:";
  while (dirent* e = ::readdir(dir)) {
    std::string d = e->d_name;
    // intel-rapl:N only: intel-rapl:N:M are subzones, intel-rapl-mmio:N repeat the packages.
    if (d.compare(0, prefix.size(), prefix) == 0 && isDigits(d.substr(prefix.size())))
      found.emplace_back(std::atol(d.c_str() + prefix.size()), d);
  }
  ::closedir(dir);
  std::sort(found.begin(), found.end());
  for (const auto& [index, d] : found) {
    const std::string base = root_ + "/" + d + "/";
    char name[64] = {0};
    int fd = open_((base + "name").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t n = ::read(fd, name, sizeof name - 1);
      ::close(fd);
      if (n > 0) name[n] = 0;
    }
    std::string zoneName(name);
    while (!zoneName.empty() && (zoneName.back() == '\n' || zoneName.back() == ' ')) zoneName.pop_back();
    if (zoneName.compare(0, 7, "package") != 0) continue;  // psys covers the platform, not the CPU
    Zone z;
    z.name = zoneName;
    z.energyPath = base + "energy_uj";
    int err = 0;
    if (!read(base + "max_energy_range_uj", &z.range, &err)) z.range = 0;
    if (!read(z.energyPath, &z.last, &err)) {
      *why = err == EACCES || err == EPERM
                 ? "RAPL counters not readable: permission denied (" + z.energyPath + ", root-only since Linux 5.10)"
                 : "RAPL counters not readable: " + std::string(std::strerror(err)) + " (" + z.energyPath + ")";
      zones_.clear();
      return false;
    }
    zones_.push_back(std::move(z));
  }
  if (zones_.empty()) {
    *why = "RAPL: no package domain under " + root_;
    return false;
  }
  return true;
}

void RaplSource::step(Zone& z) {
  if (z.failed) return;
  uint64_t v = 0;
  int err = 0;
  if (!read(z.energyPath, &v, &err)) {
    z.failed = true;
    return;
  }
  if (v >= z.last)
    z.accumulatedUj += v - z.last;
  else if (z.range > 0 && z.last <= z.range)
    z.accumulatedUj += (z.range - z.last) + v;  // wrapped once (polling keeps it to once)
  else
    z.failed = true;  // went backwards with no known range: not a counter we can trust
  z.last = v;
}

void RaplSource::poll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Zone& z : zones_) step(z);
}

bool RaplSource::stop(double* joules, std::string* why) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t uj = 0;
  for (Zone& z : zones_) {
    step(z);
    if (z.failed) {
      *why = "RAPL: reading " + z.energyPath + " failed during the run";
      return false;
    }
    uj += z.accumulatedUj;
  }
  *joules = double(uj) * 1e-6;
  return true;
}

// ---- NVML ---------------------------------------------------------------------------------

bool loadNvml(NvmlApi* api, std::string* why, const char* soname) {
  *api = NvmlApi{};
  void* h = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = ::dlerror();
    *why = "NVML: not available (" + std::string(e ? e : soname) + ")";
    return false;
  }
  auto sym = [&](const char* n) { return ::dlsym(h, n); };
  api->init = reinterpret_cast<int (*)()>(sym("nvmlInit_v2"));
  api->shutdown = reinterpret_cast<int (*)()>(sym("nvmlShutdown"));
  api->deviceByIndex = reinterpret_cast<int (*)(unsigned, NvmlApi::Device*)>(sym("nvmlDeviceGetHandleByIndex_v2"));
  api->totalEnergy =
      reinterpret_cast<int (*)(NvmlApi::Device, unsigned long long*)>(sym("nvmlDeviceGetTotalEnergyConsumption"));
  api->powerUsage = reinterpret_cast<int (*)(NvmlApi::Device, unsigned*)>(sym("nvmlDeviceGetPowerUsage"));
  api->library = h;
  if (!api->init || !api->deviceByIndex || (!api->totalEnergy && !api->powerUsage)) {
    *why = std::string("NVML: not available (") + soname + " lacks nvmlInit_v2, nvmlDeviceGetHandleByIndex_v2 or "
           "both energy and power queries)";
    *api = NvmlApi{};  // the handle stays open: see the header
    return false;
  }
  return true;
}

NvmlSource::NvmlSource(NvmlApi api, unsigned deviceIndex, std::string loadError)
    : api_(api), index_(deviceIndex), loadError_(std::move(loadError)) {}

NvmlSource::~NvmlSource() {
  if (initialized_ && api_.shutdown) api_.shutdown();
}

std::string NvmlSource::name() const {
  return "NVML GPU " + std::to_string(index_) + (sampling_ ? " power samples" : " energy counter");
}

std::chrono::milliseconds NvmlSource::pollPeriod() const {
  return sampling_ ? std::chrono::milliseconds(15) : std::chrono::milliseconds(0);
}

bool NvmlSource::start(std::string* why) {
  if (!api_.init) {
    *why = loadError_.empty() ? "NVML: not available" : loadError_;
    return false;
  }
  if (!initialized_) {
    if (int r = api_.init(); r != 0) {
      *why = "NVML: nvmlInit_v2 failed (error " + std::to_string(r) + ")";
      return false;
    }
    initialized_ = true;
  }
  if (int r = api_.deviceByIndex(index_, &device_); r != 0) {
    *why = "NVML: no GPU " + std::to_string(index_) + " (error " + std::to_string(r) + ")";
    return false;
  }
  sampling_ = false;
  // Volta and newer count energy in the driver: exact, and nothing to poll.
  if (api_.totalEnergy && api_.totalEnergy(device_, &startMj_) == 0) return true;
  if (!api_.powerUsage) {
    *why = "NVML: GPU " + std::to_string(index_) + " has no energy counter and no power readings";
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  samples_ = failedSamples_ = 0;
  energyJ_ = 0;
  if (!sample(Clock::now(), why)) return false;
  sampling_ = true;
  return true;
}

bool NvmlSource::sample(Clock::time_point t, std::string* why) {
  unsigned mw = 0;
  if (int r = api_.powerUsage(device_, &mw); r != 0) {
    ++failedSamples_;
    if (why) *why = "NVML: nvmlDeviceGetPowerUsage failed (error " + std::to_string(r) + ")";
    return false;
  }
  const double w = double(mw) * 1e-3;
  if (samples_ > 0) energyJ_ += 0.5 * (lastW_ + w) * std::chrono::duration<double>(t - lastT_).count();
  lastT_ = t;
  lastW_ = w;
  ++samples_;
  return true;
}

void NvmlSource::poll() {
  if (!sampling_) return;
  std::lock_guard<std::mutex> lock(mu_);
  sample(Clock::now(), nullptr);
}

bool NvmlSource::stop(double* joules, std::string* why) {
  if (!sampling_) {
    unsigned long long endMj = 0;
    if (int r = api_.totalEnergy(device_, &endMj); r != 0) {
      *why = "NVML: nvmlDeviceGetTotalEnergyConsumption failed (error " + std::to_string(r) + ")";
      return false;
    }
    *joules = endMj >= startMj_ ? double(endMj - startMj_) * 1e-3 : 0.0;
    return true;
  }
  std::lock_guard<std::mutex> lock(mu_);
  sample(Clock::now(), why);
  if (samples_ < 2) {
    *why = "NVML: fewer than two power samples over the run";
    return false;
  }
  *joules = energyJ_;
  return true;
}

// ---- the meter ----------------------------------------------------------------------------

PowerMeter::PowerMeter(std::vector<std::unique_ptr<EnergySource>> sources) : sources_(std::move(sources)) {}

PowerMeter::~PowerMeter() { joinThread(); }

void PowerMeter::start() {
  joinThread();  // a second start() without stop() restarts cleanly
  active_ = nullptr;
  reasons_.clear();
  for (auto& s : sources_) {
    std::string why;
    if (s->start(&why)) {
      active_ = s.get();
      break;
    }
    reasons_ += (reasons_.empty() ? "" : "; ") + why;
  }
  stopping_ = false;
  t0_ = Clock::now();
  if (active_ && active_->pollPeriod().count() > 0) {
    const auto period = active_->pollPeriod();
    thread_ = std::thread([this, period] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!cv_.wait_for(lock, period, [this] { return stopping_; })) {
        lock.unlock();
        active_->poll();
        lock.lock();
      }
    });
  }
}

void PowerMeter::joinThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

PowerReading PowerMeter::stop() {
  joinThread();
  PowerReading r;
  if (!active_) {
    r.reason = reasons_.empty() ? "no source asked for" : reasons_;
    return r;
  }
  double joules = 0;
  std::string why;
  const bool ok = active_->stop(&joules, &why);
  r.seconds = std::chrono::duration<double>(Clock::now() - t0_).count();
  r.source = active_->name();
  r.scope = active_->scope();
  if (!ok) {
    r.reason = why;
    return r;
  }
  r.available = true;
  r.energyJ = joules;
  return r;
}

std::vector<std::unique_ptr<EnergySource>> powerSources(const std::string& mode, bool cudaEngine) {
  ANVIL_CHECK(mode == "auto" || mode == "rapl" || mode == "nvml" || mode == "none", ErrorCode::kInvalidArgument,
              "--power is auto, rapl, nvml or none, got '", mode, "'");
  std::vector<std::unique_ptr<EnergySource>> out;
  if (mode == "none") return out;
  if (mode == "rapl" || (mode == "auto" && !cudaEngine)) {
    out.push_back(std::make_unique<RaplSource>());
  } else {
    NvmlApi api;
    std::string why;
    if (!loadNvml(&api, &why)) api = NvmlApi{};
    out.push_back(std::make_unique<NvmlSource>(api, 0, why));
  }
  return out;
}

double inferencesPerSecondPerWatt(const PowerReading& r, int64_t inferences) {
  return r.available && r.energyJ > 0 ? double(inferences) / r.energyJ : 0.0;
}

std::string powerSummary(const PowerReading& r, int64_t inferences) {
  if (!r.available) return "Power: no source (" + r.reason + ")";
  const std::string over = " over " + shortNumber(r.seconds, 1) + " s (" + r.source + ", " + r.scope + ")";
  if (r.energyJ <= 0)
    return "Power: no reading: the counter did not advance" + over + "; measure longer (--duration)";
  return "Power: " + shortNumber(r.averageW(), 1) + " W average" + over + ", " +
         shortNumber(inferencesPerSecondPerWatt(r, inferences), 2) + " inferences/s/W";
}

}  // namespace anvil::runtime
