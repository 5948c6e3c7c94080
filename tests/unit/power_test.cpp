// runtime/power: RAPL on recorded powercap trees written into a temp dir (wraparound,
// packages with subzones, psys and mmio zones, unreadable counters), NVML through a fake
// function table (energy counter, the power-sampling fallback, init failure), the meter's
// thread and the summary line.
#include "runtime/power.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "anvil/error.h"

namespace fs = std::filesystem;
using namespace anvil::runtime;

namespace {

// A powercap tree under a fresh temp dir; zone(...) writes one zone's files.
class Tree {
 public:
  Tree() {
    root_ = fs::temp_directory_path() / ("anvil_power_" + std::to_string(::getpid()) + "_" + std::to_string(next_++));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~Tree() { fs::remove_all(root_); }
  std::string root() const { return root_.string(); }
  void zone(const std::string& dir, const std::string& name, uint64_t energy, uint64_t range = 262143328850ull) {
    fs::create_directories(root_ / dir);
    write(dir + "/name", name + "\n");
    write(dir + "/energy_uj", std::to_string(energy) + "\n");
    write(dir + "/max_energy_range_uj", std::to_string(range) + "\n");
  }
  void energy(const std::string& dir, uint64_t v) { write(dir + "/energy_uj", std::to_string(v) + "\n"); }
  void write(const std::string& rel, const std::string& text) { std::ofstream(root_ / rel) << text; }

 private:
  fs::path root_;
  static inline int next_ = 0;
};

double measure(RaplSource& s, const std::function<void()>& between, bool* ok = nullptr) {
  std::string why;
  EXPECT_TRUE(s.start(&why)) << why;
  between();
  double j = -1;
  bool r = s.stop(&j, &why);
  if (ok) *ok = r;
  else EXPECT_TRUE(r) << why;
  return j;
}

}  // namespace

TEST(PowerRapl, OnePackageBeforeAfter) {
  Tree t;
  t.zone("intel-rapl:0", "package-0", 1000000);
  RaplSource s(t.root());
  double j = measure(s, [&] { t.energy("intel-rapl:0", 13500000); });
  EXPECT_DOUBLE_EQ(j, 12.5);
  EXPECT_EQ(s.name(), "RAPL package-0");
  EXPECT_EQ(s.scope(), "CPU package");
}

TEST(PowerRapl, WrapsAroundMaxEnergyRange) {
  Tree t;
  // AMD's range: 2^32 uJ. 4294000000 -> (wrap) -> 2000000: 967296 + 2000000 uJ.
  t.zone("intel-rapl:0", "package-0", 4294000000ull, 4294967296ull);
  RaplSource s(t.root());
  double j = measure(s, [&] { t.energy("intel-rapl:0", 2000000); });
  EXPECT_NEAR(j, 2.967296, 1e-9);
}

TEST(PowerRapl, PollingCatchesMoreThanOneWrap) {
  Tree t;
  const uint64_t range = 1000000;  // 1 J, so a long run wraps several times between start and stop
  t.zone("intel-rapl:0", "package-0", 900000, range);
  RaplSource s(t.root());
  double j = measure(s, [&] {
    t.energy("intel-rapl:0", 400000);  // +0.5 J (wrapped)
    s.poll();
    t.energy("intel-rapl:0", 300000);  // +0.9 J (wrapped)
    s.poll();
    t.energy("intel-rapl:0", 350000);  // +0.05 J
  });
  EXPECT_NEAR(j, 1.45, 1e-9);
}

TEST(PowerRapl, SumsPackagesNotSubzonesPsysOrMmio) {
  Tree t;
  t.zone("intel-rapl:0", "package-0", 100);
  t.zone("intel-rapl:0/intel-rapl:0:0", "core", 100);
  t.zone("intel-rapl:0/intel-rapl:0:1", "dram", 100);
  t.zone("intel-rapl:1", "package-1", 200);
  t.zone("intel-rapl:1/intel-rapl:1:0", "core", 200);
  t.zone("intel-rapl:2", "psys", 0);
  t.zone("intel-rapl-mmio:0", "package-0", 100);
  t.zone("intel-rapl:0:0", "core", 100);  // the class directory lists every zone at the top level too
  fs::create_directories(fs::path(t.root()) / "intel-rapl");  // the control type, no counter
  RaplSource s(t.root());
  double j = measure(s, [&] {
    t.energy("intel-rapl:0", 3000100);
    t.energy("intel-rapl:1", 2000200);
    for (const char* d : {"intel-rapl:0/intel-rapl:0:0", "intel-rapl:0/intel-rapl:0:1", "intel-rapl:1/intel-rapl:1:0",
                          "intel-rapl:2", "intel-rapl-mmio:0", "intel-rapl:0:0"})
      t.energy(d, 99000000);
  });
  EXPECT_DOUBLE_EQ(j, 5.0);
  EXPECT_EQ(s.name(), "RAPL package-0+package-1");
}

TEST(PowerRapl, AbsentTreeSaysSo) {
  RaplSource s("/nonexistent/anvil/powercap");
  std::string why;
  EXPECT_FALSE(s.start(&why));
  EXPECT_NE(why.find("RAPL: no counters"), std::string::npos) << why;
  EXPECT_NE(why.find("absent"), std::string::npos) << why;
}

TEST(PowerRapl, NoPackageDomain) {
  Tree t;
  t.zone("intel-rapl:0", "psys", 5);
  RaplSource s(t.root());
  std::string why;
  EXPECT_FALSE(s.start(&why));
  EXPECT_NE(why.find("no package domain"), std::string::npos) << why;
}

namespace {
int openDenyingEnergy(const char* path, int flags) {
  if (std::strstr(path, "energy_uj") && !std::strstr(path, "max_energy")) {
    errno = EACCES;
    return -1;
  }
  return ::open(path, flags);
}
}  // namespace

TEST(PowerRapl, PermissionDeniedIsReported) {
  Tree t;
  t.zone("intel-rapl:0", "package-0", 5);
  // Root reads a mode-000 file anyway, so the denial is injected through the open function.
  RaplSource s(t.root(), &openDenyingEnergy);
  std::string why;
  EXPECT_FALSE(s.start(&why));
  EXPECT_NE(why.find("RAPL counters not readable: permission denied"), std::string::npos) << why;
}

TEST(PowerRapl, UnreadableFileByMode) {
  if (::geteuid() == 0) GTEST_SKIP() << "skipped: running as root, which reads a mode-000 file (see PermissionDeniedIsReported)";
  Tree t;
  t.zone("intel-rapl:0", "package-0", 5);
  fs::permissions(fs::path(t.root()) / "intel-rapl:0/energy_uj", fs::perms::none);
  RaplSource s(t.root());
  std::string why;
  EXPECT_FALSE(s.start(&why));
  EXPECT_NE(why.find("permission denied"), std::string::npos) << why;
}

TEST(PowerRapl, GarbageCounterIsNotReadable) {
  Tree t;
  t.zone("intel-rapl:0", "package-0", 5);
  t.write("intel-rapl:0/energy_uj", "not a number\n");
  RaplSource s(t.root());
  std::string why;
  EXPECT_FALSE(s.start(&why));
  EXPECT_NE(why.find("RAPL counters not readable"), std::string::npos) << why;
}

TEST(PowerRapl, CounterVanishingMidRunFailsTheReading) {
  Tree t;
  t.zone("intel-rapl:0", "package-0", 5);
  RaplSource s(t.root());
  bool ok = true;
  measure(s, [&] { fs::remove(fs::path(t.root()) / "intel-rapl:0/energy_uj"); }, &ok);
  EXPECT_FALSE(ok);
}

// ---- NVML through a fake table ------------------------------------------------------------

namespace {
struct Fake {
  int initResult = 0, deviceResult = 0, energyResult = 0, powerResult = 0;
  unsigned long long energyMj = 0;
  std::atomic<unsigned> powerMw{0};
  std::atomic<int> powerCalls{0};
  int inits = 0, shutdowns = 0;
  unsigned askedIndex = 99;
};
Fake* fake = nullptr;
NvmlApi::Device fakeDevice() { return reinterpret_cast<NvmlApi::Device>(&fake); }

NvmlApi fakeApi(bool withEnergy = true, bool withPower = true) {
  NvmlApi a;
  a.init = [] { return ++fake->inits, fake->initResult; };
  a.shutdown = [] { return ++fake->shutdowns, 0; };
  a.deviceByIndex = [](unsigned i, NvmlApi::Device* d) {
    fake->askedIndex = i;
    *d = fakeDevice();
    return fake->deviceResult;
  };
  if (withEnergy)
    a.totalEnergy = [](NvmlApi::Device d, unsigned long long* mj) {
      if (d != fakeDevice()) return 2;  // NVML_ERROR_INVALID_ARGUMENT
      *mj = fake->energyMj;
      return fake->energyResult;
    };
  if (withPower)
    a.powerUsage = [](NvmlApi::Device d, unsigned* mw) {
      if (d != fakeDevice()) return 2;
      ++fake->powerCalls;
      *mw = fake->powerMw;
      return fake->powerResult;
    };
  return a;
}

class PowerNvml : public ::testing::Test {
 protected:
  void SetUp() override { fake = &f; }
  void TearDown() override { fake = nullptr; }
  Fake f;
};
}  // namespace

TEST_F(PowerNvml, EnergyCounter) {
  f.energyMj = 1000000;
  {
    NvmlSource s(fakeApi(), 1);
    std::string why;
    ASSERT_TRUE(s.start(&why)) << why;
    EXPECT_EQ(f.askedIndex, 1u);
    EXPECT_FALSE(s.sampling());
    EXPECT_EQ(s.pollPeriod().count(), 0);
    EXPECT_EQ(s.name(), "NVML GPU 1 energy counter");
    f.energyMj += 2345;  // mJ
    double j = 0;
    ASSERT_TRUE(s.stop(&j, &why)) << why;
    EXPECT_DOUBLE_EQ(j, 2.345);
    EXPECT_EQ(f.powerCalls, 0);
  }
  EXPECT_EQ(f.inits, 1);
  EXPECT_EQ(f.shutdowns, 1);  // shut down with the source
}

TEST_F(PowerNvml, SamplesPowerWithoutEnergyCounter) {
  f.energyResult = 3;  // NVML_ERROR_NOT_SUPPORTED: pre-Volta
  f.powerMw = 75000;
  auto src = std::make_unique<NvmlSource>(fakeApi(), 0);
  NvmlSource* s = src.get();
  std::vector<std::unique_ptr<EnergySource>> v;
  v.push_back(std::move(src));
  PowerMeter m(std::move(v));
  m.start();
  EXPECT_TRUE(s->sampling());
  EXPECT_EQ(s->pollPeriod().count(), 15);
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  PowerReading r = m.stop();
  ASSERT_TRUE(r.available) << r.reason;
  EXPECT_EQ(r.source, "NVML GPU 0 power samples");
  EXPECT_EQ(r.scope, "GPU");
  // Constant 75 W: the trapezoid integral is exact up to the gap between the last sample and
  // the meter's clock reading.
  EXPECT_NEAR(r.averageW(), 75.0, 75.0 * 0.05);
  EXPECT_GE(s->samples(), 4);  // start, several polls, stop
  const int calls = f.powerCalls;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(f.powerCalls, calls);  // the thread has stopped
}

TEST_F(PowerNvml, SamplingIntegratesChangingPower) {
  f.energyResult = 3;
  NvmlSource s(fakeApi(), 0);
  std::string why;
  f.powerMw = 100000;
  ASSERT_TRUE(s.start(&why)) << why;
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  f.powerMw = 300000;
  s.poll();
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  s.poll();
  double j = 0;
  ASSERT_TRUE(s.stop(&j, &why)) << why;
  // 100 -> 300 W over >= 40 ms (trapezoid: 200 W on average), then 300 W for >= 40 ms:
  // 8 + 12 = 20 J at least; the bound above is generous as sleeps overrun on a loaded machine.
  EXPECT_GE(j, 20.0 - 1e-9);
  EXPECT_LT(j, 100.0);
  EXPECT_EQ(s.samples(), 4);
}

TEST_F(PowerNvml, NoEnergyAndPowerFails) {
  f.energyResult = 3;
  f.powerResult = 3;
  NvmlSource s(fakeApi(), 0);
  std::string why;
  EXPECT_FALSE(s.start(&why));
  EXPECT_NE(why.find("nvmlDeviceGetPowerUsage failed (error 3)"), std::string::npos) << why;
  NvmlSource s2(fakeApi(false, false), 0);
  EXPECT_FALSE(s2.start(&why));
  EXPECT_NE(why.find("no energy counter and no power readings"), std::string::npos) << why;
}

TEST_F(PowerNvml, InitFailure) {
  f.initResult = 9;  // NVML_ERROR_DRIVER_NOT_LOADED
  NvmlSource s(fakeApi(), 0);
  std::string why;
  EXPECT_FALSE(s.start(&why));
  EXPECT_EQ(why, "NVML: nvmlInit_v2 failed (error 9)");
  EXPECT_EQ(f.shutdowns, 0);
}

TEST_F(PowerNvml, NoDevice) {
  f.deviceResult = 2;
  NvmlSource s(fakeApi(), 3);
  std::string why;
  EXPECT_FALSE(s.start(&why));
  EXPECT_EQ(why, "NVML: no GPU 3 (error 2)");
}

TEST(PowerNvmlLoad, MissingLibraryIsNotAvailable) {
  NvmlApi api;
  std::string why;
  EXPECT_FALSE(loadNvml(&api, &why, "libanvil-no-such-nvml.so.1"));
  EXPECT_EQ(why.rfind("NVML: not available", 0), 0u) << why;
  EXPECT_EQ(api.init, nullptr);
  NvmlSource s(api, 0, why);
  std::string why2;
  EXPECT_FALSE(s.start(&why2));
  EXPECT_EQ(why2, why);
}

TEST(PowerNvmlLoad, LibraryWithoutNvmlSymbols) {
  NvmlApi api;
  std::string why;
  EXPECT_FALSE(loadNvml(&api, &why, "libm.so.6"));
  EXPECT_NE(why.find("lacks nvmlInit_v2"), std::string::npos) << why;
  EXPECT_EQ(api.init, nullptr);
}

// ---- the meter and the summary ------------------------------------------------------------

TEST(PowerMeter, FirstWorkingSourceAndReasonsOfTheOthers) {
  Tree t;
  t.zone("intel-rapl:0", "package-0", 0);
  std::vector<std::unique_ptr<EnergySource>> v;
  v.push_back(std::make_unique<NvmlSource>(NvmlApi{}, 0, "NVML: not available"));
  v.push_back(std::make_unique<RaplSource>(t.root()));
  PowerMeter m(std::move(v));
  m.start();
  t.energy("intel-rapl:0", 20000000);
  PowerReading r = m.stop();
  ASSERT_TRUE(r.available) << r.reason;
  EXPECT_EQ(r.source, "RAPL package-0");
  EXPECT_DOUBLE_EQ(r.energyJ, 20.0);
  EXPECT_GT(r.seconds, 0);
}

TEST(PowerMeter, NoSourceCollectsEveryReason) {
  std::vector<std::unique_ptr<EnergySource>> v;
  v.push_back(std::make_unique<RaplSource>("/nonexistent/anvil/powercap"));
  v.push_back(std::make_unique<NvmlSource>(NvmlApi{}, 0, "NVML: not available"));
  PowerMeter m(std::move(v));
  m.start();
  PowerReading r = m.stop();
  EXPECT_FALSE(r.available);
  EXPECT_EQ(powerSummary(r, 100),
            "Power: no source (RAPL: no counters (/nonexistent/anvil/powercap absent); NVML: not available)");
}

TEST(PowerMeter, RaplPollsOnItsThread) {
  Tree t;
  t.zone("intel-rapl:0", "package-0", 900000, 1000000);
  std::vector<std::unique_ptr<EnergySource>> v;
  v.push_back(std::make_unique<RaplSource>(t.root()));
  PowerMeter m(std::move(v));
  m.start();
  t.energy("intel-rapl:0", 100000);  // wrapped: +0.2 J; the 250 ms poll must see it
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  t.energy("intel-rapl:0", 50000);  // wrapped again: +0.95 J, seen by stop()
  PowerReading r = m.stop();
  ASSERT_TRUE(r.available) << r.reason;
  EXPECT_NEAR(r.energyJ, 1.15, 1e-9);
}

TEST(PowerMeter, DestructorStopsTheThread) {
  NvmlApi a;
  a.init = [] { return 0; };
  a.deviceByIndex = [](unsigned, NvmlApi::Device* d) {
    *d = nullptr;
    return 0;
  };
  a.powerUsage = [](NvmlApi::Device, unsigned* mw) {
    *mw = 1000;
    return 0;
  };
  std::vector<std::unique_ptr<EnergySource>> v;
  v.push_back(std::make_unique<NvmlSource>(a, 0));
  PowerMeter m(std::move(v));
  m.start();  // never stopped: ~PowerMeter joins
}

TEST(PowerSummary, Formatting) {
  PowerReading r;
  r.available = true;
  r.source = "RAPL package-0+package-1";
  r.scope = "CPU package";
  r.seconds = 10.0;
  r.energyJ = 234.0;
  EXPECT_EQ(powerSummary(r, 1000),
            "Power: 23.4 W average over 10.0 s (RAPL package-0+package-1, CPU package), 4.27 inferences/s/W");
  EXPECT_DOUBLE_EQ(inferencesPerSecondPerWatt(r, 1000), 1000.0 / 234.0);
  r.energyJ = 3500.0;  // 350 W, few inferences: small numbers keep 3 significant digits
  EXPECT_EQ(powerSummary(r, 7),
            "Power: 350 W average over 10.0 s (RAPL package-0+package-1, CPU package), 0.002 inferences/s/W");
  r.energyJ = 0;
  EXPECT_EQ(powerSummary(r, 7), "Power: no reading: the counter did not advance over 10.0 s (RAPL "
                                "package-0+package-1, CPU package); measure longer (--duration)");
  EXPECT_EQ(inferencesPerSecondPerWatt(r, 7), 0.0);
  r.available = false;
  r.reason = "RAPL counters not readable: permission denied";
  EXPECT_EQ(powerSummary(r, 7), "Power: no source (RAPL counters not readable: permission denied)");
}

TEST(PowerSources, ModesAndDevices) {
  EXPECT_TRUE(powerSources("none", false).empty());
  auto cpu = powerSources("auto", false);
  ASSERT_EQ(cpu.size(), 1u);
  EXPECT_EQ(cpu[0]->scope(), "CPU package");
  auto gpu = powerSources("auto", true);
  ASSERT_EQ(gpu.size(), 1u);
  EXPECT_EQ(gpu[0]->scope(), "GPU");
  EXPECT_EQ(powerSources("rapl", true)[0]->scope(), "CPU package");
  EXPECT_EQ(powerSources("nvml", false)[0]->scope(), "GPU");
  EXPECT_THROW(powerSources("watts", false), anvil::Error);
}
