// `anvil --mode=mpc` (compile an ONNX model into the server and public mpc engines) and
// `anvil --mode=fixed` (run a server engine in plaintext fixed point: the reference the
// secure run reproduces); the mpc-dealer / mpc-server / mpc-client commands go on to
// tools/mpc_party_cli.cpp.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "anvil/error.h"
#include "runtime/mpc/compile.h"
#include "runtime/mpc/fixed.h"
#include "runtime/mpc/parties.h"
#include "tools/modes.h"
#include "tools/mpc_party.h"
#include "tools/npy.h"

namespace anvil::tools {

namespace {

using mpc::Program;

constexpr const char* kHelp =
    "anvil --onnx=m.onnx --mode=mpc --calibData=DIR --shapes=name:16x1x8x8[,...] --saveEngine=server.engine\n"
    "      [--savePublic=public.engine] [--exactTruncation] [--verbose]\n"
    "    compile a two-party fixed-point engine; calibration samples DIR/<input>.npy stacked on axis 0\n"
    "    (the first three quarters calibrate, the last quarter measures agreement with the float model);\n"
    "    --exactTruncation: the secure run rounds lookup indices exactly as --mode=fixed (bit-identical\n"
    "    outputs) at 2-3 rounds per lookup layer instead of one\n"
    "anvil --loadEngine=server.engine --mode=fixed --loadInputs=name:x.npy[,...] [--saveOutputs=DIR]\n"
    "    run a server engine in plaintext fixed point (inputs may stack several batches on axis 0)\n"
    "anvil mpc-dealer | mpc-server | mpc-client ...   the parties (docs/mpc.md)\n";

std::map<std::string, std::string> parseFlags(int argc, char** argv) {
  static const char* known[] = {"onnx", "mode", "calibData", "shapes", "saveEngine", "savePublic", "verbose",
                                "exactTruncation", "loadEngine", "loadInputs", "saveOutputs", "help"};
  std::map<std::string, std::string> out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    ANVIL_CHECK(a.rfind("--", 0) == 0, ErrorCode::kInvalidArgument, "unexpected argument '", a,
                "' (flags look like --name=value)");
    std::string body = a.substr(2);
    size_t eq = body.find('=');
    std::string name = body.substr(0, eq);
    ANVIL_CHECK(std::find(std::begin(known), std::end(known), name) != std::end(known), ErrorCode::kInvalidArgument,
                "flag --", name, " does not apply to --mode=mpc / --mode=fixed (see --help)");
    out[name] = eq == std::string::npos ? "" : body.substr(eq + 1);
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::map<std::string, std::vector<int64_t>> parseShapes(const std::string& spec) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const std::string& item : split(spec, ',')) {
    size_t colon = item.rfind(':');
    ANVIL_CHECK(colon != std::string::npos && colon > 0, ErrorCode::kInvalidArgument, "--shapes entry '", item,
                "' is not name:dims (e.g. input:16x1x8x8)");
    std::vector<int64_t> dims;
    for (const std::string& d : split(item.substr(colon + 1), 'x')) {
      size_t used = 0;
      long long v = -1;
      try {
        v = std::stoll(d, &used);
      } catch (...) {
      }
      ANVIL_CHECK(used == d.size() && v > 0, ErrorCode::kInvalidArgument, "--shapes entry '", item,
                  "': '", d, "' is not a positive extent");
      dims.push_back(v);
    }
    out[item.substr(0, colon)] = dims;
  }
  return out;
}

int buildMain(std::map<std::string, std::string>& flags) {
  ANVIL_CHECK(flags.count("saveEngine"), ErrorCode::kInvalidArgument,
              "--mode=mpc needs --saveEngine=FILE (the server engine; --savePublic=FILE for the client and dealer)");
  mpc::CompileOptions o;
  if (flags.count("shapes")) o.shapes = parseShapes(flags["shapes"]);
  if (flags.count("calibData")) o.calibDir = flags["calibData"];
  o.verbose = flags.count("verbose") != 0;
  mpc::CompileReport r;
  auto t0 = std::chrono::steady_clock::now();
  Program p = mpc::compileProgram(flags["onnx"], o, &r);
  if (flags.count("exactTruncation")) {
    ANVIL_CHECK(flags["exactTruncation"].empty() || flags["exactTruncation"] == "1" || flags["exactTruncation"] == "true",
                ErrorCode::kInvalidArgument, "--exactTruncation takes no value (got '", flags["exactTruncation"], "')");
    p.exactTruncation = true;
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  mpc::saveProgramFile(p, flags["saveEngine"]);
  if (flags.count("savePublic")) mpc::saveProgramFile(mpc::publicCopy(p), flags["savePublic"]);

  std::cout << "=== mpc engine ===\n";
  for (const std::string& line : r.log) std::cout << "[V] " << line << "\n";
  std::cout << "Steps:";
  for (const auto& [kind, count] : r.stepsByKind) std::cout << " " << kind << "=" << count;
  std::cout << "\nInput scale: 2^" << std::log2(r.inputScale) << "\n";
  if (p.exactTruncation) std::cout << "Truncation: exact (--exactTruncation: round half up, as --mode=fixed)\n";
  std::cout << "Lookup layers (" << r.luts.size() << ", 8-bit index each):\n";
  for (const mpc::LutReport& l : r.luts)
    std::cout << "  " << std::left << std::setw(40) << l.name << std::right << " "
              << (l.kind == mpc::StepKind::kMaxPool ? "maxpool" : mpc::lutFunctionName(l.function)) << " shift=" << l.shift
              << " in=2^" << std::log2(l.inScale) << " out=2^" << std::log2(l.outScale)
              << " calibration max |index|=" << l.calibrationMaxIndex << "\n";
  std::cout << std::fixed << std::setprecision(1) << "Ring: largest |value| on calibration 2^" << r.maxAbsSeenLog2
            << ", static worst case 2^" << r.worstCaseBoundLog2 << " (headroom " << 63 - r.worstCaseBoundLog2
            << " bits of 63)\n";
  std::cout << "Calibration: " << r.calibrationBatches << " batches; agreement with the float model on "
            << r.evaluationBatches << " held-out batches: ";
  if (r.top1Agreement >= 0)
    std::cout << std::setprecision(2) << "top-1 " << 100 * r.top1Agreement << "% of " << r.evaluatedRows << " rows, ";
  std::cout << std::scientific << std::setprecision(3) << "relative error " << r.relativeError << "\n";
  std::cout << std::fixed << std::setprecision(1) << "Built in " << ms << " ms: " << flags["saveEngine"];
  if (flags.count("savePublic")) std::cout << ", public " << flags["savePublic"];
  std::cout << "\n";
  return 0;
}

int fixedMain(std::map<std::string, std::string>& flags) {
  ANVIL_CHECK(flags.count("loadEngine"), ErrorCode::kInvalidArgument,
              "--mode=fixed needs --loadEngine=server.engine (an engine built with --mode=mpc)");
  const std::string path = flags["loadEngine"];
  Program p = mpc::loadProgramFile(path);
  ANVIL_CHECK(!p.isPublic, ErrorCode::kInvalidArgument, path,
              " is a public mpc engine (no weights): --mode=fixed needs the server engine");
  std::map<std::string, std::string> files;
  if (flags.count("loadInputs"))
    for (const std::string& item : split(flags["loadInputs"], ',')) {
      size_t colon = item.find(':');
      ANVIL_CHECK(colon != std::string::npos, ErrorCode::kInvalidArgument, "--loadInputs entry '", item,
                  "' is not name:file.npy");
      files[item.substr(0, colon)] = item.substr(colon + 1);
    }
  // Inputs: each may stack k batches on axis 0; all must agree on k.
  std::vector<ir::Tensor> all;
  int64_t k = -1;
  for (int32_t id : p.inputs) {
    const mpc::TensorDef& def = p.tensors[id];
    ANVIL_CHECK(files.count(def.name), ErrorCode::kInvalidArgument, "--loadInputs gives no file for input '", def.name,
                "'");
    ir::Tensor t = readNpy(files[def.name]);
    bool ok = t.rank() == def.shape.size() && !def.shape.empty() && def.shape[0] > 0 && t.dim(0) % def.shape[0] == 0;
    for (size_t d = 1; ok && d < def.shape.size(); ++d) ok = t.dim(d) == def.shape[d];
    ANVIL_CHECK(ok && t.dim(0) > 0, ErrorCode::kShapeMismatch, "input '", def.name, "' from ", files[def.name],
                " has shape ", t.type().shape.str(), "; the engine takes ", ir::Shape::fromExtents(def.shape).str(),
                " (or whole batches of it stacked on axis 0)");
    int64_t batches = t.dim(0) / def.shape[0];
    ANVIL_CHECK(k < 0 || k == batches, ErrorCode::kShapeMismatch, "inputs hold different numbers of batches");
    k = batches;
    all.push_back(std::move(t));
  }
  for (const auto& [name, file] : files) {
    bool known = false;
    for (int32_t id : p.inputs) known |= p.tensors[id].name == name;
    ANVIL_CHECK(known, ErrorCode::kInvalidArgument, "--loadInputs: the engine has no input '", name, "'");
  }
  std::vector<ir::Tensor> outs;
  for (int32_t id : p.outputs) {
    std::vector<int64_t> dims = p.tensors[id].shape;
    ANVIL_CHECK(!dims.empty() || k == 1, ErrorCode::kShapeMismatch, "scalar output with stacked batches");
    if (!dims.empty()) dims[0] *= k;
    outs.emplace_back(ir::DataType::kFloat, dims);
  }
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t b = 0; b < k; ++b) {
    std::vector<ir::Tensor> batch;
    for (size_t i = 0; i < all.size(); ++i) {
      const auto& shape = p.tensors[p.inputs[i]].shape;
      ir::Tensor t(ir::DataType::kFloat, shape);
      const int64_t n = t.numel();
      for (int64_t e = 0; e < n; ++e) t.data<float>()[e] = float(all[i].getDouble(b * n + e));
      batch.push_back(std::move(t));
    }
    std::vector<ir::Tensor> res = mpc::runFixed(p, batch);
    for (size_t o = 0; o < res.size(); ++o)
      std::copy(res[o].data<float>(), res[o].data<float>() + res[o].numel(), outs[o].data<float>() + b * res[o].numel());
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "=== fixed-point run ===\n"
            << k << " batch(es), " << p.steps.size() << " steps, " << std::fixed << std::setprecision(3) << ms
            << " ms\n";
  if (flags.count("saveOutputs")) {
    std::filesystem::create_directories(flags["saveOutputs"]);
    for (size_t o = 0; o < outs.size(); ++o) {
      std::string file = (std::filesystem::path(flags["saveOutputs"]) / npyFileName(p.tensors[p.outputs[o]].name)).string();
      writeNpy(file, outs[o]);
      std::cout << "Output '" << p.tensors[p.outputs[o]].name << "' " << outs[o].type().shape.str() << " -> " << file
                << "\n";
    }
  }
  return 0;
}

}  // namespace

int mpcMain(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]).rfind("mpc-", 0) == 0) return mpcPartyMain(argc, argv);
  auto flags = parseFlags(argc, argv);
  if (flags.count("help")) {
    std::cout << kHelp;
    return 0;
  }
  const std::string mode = flags["mode"];
  if (mode == "mpc") {
    ANVIL_CHECK(flags.count("onnx") && !flags.count("loadEngine"), ErrorCode::kInvalidArgument,
                "--mode=mpc builds from --onnx=FILE (run an engine with --mode=fixed or the mpc-* commands)");
    return buildMain(flags);
  }
  ANVIL_CHECK(mode == "fixed", ErrorCode::kInvalidArgument, "--mode is mpc or fixed here, got '", mode, "'");
  return fixedMain(flags);
}

}  // namespace anvil::tools
