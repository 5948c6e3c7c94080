// The storage service of the anonymous mode: write-once boxes (a write needs an Ed25519
// signature under the box ID), a job queue whose claims are leases that survive a crashed
// worker, a set of served request ids, and a few public metadata records. Two backends:
// an embedded SQLite database (sqlite:PATH, WAL, one transaction per operation) and Redis
// (redis://HOST:PORT, hiredis; each multi-key operation one Lua script, so atomic).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "runtime/anon/capability.h"

namespace anvil::anon {

struct Box {
  Bytes content;
  Signature sig{};
};

struct ClaimedJob {
  int64_t id = 0;
  Bytes sealed;      // the job, sealed to the worker's key
  int attempts = 0;  // claims of this job so far, this one included
};

struct JobInfo {
  std::string state;  // pending | claimed | done | refused
  int attempts = 0;
  std::string error;  // why a refused job was refused
};

// What complete() did: the result box written (and the job done) in one atomic step, or
// nothing written because the box already exists or the request id was already served.
enum class Completion { kWritten, kBoxExists, kReplay };

class Store {
 public:
  virtual ~Store() = default;
  virtual std::string spec() const = 0;
  // Write-once: refused (kInvalidArgument) when the signature does not verify under the box
  // ID or the box already exists.
  virtual void putBox(const BoxId& box, const Bytes& content, const Signature& sig) = 0;
  virtual std::optional<Box> getBox(const BoxId& box) = 0;
  virtual int64_t enqueue(const Bytes& sealedJob) = 0;
  // The oldest job that is pending, or claimed under an expired lease, or claimed by this
  // same worker (its process died: one process per worker key), now leased to `worker`
  // until now + leaseSeconds.
  virtual std::optional<ClaimedJob> claim(const std::string& worker, double leaseSeconds) = 0;
  // Atomically: write the result box (write-once, signature checked), add the request id to
  // the served set and mark the job done. Nothing is written unless all of it is.
  virtual Completion complete(int64_t job, const BoxId& box, const Bytes& content, const Signature& sig,
                              const RequestId& request) = 0;
  // The job ends without a result (malformed, replayed, not for this worker).
  virtual void refuse(int64_t job, const std::string& reason) = 0;
  virtual bool served(const RequestId& request) = 0;
  virtual JobInfo job(int64_t id) = 0;
  virtual int64_t countBoxes() = 0;
  // Public records (the worker's key, buckets and ladder): overwritten by each setMeta.
  virtual void setMeta(const std::string& key, const std::string& value) = 0;
  virtual std::optional<std::string> getMeta(const std::string& key) = 0;
};

// sqlite:PATH or redis://HOST:PORT.
std::unique_ptr<Store> openStore(const std::string& spec);
std::unique_ptr<Store> openSqliteStore(const std::string& path);
std::unique_ptr<Store> openRedisStore(const std::string& host, int port);

double wallSeconds();  // seconds since the epoch: leases are compared across processes

}  // namespace anvil::anon
