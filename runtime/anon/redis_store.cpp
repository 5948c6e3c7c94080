// The Redis backend of the anonymous mode's store (store.h), for a store shared by workers
// on several machines. Every operation that touches more than one key is one Lua script,
// which Redis runs atomically: a worker killed between two commands cannot leave a result
// box written without its job marked done. Keys: anon:box:<id hex> (signature || content),
// anon:job:<n> (hash), anon:pending (list), anon:claimed (sorted set: lease expiry),
// anon:served (set), anon:meta:<key>.
#include <hiredis/hiredis.h>

#include <cstdio>
#include <cstring>

#include "anvil/error.h"
#include "runtime/anon/store.h"

namespace anvil::anon {

namespace {

constexpr const char* kEnqueue = R"lua(
local id = redis.call('INCR', 'anon:jobseq')
redis.call('HSET', 'anon:job:' .. id, 'sealed', ARGV[1], 'state', 'pending', 'attempts', 0)
redis.call('RPUSH', 'anon:pending', id)
return id
)lua";

// Expired leases and this worker's own (a restart after a crash) before new jobs.
constexpr const char* kClaim = R"lua(
local now = tonumber(ARGV[1])
local id = false
local claimed = redis.call('ZRANGE', 'anon:claimed', 0, -1, 'WITHSCORES')
for i = 1, #claimed, 2 do
  if tonumber(claimed[i + 1]) < now or redis.call('HGET', 'anon:job:' .. claimed[i], 'owner') == ARGV[3] then
    id = claimed[i]
    break
  end
end
if not id then id = redis.call('LPOP', 'anon:pending') end
if not id then return false end
local key = 'anon:job:' .. id
local attempts = redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'state', 'claimed', 'owner', ARGV[3])
redis.call('ZADD', 'anon:claimed', now + tonumber(ARGV[2]), id)
return {tostring(id), redis.call('HGET', key, 'sealed'), attempts}
)lua";

constexpr const char* kComplete = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 'box' end
if redis.call('SISMEMBER', 'anon:served', ARGV[2]) == 1 then return 'replay' end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', 'anon:served', ARGV[2])
redis.call('HSET', 'anon:job:' .. ARGV[3], 'state', 'done')
redis.call('ZREM', 'anon:claimed', ARGV[3])
return 'ok'
)lua";

constexpr const char* kRefuse = R"lua(
redis.call('HSET', 'anon:job:' .. ARGV[1], 'state', 'refused', 'error', ARGV[2])
redis.call('ZREM', 'anon:claimed', ARGV[1])
return 'ok'
)lua";

struct Reply {
  redisReply* r = nullptr;
  ~Reply() {
    if (r) freeReplyObject(r);
  }
  std::string str() const { return std::string(r->str, r->len); }
};

class RedisStore final : public Store {
 public:
  RedisStore(const std::string& host, int port) : host_(host), port_(port) {
    timeval tv{5, 0};
    ctx_ = redisConnectWithTimeout(host.c_str(), port, tv);
    if (!ctx_ || ctx_->err) {
      const std::string msg = ctx_ ? ctx_->errstr : "cannot allocate a context";
      if (ctx_) redisFree(ctx_);
      ANVIL_THROW(ErrorCode::kIoError, "--store=", spec(), ": cannot connect to Redis (", msg, ")");
    }
    redisSetTimeout(ctx_, tv);  // a dead server is an error after 5 s, never a hang
    Reply pong = command({"PING"});
    ANVIL_CHECK(pong.r->type == REDIS_REPLY_STATUS, ErrorCode::kIoError, "--store=", spec(), ": PING got no PONG");
  }
  ~RedisStore() override { redisFree(ctx_); }

  std::string spec() const override { return "redis://" + host_ + ":" + std::to_string(port_); }

  void putBox(const BoxId& box, const Bytes& content, const Signature& sig) override {
    checkSignature(box, content, sig);
    Reply r = command({"SET", boxKey(box), boxValue(content, sig), "NX"});
    ANVIL_CHECK(r.r->type != REDIS_REPLY_NIL, ErrorCode::kInvalidArgument, "box ", toHex(box).substr(0, 16),
                "... is already written (boxes are write-once)");
  }

  std::optional<Box> getBox(const BoxId& box) override {
    Reply r = command({"GET", boxKey(box)});
    if (r.r->type == REDIS_REPLY_NIL) return std::nullopt;
    const std::string v = r.str();
    Box b;
    ANVIL_CHECK(v.size() >= b.sig.size(), ErrorCode::kInvalidArgument, "box ", toHex(box).substr(0, 16),
                "...: stored value is shorter than its signature");
    std::memcpy(b.sig.data(), v.data(), b.sig.size());
    b.content.assign(v.begin() + std::ptrdiff_t(b.sig.size()), v.end());
    return b;
  }

  int64_t enqueue(const Bytes& sealedJob) override {
    Reply r = command({"EVAL", kEnqueue, "0", std::string(sealedJob.begin(), sealedJob.end())});
    ANVIL_CHECK(r.r->type == REDIS_REPLY_INTEGER, ErrorCode::kIoError, "redis enqueue: unexpected reply");
    return r.r->integer;
  }

  std::optional<ClaimedJob> claim(const std::string& worker, double leaseSeconds) override {
    Reply r = command({"EVAL", kClaim, "0", num(wallSeconds()), num(leaseSeconds), worker});
    if (r.r->type == REDIS_REPLY_NIL) return std::nullopt;
    ANVIL_CHECK(r.r->type == REDIS_REPLY_ARRAY && r.r->elements == 3, ErrorCode::kIoError,
                "redis claim: unexpected reply");
    ClaimedJob j;
    j.id = std::stoll(std::string(r.r->element[0]->str, r.r->element[0]->len));
    j.sealed.assign(r.r->element[1]->str, r.r->element[1]->str + r.r->element[1]->len);
    j.attempts = int(r.r->element[2]->integer);
    return j;
  }

  Completion complete(int64_t job, const BoxId& box, const Bytes& content, const Signature& sig,
                      const RequestId& request) override {
    checkSignature(box, content, sig);
    Reply r = command({"EVAL", kComplete, "1", boxKey(box), boxValue(content, sig),
                       std::string(request.begin(), request.end()), std::to_string(job)});
    ANVIL_CHECK(r.r->type == REDIS_REPLY_STRING || r.r->type == REDIS_REPLY_STATUS, ErrorCode::kIoError,
                "redis complete: unexpected reply");
    const std::string s = r.str();
    return s == "ok" ? Completion::kWritten : s == "box" ? Completion::kBoxExists : Completion::kReplay;
  }

  void refuse(int64_t job, const std::string& reason) override {
    command({"EVAL", kRefuse, "0", std::to_string(job), reason});
  }

  bool served(const RequestId& request) override {
    Reply r = command({"SISMEMBER", "anon:served", std::string(request.begin(), request.end())});
    return r.r->type == REDIS_REPLY_INTEGER && r.r->integer == 1;
  }

  JobInfo job(int64_t id) override {
    Reply r = command({"HMGET", "anon:job:" + std::to_string(id), "state", "attempts", "error"});
    ANVIL_CHECK(r.r->type == REDIS_REPLY_ARRAY && r.r->elements == 3 && r.r->element[0]->type == REDIS_REPLY_STRING,
                ErrorCode::kInvalidArgument, "no job ", id, " in ", spec());
    auto field = [&](size_t i) {
      const redisReply* e = r.r->element[i];
      return e->type == REDIS_REPLY_STRING ? std::string(e->str, e->len) : std::string();
    };
    return {field(0), std::stoi(field(1)), field(2)};
  }

  int64_t countBoxes() override {
    int64_t n = 0;
    std::string cursor = "0";
    do {
      Reply r = command({"SCAN", cursor, "MATCH", "anon:box:*", "COUNT", "1000"});
      ANVIL_CHECK(r.r->type == REDIS_REPLY_ARRAY && r.r->elements == 2, ErrorCode::kIoError, "redis SCAN: bad reply");
      cursor.assign(r.r->element[0]->str, r.r->element[0]->len);
      n += int64_t(r.r->element[1]->elements);
    } while (cursor != "0");
    return n;
  }

  void setMeta(const std::string& key, const std::string& value) override { command({"SET", "anon:meta:" + key, value}); }

  std::optional<std::string> getMeta(const std::string& key) override {
    Reply r = command({"GET", "anon:meta:" + key});
    if (r.r->type == REDIS_REPLY_NIL) return std::nullopt;
    return r.str();
  }

 private:
  Reply command(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    Reply r;
    r.r = static_cast<redisReply*>(redisCommandArgv(ctx_, int(argv.size()), argv.data(), lens.data()));
    ANVIL_CHECK(r.r != nullptr, ErrorCode::kIoError, spec(), ": ", args[0], " failed (", ctx_->errstr, ")");
    ANVIL_CHECK(r.r->type != REDIS_REPLY_ERROR, ErrorCode::kIoError, spec(), ": ", args[0], ": ", r.str());
    return r;
  }
  static std::string boxKey(const BoxId& box) { return "anon:box:" + toHex(box); }
  static std::string boxValue(const Bytes& content, const Signature& sig) {
    std::string v(sig.begin(), sig.end());
    v.append(content.begin(), content.end());
    return v;
  }
  static std::string num(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", v);
    return buf;
  }
  static void checkSignature(const BoxId& box, const Bytes& content, const Signature& sig) {
    ANVIL_CHECK(verifyWrite(box, content, sig), ErrorCode::kInvalidArgument, "write to box ", toHex(box).substr(0, 16),
                "... refused: the signature does not verify under the box ID (forged write capability)");
  }

  std::string host_;
  int port_;
  redisContext* ctx_ = nullptr;
};

}  // namespace

std::unique_ptr<Store> openRedisStore(const std::string& host, int port) {
  return std::make_unique<RedisStore>(host, port);
}

}  // namespace anvil::anon
