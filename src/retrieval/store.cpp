// SQLite item store (see store.hpp). WAL journal, one transaction per batch: a build killed at
// any point keeps every committed batch and nothing of the others.
#include "retrieval/store.hpp"

#include <sqlite3.h>

#include <cstring>
#include <mutex>

#include "rdm/runtime/error.hpp"

namespace rdm::retrieval {
namespace fs = std::filesystem;

struct Store::Impl {
  sqlite3* db = nullptr;
  std::string file;
  mutable std::recursive_mutex mu;  // one connection shared by const readers
  sqlite3_stmt* insert = nullptr;   // cached INSERT INTO items (bulk imports)
  ~Impl() {
    if (insert) sqlite3_finalize(insert);
    if (db) sqlite3_close_v2(db);
  }
  [[noreturn]] void error(const std::string& what) const {
    fail("item store '{}': {} failed: {}", file, what, db ? sqlite3_errmsg(db) : "no connection");
  }
  void exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "?";
      sqlite3_free(msg);
      fail("item store '{}': {} ({})", file, m, sql);
    }
  }
};

namespace {
// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(const Store::Impl& s, const char* sql) : s_(s) {
    if (sqlite3_prepare_v2(s.db, sql, -1, &st_, nullptr) != SQLITE_OK) s.error(sql);
  }
  // Borrows a cached statement (reset, not finalized, on scope exit).
  Stmt(const Store::Impl& s, sqlite3_stmt* cached) : s_(s), st_(cached), owned_(false) {}
  ~Stmt() {
    if (owned_) {
      sqlite3_finalize(st_);
    } else {
      sqlite3_reset(st_);
      sqlite3_clear_bindings(st_);
    }
  }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  Stmt& bind_blob(int i, const void* p, size_t n) {
    if (n == 0)
      sqlite3_bind_null(st_, i);
    else
      sqlite3_bind_blob(st_, i, p, static_cast<int>(n), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind_null(int i) {
    sqlite3_bind_null(st_, i);
    return *this;
  }
  void reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    s_.error(sqlite3_sql(st_));
  }
  std::string text(int c) const {
    auto* p = sqlite3_column_text(st_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(st_, c)) : "";
  }
  int64_t i64(int c) const { return sqlite3_column_int64(st_, c); }
  bool null(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  std::vector<float> floats(int c) const {
    const void* p = sqlite3_column_blob(st_, c);
    int n = sqlite3_column_bytes(st_, c);
    std::vector<float> v(static_cast<size_t>(n) / sizeof(float));
    if (p && n) std::memcpy(v.data(), p, v.size() * sizeof(float));
    return v;
  }

 private:
  const Store::Impl& s_;
  sqlite3_stmt* st_ = nullptr;
  bool owned_ = true;
};

StoreItem read_item(const Stmt& st, bool with_embedding) {
  StoreItem it;
  it.path = st.text(0);
  it.hash = st.text(1);
  it.width = st.i64(2);
  it.height = st.i64(3);
  it.label = st.text(4);
  it.orig_id = st.text(5);
  it.patch_coords = st.text(6);
  it.final_id = st.null(7) ? -1 : st.i64(7);
  if (with_embedding) it.embedding = st.floats(8);
  return it;
}
constexpr const char* kItemColumns =
    "path, hash, width, height, label, orig_id, patch_coords, final_id";
}  // namespace

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

Store Store::open(const fs::path& file, bool create) {
  auto impl = std::make_unique<Impl>();
  impl->file = file.string();
  if (!create && !fs::exists(file))
    fail("item store '{}' is missing; run `rdm db build` again to repair the database",
         file.string());
  // NOFOLLOW: an items.sqlite planted as a symlink would have the build write elsewhere.
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW |
              (create ? SQLITE_OPEN_CREATE : 0);
  if (sqlite3_open_v2(file.c_str(), &impl->db, flags, nullptr) != SQLITE_OK)
    impl->error("open");
  sqlite3_busy_timeout(impl->db, 10000);
  try {
    impl->exec("PRAGMA journal_mode=WAL");
    impl->exec("PRAGMA synchronous=NORMAL");
    if (create) {
      impl->exec(
          "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
          "CREATE TABLE IF NOT EXISTS items(path TEXT UNIQUE, hash TEXT NOT NULL,"
          " width INTEGER NOT NULL, height INTEGER NOT NULL, label TEXT NOT NULL,"
          " orig_id TEXT NOT NULL, patch_coords TEXT NOT NULL, final_id INTEGER UNIQUE,"
          " embedding BLOB);"
          "CREATE INDEX IF NOT EXISTS items_hash ON items(hash);"
          "CREATE TABLE IF NOT EXISTS skipped(path TEXT PRIMARY KEY, reason TEXT NOT NULL);"
          "CREATE TABLE IF NOT EXISTS duplicates(path TEXT PRIMARY KEY, original TEXT NOT NULL);");
    }
    Stmt check(*impl, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='items'");
    if (!check.step() || check.i64(0) != 1) fail("item store '{}' has no items table", file.string());
  } catch (const Error& e) {
    fail("{}; run `rdm db build` again to repair the database", e.what());
  }
  return Store(std::move(impl));
}

Store::Transaction::Transaction(Store& s) : s_(&s) {
  s_->impl_->mu.lock();
  try {
    s_->impl_->exec("BEGIN IMMEDIATE");
  } catch (...) {
    s_->impl_->mu.unlock();
    throw;
  }
}
Store::Transaction::~Transaction() {
  if (!done_) {
    char* msg = nullptr;
    sqlite3_exec(s_->impl_->db, "ROLLBACK", nullptr, nullptr, &msg);
    sqlite3_free(msg);
  }
  s_->impl_->mu.unlock();
}
void Store::Transaction::commit() {
  s_->impl_->exec("COMMIT");
  done_ = true;
}

std::optional<std::string> Store::meta(const std::string& key) const {
  std::lock_guard lock(impl_->mu);
  Stmt st(*impl_, "SELECT value FROM meta WHERE key=?");
  st.bind(1, key);
  if (st.step()) return st.text(0);
  return std::nullopt;
}

void Store::set_meta(const std::string& key, const std::string& value) {
  std::lock_guard lock(impl_->mu);
  Stmt st(*impl_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
  st.bind(1, key).bind(2, value).step();
}

void Store::insert_item(const StoreItem& it) {
  std::lock_guard lock(impl_->mu);
  if (!impl_->insert &&
      sqlite3_prepare_v2(impl_->db,
                         "INSERT INTO items(path, hash, width, height, label, orig_id, patch_coords,"
                         " final_id, embedding) VALUES(?,?,?,?,?,?,?,?,?)",
                         -1, &impl_->insert, nullptr) != SQLITE_OK)
    impl_->error("prepare INSERT");
  Stmt st(*impl_, impl_->insert);
  if (it.path.empty())
    st.bind_null(1);  // imports: no source file
  else
    st.bind(1, it.path);
  st.bind(2, it.hash).bind(3, it.width).bind(4, it.height).bind(5, it.label);
  st.bind(6, it.orig_id).bind(7, it.patch_coords);
  if (it.final_id >= 0)
    st.bind(8, it.final_id);
  else
    st.bind_null(8);
  st.bind_blob(9, it.embedding.data(), it.embedding.size() * sizeof(float));
  st.step();
}

void Store::insert_skipped(const std::string& path, const std::string& reason) {
  std::lock_guard lock(impl_->mu);
  Stmt st(*impl_, "INSERT OR REPLACE INTO skipped(path, reason) VALUES(?, ?)");
  st.bind(1, path).bind(2, reason).step();
}

void Store::insert_duplicate(const std::string& path, const std::string& original) {
  std::lock_guard lock(impl_->mu);
  Stmt st(*impl_, "INSERT OR REPLACE INTO duplicates(path, original) VALUES(?, ?)");
  st.bind(1, path).bind(2, original).step();
}

std::unordered_set<std::string> Store::recorded_paths() const {
  std::lock_guard lock(impl_->mu);
  std::unordered_set<std::string> out;
  for (const char* sql : {"SELECT path FROM items WHERE path IS NOT NULL", "SELECT path FROM skipped",
                          "SELECT path FROM duplicates"}) {
    Stmt st(*impl_, sql);
    while (st.step()) out.insert(st.text(0));
  }
  return out;
}

std::optional<std::string> Store::path_of_hash(const std::string& hash) const {
  std::lock_guard lock(impl_->mu);
  Stmt st(*impl_, "SELECT path FROM items WHERE hash=? ORDER BY path LIMIT 1");
  st.bind(1, hash);
  if (st.step()) return st.text(0);
  return std::nullopt;
}

namespace {
int64_t count_of(const Store::Impl& s, const char* sql) {
  Stmt st(s, sql);
  st.step();
  return st.i64(0);
}
}  // namespace

int64_t Store::item_count() const {
  std::lock_guard lock(impl_->mu);
  return count_of(*impl_, "SELECT count(*) FROM items");
}
int64_t Store::skipped_count() const {
  std::lock_guard lock(impl_->mu);
  return count_of(*impl_, "SELECT count(*) FROM skipped");
}
int64_t Store::duplicate_count() const {
  std::lock_guard lock(impl_->mu);
  return count_of(*impl_, "SELECT count(*) FROM duplicates");
}

void Store::assign_final_ids() {
  std::lock_guard lock(impl_->mu);
  int64_t next = count_of(*impl_, "SELECT coalesce(max(final_id) + 1, 0) FROM items");
  std::vector<int64_t> pending;
  {
    Stmt st(*impl_, "SELECT rowid FROM items WHERE final_id IS NULL ORDER BY path, rowid");
    while (st.step()) pending.push_back(st.i64(0));
  }
  Stmt up(*impl_, "UPDATE items SET final_id=? WHERE rowid=?");
  for (int64_t p : pending) {
    up.reset();
    up.bind(1, next++).bind(2, p).step();
  }
}

std::vector<StoreItem> Store::items(bool with_embeddings) const {
  std::lock_guard lock(impl_->mu);
  std::string sql = std::string("SELECT ") + kItemColumns + (with_embeddings ? ", embedding" : "") +
                    " FROM items ORDER BY final_id IS NULL, final_id, path";
  Stmt st(*impl_, sql.c_str());
  std::vector<StoreItem> out;
  while (st.step()) out.push_back(read_item(st, with_embeddings));
  return out;
}

std::optional<StoreItem> Store::item_by_id(int64_t final_id) const {
  std::lock_guard lock(impl_->mu);
  std::string sql = std::string("SELECT ") + kItemColumns + " FROM items WHERE final_id=?";
  Stmt st(*impl_, sql.c_str());
  st.bind(1, final_id);
  if (st.step()) return read_item(st, false);
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> Store::skipped() const {
  std::lock_guard lock(impl_->mu);
  Stmt st(*impl_, "SELECT path, reason FROM skipped ORDER BY path");
  std::vector<std::pair<std::string, std::string>> out;
  while (st.step()) out.emplace_back(st.text(0), st.text(1));
  return out;
}

std::vector<std::pair<std::string, std::string>> Store::duplicates() const {
  std::lock_guard lock(impl_->mu);
  Stmt st(*impl_, "SELECT path, original FROM duplicates ORDER BY path");
  std::vector<std::pair<std::string, std::string>> out;
  while (st.step()) out.emplace_back(st.text(0), st.text(1));
  return out;
}

std::vector<std::pair<std::string, int64_t>> Store::label_counts(int64_t max_id) const {
  std::lock_guard lock(impl_->mu);
  Stmt st(*impl_,
          "SELECT label, count(*) FROM items WHERE final_id IS NOT NULL AND final_id < ?"
          " GROUP BY label ORDER BY label");
  st.bind(1, max_id);
  std::vector<std::pair<std::string, int64_t>> out;
  while (st.step()) out.emplace_back(st.text(0), st.i64(1));
  return out;
}

}  // namespace rdm::retrieval
