// `anvil mpc-dealer | mpc-server | mpc-client` (tools/mpc_party.h): the offline dealer, the
// server that serves one connection per run of material, and the client that runs one
// inference and prints a trtexec-like summary of its communication.
#include "tools/mpc_party.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "anvil/error.h"
#include "runtime/mpc/parties.h"
#include "tools/npy.h"

namespace anvil::tools {
namespace {

using namespace anvil::mpc;
using Flags = std::map<std::string, std::string>;

struct FlagHelp {
  const char* name;
  const char* help;
};

Flags parseFlags(int argc, char** argv, const std::string& command, const std::vector<FlagHelp>& known) {
  Flags f;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    ANVIL_CHECK(a.rfind("--", 0) == 0, ErrorCode::kInvalidArgument, command, ": unexpected argument '", a, "'");
    a = a.substr(2);
    const size_t eq = a.find('=');
    std::string name = a.substr(0, eq), value = eq == std::string::npos ? "" : a.substr(eq + 1);
    bool ok = name == "help";
    for (const FlagHelp& k : known) ok = ok || name == k.name;
    ANVIL_CHECK(ok, ErrorCode::kInvalidArgument, command, ": unknown flag --", name, " (see anvil ", command, " --help)");
    f[name] = value;
  }
  return f;
}

bool printHelp(const Flags& f, const std::string& command, const std::vector<FlagHelp>& known) {
  if (!f.count("help")) return false;
  std::cout << "usage: anvil " << command << " [flags]\n";
  for (const FlagHelp& k : known)
    std::cout << "  --" << std::left << std::setw(24) << (std::string(k.name) + "=...") << k.help << "\n";
  return true;
}

const std::string& required(const Flags& f, const std::string& command, const char* name) {
  auto it = f.find(name);
  ANVIL_CHECK(it != f.end() && !it->second.empty(), ErrorCode::kInvalidArgument, command, " needs --", name, "=...");
  return it->second;
}

int64_t intFlag(const Flags& f, const char* name, int64_t fallback) {
  auto it = f.find(name);
  if (it == f.end()) return fallback;
  try {
    size_t used = 0;
    int64_t v = std::stoll(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  ANVIL_THROW(ErrorCode::kInvalidArgument, "--", name, " expects an integer, got '", it->second, "'");
}

std::string hex(const std::string& bytes) {
  std::ostringstream os;
  for (unsigned char c : bytes) os << std::hex << std::setw(2) << std::setfill('0') << int(c);
  return os.str();
}

std::string mib(uint64_t bytes) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(3) << double(bytes) / (1 << 20) << " MiB";
  return os.str();
}

const char* kindName(StepKind k) {
  switch (k) {
    case StepKind::kInput: return "Input";
    case StepKind::kLinear: return "Linear";
    case StepKind::kScale: return "Scale";
    case StepKind::kLut: return "Lut";
    case StepKind::kMaxPool: return "MaxPool";
    case StepKind::kAdd: return "Add";
    case StepKind::kSub: return "Sub";
    case StepKind::kMulConst: return "MulConst";
    case StepKind::kSumPool: return "SumPool";
    case StepKind::kReduceSum: return "ReduceSum";
    case StepKind::kReshape: return "Reshape";
    case StepKind::kTranspose: return "Transpose";
    case StepKind::kConcat: return "Concat";
    case StepKind::kSlice: return "Slice";
    case StepKind::kMul: return "Mul";
    case StepKind::kMatMul: return "MatMul";
    case StepKind::kOutput: return "Output";
  }
  return "?";
}

std::string jsonString(const std::string& s) {
  std::ostringstream os;
  os << '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') os << '\\' << c;
    else if (c < 0x20) os << "\\u" << std::hex << std::setw(4) << std::setfill('0') << int(c) << std::dec;
    else os << c;
  }
  os << '"';
  return os.str();
}

ChannelOptions channelOptions(const Flags& f) {
  ChannelOptions o;
  const int64_t s = intFlag(f, "timeout", 30);
  ANVIL_CHECK(s > 0 && s <= 86400, ErrorCode::kInvalidArgument, "--timeout is seconds in 1..86400, got ", s);
  o.timeoutMs = int(s * 1000);
  return o;
}

// ---- mpc-dealer -----------------------------------------------------------------------------

const std::vector<FlagHelp> kDealerFlags = {
    {"loadEngine", "the PUBLIC engine (--savePublic): the dealer never sees the weights"},
    {"runs", "how many runs of material to make (each run serves one inference)"},
    {"out", "DIR: writes DIR/server and DIR/client (give each party only its own)"},
};

int dealerMain(const Flags& f) {
  const std::string cmd = "mpc-dealer";
  const Program p = loadProgramFile(required(f, cmd, "loadEngine"));
  ANVIL_CHECK(p.isPublic, ErrorCode::kInvalidArgument,
              "mpc-dealer: the engine holds the weights; give the dealer the public engine (--savePublic)");
  const int64_t runs = intFlag(f, "runs", 0);
  ANVIL_CHECK(runs >= 1, ErrorCode::kInvalidArgument, "mpc-dealer needs --runs=N with N >= 1");
  const std::string out = required(f, cmd, "out");
  const DealtMaterial d = dealMaterial(p, runs, out);
  const double ms = d.milliseconds;
  std::cout << "[I] mpc-dealer: program " << hex(p.programId) << ", material set " << hex(d.setId) << ", " << runs
            << " run(s) in " << out << "/server and " << out << "/client\n"
            << std::fixed << std::setprecision(3) << "[I] Offline time: " << ms << " ms (" << ms / double(runs)
            << " ms per run)\n"
            << "[I] Offline bytes: server " << d.serverBytes << " (" << mib(d.serverBytes) << ", "
            << d.serverBytes / uint64_t(runs) << " per run), client " << d.clientBytes << " ("
            << d.clientBytes / uint64_t(runs) << " per run)\n";
  return 0;
}

// ---- mpc-server -----------------------------------------------------------------------------

const std::vector<FlagHelp> kServerFlags = {
    {"loadEngine", "the server engine (weights and the channel's secret key)"},
    {"offline", "DIR: the dealer's OFF/server (one run consumed per connection)"},
    {"listen", "HOST:PORT to listen on (PORT 0: any free port, printed)"},
    {"timeout", "seconds a read, write or accept may wait (default 30)"},
};

int serverMain(const Flags& f) {
  const std::string cmd = "mpc-server";
  const Program p = loadProgramFile(required(f, cmd, "loadEngine"));
  const std::string dir = required(f, cmd, "offline");
  const int64_t runs = serveMaterial(
      p, dir, required(f, cmd, "listen"), channelOptions(f),
      [](int port, int64_t runs) {
        std::cout << "[I] mpc-server: listening on port " << port << ", serving " << runs << " run(s)" << std::endl;
      },
      [](const ServedRun& r) {
        std::cout << std::fixed << std::setprecision(3) << "[I] run " << r.runIndex << ": online " << r.stats.onlineMs
                  << " ms, sent " << r.stats.bytesSent << " bytes, received " << r.stats.bytesReceived << " bytes, "
                  << r.stats.rounds << " rounds" << std::endl;
      });
  std::cout << "[I] mpc-server: served " << runs << " run(s)" << std::endl;
  return 0;
}

// ---- mpc-client -----------------------------------------------------------------------------

const std::vector<FlagHelp> kClientFlags = {
    {"loadEngine", "the public engine (no weights; holds the server's channel public key)"},
    {"offline", "DIR: the dealer's OFF/client (one run consumed per inference)"},
    {"connect", "HOST:PORT of the mpc-server"},
    {"loadInputs", "NAME:FILE.npy[,...]: the inputs (float32 .npy, the engine's shapes)"},
    {"saveOutputs", "DIR: one .npy per output, named after the output"},
    {"exportStats", "FILE.json: bytes, rounds, times, per-layer communication"},
    {"timeout", "seconds a connect, read or write may wait (default 30)"},
};

std::vector<ir::Tensor> loadInputs(const Program& p, const std::string& spec) {
  std::map<std::string, std::string> files;
  std::stringstream ss(spec);
  for (std::string item; std::getline(ss, item, ',');) {
    const size_t colon = item.rfind(':');
    ANVIL_CHECK(colon != std::string::npos && colon > 0, ErrorCode::kInvalidArgument, "--loadInputs entry '", item,
                "' is not NAME:FILE");
    ANVIL_CHECK(files.emplace(item.substr(0, colon), item.substr(colon + 1)).second, ErrorCode::kInvalidArgument,
                "--loadInputs names '", item.substr(0, colon), "' twice");
  }
  std::vector<ir::Tensor> inputs;
  std::set<std::string> used;
  for (int32_t id : p.inputs) {
    const TensorDef& def = p.tensors.at(size_t(id));
    auto it = files.find(def.name);
    ANVIL_CHECK(it != files.end(), ErrorCode::kInvalidArgument, "--loadInputs: no file for input '", def.name, "'");
    used.insert(def.name);
    ir::Tensor t = readNpy(it->second);
    if (t.dtype() == DataType::kF64) {  // numpy's default: converted, the values are quantized anyway
      ir::Tensor f(DataType::kF32, t.dims());
      for (int64_t i = 0; i < t.numel(); ++i) f.data<float>()[i] = float(t.data<double>()[i]);
      t = f;
    }
    ANVIL_CHECK(t.dtype() == DataType::kF32, ErrorCode::kInvalidArgument, "--loadInputs: '", it->second, "' is ",
                t.summary(), ", input '", def.name, "' takes float32");
    // Checked before a run of material is claimed and the server's run started for nothing.
    ANVIL_CHECK(t.dims() == def.shape, ErrorCode::kShapeMismatch, "--loadInputs: '", it->second, "' is ", t.summary(),
                ", the engine's input '", def.name, "' is ", ir::Shape::fromExtents(def.shape).str(),
                " (the shape is fixed at the build: --shapes)");
    inputs.push_back(t);
  }
  for (const auto& [name, file] : files)
    ANVIL_CHECK(used.count(name), ErrorCode::kInvalidArgument, "--loadInputs: the engine has no input '", name, "'");
  return inputs;
}

void writeStats(const std::string& path, const ProtocolStats& s, const PayloadSizes& offline, int64_t runIndex) {
  std::ofstream f(path);
  ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot write '", path, "'");
  f << std::setprecision(10);
  f << "{\n"
    << "  \"bytesSent\": " << s.bytesSent << ",\n"
    << "  \"bytesReceived\": " << s.bytesReceived << ",\n"
    << "  \"payloadBytesSent\": " << s.payloadBytesSent << ",\n"
    << "  \"payloadBytesReceived\": " << s.payloadBytesReceived << ",\n"
    << "  \"rounds\": " << s.rounds << ",\n"
    << "  \"nonlinearLayers\": " << s.nonlinearLayers << ",\n"
    << "  \"onlineMs\": " << s.onlineMs << ",\n"
    << "  \"offlineBytes\": " << offline.client + offline.server << ",\n"
    << "  \"offlineBytesClient\": " << offline.client << ",\n"
    << "  \"offlineBytesServer\": " << offline.server << ",\n"
    << "  \"lookups\": " << s.lookups << ",\n"
    << "  \"lutBytes\": " << s.lutBytes << ",\n"
    << "  \"lutBytesPerActivation\": " << s.lutBytesPerActivation << ",\n"
    << "  \"runIndex\": " << runIndex << ",\n"
    << "  \"layers\": [";
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerStats& l = s.layers[i];
    f << (i ? "," : "") << "\n    {\"name\": " << jsonString(l.name) << ", \"kind\": \"" << kindName(l.kind)
      << "\", \"rounds\": " << l.rounds << ", \"bytesSent\": " << l.bytesSent << ", \"bytesReceived\": " << l.bytesReceived
      << ", \"lookups\": " << l.lookups << "}";
  }
  f << "\n  ]\n}\n";
  ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot write '", path, "'");
}

int clientMain(const Flags& f) {
  const std::string cmd = "mpc-client";
  const Program p = loadProgramFile(required(f, cmd, "loadEngine"));
  ANVIL_CHECK(!p.serverPublicKey.empty(), ErrorCode::kInvalidEngine,
              "mpc-client: the engine holds no server public key");
  const std::vector<ir::Tensor> inputs = loadInputs(p, required(f, cmd, "loadInputs"));
  const std::string address = required(f, cmd, "connect");
  const ClientRun run = runClientOnce(p, required(f, cmd, "offline"), address, inputs, channelOptions(f));
  const ClientResult& r = run.result;
  const MaterialHeader& material = run.material;
  if (f.count("saveOutputs")) {
    const std::string dir = f.at("saveOutputs");
    std::filesystem::create_directories(dir);
    for (size_t i = 0; i < r.outputs.size(); ++i) writeNpy(dir + "/" + npyFileName(r.names[i]), r.outputs[i]);
  }
  const PayloadSizes& offline = run.offline;
  const ProtocolStats& s = r.stats;
  std::cout << "[I] === MPC summary (client, run " << material.runIndex << ") ===\n"
            << std::fixed << std::setprecision(3) << "[I] Online time: " << s.onlineMs << " ms\n"
            << "[I] Rounds: " << s.rounds << " (" << s.nonlinearLayers << " nonlinear layers)\n"
            << "[I] Bytes sent: " << s.bytesSent << " (" << mib(s.bytesSent) << "), received: " << s.bytesReceived << " ("
            << mib(s.bytesReceived) << ")\n"
            << "[I] Lookups: " << s.lookups << ", " << s.lutBytesPerActivation << " bytes per activation\n"
            << "[I] Offline bytes per run: client " << offline.client << ", server " << offline.server << " ("
            << mib(offline.server) << ")\n";
  for (size_t i = 0; i < r.outputs.size(); ++i)
    std::cout << "[I] Output '" << r.names[i] << "': " << r.outputs[i].summary() << "\n";
  if (f.count("exportStats")) writeStats(f.at("exportStats"), s, offline, material.runIndex);
  return 0;
}

}  // namespace

int mpcPartyMain(int argc, char** argv) {
  ANVIL_CHECK(argc >= 2, ErrorCode::kInvalidArgument, "mpcPartyMain: no command");
  const std::string cmd = argv[1];
  const std::vector<FlagHelp>* known = cmd == "mpc-dealer"   ? &kDealerFlags
                                       : cmd == "mpc-server" ? &kServerFlags
                                       : cmd == "mpc-client" ? &kClientFlags
                                                             : nullptr;
  ANVIL_CHECK(known, ErrorCode::kInvalidArgument, "unknown command '", cmd,
              "' (mpc commands: mpc-dealer, mpc-server, mpc-client)");
  const Flags f = parseFlags(argc, argv, cmd, *known);
  if (printHelp(f, cmd, *known)) return 0;
  if (cmd == "mpc-dealer") return dealerMain(f);
  if (cmd == "mpc-server") return serverMain(f);
  return clientMain(f);
}

}  // namespace anvil::tools
