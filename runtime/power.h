// Energy measurement around a timed loop (the CLI's perf-per-watt line): CPU package energy
// from the kernel's RAPL counters under /sys/class/powercap, GPU energy from NVML loaded
// with dlopen (so nothing links the driver and the runtime starts without one). Its own
// library (anvil_power): the lean runtime does not link it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace anvil::runtime {

// What one measurement found. available == false: no source worked, and reason says why
// for each source tried ("RAPL counters not readable: permission denied; NVML: not available").
struct PowerReading {
  bool available = false;
  std::string source;  // "RAPL package-0+package-1", "NVML GPU 0 energy counter", ...
  std::string scope;   // what it covers: "CPU package", "GPU"
  std::string reason;
  double energyJ = 0;
  double seconds = 0;
  double averageW() const { return seconds > 0 ? energyJ / seconds : 0; }
};

// One energy source. start() and stop() bracket the measured period; poll() is called from
// the meter's sampling thread every pollPeriod() (zero: the source needs no polling).
class EnergySource {
 public:
  virtual ~EnergySource() = default;
  virtual std::string name() const = 0;   // the source as the summary names it
  virtual std::string scope() const = 0;  // what it covers
  // false and *why when the source cannot measure here (why names the source).
  virtual bool start(std::string* why) = 0;
  virtual void poll() {}
  virtual std::chrono::milliseconds pollPeriod() const { return std::chrono::milliseconds(0); }
  // Energy since start() in joules; false and *why when a counter failed in between.
  virtual bool stop(double* joules, std::string* why) = 0;
};

// RAPL package domains of a powercap tree (root: /sys/class/powercap, or a recorded tree in
// tests). Sums the top-level "package-N" zones (intel-rapl:N; AMD CPUs appear under the same
// names), never their subzones (core, uncore, dram: the package includes core and uncore),
// nor psys or the intel-rapl-mmio duplicates of the packages. Counters wrap at
// max_energy_range_uj: AMD's range is 2^32 uJ (about 21 s at 200 W), so the counters are
// read every 250 ms and each step is unwrapped.
class RaplSource : public EnergySource {
 public:
  // openFile is ::open by default; tests pass one that fails with EACCES (root reads any file).
  using OpenFn = int (*)(const char* path, int flags);
  explicit RaplSource(std::string root = "/sys/class/powercap", OpenFn openFile = nullptr);
  std::string name() const override;
  std::string scope() const override { return "CPU package"; }
  bool start(std::string* why) override;
  void poll() override;
  std::chrono::milliseconds pollPeriod() const override { return std::chrono::milliseconds(250); }
  bool stop(double* joules, std::string* why) override;

 private:
  struct Zone {
    std::string name, energyPath;
    uint64_t range = 0;  // max_energy_range_uj (0: unknown, a decrease is then an error)
    uint64_t last = 0;
    uint64_t accumulatedUj = 0;
    bool failed = false;
  };
  bool read(const std::string& path, uint64_t* v, int* err) const;
  void step(Zone& z);  // read the counter once more and add the unwrapped difference

  std::string root_;
  OpenFn open_;
  std::vector<Zone> zones_;
  std::mutex mu_;  // poll() runs on the sampling thread
};

// The few NVML entry points used, declared here (no NVML header): signatures as nvml.h has
// them; nvmlReturn_t is a C enum (int-sized), NVML_SUCCESS = 0, NVML_ERROR_NOT_SUPPORTED = 3.
struct NvmlDeviceOpaque;
struct NvmlApi {
  using Device = NvmlDeviceOpaque*;                                   // nvmlDevice_t
  int (*init)() = nullptr;                                            // nvmlInit_v2
  int (*shutdown)() = nullptr;                                        // nvmlShutdown
  int (*deviceByIndex)(unsigned index, Device* device) = nullptr;     // nvmlDeviceGetHandleByIndex_v2
  int (*totalEnergy)(Device device, unsigned long long* mJ) = nullptr;  // nvmlDeviceGetTotalEnergyConsumption (Volta+)
  int (*powerUsage)(Device device, unsigned* mW) = nullptr;           // nvmlDeviceGetPowerUsage
  void* library = nullptr;  // the dlopen handle; null for a table tests fill in
};
// Opens libnvidia-ml.so.1 (or soname) and resolves the table; false and *why when the library
// or a required symbol is missing. The handle stays open for the process (NVML is not meant
// to be unloaded while a thread may still call it).
bool loadNvml(NvmlApi* api, std::string* why, const char* soname = "libnvidia-ml.so.1");

// GPU energy through NVML: the total-energy counter (mJ since the driver loaded) where the GPU
// has one, else power samples (mW) every 15 ms on the meter's thread, integrated by the
// trapezoid rule. A 15 ms period: NVML refreshes power about every 20-100 ms depending on
// the GPU, so sampling faster only repeats values.
class NvmlSource : public EnergySource {
 public:
  // api: a loaded table (loadNvml) or a fake; a table without init is "not available" with
  // loadError as the reason.
  NvmlSource(NvmlApi api, unsigned deviceIndex = 0, std::string loadError = "");
  ~NvmlSource() override;
  std::string name() const override;
  std::string scope() const override { return "GPU"; }
  bool start(std::string* why) override;
  void poll() override;
  std::chrono::milliseconds pollPeriod() const override;
  bool stop(double* joules, std::string* why) override;
  bool sampling() const { return sampling_; }
  int samples() const { return samples_; }

 private:
  bool sample(std::chrono::steady_clock::time_point t, std::string* why);

  NvmlApi api_;
  unsigned index_;
  std::string loadError_;
  bool initialized_ = false, sampling_ = false;
  NvmlApi::Device device_ = nullptr;
  unsigned long long startMj_ = 0;
  // Sampling: the previous sample and the integral so far (guarded: poll() runs on the thread).
  std::mutex mu_;
  std::chrono::steady_clock::time_point lastT_;
  double lastW_ = 0, energyJ_ = 0;
  int samples_ = 0, failedSamples_ = 0;
};

// Starts the first source that can measure (the others' reasons are kept for the summary),
// runs its sampling thread, and reports energy over [start, stop]. Nothing allocates between
// start() and stop() except inside a source's poll (the RAPL and NVML ones do not).
class PowerMeter {
 public:
  explicit PowerMeter(std::vector<std::unique_ptr<EnergySource>> sources);
  ~PowerMeter();  // stops the thread if stop() was not called
  void start();
  PowerReading stop();

 private:
  void joinThread();

  std::vector<std::unique_ptr<EnergySource>> sources_;
  EnergySource* active_ = nullptr;
  std::string reasons_;
  std::chrono::steady_clock::time_point t0_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

// The sources --power=auto|rapl|nvml|none asks for: auto is NVML for a CUDA engine and RAPL
// for a CPU one; none is no source (the CLI then prints no power line).
std::vector<std::unique_ptr<EnergySource>> powerSources(const std::string& mode, bool cudaEngine);

// "Power: 23.4 W average over 10.0 s (RAPL package-0+package-1, CPU package), 4.27
// inferences/s/W" or "Power: no source (<reasons>)".
std::string powerSummary(const PowerReading& r, int64_t inferences);
// inferences / s / W = inferences / J (0 without a source or energy).
double inferencesPerSecondPerWatt(const PowerReading& r, int64_t inferences);

}  // namespace anvil::runtime
