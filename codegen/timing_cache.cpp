// Timing cache persistence (nlohmann-json).
#include "codegen/timing_cache.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "anvil/error.h"

namespace anvil::codegen {

TimingCache::TimingCache(std::string path) : path_(std::move(path)) {
  if (path_.empty() || !std::filesystem::exists(path_)) return;
  std::ifstream f(path_);
  nlohmann::json j;
  try {
    f >> j;
    ANVIL_CHECK(j.value("format", "") == "anvil-timing-cache" && j.value("version", 0) == 1, ErrorCode::kIoError,
                "timing cache '", path_, "' has an unknown format");
    for (const auto& [key, e] : j.at("entries").items()) {
      Entry entry;
      entry.best = e.at("best").get<std::string>();
      for (const auto& [t, ms] : e.at("ms").items()) entry.milliseconds[t] = ms.get<double>();
      entries_[key] = std::move(entry);
    }
  } catch (const nlohmann::json::exception& ex) {
    ANVIL_THROW(ErrorCode::kIoError, "timing cache '", path_, "' is corrupt: ", ex.what());
  }
}

const TimingCache::Entry* TimingCache::find(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

void TimingCache::put(const std::string& key, Entry e) { entries_[key] = std::move(e); }

void TimingCache::save() const {
  if (path_.empty()) return;
  nlohmann::json j;
  j["format"] = "anvil-timing-cache";
  j["version"] = 1;
  j["entries"] = nlohmann::json::object();
  for (const auto& [key, e] : entries_) j["entries"][key] = {{"best", e.best}, {"ms", e.milliseconds}};
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream f(tmp);
    ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot write timing cache '", path_, "'");
    f << j.dump(1) << "\n";
  }
  std::filesystem::rename(tmp, path_);
}

}  // namespace anvil::codegen
