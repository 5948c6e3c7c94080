// The timing cache: measured tactic times keyed by device signature and op signature, in
// a JSON file, so a rebuild on the same machine times nothing it already knows.
#pragma once

#include <map>
#include <string>

namespace anvil::codegen {

class TimingCache {
 public:
  struct Entry {
    std::string best;
    std::map<std::string, double> milliseconds;  // per tactic
  };
  // Loads `path` if it exists; a corrupt file is an error (kIoError) naming the file.
  explicit TimingCache(std::string path);
  const Entry* find(const std::string& key) const;
  void put(const std::string& key, Entry e);
  void save() const;  // no-op without a path
  size_t size() const { return entries_.size(); }

 private:
  std::string path_;
  std::map<std::string, Entry> entries_;
};

}  // namespace anvil::codegen
