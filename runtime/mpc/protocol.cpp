// Both parties' online phase (protocol.h). One class runs either side: the steps are the
// same, only who holds which mask and which way a message goes differ. Message order:
//   server -> client  hello, E (every linear layer's W - A)      (sent at once, no wait)
//   client -> server  hello
//   per round         client: [F of the linear layers since the last round | its openings]
//                     server: [its openings]
//   client -> server  [F of trailing linear layers]              (only when there are some)
//   server -> client  the outputs' server shares; client -> server done.
#include "runtime/mpc/protocol.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <set>

#include "anvil/error.h"
#include "runtime/mpc/ring_ops.h"

namespace anvil::mpc {
namespace {

bool isLinear(StepKind k) { return k == StepKind::kLinear || k == StepKind::kScale; }
bool isProduct(StepKind k) { return k == StepKind::kMul || k == StepKind::kMatMul; }

// Run material handed to runClient/runServer in this process, by (set, party, run): the
// in-process half of "consumed once" (material files are the other, runtime/mpc/material.*).
void markConsumed(const RunHeader& h) {
  static std::mutex mutex;
  static std::set<std::string> used;
  std::string key = h.setId + '/' + std::to_string(h.party) + '/' + std::to_string(h.runIndex);
  std::lock_guard<std::mutex> lock(mutex);
  ANVIL_CHECK(used.insert(key).second, ErrorCode::kInvalidArgument, "mpc material of run ", h.runIndex,
              " was already used: a mask or table used twice would leak the ", h.party ? "weights" : "input");
}

std::vector<uint8_t> helloBytes(const RunHeader& h) {
  std::vector<uint8_t> b;
  auto put = [&](const void* p, size_t n) { b.insert(b.end(), (const uint8_t*)p, (const uint8_t*)p + n); };
  uint32_t n = uint32_t(h.programId.size());
  put(&n, 4);
  put(h.programId.data(), n);
  n = uint32_t(h.setId.size());
  put(&n, 4);
  put(h.setId.data(), n);
  put(&h.runIndex, 8);
  return b;
}

RunHeader parseHello(const std::vector<uint8_t>& b) {
  RunHeader h;
  size_t pos = 0;
  auto take = [&](void* out, size_t n) {
    ANVIL_CHECK(n <= b.size() - pos, ErrorCode::kRuntimeError, "mpc handshake: malformed hello from the peer (",
                b.size(), " bytes)");
    std::memcpy(out, b.data() + pos, n);
    pos += n;
  };
  auto str = [&](std::string& out) {
    uint32_t n;
    take(&n, 4);
    ANVIL_CHECK(n <= b.size() - pos, ErrorCode::kRuntimeError, "mpc handshake: malformed hello from the peer (",
                b.size(), " bytes)");  // before the allocation a bad length would ask for
    out.resize(n);
    take(out.data(), n);
  };
  str(h.programId);
  str(h.setId);
  take(&h.runIndex, 8);
  ANVIL_CHECK(pos == b.size(), ErrorCode::kRuntimeError, "mpc handshake: malformed hello from the peer (", b.size(),
              " bytes)");
  return h;
}

void checkHello(const RunHeader& mine, const RunHeader& peer) {
  ANVIL_CHECK(peer.programId == mine.programId, ErrorCode::kRuntimeError,
              "mpc handshake: the peer runs another engine build (program id differs)");
  ANVIL_CHECK(peer.setId == mine.setId, ErrorCode::kRuntimeError,
              "mpc handshake: the peer's offline material is of another dealer run (material set differs)");
  ANVIL_CHECK(peer.runIndex == mine.runIndex, ErrorCode::kRuntimeError,
              "mpc handshake: runs out of step: this side's material is run ", mine.runIndex, ", the peer's run ",
              peer.runIndex);
}

template <typename T>
const uint8_t* bytesOf(const std::vector<T>& v) {
  return reinterpret_cast<const uint8_t*>(v.data());
}

std::vector<Ring> ringsOf(const std::vector<uint8_t>& b) {
  std::vector<Ring> v(b.size() / sizeof(Ring));
  if (!v.empty()) std::memcpy(v.data(), b.data(), v.size() * sizeof(Ring));
  return v;
}

class PartyRun {
 public:
  PartyRun(const Program& p, int party, Transport& t, const ProtocolOptions& o)
      : p_(p), party_(party), t_(t), k_(o.kernels ? *o.kernels : defaultKernels()), observe_(o.observer) {
    layers_.resize(p.steps.size());
    for (size_t i = 0; i < p.steps.size(); ++i) {
      layers_[i].name = p.steps[i].name;
      layers_[i].kind = p.steps[i].kind;
    }
  }

  // Runs the steps on this party's shares (shares_ then holds every tensor's share).
  void run(const std::vector<ir::Tensor>* inputs, const ClientMaterial* cm, const ServerMaterial* sm) {
    shares_.assign(p_.tensors.size(), {});
    for (size_t i = 0; i < p_.steps.size(); ++i) {
      const Step& s = p_.steps[i];
      switch (s.kind) {
        case StepKind::kInput: {
          // the inputs are given in Program::inputs order
          size_t inputIndex = 0;
          while (inputIndex < p_.inputs.size() && p_.inputs[inputIndex] != s.output) ++inputIndex;
          ANVIL_CHECK(inputIndex < p_.inputs.size(), ErrorCode::kInvalidEngine, "mpc program: input step '", s.name,
                      "' writes no program input");
          const TensorDef& def = p_.tensors.at(size_t(s.output));
          if (party_ == 0) {
            ANVIL_CHECK(inputs && inputIndex < inputs->size(), ErrorCode::kInvalidArgument, "mpc client: input ",
                        inputIndex, " ('", def.name, "') not given");
            out(s) = quantizeInput((*inputs)[inputIndex], def);
          } else {
            out(s).assign(size_t(tensorNumel(p_, s.output)), 0);  // the client's share is q itself
          }
          break;
        }
        case StepKind::kLinear:
        case StepKind::kScale:
          linear(i, s, cm, sm);
          break;
        case StepKind::kLut: {
          out(s) = lookup(i, s, in(s, 0), 0, cm, sm);
          break;
        }
        case StepKind::kMaxPool:
          maxPool(i, s, cm, sm);
          break;
        case StepKind::kMul:
        case StepKind::kMatMul:
          product(i, s, cm, sm);
          break;
        case StepKind::kOutput:
          ANVIL_CHECK(!in(s, 0).empty() || tensorNumel(p_, s.inputs.at(0)) == 0, ErrorCode::kInvalidEngine,
                      "mpc program: output '", s.name, "' reads a value not computed before it");
          break;
        default: {
          std::vector<const std::vector<Ring>*> ins;
          for (size_t k = 0; k < s.inputs.size(); ++k) ins.push_back(&in(s, k));
          out(s) = k_.local(p_, s, ins);
          ANVIL_CHECK(int64_t(out(s).size()) == tensorNumel(p_, s.output), ErrorCode::kInternal, "mpc step '", s.name,
                      "': local kernel made ", out(s).size(), " elements, expected ", tensorNumel(p_, s.output));
        }
      }
    }
  }

  // --- messages ---------------------------------------------------------------------------

  void sendHello(const RunHeader& h) {
    const std::vector<uint8_t> b = helloBytes(h);
    t_.send(MessageType::kHello, b.data(), b.size());
  }
  void receiveHello(const RunHeader& mine) { checkHello(mine, parseHello(t_.receive(MessageType::kHello))); }

  // The client's bytes for the server that need no answer (F): the client queues them
  // for its next message; the server reads them from the client's current message.
  std::vector<uint8_t> clientToServer(size_t step, const uint8_t* data, size_t n, const char* part) {
    if (party_ == 0) {
      pending_.insert(pending_.end(), data, data + n);
      layers_[step].bytesSent += n;
      return {};
    }
    std::vector<uint8_t> got = readInbox(n, step);
    layers_[step].bytesReceived += n;
    if (observe_) observe_(step, part, got.data(), got.size());
    return got;
  }

  // One opening: this party's n bytes for the peer's n bytes, one round trip.
  std::vector<uint8_t> open(size_t step, const uint8_t* mine, size_t n, const char* part) {
    std::vector<uint8_t> theirs;
    if (party_ == 0) {
      pending_.insert(pending_.end(), mine, mine + n);
      t_.send(MessageType::kLayer, pending_.data(), pending_.size());
      pending_.clear();
      theirs = t_.receive(MessageType::kLayer, n);
    } else {
      theirs = readInbox(n, step);
      ANVIL_CHECK(inboxPos_ == inbox_.size(), ErrorCode::kRuntimeError, "mpc protocol: step '", p_.steps[step].name,
                  "': the client's message has ", inbox_.size() - inboxPos_, " bytes more than this round reads");
      t_.send(MessageType::kLayer, mine, n);
    }
    layers_[step].bytesSent += n;
    layers_[step].bytesReceived += n;
    ++layers_[step].rounds;
    if (party_ == 0) ++rounds_;  // the server counts the client's messages (readInbox)
    if (observe_) observe_(step, part, theirs.data(), theirs.size());
    return theirs;
  }

  // The server's read of the client's current message; a new message when it is used up.
  std::vector<uint8_t> readInbox(size_t n, size_t step) {
    if (inboxPos_ == inbox_.size() && n > 0) {
      inbox_ = t_.receive(MessageType::kLayer);
      inboxPos_ = 0;
      ++rounds_;  // each client message is answered: by the server's bytes or the outputs
    }
    ANVIL_CHECK(n <= inbox_.size() - inboxPos_, ErrorCode::kRuntimeError, "mpc protocol: step '", p_.steps[step].name,
                "' needs ", n, " bytes of the client's message, ", inbox_.size() - inboxPos_, " left");
    std::vector<uint8_t> r(inbox_.begin() + long(inboxPos_), inbox_.begin() + long(inboxPos_ + n));
    inboxPos_ += n;
    return r;
  }

  // --- steps ------------------------------------------------------------------------------

  // E = W - A arrives once; v0 = op(E, B) + c0 (client), v1 = op(W, a1 + F) + c1 + bias (server).
  void linear(size_t i, const Step& s, const ClientMaterial* cm, const ServerMaterial* sm) {
    const std::vector<Ring>& a = in(s, 0);
    const size_t n = a.size();
    std::vector<Ring> v;
    if (party_ == 0) {
      const ClientStepMaterial& m = cm->steps[i];
      std::vector<Ring> F(n);
      for (size_t k = 0; k < n; ++k) F[k] = a[k] - m.a[k];
      clientToServer(i, bytesOf(F), n * sizeof(Ring), "linear");
      v = k_.linear(p_, s, weightMasks_.at(i), {}, m.a);
      addInto(v, m.c, s);
    } else {
      const ServerStepMaterial& m = sm->steps[i];
      std::vector<Ring> x = ringsOf(clientToServer(i, nullptr, n * sizeof(Ring), "linear"));
      for (size_t k = 0; k < n; ++k) x[k] += a[k];
      v = k_.linear(p_, s, s.weights, s.bias, x);
      addInto(v, m.c, s);
    }
    out(s) = std::move(v);
  }

  // One-time table lookups on shared values v (lookups first .. first + |v| - 1 of step i).
  std::vector<Ring> lookup(size_t i, const Step& s, const std::vector<Ring>& v, int64_t first, const ClientMaterial* cm,
                           const ServerMaterial* sm) {
    if (exactLookup(p_, s)) return exactLookupShares(i, s, v, first, cm, sm);
    const size_t n = v.size();
    const std::vector<uint8_t>& sigma = party_ == 0 ? cm->steps[i].sigma : sm->steps[i].sigma;
    ANVIL_CHECK(first + int64_t(n) <= int64_t(sigma.size()), ErrorCode::kInternal, "mpc step '", s.name,
                "': more lookups than material");
    // Truncation on shares: each party shifts its own share (logically), after the server
    // adds 2^d - 1. Then t0 + t1 = ceil(v / 2^d) - c (mod 256) with c in {0, 1} the carry of
    // the shares' low d bits, so the index is floor(v / 2^d) or that plus one, the latter
    // with probability (v mod 2^d) / 2^d when the client's share is uniform: unbiased
    // stochastic rounding, exact when 2^d divides v, within one of the fixed mode's
    // round-half-up index (docs/mpc.md, "Truncation"). (Adding 2^(d-1) instead would give
    // the fixed index or one less: a bias of -1/2 per lookup that adds up in the next layer.)
    // The low byte of the shifted sum is right whenever d <= 56 (2^(64-d) = 0 mod 256).
    const int d = s.shift;
    const Ring round = (party_ == 1 && d > 0) ? (Ring(1) << d) - 1 : 0;
    std::vector<uint8_t> mine(n);
    for (size_t k = 0; k < n; ++k)
      mine[k] = uint8_t(uint8_t((v[k] + round) >> d) + sigma[size_t(first) + k]);
    std::vector<uint8_t> theirs = open(i, mine.data(), n, "lut");
    std::vector<Ring> r(n);
    layers_[i].lookups += int64_t(n);
    for (size_t k = 0; k < n; ++k) {
      const uint8_t y = uint8_t(mine[k] + theirs[k]);
      r[k] = party_ == 0 ? ClientMaterial::tableShare(cm->steps[i].tableKey, first + int64_t(k), y)
                         : sm->tableShare(i, first + int64_t(k), y);
    }
    return r;
  }

  // The exact truncation (dealer.h, exactLookup): open m = u + r (u = v + 2^(d-1)), then
  // the borrow of (m mod 2^d) - (r mod 2^d) as a masked bit (the chain of digits or their
  // states), then the table that bit selects: index (m - r) >> d = floor(u / 2^d) mod 256,
  // the fixed mode's.
  std::vector<Ring> exactLookupShares(size_t i, const Step& s, const std::vector<Ring>& v, int64_t first,
                                      const ClientMaterial* cm, const ServerMaterial* sm) {
    const size_t n = v.size();
    const int d = s.shift, width = exactOpenBytes(d), digits = exactDigits(d);
    const std::vector<Ring>& r = party_ == 0 ? cm->steps[i].r : sm->steps[i].r;
    const uint8_t* q = party_ == 0 ? cm->steps[i].bits.data() : sm->steps[i].bits;
    ANVIL_CHECK(first + int64_t(n) <= int64_t(r.size()), ErrorCode::kInternal, "mpc step '", s.name,
                "': more lookups than material");
    // Round 1: the low `width` bytes of this party's share of m (uniform: r is).
    const Ring half = party_ == 1 ? Ring(1) << (d - 1) : 0;
    std::vector<uint8_t> mine(n * size_t(width));
    for (size_t k = 0; k < n; ++k) {
      const Ring y = v[k] + half + r[size_t(first) + k];
      for (int b = 0; b < width; ++b) mine[k * size_t(width) + size_t(b)] = uint8_t(y >> (8 * b));
    }
    std::vector<uint8_t> theirs = open(i, mine.data(), mine.size(), "lut");
    std::vector<Ring> m(n);
    for (size_t k = 0; k < n; ++k) {
      Ring a = 0, b = 0;
      for (int j = 0; j < width; ++j) {
        a |= Ring(mine[k * size_t(width) + size_t(j)]) << (8 * j);
        b |= Ring(theirs[k * size_t(width) + size_t(j)]) << (8 * j);
      }
      m[k] = a + b;  // bits 0 .. 8 * width - 1 are m's; only 0 .. d + 7 are read
    }
    // The masked borrow c = B xor beta (dealer.h): bits packed 8 to a byte.
    const Ring lowMask = (Ring(1) << d) - 1;
    const size_t per = exactBitTableBytes(d);
    auto digitOf = [&](size_t k, int digit) { return int(((m[k] & lowMask) >> (8 * digit)) & 0xff); };
    auto bitAt = [](const uint8_t* block, size_t bit) { return (block[bit / 8] >> (bit % 8)) & 1; };
    auto openBits = [&](const std::vector<uint8_t>& bits) {
      std::vector<uint8_t> all = open(i, bits.data(), bits.size(), "lut");
      for (size_t b = 0; b < all.size(); ++b) all[b] ^= bits[b];
      return all;
    };
    std::vector<uint8_t> c(n, 0);
    if (!exactUsesStates(d)) {
      // the chain, least significant digit first: c_(k+1) = Q_k[x_k][c_k]
      for (int digit = 0; digit < digits; ++digit) {
        std::vector<uint8_t> bits((n + 7) / 8, 0);
        for (size_t k = 0; k < n; ++k) {
          const uint8_t* block = q + (size_t(first) + k) * per + size_t(digit) * 64;
          bits[k / 8] |= uint8_t(bitAt(block, size_t(digitOf(k, digit) * 2 + c[k])) << (k % 8));
        }
        const std::vector<uint8_t> opened = openBits(bits);
        for (size_t k = 0; k < n; ++k) c[k] = uint8_t((opened[k / 8] >> (k % 8)) & 1);
      }
    } else {
      // the states: every digit's masked state at once, then the borrow they give
      std::vector<uint8_t> bits((n * size_t(digits) * 2 + 7) / 8, 0);
      for (size_t k = 0; k < n; ++k)
        for (int digit = 0; digit < digits; ++digit) {
          const uint8_t* block = q + (size_t(first) + k) * per + size_t(digit) * 64;
          const size_t x = size_t(digitOf(k, digit)), at = (k * size_t(digits) + size_t(digit)) * 2;
          bits[at / 8] |= uint8_t(bitAt(block, 2 * x) << (at % 8));
          bits[(at + 1) / 8] |= uint8_t(bitAt(block, 2 * x + 1) << ((at + 1) % 8));
        }
      const std::vector<uint8_t> t = openBits(bits);
      std::vector<uint8_t> cbits((n + 7) / 8, 0);
      for (size_t k = 0; k < n; ++k) {
        size_t idx = 0;
        for (int digit = 0; digit < digits; ++digit) {
          const size_t at = (k * size_t(digits) + size_t(digit)) * 2;
          idx |= size_t(bitAt(t.data(), at) | (bitAt(t.data(), at + 1) << 1)) << (2 * digit);
        }
        const uint8_t* comb = q + (size_t(first) + k) * per + size_t(digits) * 64;
        cbits[k / 8] |= uint8_t(bitAt(comb, idx) << (k % 8));
      }
      const std::vector<uint8_t> opened = openBits(cbits);
      for (size_t k = 0; k < n; ++k) c[k] = uint8_t((opened[k / 8] >> (k % 8)) & 1);
    }
    std::vector<Ring> out(n);
    layers_[i].lookups += int64_t(n);
    for (size_t k = 0; k < n; ++k) {
      const uint8_t j = uint8_t(m[k] >> d);
      const int64_t table = 2 * (first + int64_t(k)) + c[k];
      out[k] = party_ == 0 ? ClientMaterial::tableShare(cm->steps[i].tableKey, table, j) : sm->tableShare(i, table, j);
    }
    return out;
  }

  // Per level of the comparison tree, all windows at once: m = b + T[trunc8(a - b)].
  void maxPool(size_t i, const Step& s, const ClientMaterial* cm, const ServerMaterial* sm) {
    const MaxPoolPlan plan = maxPoolPlan(p_, s);
    std::vector<Ring> work(size_t(plan.workingSize()));
    const std::vector<Ring>& x = in(s, 0);
    std::copy(x.begin(), x.end(), work.begin());
    int64_t first = 0;
    for (const auto& level : plan.levels) {
      std::vector<Ring> diff(level.a.size());
      for (size_t k = 0; k < diff.size(); ++k) diff[k] = work[size_t(level.a[k])] - work[size_t(level.b[k])];
      std::vector<Ring> r = lookup(i, s, diff, first, cm, sm);
      for (size_t k = 0; k < r.size(); ++k) work[size_t(level.first) + k] = work[size_t(level.b[k])] + r[k];
      first += int64_t(diff.size());
    }
    std::vector<Ring>& o = out(s);
    o.resize(plan.result.size());
    for (size_t k = 0; k < o.size(); ++k) o[k] = work[size_t(plan.result[k])];
  }

  // Beaver: open e = x - a, f = y - b; z = c + e (*) b + a (*) f (+ e (*) f on the server).
  void product(size_t i, const Step& s, const ClientMaterial* cm, const ServerMaterial* sm) {
    const std::vector<Ring>& x = in(s, 0);
    const std::vector<Ring>& y = in(s, 1);
    const std::vector<Ring>& a = party_ == 0 ? cm->steps[i].a : sm->steps[i].a;
    const std::vector<Ring>& b = party_ == 0 ? cm->steps[i].b : sm->steps[i].b;
    const std::vector<Ring>& c = party_ == 0 ? cm->steps[i].c : sm->steps[i].c;
    std::vector<Ring> ef(x.size() + y.size());
    for (size_t k = 0; k < x.size(); ++k) ef[k] = x[k] - a[k];
    for (size_t k = 0; k < y.size(); ++k) ef[x.size() + k] = y[k] - b[k];
    std::vector<Ring> theirs = ringsOf(open(i, bytesOf(ef), ef.size() * sizeof(Ring), "beaver"));
    for (size_t k = 0; k < ef.size(); ++k) ef[k] += theirs[k];
    std::vector<Ring> e(ef.begin(), ef.begin() + long(x.size())), f(ef.begin() + long(x.size()), ef.end());
    std::vector<Ring> z = k_.product(p_, s, e, b);
    addInto(z, k_.product(p_, s, a, f), s);
    addInto(z, c, s);
    if (party_ == 1) addInto(z, k_.product(p_, s, e, f), s);
    out(s) = std::move(z);
  }

  // --- state ------------------------------------------------------------------------------

  std::vector<Ring>& out(const Step& s) { return shares_.at(size_t(s.output)); }
  const std::vector<Ring>& in(const Step& s, size_t k) { return shares_.at(size_t(s.inputs.at(k))); }
  void addInto(std::vector<Ring>& v, const std::vector<Ring>& w, const Step& s) {
    ANVIL_CHECK(v.size() == w.size(), ErrorCode::kInternal, "mpc step '", s.name, "': ", v.size(), " vs ", w.size(),
                " elements");
    for (size_t k = 0; k < v.size(); ++k) v[k] += w[k];
  }

  const Program& p_;
  int party_;
  Transport& t_;
  const RingKernels& k_;
  const TranscriptObserver& observe_;
  std::vector<std::vector<Ring>> shares_;
  std::vector<std::vector<Ring>> weightMasks_;  // client: E per linear step
  std::vector<uint8_t> pending_;                // client: bytes for the server's next read
  std::vector<uint8_t> inbox_;                  // server: the client's current message
  size_t inboxPos_ = 0;
  std::vector<LayerStats> layers_;
  int64_t rounds_ = 0;


 public:
  ProtocolStats finish(double ms, size_t materialBytes) const {
    ProtocolStats st;
    TransportStats ts = t_.stats();
    st.bytesSent = ts.wireBytesSent;
    st.bytesReceived = ts.wireBytesReceived;
    st.payloadBytesSent = ts.payloadBytesSent;
    st.payloadBytesReceived = ts.payloadBytesReceived;
    st.rounds = rounds_;
    st.onlineMs = ms;
    st.materialBytes = materialBytes;
    for (const LayerStats& l : layers_) {
      const bool nonlinear = l.kind == StepKind::kLut || l.kind == StepKind::kMaxPool || isProduct(l.kind);
      if (nonlinear) ++st.nonlinearLayers;
      if (l.kind == StepKind::kLut || l.kind == StepKind::kMaxPool) {
        st.lookups += l.lookups;
        st.lutBytes += l.bytesSent + l.bytesReceived;
      }
      if (nonlinear || l.bytesSent || l.bytesReceived) st.layers.push_back(l);
    }
    // A kLut / kMaxPool layer's own bytes are its openings only (F goes to the linear layer).
    st.lutBytesPerActivation = st.lookups ? double(st.lutBytes) / double(st.lookups) : 0;
    return st;
  }
};

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

size_t weightMaskBytes(const Program& p) {
  size_t n = 0;
  for (const Step& s : p.steps)
    if (isLinear(s.kind)) {
      int64_t w = 1;
      for (int64_t d : s.weightShape) w *= d;
      n += size_t(w) * sizeof(Ring);
    }
  return n;
}

// Runs `body`; on any error tells the peer why (Transport::abort) and rethrows as anvil::Error.
template <typename F>
auto guarded(Transport& t, const char* side, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Error& e) {
    t.abort(std::string("mpc ") + side + ": " + e.what());
    throw;
  } catch (const std::exception& e) {
    t.abort(std::string("mpc ") + side + ": " + e.what());
    ANVIL_THROW(ErrorCode::kRuntimeError, "mpc ", side, ": ", e.what());
  }
}

}  // namespace

std::vector<Ring> quantizeInput(const ir::Tensor& x, const TensorDef& def) {
  ANVIL_CHECK(ir::isFloat(x.dtype()) || ir::isInteger(x.dtype()), ErrorCode::kInvalidArgument, "mpc input '",
              def.name, "' is not numeric (", x.summary(), ")");
  ANVIL_CHECK(x.dims() == def.shape, ErrorCode::kShapeMismatch, "mpc input '", def.name, "': shape ", x.summary(),
              " differs from the engine's ", ir::Shape::fromExtents(def.shape).str());
  std::vector<Ring> q(size_t(x.numel()));
  for (size_t k = 0; k < q.size(); ++k) q[k] = quantize(x.getDouble(int64_t(k)), def.scale);
  return q;
}

ClientResult runClient(const Program& pub, const std::vector<uint8_t>& material, Transport& t,
                       const std::vector<ir::Tensor>& floatInputs, const ProtocolOptions& options) {
  return guarded(t, "client", [&] {
    ClientMaterial cm = expandClientMaterial(pub, material);
    markConsumed(cm.header);
    PartyRun run(pub, 0, t, options);
    const auto t0 = std::chrono::steady_clock::now();
    run.sendHello(cm.header);
    run.receiveHello(cm.header);
    // Every linear layer's E = W - A, in step order.
    std::vector<uint8_t> E = t.receive(MessageType::kWeightMask, weightMaskBytes(pub));
    run.weightMasks_.resize(pub.steps.size());
    size_t pos = 0;
    for (size_t i = 0; i < pub.steps.size(); ++i) {
      if (!isLinear(pub.steps[i].kind)) continue;
      int64_t w = 1;
      for (int64_t d : pub.steps[i].weightShape) w *= d;
      auto& m = run.weightMasks_[i];
      m.resize(size_t(w));
      std::memcpy(m.data(), E.data() + pos, m.size() * sizeof(Ring));
      if (options.observer) options.observer(i, "mask", E.data() + pos, m.size() * sizeof(Ring));
      run.layers_[i].bytesReceived += m.size() * sizeof(Ring);
      pos += m.size() * sizeof(Ring);
    }
    run.run(&floatInputs, &cm, nullptr);
    if (!run.pending_.empty()) {  // F of linear layers after the last round
      t.send(MessageType::kLayer, run.pending_.data(), run.pending_.size());
      run.pending_.clear();
      ++run.rounds_;
    }
    size_t outBytes = 0;
    for (int32_t id : pub.outputs) outBytes += size_t(tensorNumel(pub, id)) * sizeof(Ring);
    std::vector<uint8_t> theirs = t.receive(MessageType::kOutputShare, outBytes);
    ClientResult result;
    pos = 0;
    for (int32_t id : pub.outputs) {
      const TensorDef& def = pub.tensors.at(size_t(id));
      std::string name = def.name;
      const std::vector<Ring>& mine = run.shares_.at(size_t(id));
      for (size_t i = 0; i < pub.steps.size(); ++i)
        if (pub.steps[i].kind == StepKind::kOutput && pub.steps[i].inputs.at(0) == id) {
          if (name.empty()) name = pub.steps[i].name;  // the files are named like --mode=fixed's
          run.layers_[i].bytesReceived += mine.size() * sizeof(Ring);
          if (options.observer) options.observer(i, "output", theirs.data() + pos, mine.size() * sizeof(Ring));
        }
      ir::Tensor o(DataType::kF32, def.shape);
      float* f = o.data<float>();
      for (size_t k = 0; k < mine.size(); ++k) {
        Ring server;
        std::memcpy(&server, theirs.data() + pos + k * sizeof(Ring), sizeof server);
        f[k] = float(dequantize(mine[k] + server, def.scale));
      }
      pos += mine.size() * sizeof(Ring);
      result.names.push_back(name);
      result.outputs.push_back(std::move(o));
    }
    t.send(MessageType::kDone, nullptr, 0);
    result.stats = run.finish(msSince(t0), material.size());
    return result;
  });
}

ServerResult runServer(const Program& server, const std::vector<uint8_t>& material, Transport& t,
                       const ProtocolOptions& options) {
  return guarded(t, "server", [&] {
    ANVIL_CHECK(!server.isPublic, ErrorCode::kInvalidArgument,
                "mpc server: the engine is the public one (no weights); load the server engine");
    ServerMaterial sm = expandServerMaterial(server, material);
    markConsumed(sm.header);
    PartyRun run(server, 1, t, options);
    const auto t0 = std::chrono::steady_clock::now();
    run.sendHello(sm.header);
    // E = W - A reveals nothing of W (A is uniform and used once), so it goes before the
    // client's hello is checked: the client's first message needs it.
    std::vector<uint8_t> E;
    for (size_t i = 0; i < server.steps.size(); ++i) {
      const Step& s = server.steps[i];
      if (!isLinear(s.kind)) continue;
      const std::vector<Ring>& A = sm.steps[i].a;
      ANVIL_CHECK(s.weights.size() == A.size(), ErrorCode::kInvalidEngine, "mpc server: step '", s.name, "' holds ",
                  s.weights.size(), " weights, its shape says ", A.size());
      for (size_t k = 0; k < A.size(); ++k) {
        const Ring e = s.weights[k] - A[k];
        E.insert(E.end(), reinterpret_cast<const uint8_t*>(&e), reinterpret_cast<const uint8_t*>(&e) + sizeof e);
      }
      run.layers_[i].bytesSent += A.size() * sizeof(Ring);
    }
    t.send(MessageType::kWeightMask, E.data(), E.size());
    run.receiveHello(sm.header);
    run.run(nullptr, nullptr, &sm);
    ANVIL_CHECK(run.inboxPos_ == run.inbox_.size(), ErrorCode::kRuntimeError, "mpc server: the client's last message has ",
                run.inbox_.size() - run.inboxPos_, " bytes more than the program reads");
    std::vector<uint8_t> shares;
    for (int32_t id : server.outputs) {
      const std::vector<Ring>& v = run.shares_.at(size_t(id));
      shares.insert(shares.end(), bytesOf(v), bytesOf(v) + v.size() * sizeof(Ring));
    }
    for (size_t i = 0; i < server.steps.size(); ++i)
      if (server.steps[i].kind == StepKind::kOutput)
        run.layers_[i].bytesSent += size_t(tensorNumel(server, server.steps[i].inputs.at(0))) * sizeof(Ring);
    t.send(MessageType::kOutputShare, shares.data(), shares.size());
    t.receive(MessageType::kDone, 0);
    ServerResult r;
    r.stats = run.finish(msSince(t0), material.size());
    return r;
  });
}

}  // namespace anvil::mpc
