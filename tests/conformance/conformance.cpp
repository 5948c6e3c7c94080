// ONNX backend node-test conformance: every case (model.onnx + test_data_set_*/) runs
// through parser -> reference kernels in a forked child (a crash or hang fails one case,
// not the run) and is compared with the expected outputs at per-type tolerances.
// Prints one line per case and a summary per data set; optionally writes
// docs/operators.md from the importer table; fails below the recorded pass counts.
// --opt-level=N runs passes::optimize at that level on each model first, so the same
// cases check that the optimization passes keep every model's results.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "parser/onnx_parser.h"
#include "passes/pipeline.h"

namespace fs = std::filesystem;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

struct Exclusion {
  std::regex pattern;
  std::string text, reason;
};

std::vector<Exclusion> loadExclusions(const std::string& path) {
  std::vector<Exclusion> out;
  if (path.empty()) return out;
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open exclusions file " + path);
  std::string line;
  while (std::getline(f, line)) {
    size_t a = line.find_first_not_of(" \t");
    if (a == std::string::npos || line[a] == '#') continue;
    size_t hash = line.find('#', a);
    std::string pat = line.substr(a, hash == std::string::npos ? std::string::npos : hash - a);
    pat.erase(pat.find_last_not_of(" \t") + 1);
    std::string reason = hash == std::string::npos ? "" : line.substr(hash + 1);
    reason.erase(0, reason.find_first_not_of(" \t"));
    if (reason.empty()) throw std::runtime_error("exclusion '" + pat + "' has no reason (add '# why')");
    out.push_back({std::regex(pat), pat, reason});
  }
  return out;
}

// Tolerances per element type, in the spirit of onnxruntime's test runner.
struct Tol {
  double atol, rtol;
};
Tol tolFor(DataType t) {
  switch (t) {
    case DataType::kF64: return {1e-7, 1e-5};
    case DataType::kF32: return {1e-5, 1e-3};
    case DataType::kF16: return {1e-3, 1e-2};
    case DataType::kBF16: return {1e-2, 2e-2};
    default: return {0, 0};  // integers, bool, f8/f4 codes: exact
  }
}

std::string compare(const Tensor& got, const Tensor& want, const std::string& name) {
  std::ostringstream os;
  if (got.dtype() != want.dtype()) {
    os << name << ": type " << anvil::ir::dtypeName(got.dtype()) << ", expected " << anvil::ir::dtypeName(want.dtype());
    return os.str();
  }
  if (got.dims() != want.dims()) {
    os << name << ": shape " << got.summary() << ", expected " << want.summary();
    return os.str();
  }
  if (got.dtype() == DataType::kString) {
    for (int64_t i = 0; i < got.numel(); ++i)
      if (got.str(i) != want.str(i)) return name + ": string mismatch at " + std::to_string(i);
    return "";
  }
  const DataType dt = got.dtype();
  const bool exactBits = !(dt == DataType::kF32 || dt == DataType::kF64 || dt == DataType::kF16 || dt == DataType::kBF16);
  if (exactBits && dt != DataType::kF8E4M3FN && dt != DataType::kF8E4M3FNUZ && dt != DataType::kF8E5M2 &&
      dt != DataType::kF8E5M2FNUZ) {
    if (got.sameAs(want)) return "";
    for (int64_t i = 0; i < got.numel(); ++i)
      if (got.getDouble(i) != want.getDouble(i)) {
        os << name << ": element " << i << " is " << got.getDouble(i) << ", expected " << want.getDouble(i);
        return os.str();
      }
    return name + ": bytes differ";
  }
  Tol tol = tolFor(dt);
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g = got.getDouble(i), w = want.getDouble(i);
    if (std::isnan(w) || std::isnan(g)) {
      if (std::isnan(w) != std::isnan(g)) {
        os << name << ": element " << i << " is " << g << ", expected " << w;
        return os.str();
      }
      continue;
    }
    if (std::isinf(w) || std::isinf(g)) {
      if (g != w) {
        os << name << ": element " << i << " is " << g << ", expected " << w;
        return os.str();
      }
      continue;
    }
    if (std::fabs(g - w) > tol.atol + tol.rtol * std::fabs(w)) {
      os << name << ": element " << i << " is " << g << ", expected " << w << " (|diff| " << std::fabs(g - w) << ")";
      return os.str();
    }
  }
  return "";
}

void collectOps(const anvil::ir::Graph& g, std::set<std::string>& ops) {
  for (const auto& n : g.nodes()) ops.insert(n->domain().empty() ? n->op() : n->domain() + "." + n->op());
  for (const auto* sub : g.subgraphs())
    for (const auto& n : sub->nodes()) ops.insert(n->domain().empty() ? n->op() : n->domain() + "." + n->op());
}

// ONNX's test generator stores bf16 data as uint16 (the same bits): retag it where bf16 is meant.
Tensor bf16FromU16(Tensor t, DataType meant) {
  if (t.dtype() != DataType::kU16 || meant != DataType::kBF16) return t;
  Tensor r(DataType::kBF16, t.dims());
  if (t.nbytes() > 0) std::memcpy(r.mutableRaw(), t.raw(), t.nbytes());
  return r;
}

// Runs one case; returns "" on success or the reason of failure. `ops` gets the op types.
std::string runCase(const fs::path& dir, int optLevel, std::set<std::string>& ops, std::string& opsOut) {
  anvil::ir::Model model = anvil::parser::parseOnnxFile((dir / "model.onnx").string());
  collectOps(*model.graph, ops);
  if (optLevel > 0) anvil::passes::optimize(*model.graph, optLevel);
  for (const auto& o : ops) opsOut += o + ",";
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return "no test_data_set";
  std::vector<const anvil::ir::Value*> realInputs;
  for (const auto* v : model.graph->inputs())
    if (!v->isInitializer()) realInputs.push_back(v);
  for (const fs::path& set : sets) {
    std::map<std::string, Tensor> inputs;
    for (size_t i = 0;; ++i) {
      fs::path p = set / ("input_" + std::to_string(i) + ".pb");
      if (!fs::exists(p)) break;
      if (i >= realInputs.size()) return "more input files than graph inputs";
      inputs[realInputs[i]->name()] = bf16FromU16(anvil::parser::loadTensorProto(p.string()), realInputs[i]->dtype());
    }
    auto outs = anvil::cpu::Interpreter::run(*model.graph, inputs);
    for (size_t i = 0;; ++i) {
      fs::path p = set / ("output_" + std::to_string(i) + ".pb");
      if (!fs::exists(p)) break;
      if (i >= outs.size()) return "fewer outputs than expected";
      Tensor want = bf16FromU16(anvil::parser::loadTensorProto(p.string()), outs[i].dtype());
      std::string diff = compare(outs[i], want, "output " + std::to_string(i) + " '" +
                                                    model.graph->outputs()[i]->name() + "'");
      if (!diff.empty()) return set.filename().string() + ": " + diff;
    }
  }
  return "";
}

struct Result {
  std::string status;  // PASS FAIL EXCL
  std::string reason;
  std::vector<std::string> ops;
};

// Fork so that a crash or a hang costs one case.
Result runIsolated(const fs::path& dir, int optLevel, int timeoutSec) {
  int fds[2];
  if (pipe(fds) != 0) return {"FAIL", "pipe failed", {}};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm(unsigned(timeoutSec));
    std::string msg, ops;
    std::set<std::string> opset;
    try {
      std::string why = runCase(dir, optLevel, opset, ops);
      msg = why.empty() ? "PASS\n" : "FAIL\n" + why;
    } catch (const anvil::Error& e) {
      msg = std::string("FAIL\n") + anvil::errorCodeName(e.code()) + ": " + e.what();
    } catch (const std::exception& e) {
      msg = std::string("FAIL\nexception: ") + e.what();
    }
    std::replace(msg.begin() + 5, msg.end(), '\n', ' ');
    msg = ops + "\n" + msg;
    size_t off = 0;
    while (off < msg.size()) {
      ssize_t w = write(fds[1], msg.data() + off, msg.size() - off);
      if (w <= 0) break;
      off += size_t(w);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string data;
  char buf[4096];
  ssize_t r;
  while ((r = read(fds[0], buf, sizeof buf)) > 0) data.append(buf, size_t(r));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  Result res;
  size_t nl = data.find('\n');
  if (nl != std::string::npos) {
    std::stringstream ss(data.substr(0, nl));
    std::string op;
    while (std::getline(ss, op, ','))
      if (!op.empty()) res.ops.push_back(op);
    data = data.substr(nl + 1);
  }
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    res.status = "FAIL";
    res.reason = sig == SIGALRM ? "timeout" : std::string("crashed with signal ") + strsignal(sig);
    return res;
  }
  nl = data.find('\n');
  res.status = data.substr(0, nl);
  res.reason = nl == std::string::npos ? "" : data.substr(nl + 1);
  if (res.status != "PASS" && res.status != "FAIL") {
    res.status = "FAIL";
    res.reason = "child produced no result";
  }
  return res;
}

void writeDocs(const std::string& path, const std::map<std::string, std::pair<int, int>>& perOp,
               const std::vector<std::string>& summaries) {
  std::ofstream f(path);
  f << "# Supported ONNX operators\n\n"
    << "Generated by `anvil_conformance --write-docs` from the importer table (`parser/importers/`)\n"
    << "and the ONNX backend node tests; do not edit by hand.\n\n"
    << "Default-domain opsets " << anvil::parser::kMinOpset << " to " << anvil::parser::kMaxOpset
    << " are imported. Each row is one importer: the op, the model opsets it accepts, and how many\n"
    << "node-test cases that use the op pass on the reference CPU backend.\n\n";
  for (const auto& s : summaries) f << "- " << s << "\n";
  f << "\n| Op | Domain | Opsets | Node tests passed |\n|---|---|---|---|\n";
  std::set<std::string> imported;
  for (const auto& imp : anvil::parser::importerTable()) {
    std::string key = imp.domain.empty() ? imp.op : imp.domain + "." + imp.op;
    std::string cases = "—";
    auto it = perOp.find(key);
    if (it != perOp.end())  // cases count per op, shown on each of its opset rows
      cases = std::to_string(it->second.first) + "/" + std::to_string(it->second.second);
    f << "| " << imp.op << " | " << (imp.domain.empty() ? "ai.onnx" : imp.domain) << " | " << imp.sinceVersion
      << "–" << imp.untilVersion << " | " << cases << " |\n";
    imported.insert(key);
  }
  f << "\n## Ops in the node tests that anvil does not import\n\n";
  bool any = false;
  for (const auto& [op, c] : perOp)
    if (!imported.count(op)) {
      f << "- " << op << " (" << c.second << " cases)\n";
      any = true;
    }
  if (!any) f << "None.\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<std::string, std::string>> datasets;  // label, dir
  std::string excludeFile, docsPath, baselineFile, filter;
  bool quiet = false;
  int timeoutSec = 120;
  int optLevel = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* flag) -> std::string {
      std::string f = std::string(flag) + "=";
      return a.rfind(f, 0) == 0 ? a.substr(f.size()) : std::string();
    };
    if (auto v = val("--data"); !v.empty()) {
      size_t eq = v.find(':');
      if (eq == std::string::npos) {
        std::cerr << "--data=LABEL:DIR\n";
        return 2;
      }
      datasets.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (auto v2 = val("--exclude"); !v2.empty()) {
      excludeFile = v2;
    } else if (auto v3 = val("--write-docs"); !v3.empty()) {
      docsPath = v3;
    } else if (auto v4 = val("--baseline"); !v4.empty()) {
      baselineFile = v4;
    } else if (auto v5 = val("--filter"); !v5.empty()) {
      filter = v5;
    } else if (auto v6 = val("--timeout"); !v6.empty()) {
      timeoutSec = std::stoi(v6);
    } else if (auto v7 = val("--opt-level"); !v7.empty()) {
      optLevel = std::stoi(v7);
      if (optLevel < 0 || optLevel > 3) {
        std::cerr << "--opt-level is 0..3\n";
        return 2;
      }
    } else if (a == "--quiet") {
      quiet = true;
    } else {
      std::cerr << "unknown argument " << a
                << "\nusage: anvil_conformance --data=LABEL:DIR... [--exclude=FILE] [--baseline=FILE]"
                   " [--write-docs=FILE] [--filter=REGEX] [--opt-level=N] [--quiet]\n";
      return 2;
    }
  }
  std::vector<Exclusion> excl = loadExclusions(excludeFile);
  std::map<std::string, int> baseline;
  if (!baselineFile.empty()) {
    std::ifstream f(baselineFile);
    std::string label;
    int n;
    while (f >> label >> n) baseline[label] = n;
  }
  std::map<std::string, std::pair<int, int>> perOp;
  std::vector<std::string> summaries;
  bool ok = true;
  std::regex filterRe(filter.empty() ? ".*" : filter);
  for (const auto& [label, dir] : datasets) {
    if (!fs::is_directory(dir)) {
      std::cerr << "[" << label << "] data directory '" << dir << "' does not exist\n";
      ok = false;
      continue;
    }
    std::vector<fs::path> cases;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory() && fs::exists(e.path() / "model.onnx")) cases.push_back(e.path());
    std::sort(cases.begin(), cases.end());
    int pass = 0, fail = 0, excluded = 0, total = 0;
    for (const auto& c : cases) {
      const std::string name = c.filename().string();
      if (!std::regex_search(name, filterRe)) continue;
      ++total;
      const Exclusion* ex = nullptr;
      for (const auto& e : excl)
        if (std::regex_match(name, e.pattern)) ex = &e;
      if (ex) {
        ++excluded;
        if (!quiet) std::cout << "EXCL " << label << "/" << name << "  (" << ex->reason << ")\n";
        continue;
      }
      Result r = runIsolated(c, optLevel, timeoutSec);
      bool passed = r.status == "PASS";
      passed ? ++pass : ++fail;
      for (const auto& op : r.ops) {
        perOp[op].second++;
        if (passed) perOp[op].first++;
      }
      if (!quiet || !passed)
        std::cout << r.status << " " << label << "/" << name << (passed ? "" : "  " + r.reason) << "\n";
    }
    std::ostringstream s;
    s << label << (optLevel ? " (opt-level " + std::to_string(optLevel) + ")" : std::string()) << ": " << pass << "/" << total << " node-test cases pass ("
      << (total ? 100.0 * pass / total : 0.0) << "%), " << fail << " fail, " << excluded << " excluded";
    summaries.push_back(s.str());
    if (baseline.count(label) && pass < baseline[label]) {
      std::cout << "REGRESSION " << label << ": " << pass << " pass, the recorded baseline is " << baseline[label]
                << "\n";
      ok = false;
    }
  }
  if (!docsPath.empty()) writeDocs(docsPath, perOp, summaries);
  std::cout << "\n";
  for (const auto& s : summaries) std::cout << "conformance summary: " << s << "\n";
  return ok ? 0 : 1;
}
