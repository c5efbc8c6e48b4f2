// `rdm db merge`: combines databases built with `db build --shard I/N` (or any databases made
// with the same CLIP encoder) into one. Items are ordered by source path and byte-identical
// duplicates across shards are stored once, so merging the N shards of a collection gives the
// same items, ids and metadata as one unsharded build. IVF shards that share one trained index
// (`db build/import --trained-from`) are merged list by list with FAISS merge_from (their ids
// renumbered, duplicates dropped, nothing re-encoded or retrained); otherwise (Flat, shards
// trained separately, another --index) the index is rebuilt over the merged embeddings, which
// for Flat equals a merge.
#include "retrieval/merge.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <unordered_map>

#include "rdm/io/atomic_file.hpp"
#include "rdm/retrieval/database.hpp"
#include "rdm/retrieval/manifest.hpp"
#include "rdm/runtime/error.hpp"
#include "retrieval/db_checks.hpp"
#include "retrieval/finalize.hpp"
#include "retrieval/index.hpp"

namespace rdm::retrieval {
namespace fs = std::filesystem;

namespace merge_detail {

void check_output(const MergeOptions& opt) {
  if (opt.inputs.empty()) fail("nothing to merge: give the shard databases");
  const fs::path& out = opt.out;
  for (const auto& in : opt.inputs)
    if (fs::exists(in) && fs::exists(out) && fs::equivalent(in, out))
      fail("merge output '{}' is one of the inputs", out.string());
  if (fs::exists(out / kManifestFile) || fs::exists(out / kStoreFile))
    fail("'{}' already holds a database; merge into a new --out", out.string());
}

Shards read_shards(const std::vector<fs::path>& inputs, bool read_indexes) {
  Shards s;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const fs::path& dir = inputs[k];
    const Manifest m = Manifest::read(dir);
    if (k == 0) {
      s.first = m;
    } else if (m.dim != s.first.dim || !clip_identities_compatible(m.clip_identity, s.first.clip_identity) ||
               m.preprocess != s.first.preprocess) {
      fail("cannot merge '{}' (CLIP '{}', dim {}, preprocess {}) with '{}' (CLIP '{}', dim {}, "
           "preprocess {})", dir.string(), m.clip_identity, m.dim, m.preprocess,
           inputs[0].string(), s.first.clip_identity, s.first.dim, s.first.preprocess);
    }
    Store store = Store::open(dir / kStoreFile, false);
    check_store_matches(dir, m, store);
    std::shared_ptr<const NpyRows> rows;
    try {
      rows = std::make_shared<const NpyRows>(checked_embeddings_file(dir));
    } catch (const Error& e) {
      fail("database '{}': {}{}", dir.string(), e.what(), kRepairHint);
    }
    if (rows->rows() != m.count || rows->dim() != m.dim)
      fail("database '{}': {} holds {} x {}, the manifest says {} x {}{}", dir.string(), kEmbeddingsFile, rows->rows(),
           rows->dim(), m.count, m.dim, kRepairHint);
    if (read_indexes) {
      s.indexes.push_back(FaissIndex::read(dir / kIndexFile));
      check_index_matches(dir, m, s.indexes.back());
    }
    if (k == 0)
      for (const char* key : {"clip_identity", "dim", "preprocess", "images"})
        if (auto v = store.meta(key)) s.meta[key] = *v;
    for (auto& it : store.items(false)) {
      if (it.final_id < 0 || it.final_id >= m.count) continue;  // not part of the finished db
      s.items.push_back({std::move(it), k});
    }
    s.embeddings.push_back(std::move(rows));
    for (auto& p : store.skipped()) s.skipped.push_back(p);
    for (auto& p : store.duplicates()) s.duplicates.push_back(p);
    s.parts.push_back({{"database", fs::absolute(dir).string()}, {"count", m.count}, {"source", m.source}});
    spdlog::info("shard '{}': {} items", dir.string(), m.count);
  }
  return s;
}

std::vector<ShardItem> order_and_deduplicate(std::vector<ShardItem> items, PathPairs& duplicates) {
  std::stable_sort(items.begin(), items.end(), [](const ShardItem& a, const ShardItem& b) {
    if (a.item.path.empty() != b.item.path.empty()) return b.item.path.empty();
    return a.item.path < b.item.path;
  });
  std::unordered_map<std::string, std::string> by_hash;
  std::vector<ShardItem> kept;
  for (auto& e : items) {
    if (!e.item.hash.empty()) {
      auto [it, fresh] = by_hash.emplace(e.item.hash, e.item.path);
      if (!fresh) {
        duplicates.emplace_back(e.item.path, it->second);
        continue;
      }
    }
    kept.push_back(std::move(e));
  }
  return kept;
}

torch::Tensor gather_embeddings(std::vector<ShardItem>& kept,
                                const std::vector<std::shared_ptr<const NpyRows>>& shard_embeddings, int64_t dim) {
  const int64_t n = static_cast<int64_t>(kept.size());
  torch::Tensor all = torch::zeros({n, dim}, torch::kFloat32);
  float* dst = all.data_ptr<float>();
  // Shard by shard, in blocks: the rows of one shard are read from its file (pread), then
  // copied to their merged rows.
  constexpr size_t kBlock = 4096;
  std::vector<float> buf;
  // Per shard: its rows to read and the merged row each goes to (one pass over the items).
  std::vector<std::vector<int64_t>> from(shard_embeddings.size()), into(shard_embeddings.size());
  for (int64_t r = 0; r < n; ++r) {
    from[kept[r].shard].push_back(kept[r].item.final_id);
    into[kept[r].shard].push_back(r);
  }
  for (size_t s = 0; s < shard_embeddings.size(); ++s) {
    const std::vector<int64_t>& src = from[s];
    const std::vector<int64_t>& to = into[s];
    for (size_t lo = 0; lo < src.size(); lo += kBlock) {
      const size_t len = std::min(kBlock, src.size() - lo);
      const std::vector<int64_t> ids(src.begin() + static_cast<std::ptrdiff_t>(lo),
                                     src.begin() + static_cast<std::ptrdiff_t>(lo + len));
      buf.resize(len * static_cast<size_t>(dim));
      shard_embeddings[s]->gather(ids, buf.data());
      for (size_t i = 0; i < len; ++i)
        std::copy_n(buf.data() + i * static_cast<size_t>(dim), dim, dst + to[lo + i] * dim);
    }
  }
  for (int64_t r = 0; r < n; ++r) kept[r].item.final_id = r;
  return all;
}

void write_store(const fs::path& out, std::vector<ShardItem>& kept, const torch::Tensor& all, const Shards& shards) {
  const int64_t n = static_cast<int64_t>(kept.size()), dim = all.size(1);
  Store store = Store::open(out / kStoreFile, true);
  Store::Transaction tx(store);
  for (auto& [k, v] : shards.meta) store.set_meta(k, v);
  store.set_meta("shard", "0/1");
  for (int64_t r = 0; r < n; ++r) {
    StoreItem& it = kept[r].item;
    if (!it.path.empty()) {  // built items keep their embedding for later --append runs
      const float* row = all[r].data_ptr<float>();
      it.embedding.assign(row, row + dim);
    }
    store.insert_item(it);
    it.embedding.clear();
  }
  for (auto& [p, r] : shards.skipped) store.insert_skipped(p, r);
  for (auto& [p, o] : shards.duplicates) store.insert_duplicate(p, o);
  tx.commit();
  std::string text = "status\tpath\tdetail\n";
  for (auto& [p, reason] : store.skipped()) text += "skipped\t" + p + "\t" + reason + "\n";
  for (auto& [p, o] : store.duplicates()) text += "duplicate\t" + p + "\tsame bytes as " + o + "\n";
  io::write_file_atomic(out / kReportFile, text);
}

IndexOptions index_options(const MergeOptions& opt, const Manifest& first) {
  IndexOptions index = opt.index;
  if (!opt.index_given) {
    index.description = first.index;
    index.nprobe = first.nprobe;
    index.ef = first.ef;
    index.rerank = first.rerank;
    index.dtype = first.embeddings_dtype;
  }
  return index;
}

}  // namespace merge_detail

BuildReport merge_databases(const MergeOptions& opt) {
  using namespace merge_detail;
  const auto t0 = std::chrono::steady_clock::now();
  check_output(opt);
  const fs::path out = opt.out;
  Shards shards = read_shards(opt.inputs, !opt.index_given);
  std::vector<ShardItem> kept = order_and_deduplicate(std::move(shards.items), shards.duplicates);
  // Merged id of each shard row (-1: dropped), for merging the shards' IVF lists.
  std::vector<std::vector<int64_t>> new_ids;
  for (const auto& e : shards.embeddings) new_ids.emplace_back(static_cast<size_t>(e->rows()), -1);
  for (size_t r = 0; r < kept.size(); ++r)
    new_ids[kept[r].shard][static_cast<size_t>(kept[r].item.final_id)] = static_cast<int64_t>(r);
  torch::Tensor all = gather_embeddings(kept, shards.embeddings, shards.first.dim);
  shards.embeddings.clear();
  std::optional<FaissIndex> merged;
  std::string how;
  if (opt.index_given) {
    how = "rebuilt (--index given)";
  } else {
    std::vector<FaissIndex> indexes = std::move(shards.indexes);
    std::vector<const FaissIndex*> ptrs;
    for (const auto& i : indexes) ptrs.push_back(&i);
    const std::string why = FaissIndex::why_not_mergeable(ptrs);
    if (why.empty()) {
      const auto t = std::chrono::steady_clock::now();
      merged.emplace(FaissIndex::merge_lists(std::move(indexes), new_ids));
      how = "lists merged (FAISS merge_from: one shared trained index, nothing retrained or re-encoded)";
      spdlog::info("merge: the shards' IVF lists merged into {} vectors in {:.2f} s (no retraining)", merged->ntotal(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count());
    } else {
      how = "rebuilt: " + why;
      spdlog::info("merge: rebuilding the index over the merged embeddings: {}", why);
    }
  }

  FolderLock lock(out);
  remove_stale_temporaries(out);
  write_store(out, kept, all, shards);

  Manifest m = shards.first;
  m.name = !opt.name.empty() ? opt.name : fs::absolute(out).filename().string();
  m.source = {{"kind", "merge"}, {"parts", shards.parts}};
  if (shards.first.source.contains("root")) m.source["root"] = shards.first.source["root"];
  BuildReport rep;
  rep.indexed = all.size(0);
  rep.skipped = static_cast<int64_t>(shards.skipped.size());
  rep.duplicates = static_cast<int64_t>(shards.duplicates.size());
  rep.report_file = out / kReportFile;
  m.report = {{"indexed", rep.indexed}, {"skipped", rep.skipped}, {"duplicates", rep.duplicates},
              {"shards", opt.inputs.size()}, {"report_file", kReportFile}, {"index_merge", how}};
  rep.recall = write_database_files(out, std::move(all), m, index_options(opt, shards.first),
                                    "merge into '" + out.string() + "'", {}, &rep.recall_raw,
                                    merged ? &*merged : nullptr);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace rdm::retrieval
