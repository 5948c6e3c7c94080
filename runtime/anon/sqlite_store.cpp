// The SQLite backend of the anonymous mode's store (store.h): one database file in WAL
// mode shared by the worker and the clients; every operation one IMMEDIATE transaction, so
// a process killed at any point leaves either all of an operation or none of it.
#include <sqlite3.h>

#include <cstring>

#include "anvil/error.h"
#include "runtime/anon/store.h"

namespace anvil::anon {

namespace {

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    ANVIL_CHECK(sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) == SQLITE_OK, ErrorCode::kIoError, "sqlite: ",
                sqlite3_errmsg(db), " in: ", sql);
  }
  ~Statement() { sqlite3_finalize(st_); }
  Statement& blob(int i, const void* p, size_t n) {
    sqlite3_bind_blob(st_, i, n ? p : "", int(n), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& text(int i, const std::string& s) {
    sqlite3_bind_text(st_, i, s.data(), int(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& real(int i, double v) {
    sqlite3_bind_double(st_, i, v);
    return *this;
  }
  Statement& integer(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  // True while a row is available.
  bool step() {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    ANVIL_CHECK(rc == SQLITE_DONE, rc == SQLITE_CONSTRAINT ? ErrorCode::kInvalidArgument : ErrorCode::kIoError,
                "sqlite: ", sqlite3_errmsg(db_));
    return false;
  }
  Bytes columnBlob(int i) {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(st_, i));
    return Bytes(p, p + sqlite3_column_bytes(st_, i));
  }
  std::string columnText(int i) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, i));
    return p ? std::string(p, size_t(sqlite3_column_bytes(st_, i))) : std::string();
  }
  int64_t columnInt(int i) { return sqlite3_column_int64(st_, i); }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(const std::string& path) : path_(path) {
    const int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                                   nullptr);
    if (rc != SQLITE_OK) {
      const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      ANVIL_THROW(ErrorCode::kIoError, "--store=sqlite:", path, ": cannot open the database (", msg, ")");
    }
    // Writers of several processes wait for each other instead of failing with BUSY.
    sqlite3_busy_timeout(db_, 10000);
    // WAL: readers never block the writer. synchronous=NORMAL keeps every committed
    // transaction across a killed process (the crash this store promises to survive); a
    // power loss may drop the last commits.
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec("CREATE TABLE IF NOT EXISTS boxes(id BLOB PRIMARY KEY, content BLOB NOT NULL, sig BLOB NOT NULL)");
    exec("CREATE TABLE IF NOT EXISTS jobs(id INTEGER PRIMARY KEY AUTOINCREMENT, sealed BLOB NOT NULL, "
         "state TEXT NOT NULL DEFAULT 'pending', owner TEXT, lease_until REAL, attempts INTEGER NOT NULL DEFAULT 0, "
         "error TEXT)");
    exec("CREATE TABLE IF NOT EXISTS served(request BLOB PRIMARY KEY)");
    exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  }
  ~SqliteStore() override { sqlite3_close(db_); }

  std::string spec() const override { return "sqlite:" + path_; }

  void putBox(const BoxId& box, const Bytes& content, const Signature& sig) override {
    checkSignature(box, content, sig);
    Transaction t(*this);
    ANVIL_CHECK(!hasBox(box), ErrorCode::kInvalidArgument, "box ", toHex(box).substr(0, 16),
                "... is already written (boxes are write-once)");
    insertBox(box, content, sig);
    t.commit();
  }

  std::optional<Box> getBox(const BoxId& box) override {
    Statement s(db_, "SELECT content, sig FROM boxes WHERE id = ?");
    s.blob(1, box.data(), box.size());
    if (!s.step()) return std::nullopt;
    Box b;
    b.content = s.columnBlob(0);
    const Bytes sig = s.columnBlob(1);
    ANVIL_CHECK(sig.size() == b.sig.size(), ErrorCode::kInvalidArgument, "box ", toHex(box).substr(0, 16),
                "...: stored signature has ", sig.size(), " bytes, not 64");
    std::memcpy(b.sig.data(), sig.data(), sig.size());
    return b;
  }

  int64_t enqueue(const Bytes& sealedJob) override {
    Transaction t(*this);
    Statement s(db_, "INSERT INTO jobs(sealed) VALUES (?)");
    s.blob(1, sealedJob.data(), sealedJob.size()).step();
    const int64_t id = sqlite3_last_insert_rowid(db_);
    t.commit();
    return id;
  }

  std::optional<ClaimedJob> claim(const std::string& worker, double leaseSeconds) override {
    Transaction t(*this);
    const double now = wallSeconds();
    Statement pick(db_,
                   "SELECT id, sealed, attempts FROM jobs WHERE state = 'pending' OR (state = 'claimed' AND "
                   "(lease_until < ? OR owner = ?)) ORDER BY id LIMIT 1");
    pick.real(1, now).text(2, worker);
    if (!pick.step()) return std::nullopt;
    ClaimedJob j;
    j.id = pick.columnInt(0);
    j.sealed = pick.columnBlob(1);
    j.attempts = int(pick.columnInt(2)) + 1;
    Statement upd(db_, "UPDATE jobs SET state = 'claimed', owner = ?, lease_until = ?, attempts = ? WHERE id = ?");
    upd.text(1, worker).real(2, now + leaseSeconds).integer(3, j.attempts).integer(4, j.id).step();
    t.commit();
    return j;
  }

  Completion complete(int64_t job, const BoxId& box, const Bytes& content, const Signature& sig,
                      const RequestId& request) override {
    checkSignature(box, content, sig);
    Transaction t(*this);
    if (hasBox(box)) return Completion::kBoxExists;  // rolled back by ~Transaction
    if (isServed(request)) return Completion::kReplay;
    insertBox(box, content, sig);
    Statement srv(db_, "INSERT INTO served(request) VALUES (?)");
    srv.blob(1, request.data(), request.size()).step();
    Statement upd(db_, "UPDATE jobs SET state = 'done', lease_until = NULL WHERE id = ?");
    upd.integer(1, job).step();
    t.commit();
    return Completion::kWritten;
  }

  void refuse(int64_t job, const std::string& reason) override {
    Transaction t(*this);
    Statement upd(db_, "UPDATE jobs SET state = 'refused', lease_until = NULL, error = ? WHERE id = ?");
    upd.text(1, reason).integer(2, job).step();
    t.commit();
  }

  bool served(const RequestId& request) override { return isServed(request); }

  JobInfo job(int64_t id) override {
    Statement s(db_, "SELECT state, attempts, error FROM jobs WHERE id = ?");
    s.integer(1, id);
    ANVIL_CHECK(s.step(), ErrorCode::kInvalidArgument, "no job ", id, " in ", spec());
    return {s.columnText(0), int(s.columnInt(1)), s.columnText(2)};
  }

  int64_t countBoxes() override {
    Statement s(db_, "SELECT COUNT(*) FROM boxes");
    s.step();
    return s.columnInt(0);
  }

  void setMeta(const std::string& key, const std::string& value) override {
    Transaction t(*this);
    Statement s(db_, "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    s.text(1, key).text(2, value).step();
    t.commit();
  }

  std::optional<std::string> getMeta(const std::string& key) override {
    Statement s(db_, "SELECT value FROM meta WHERE key = ?");
    s.text(1, key);
    if (!s.step()) return std::nullopt;
    return s.columnText(0);
  }

 private:
  // BEGIN IMMEDIATE takes the write lock up front (no deadlock between two readers that
  // both upgrade); rolled back unless committed.
  class Transaction {
   public:
    explicit Transaction(SqliteStore& s) : s_(s) { s_.exec("BEGIN IMMEDIATE"); }
    ~Transaction() {
      if (!done_) sqlite3_exec(s_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    void commit() {
      s_.exec("COMMIT");
      done_ = true;
    }

   private:
    SqliteStore& s_;
    bool done_ = false;
  };

  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string msg = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      ANVIL_THROW(ErrorCode::kIoError, "sqlite (", path_, "): ", msg, " in: ", sql);
    }
  }
  static void checkSignature(const BoxId& box, const Bytes& content, const Signature& sig) {
    ANVIL_CHECK(verifyWrite(box, content, sig), ErrorCode::kInvalidArgument, "write to box ", toHex(box).substr(0, 16),
                "... refused: the signature does not verify under the box ID (forged write capability)");
  }
  bool hasBox(const BoxId& box) {
    Statement s(db_, "SELECT 1 FROM boxes WHERE id = ?");
    s.blob(1, box.data(), box.size());
    return s.step();
  }
  bool isServed(const RequestId& r) {
    Statement s(db_, "SELECT 1 FROM served WHERE request = ?");
    s.blob(1, r.data(), r.size());
    return s.step();
  }
  void insertBox(const BoxId& box, const Bytes& content, const Signature& sig) {
    Statement s(db_, "INSERT INTO boxes(id, content, sig) VALUES (?, ?, ?)");
    s.blob(1, box.data(), box.size()).blob(2, content.data(), content.size()).blob(3, sig.data(), sig.size()).step();
  }

  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace

std::unique_ptr<Store> openSqliteStore(const std::string& path) { return std::make_unique<SqliteStore>(path); }

}  // namespace anvil::anon
