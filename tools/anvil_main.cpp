// The `anvil` command line: trtexec's flag names and meanings where they apply.
// Today it parses a model and runs it on the reference kernels; the engine builder and
// lean runtime plug in behind the same flags.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "parser/onnx_parser.h"
#include "tools/npy.h"

namespace {

using anvil::Error;
using anvil::ErrorCode;

struct Flag {
  const char* name;
  bool takesValue;
  const char* help;
};
constexpr Flag kFlags[] = {
    {"onnx", true, "ONNX model to parse and run"},
    {"loadInputs", true, "name:file[,name:file...] input data (.npy with dtype/shape, or raw binary)"},
    {"saveOutputs", true, "DIR: write one .npy per output, named after the output ([^A-Za-z0-9._-] -> _)"},
    {"checkSupport", false, "list every unsupported node of --onnx and exit (builds nothing)"},
    {"verbose", false, "print the parsed graph's size and per-step information"},
    {"help", false, "print this help"},
};

std::string sanitize(const std::string& name) {
  std::string s = name;
  for (char& c : s)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  return s;
}

std::map<std::string, std::string> parseFlags(int argc, char** argv) {
  std::map<std::string, std::string> out;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    ANVIL_CHECK(arg.rfind("--", 0) == 0, ErrorCode::kInvalidArgument, "unexpected argument '", arg,
                "' (flags look like --name=value)");
    std::string body = arg.substr(2);
    size_t eq = body.find('=');
    std::string name = body.substr(0, eq);
    const Flag* flag = nullptr;
    for (const Flag& f : kFlags)
      if (name == f.name) flag = &f;
    ANVIL_CHECK(flag != nullptr, ErrorCode::kInvalidArgument, "unknown flag '--", name, "' (see --help)");
    if (flag->takesValue) {
      ANVIL_CHECK(eq != std::string::npos && eq + 1 < body.size(), ErrorCode::kInvalidArgument, "flag --", name,
                  " needs a value: --", name, "=...");
      out[name] = body.substr(eq + 1);
    } else {
      ANVIL_CHECK(eq == std::string::npos, ErrorCode::kInvalidArgument, "flag --", name, " takes no value");
      out[name] = "1";
    }
  }
  return out;
}

// name:file pairs; raw (non-.npy) files take dtype and shape from the model input.
std::map<std::string, anvil::ir::Tensor> loadInputs(const std::string& spec, const anvil::ir::Graph& g) {
  std::map<std::string, anvil::ir::Tensor> out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t colon = item.rfind(':');
    ANVIL_CHECK(colon != std::string::npos && colon > 0, ErrorCode::kInvalidArgument, "--loadInputs entry '", item,
                "' is not name:file");
    std::string name = item.substr(0, colon), file = item.substr(colon + 1);
    const anvil::ir::Value* in = nullptr;
    for (const anvil::ir::Value* v : g.inputs())
      if (v->name() == name) in = v;
    ANVIL_CHECK(in != nullptr, ErrorCode::kInvalidArgument, "--loadInputs: the model has no input '", name, "'");
    if (std::filesystem::path(file).extension() == ".npy") {
      out[name] = anvil::tools::readNpy(file);
      continue;
    }
    ANVIL_CHECK(in->shape().isStatic(), ErrorCode::kInvalidArgument, "--loadInputs: raw file for input '", name,
                "' needs a static input shape, the model has ", in->type().str(), " (use a .npy file)");
    anvil::ir::Tensor t(in->dtype(), in->shape().extents());
    std::ifstream f(file, std::ios::binary);
    ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot open '", file, "'");
    f.seekg(0, std::ios::end);
    ANVIL_CHECK(size_t(f.tellg()) == t.nbytes(), ErrorCode::kInvalidArgument, "--loadInputs: '", file, "' has ",
                size_t(f.tellg()), " bytes, input '", name, "' ", in->type().str(), " needs ", t.nbytes());
    f.seekg(0);
    f.read(static_cast<char*>(t.mutableRaw()), std::streamsize(t.nbytes()));
    out[name] = t;
  }
  return out;
}

int run(int argc, char** argv) {
  auto flags = parseFlags(argc, argv);
  if (flags.count("help") || argc == 1) {
    std::cout << "usage: anvil --onnx=model.onnx [--loadInputs=name:file,...] [--saveOutputs=DIR]\n";
    for (const Flag& f : kFlags) std::cout << "  --" << f.name << (f.takesValue ? "=..." : "") << "  " << f.help << "\n";
    return 0;
  }
  ANVIL_CHECK(flags.count("onnx"), ErrorCode::kInvalidArgument, "--onnx=model.onnx is required");
  const std::string path = flags["onnx"];
  if (flags.count("checkSupport")) {
    auto issues = anvil::parser::checkSupport(path);
    for (const auto& i : issues) std::cout << "unsupported: " << i.str() << "\n";
    std::cout << (issues.empty() ? "all nodes are supported" : std::to_string(issues.size()) + " unsupported node(s)")
              << "\n";
    return issues.empty() ? 0 : 1;
  }
  auto t0 = std::chrono::steady_clock::now();
  anvil::ir::Model model = anvil::parser::parseOnnxFile(path);
  auto t1 = std::chrono::steady_clock::now();
  const anvil::ir::Graph& g = *model.graph;
  if (flags.count("verbose"))
    std::cout << "[I] parsed " << path << ": " << g.nodes().size() << " nodes, " << g.inputs().size() << " inputs, "
              << g.outputs().size() << " outputs in "
              << std::chrono::duration<double, std::milli>(t1 - t0).count() << " ms\n";
  std::map<std::string, anvil::ir::Tensor> inputs;
  if (flags.count("loadInputs")) inputs = loadInputs(flags["loadInputs"], g);
  for (const anvil::ir::Value* in : g.inputs())
    ANVIL_CHECK(inputs.count(in->name()) || in->isInitializer(), ErrorCode::kInvalidArgument, "input '", in->name(),
                "' ", in->type().str(), " has no data: pass --loadInputs=", in->name(), ":file.npy");
  auto outs = anvil::cpu::Interpreter::run(g, inputs);
  auto t2 = std::chrono::steady_clock::now();
  std::cout << "[I] reference run: " << std::chrono::duration<double, std::milli>(t2 - t1).count() << " ms\n";
  if (flags.count("saveOutputs")) {
    std::filesystem::create_directories(flags["saveOutputs"]);
    for (size_t i = 0; i < outs.size(); ++i) {
      std::string file = (std::filesystem::path(flags["saveOutputs"]) / (sanitize(g.outputs()[i]->name()) + ".npy")).string();
      anvil::tools::writeNpy(file, outs[i]);
      std::cout << "[I] wrote " << file << " (" << outs[i].summary() << ")\n";
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    std::cerr << "[E] " << anvil::errorCodeName(e.code()) << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "[E] internal error: " << e.what() << "\n";
    return 2;
  }
}
