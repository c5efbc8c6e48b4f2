// The item store of a style database: one SQLite file holding per-item metadata, the
// embeddings of built items (so an interrupted build resumes where it stopped), skipped files
// and duplicates. SQLite appears only here and in store.cpp.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace rdm::retrieval {

struct StoreItem {
  std::string path, hash, label, orig_id, patch_coords;
  int64_t width = 0, height = 0;
  int64_t final_id = -1;          // row in the embeddings matrix (-1: not assigned yet)
  std::vector<float> embedding;   // built items (empty for imports)
};

class Store {
 public:
  // Opens (creating the schema when `create`) dir/items.sqlite. Throws rdm::Error.
  static Store open(const std::filesystem::path& file, bool create);
  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  // One write transaction (BEGIN IMMEDIATE ... COMMIT); rolled back if not committed.
  class Transaction {
   public:
    explicit Transaction(Store& s);
    ~Transaction();
    void commit();

   private:
    Store* s_;
    bool done_ = false;
  };

  std::optional<std::string> meta(const std::string& key) const;
  void set_meta(const std::string& key, const std::string& value);

  void insert_item(const StoreItem& item);
  void insert_skipped(const std::string& path, const std::string& reason);
  void insert_duplicate(const std::string& path, const std::string& original);
  // Paths already recorded as item, skipped or duplicate.
  std::unordered_set<std::string> recorded_paths() const;
  // Path of the item with this content hash, if any.
  std::optional<std::string> path_of_hash(const std::string& hash) const;

  int64_t item_count() const;
  int64_t skipped_count() const;
  int64_t duplicate_count() const;
  // Gives every item without a final id the next ids, in path order.
  void assign_final_ids();
  // Items ordered by final id (embeddings included when asked).
  std::vector<StoreItem> items(bool with_embeddings) const;
  std::optional<StoreItem> item_by_id(int64_t final_id) const;
  std::vector<std::pair<std::string, std::string>> skipped() const;     // path, reason
  std::vector<std::pair<std::string, std::string>> duplicates() const;  // path, original
  std::vector<std::pair<std::string, int64_t>> label_counts(int64_t max_id) const;

  struct Impl;

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rdm::retrieval
