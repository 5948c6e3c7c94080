// The dealer's run material and its expansion on each side (see dealer.h for the scheme).
#include "runtime/mpc/dealer.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "anvil/error.h"
#include "runtime/mpc/ring_ops.h"

namespace anvil::mpc {
namespace {

constexpr char kPayloadMagic[8] = {'A', 'N', 'V', 'M', 'P', 'C', 'R', '1'};
constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES + 1] = "anvilmpc";
// Purposes of a step's subkeys (a subkey id is step * 8 + purpose).
enum Purpose : uint64_t { kMaskA = 0, kMaskB = 1, kProductC = 2, kSigma = 3, kTable = 4, kMaskR = 5, kBitTable = 6 };

void ensureSodium() {
  static const int rc = sodium_init();
  ANVIL_CHECK(rc >= 0, ErrorCode::kInternal, "libsodium failed to initialize");
}

SubKey subKey(const SubKey& seed, size_t step, Purpose purpose) {
  SubKey k;
  crypto_kdf_derive_from_key(k.data(), k.size(), uint64_t(step) * 8 + purpose, kKdfContext, seed.data());
  return k;
}

// The ChaCha20 keystream of `key` from block `firstBlock` (64 bytes a block), zero nonce:
// randombytes_buf_deterministic's primitive, with random access for the table shares.
void keystream(const SubKey& key, uint64_t firstBlock, uint8_t* out, size_t bytes) {
  static const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {};
  std::memset(out, 0, bytes);
  ANVIL_CHECK(firstBlock + (bytes + 63) / 64 <= (uint64_t(1) << 32), ErrorCode::kInternal,
              "mpc material: keystream longer than ChaCha20's counter");
  crypto_stream_chacha20_ietf_xor_ic(out, out, bytes, nonce, uint32_t(firstBlock), key.data());
}

std::vector<Ring> ringStream(const SubKey& key, int64_t n) {
  std::vector<Ring> v(static_cast<size_t>(n));
  if (n) keystream(key, 0, reinterpret_cast<uint8_t*>(v.data()), v.size() * sizeof(Ring));
  return v;
}

std::vector<uint8_t> byteStream(const SubKey& key, int64_t n) {
  std::vector<uint8_t> v(static_cast<size_t>(n));
  if (n) keystream(key, 0, v.data(), v.size());
  return v;
}

int64_t numelOfShape(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Little-endian byte building and reading of the payload.
struct Writer {
  std::vector<uint8_t>& out;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
  void u32(uint32_t v) { bytes(&v, 4); }
  void i64(int64_t v) { bytes(&v, 8); }
  void str(const std::string& s) {
    u32(uint32_t(s.size()));
    bytes(s.data(), s.size());
  }
};

struct Reader {
  const std::vector<uint8_t>& in;
  size_t pos = 0;
  const uint8_t* take(size_t n, const char* what) {
    ANVIL_CHECK(n <= in.size() - pos, ErrorCode::kInvalidArgument, "mpc material payload truncated: ", what, " needs ",
                n, " bytes at offset ", pos, ", ", in.size() - pos, " left");
    const uint8_t* p = in.data() + pos;
    pos += n;
    return p;
  }
  uint32_t u32(const char* what) {
    uint32_t v;
    std::memcpy(&v, take(4, what), 4);
    return v;
  }
  int64_t i64(const char* what) {
    int64_t v;
    std::memcpy(&v, take(8, what), 8);
    return v;
  }
  std::string str(const char* what) {
    uint32_t n = u32(what);
    const uint8_t* p = take(n, what);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
};

void writeHeader(Writer& w, const RunHeader& h, size_t steps, const SubKey& seed) {
  w.bytes(kPayloadMagic, sizeof kPayloadMagic);
  w.u32(uint32_t(h.party));
  w.str(h.programId);
  w.str(h.setId);
  w.i64(h.runIndex);
  w.u32(uint32_t(steps));
  w.bytes(seed.data(), seed.size());
}

RunHeader readHeader(Reader& r) {
  const uint8_t* magic = r.take(sizeof kPayloadMagic, "magic");
  ANVIL_CHECK(std::memcmp(magic, kPayloadMagic, sizeof kPayloadMagic) == 0, ErrorCode::kInvalidArgument,
              "not mpc run material (bad magic)");
  RunHeader h;
  h.party = int32_t(r.u32("party"));
  ANVIL_CHECK(h.party == 0 || h.party == 1, ErrorCode::kInvalidArgument, "mpc material: party ", h.party,
              " (expected 0 or 1)");
  h.programId = r.str("program id");
  h.setId = r.str("set id");
  h.runIndex = r.i64("run index");
  return h;
}

// The header, then the step count and seed, checked against the program the party runs.
RunHeader readAndCheck(const Program& p, Reader& r, int32_t party, SubKey& seed) {
  RunHeader h = readHeader(r);
  ANVIL_CHECK(h.party == party, ErrorCode::kInvalidArgument, "mpc material is the ", h.party ? "server" : "client",
              "'s, expected the ", party ? "server" : "client", "'s");
  ANVIL_CHECK(h.programId == p.programId, ErrorCode::kInvalidArgument,
              "mpc material was made for another engine build (program id differs)");
  uint32_t steps = r.u32("step count");
  ANVIL_CHECK(steps == p.steps.size(), ErrorCode::kInvalidArgument, "mpc material holds ", steps,
              " steps, the program ", p.steps.size());
  std::memcpy(seed.data(), r.take(seed.size(), "seed"), seed.size());
  return h;
}

bool isLinear(StepKind k) { return k == StepKind::kLinear || k == StepKind::kScale; }
bool isProduct(StepKind k) { return k == StepKind::kMul || k == StepKind::kMatMul; }
bool isLookup(StepKind k) { return k == StepKind::kLut || k == StepKind::kMaxPool; }

void checkLookupStep(const Step& s) {
  ANVIL_CHECK(s.table.size() == 256, ErrorCode::kInvalidEngine, "mpc step '", s.name, "': table of ", s.table.size(),
              " entries (expected 256)");
  ANVIL_CHECK(s.shift >= 0 && s.shift <= 56, ErrorCode::kInvalidEngine, "mpc step '", s.name, "': shift ", s.shift,
              " (the shared truncation needs 0..56)");
}

int64_t weightNumel(const Step& s) { return numelOfShape(s.weightShape); }

}  // namespace

int64_t tensorNumel(const Program& p, int32_t id) {
  ANVIL_CHECK(id >= 0 && size_t(id) < p.tensors.size(), ErrorCode::kInvalidEngine, "mpc program: tensor id ", id,
              " out of range");
  return numelOfShape(p.tensors[size_t(id)].shape);
}

int64_t MaxPoolPlan::comparisons() const {
  int64_t n = 0;
  for (const Level& l : levels) n += int64_t(l.a.size());
  return n;
}

MaxPoolPlan maxPoolPlan(const Program& p, const Step& s) {
  const auto& in = p.tensors.at(size_t(s.inputs.at(0))).shape;
  const auto& out = p.tensors.at(size_t(s.output)).shape;
  ANVIL_CHECK(in.size() == 4 && out.size() == 4, ErrorCode::kInvalidEngine, "mpc MaxPool '", s.name,
              "': NCHW tensors expected");
  MaxPoolPlan plan;
  plan.inputNumel = numelOfShape(in);
  // The windows (window order, padding skipped) are the fixed executor's own.
  std::vector<std::vector<int64_t>> windows = maxPoolWindows(s, in, out);
  for (const auto& w : windows)
    ANVIL_CHECK(!w.empty(), ErrorCode::kInvalidEngine, "mpc MaxPool '", s.name, "': a window holds only padding");
  int64_t next = plan.inputNumel;
  for (;;) {
    MaxPoolPlan::Level level;
    level.first = next;
    for (auto& w : windows) {
      if (w.size() < 2) continue;
      std::vector<int64_t> reduced;
      for (size_t k = 0; k + 1 < w.size(); k += 2) {
        level.a.push_back(w[k]);
        level.b.push_back(w[k + 1]);
        reduced.push_back(next++);
      }
      if (w.size() % 2) reduced.push_back(w.back());
      w = std::move(reduced);
    }
    if (level.a.empty()) break;
    plan.levels.push_back(std::move(level));
  }
  for (const auto& w : windows) plan.result.push_back(w[0]);
  return plan;
}

bool exactLookup(const Program& p, const Step& s) {
  return p.exactTruncation && isLookup(s.kind) && s.shift > 0;
}

int64_t lookupCount(const Program& p, const Step& s) {
  if (s.kind == StepKind::kLut) return tensorNumel(p, s.output);
  if (s.kind == StepKind::kMaxPool) return maxPoolPlan(p, s).comparisons();
  return 0;
}

std::string newSetId() {
  ensureSodium();
  std::string id(16, '\0');
  randombytes_buf(id.data(), id.size());
  return id;
}

PayloadSizes payloadSizes(const Program& p, size_t setIdBytes) {
  PayloadSizes s;
  s.client = s.server = sizeof kPayloadMagic + 4 + 4 + p.programId.size() + 4 + setIdBytes + 8 + 4 + sizeof(SubKey);
  for (const Step& st : p.steps) {
    if (isLinear(st.kind) || isProduct(st.kind)) s.server += uint64_t(tensorNumel(p, st.output)) * sizeof(Ring);
    if (exactLookup(p, st))
      s.server += uint64_t(lookupCount(p, st)) * (512 * sizeof(Ring) + exactBitTableBytes(st.shift));
    else if (isLookup(st.kind))
      s.server += uint64_t(lookupCount(p, st)) * 256 * sizeof(Ring);
  }
  return s;
}

RunHeader readRunHeader(const std::vector<uint8_t>& payload) {
  Reader r{payload};
  return readHeader(r);
}

namespace {

// The material of one exactLookup step (dealer.h): r from both seeds; for the server's
// payload the selected tables F1 = F - F0 and the borrow's bit tables (the chain's Q_k or
// the states' S_k and C) xor the client's keystream.
template <typename ClientKey, typename ServerKey>
void generateExact(const Program& p, const Step& s, ClientKey ck, ServerKey sk, Writer& sw) {
  checkLookupStep(s);
  const int64_t n = lookupCount(p, s);
  const int d = s.shift, digits = exactDigits(d);
  std::vector<Ring> r = ringStream(ck(kMaskR), n);
  const std::vector<Ring> r1 = ringStream(sk(kMaskR), n);
  for (size_t l = 0; l < r.size(); ++l) r[l] += r1[l];
  // beta_1 .. beta_K per lookup: the dealer's own coins (beta_0 = 0); beta_K masks the
  // borrow that selects F. mu: the states' masks (K >= 3), 2 bits each.
  std::vector<uint8_t> beta(size_t(n) * size_t(digits)), mu(beta.size());
  if (!beta.empty()) {
    randombytes_buf(beta.data(), beta.size());
    randombytes_buf(mu.data(), mu.size());
  }
  for (uint8_t& b : beta) b &= 1;
  for (uint8_t& m : mu) m &= 3;
  const bool states = exactUsesStates(d);
  const size_t per = exactBitTableBytes(d);
  std::vector<uint8_t> q = byteStream(ck(kBitTable), n * int64_t(per));  // the client's shares, made the server's below
  auto flip = [](uint8_t* block, size_t bit, int value) { block[bit / 8] ^= uint8_t(value << (bit % 8)); };
  for (int64_t l = 0; l < n; ++l) {
    const Ring rlo = r[size_t(l)] & ((Ring(1) << d) - 1);
    uint8_t* tables = q.data() + size_t(l) * per;
    const uint8_t* b = beta.data() + size_t(l) * size_t(digits);
    const uint8_t* u = mu.data() + size_t(l) * size_t(digits);
    for (int k = 0; k < digits; ++k) {
      const int rho = int((rlo >> (8 * k)) & 0xff);
      uint8_t* block = tables + size_t(k) * 64;
      for (int x = 0; x < 256; ++x) {
        if (states) {  // 2 bits at 2x: (s + mu_k) mod 4, s = 0, 1, 2 for x <, =, > rho_k
          const int st = x < rho ? 0 : x == rho ? 1 : 2;
          const int t = (st + u[k]) & 3;
          flip(block, size_t(2 * x), t & 1);
          flip(block, size_t(2 * x + 1), t >> 1);
        } else {  // bit 2x + c: the borrow out of digit k, masked
          const int betaIn = k == 0 ? 0 : b[k - 1];
          for (int c = 0; c < 2; ++c) flip(block, size_t(x * 2 + c), int(x < rho + (c ^ betaIn)) ^ b[k]);
        }
      }
    }
    if (states) {  // C[t_0 + 4 t_1 + ...]: the borrow of the unmasked states, xor beta_K
      uint8_t* comb = tables + size_t(digits) * 64;
      for (size_t idx = 0; idx < (size_t(1) << (2 * digits)); ++idx) {
        int borrow = 0;
        bool possible = true;
        for (int k = 0; k < digits; ++k) {
          const int st = (int(idx >> (2 * k)) - u[k]) & 3;
          possible = possible && st != 3;
          borrow = st == 0 ? 1 : st == 1 ? borrow : 0;
        }
        flip(comb, idx, (possible ? borrow : 0) ^ b[digits - 1]);
      }
    }
  }
  // F[c][j] = table[(j - r_hi - (c xor beta_K)) mod 256], F1 = F - F0 (F0 the client's keystream)
  const SubKey tk = ck(kTable);
  constexpr int64_t kChunk = 2048;  // lookups per keystream chunk (8 MiB)
  std::vector<Ring> t((size_t(std::min(n, kChunk)) * 512));
  for (int64_t first = 0; first < n; first += kChunk) {
    const int64_t m = std::min(kChunk, n - first);
    keystream(tk, uint64_t(first) * 512 * sizeof(Ring) / 64, reinterpret_cast<uint8_t*>(t.data()),
              size_t(m) * 512 * sizeof(Ring));
    for (int64_t l = 0; l < m; ++l) {
      const size_t lookup = size_t(first + l);
      const uint8_t rhi = uint8_t(r[lookup] >> d);
      const int betaK = beta[lookup * size_t(digits) + size_t(digits - 1)];
      for (int c = 0; c < 2; ++c)
        for (int j = 0; j < 256; ++j) {
          Ring& e = t[size_t(l) * 512 + size_t(c) * 256 + size_t(j)];
          e = s.table[uint8_t(j - rhi - (c ^ betaK))] - e;
        }
    }
    sw.bytes(t.data(), size_t(m) * 512 * sizeof(Ring));
  }
  sw.bytes(q.data(), q.size());  // the client's keystream xor the tables: the server's shares
}

}  // namespace

RunPayloads generateRun(const Program& p, const std::string& setId, int64_t runIndex, const RingKernels& kernels) {
  ensureSodium();
  SubKey clientSeed, serverSeed;
  randombytes_buf(clientSeed.data(), clientSeed.size());
  randombytes_buf(serverSeed.data(), serverSeed.size());
  RunPayloads out;
  const PayloadSizes sizes = payloadSizes(p, setId.size());
  out.client.reserve(sizes.client);
  out.server.reserve(sizes.server);  // tables of a CNN run: hundreds of MiB, written once
  Writer cw{out.client}, sw{out.server};
  RunHeader h{0, p.programId, setId, runIndex};
  writeHeader(cw, h, p.steps.size(), clientSeed);
  h.party = 1;
  writeHeader(sw, h, p.steps.size(), serverSeed);

  for (size_t i = 0; i < p.steps.size(); ++i) {
    const Step& s = p.steps[i];
    auto ck = [&](Purpose u) { return subKey(clientSeed, i, u); };
    auto sk = [&](Purpose u) { return subKey(serverSeed, i, u); };
    if (isLinear(s.kind)) {
      // C = op(A, B): the server's A and the client's B from their seeds, c1 = C - c0 explicit.
      std::vector<Ring> A = ringStream(sk(kMaskA), weightNumel(s));
      std::vector<Ring> B = ringStream(ck(kMaskA), tensorNumel(p, s.inputs.at(0)));
      std::vector<Ring> c0 = ringStream(ck(kProductC), tensorNumel(p, s.output));
      std::vector<Ring> C = kernels.linear(p, s, A, {}, B);
      ANVIL_CHECK(C.size() == c0.size(), ErrorCode::kInternal, "mpc dealer: step '", s.name, "' made ", C.size(),
                  " products for ", c0.size(), " outputs");
      for (size_t k = 0; k < C.size(); ++k) C[k] -= c0[k];
      sw.bytes(C.data(), C.size() * sizeof(Ring));
    } else if (isProduct(s.kind)) {
      // Beaver triple (a, b, c = a (*) b): both parties' a and b from their seeds.
      std::vector<Ring> a = ringStream(ck(kMaskA), tensorNumel(p, s.inputs.at(0)));
      std::vector<Ring> b = ringStream(ck(kMaskB), tensorNumel(p, s.inputs.at(1)));
      std::vector<Ring> a1 = ringStream(sk(kMaskA), int64_t(a.size()));
      std::vector<Ring> b1 = ringStream(sk(kMaskB), int64_t(b.size()));
      for (size_t k = 0; k < a.size(); ++k) a[k] += a1[k];
      for (size_t k = 0; k < b.size(); ++k) b[k] += b1[k];
      std::vector<Ring> c = kernels.product(p, s, a, b);
      std::vector<Ring> c0 = ringStream(ck(kProductC), tensorNumel(p, s.output));
      ANVIL_CHECK(c.size() == c0.size(), ErrorCode::kInternal, "mpc dealer: step '", s.name, "' made ", c.size(),
                  " products for ", c0.size(), " outputs");
      for (size_t k = 0; k < c.size(); ++k) c[k] -= c0[k];
      sw.bytes(c.data(), c.size() * sizeof(Ring));
    } else if (exactLookup(p, s)) {
      generateExact(p, s, ck, sk, sw);
    } else if (isLookup(s.kind)) {
      // sigma = sigma0 + sigma1 (mod 256); T[j] = table[(j - sigma) mod 256] = T0[j] + T1[j].
      checkLookupStep(s);
      const int64_t n = lookupCount(p, s);
      std::vector<uint8_t> sigma = byteStream(ck(kSigma), n);
      std::vector<uint8_t> sigma1 = byteStream(sk(kSigma), n);
      const SubKey tk = ck(kTable);
      constexpr int64_t kChunk = 4096;  // lookups per keystream chunk (8 MiB)
      std::vector<Ring> t0(size_t(std::min(n, kChunk)) * 256), t1(t0.size());
      for (int64_t first = 0; first < n; first += kChunk) {
        const int64_t m = std::min(kChunk, n - first);
        keystream(tk, uint64_t(first) * 256 * sizeof(Ring) / 64, reinterpret_cast<uint8_t*>(t0.data()),
                  size_t(m) * 256 * sizeof(Ring));
        for (int64_t l = 0; l < m; ++l) {
          const uint8_t sg = uint8_t(sigma[size_t(first + l)] + sigma1[size_t(first + l)]);
          for (int j = 0; j < 256; ++j)
            t1[size_t(l) * 256 + size_t(j)] = s.table[uint8_t(j - sg)] - t0[size_t(l) * 256 + size_t(j)];
        }
        sw.bytes(t1.data(), size_t(m) * 256 * sizeof(Ring));
      }
    }
  }
  return out;
}

Ring ClientMaterial::tableShare(const SubKey& key, int64_t lookup, uint8_t index) {
  const uint64_t byte = (uint64_t(lookup) * 256 + index) * sizeof(Ring);
  uint8_t block[64];
  keystream(key, byte / 64, block, sizeof block);
  Ring v;
  std::memcpy(&v, block + byte % 64, sizeof v);
  return v;
}

Ring ServerMaterial::tableShare(size_t step, int64_t lookup, uint8_t index) const {
  Ring v;
  std::memcpy(&v, steps[step].tables + (size_t(lookup) * 256 + index) * sizeof(Ring), sizeof v);
  return v;
}

ClientMaterial expandClientMaterial(const Program& p, const std::vector<uint8_t>& payload) {
  ensureSodium();
  Reader r{payload};
  SubKey seed;
  ClientMaterial m;
  m.header = readAndCheck(p, r, 0, seed);
  ANVIL_CHECK(r.pos == payload.size(), ErrorCode::kInvalidArgument, "mpc client material: ", payload.size() - r.pos,
              " bytes after the seed");
  m.steps.resize(p.steps.size());
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const Step& s = p.steps[i];
    ClientStepMaterial& cm = m.steps[i];
    if (isLinear(s.kind)) {
      cm.a = ringStream(subKey(seed, i, kMaskA), tensorNumel(p, s.inputs.at(0)));
      cm.c = ringStream(subKey(seed, i, kProductC), tensorNumel(p, s.output));
    } else if (isProduct(s.kind)) {
      cm.a = ringStream(subKey(seed, i, kMaskA), tensorNumel(p, s.inputs.at(0)));
      cm.b = ringStream(subKey(seed, i, kMaskB), tensorNumel(p, s.inputs.at(1)));
      cm.c = ringStream(subKey(seed, i, kProductC), tensorNumel(p, s.output));
    } else if (exactLookup(p, s)) {
      checkLookupStep(s);
      const int64_t n = lookupCount(p, s);
      cm.r = ringStream(subKey(seed, i, kMaskR), n);
      cm.bits = byteStream(subKey(seed, i, kBitTable), n * int64_t(exactBitTableBytes(s.shift)));
      cm.tableKey = subKey(seed, i, kTable);
    } else if (isLookup(s.kind)) {
      checkLookupStep(s);
      cm.sigma = byteStream(subKey(seed, i, kSigma), lookupCount(p, s));
      cm.tableKey = subKey(seed, i, kTable);
    }
  }
  return m;
}

ServerMaterial expandServerMaterial(const Program& p, const std::vector<uint8_t>& payload) {
  ensureSodium();
  Reader r{payload};
  SubKey seed;
  ServerMaterial m;
  m.header = readAndCheck(p, r, 1, seed);
  m.steps.resize(p.steps.size());
  auto ringsAt = [&](int64_t n, const char* what) {
    std::vector<Ring> v(static_cast<size_t>(n));
    if (n) std::memcpy(v.data(), r.take(v.size() * sizeof(Ring), what), v.size() * sizeof(Ring));
    return v;
  };
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const Step& s = p.steps[i];
    ServerStepMaterial& sm = m.steps[i];
    if (isLinear(s.kind)) {
      sm.a = ringStream(subKey(seed, i, kMaskA), weightNumel(s));
      sm.c = ringsAt(tensorNumel(p, s.output), "a linear layer's c1");
    } else if (isProduct(s.kind)) {
      sm.a = ringStream(subKey(seed, i, kMaskA), tensorNumel(p, s.inputs.at(0)));
      sm.b = ringStream(subKey(seed, i, kMaskB), tensorNumel(p, s.inputs.at(1)));
      sm.c = ringsAt(tensorNumel(p, s.output), "a Beaver triple's c1");
    } else if (exactLookup(p, s)) {
      checkLookupStep(s);
      const int64_t n = lookupCount(p, s);
      sm.r = ringStream(subKey(seed, i, kMaskR), n);
      sm.tables = r.take(size_t(n) * 512 * sizeof(Ring), "an exact lookup step's table shares");
      sm.bits = r.take(size_t(n) * exactBitTableBytes(s.shift), "an exact lookup step's bit tables");
    } else if (isLookup(s.kind)) {
      checkLookupStep(s);
      const int64_t n = lookupCount(p, s);
      sm.sigma = byteStream(subKey(seed, i, kSigma), n);
      sm.tables = r.take(size_t(n) * 256 * sizeof(Ring), "a lookup step's table shares");
    }
  }
  ANVIL_CHECK(r.pos == payload.size(), ErrorCode::kInvalidArgument, "mpc server material: ", payload.size() - r.pos,
              " bytes after the last step");
  return m;
}

}  // namespace anvil::mpc
