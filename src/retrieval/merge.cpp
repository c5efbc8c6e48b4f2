// `rdm db merge`: combines databases built with `db build --shard I/N` (or any databases made
// with the same CLIP encoder) into one. Items are ordered by source path and byte-identical
// duplicates across shards are stored once, so merging the N shards of a collection gives the
// same items, ids and metadata as one unsharded build. The index is rebuilt over the merged
// embeddings (for Flat this equals FAISS merge_from; IVF shards trained on different samples
// have different coarse quantizers and cannot be merged list by list).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <unordered_map>

#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/retrieval/database.hpp"
#include "retrieval/finalize.hpp"
#include "retrieval/store.hpp"

namespace rdm::retrieval {
namespace fs = std::filesystem;

BuildReport merge_databases(const MergeOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  if (opt.inputs.empty()) fail("nothing to merge: give the shard databases");
  const fs::path out = opt.out;
  for (const auto& in : opt.inputs)
    if (fs::exists(in) && fs::exists(out) && fs::equivalent(in, out))
      fail("merge output '{}' is one of the inputs", out.string());
  if (fs::exists(out / kManifestFile) || fs::exists(out / kStoreFile))
    fail("'{}' already holds a database; merge into a new --out", out.string());

  struct Entry {
    StoreItem item;
    size_t shard;
  };
  std::vector<Entry> entries;
  std::vector<torch::Tensor> shard_emb;
  std::vector<std::pair<std::string, std::string>> skipped, dups;
  std::optional<Manifest> first;
  nlohmann::json parts = nlohmann::json::array();
  std::map<std::string, std::string> meta;
  for (size_t s = 0; s < opt.inputs.size(); ++s) {
    Database db = Database::open(opt.inputs[s]);
    const Manifest& m = db.manifest();
    if (!first) {
      first = m;
    } else if (m.dim != first->dim || !clip_identities_compatible(m.clip_identity, first->clip_identity) ||
               m.preprocess != first->preprocess) {
      fail("cannot merge '{}' (CLIP '{}', dim {}, preprocess {}) with '{}' (CLIP '{}', dim {}, "
           "preprocess {})", opt.inputs[s].string(), m.clip_identity, m.dim, m.preprocess,
           opt.inputs[0].string(), first->clip_identity, first->dim, first->preprocess);
    }
    Store store = Store::open(opt.inputs[s] / kStoreFile, false);
    if (s == 0)
      for (const char* k : {"clip_identity", "dim", "preprocess", "images"})
        if (auto v = store.meta(k)) meta[k] = *v;
    std::vector<StoreItem> items = store.items(false);
    for (auto& it : items) {
      if (it.final_id < 0 || it.final_id >= m.count) continue;  // not part of the finished db
      entries.push_back({std::move(it), s});
    }
    std::vector<int64_t> all(static_cast<size_t>(m.count));
    for (int64_t i = 0; i < m.count; ++i) all[i] = i;
    shard_emb.push_back(db.embeddings(all));
    for (auto& p : store.skipped()) skipped.push_back(p);
    for (auto& p : store.duplicates()) dups.push_back(p);
    parts.push_back({{"database", fs::absolute(opt.inputs[s]).string()}, {"count", m.count},
                     {"source", m.source}});
    spdlog::info("shard '{}': {} items", opt.inputs[s].string(), m.count);
  }
  // Source-path order (items without a path keep shard order, after those with one).
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.item.path.empty() != b.item.path.empty()) return b.item.path.empty();
    return a.item.path < b.item.path;
  });
  std::unordered_map<std::string, std::string> by_hash;
  std::vector<Entry> kept;
  for (auto& e : entries) {
    if (!e.item.hash.empty()) {
      auto [it, fresh] = by_hash.emplace(e.item.hash, e.item.path);
      if (!fresh) {
        dups.emplace_back(e.item.path, it->second);
        continue;
      }
    }
    kept.push_back(std::move(e));
  }
  const int64_t n = static_cast<int64_t>(kept.size()), dim = first->dim;
  torch::Tensor all = torch::empty({n, dim}, torch::kFloat32);
  for (int64_t r = 0; r < n; ++r) {
    all[r].copy_(shard_emb[kept[r].shard][kept[r].item.final_id]);
    kept[r].item.final_id = r;
  }
  shard_emb.clear();

  FolderLock lock(out);
  remove_stale_temporaries(out);
  {
    Store store = Store::open(out / kStoreFile, true);
    Store::Transaction tx(store);
    for (auto& [k, v] : meta) store.set_meta(k, v);
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
    for (auto& [p, r] : skipped) store.insert_skipped(p, r);
    for (auto& [p, o] : dups) store.insert_duplicate(p, o);
    tx.commit();
    std::string text = "status\tpath\tdetail\n";
    for (auto& [p, reason] : store.skipped()) text += "skipped\t" + p + "\t" + reason + "\n";
    for (auto& [p, o] : store.duplicates()) text += "duplicate\t" + p + "\tsame bytes as " + o + "\n";
    io::write_file_atomic(out / kReportFile, text);
  }

  Manifest m = *first;
  m.name = !opt.name.empty() ? opt.name : fs::absolute(out).filename().string();
  nlohmann::json src = {{"kind", "merge"}, {"parts", parts}};
  if (first->source.contains("root")) src["root"] = first->source["root"];
  m.source = src;
  BuildReport rep;
  rep.indexed = n;
  rep.skipped = static_cast<int64_t>(skipped.size());
  rep.duplicates = static_cast<int64_t>(dups.size());
  rep.report_file = out / kReportFile;
  m.report = {{"indexed", n}, {"skipped", rep.skipped}, {"duplicates", rep.duplicates},
              {"shards", opt.inputs.size()}, {"report_file", kReportFile}};
  IndexOptions index = opt.index;
  if (!opt.index_given) {
    index.description = first->index;
    index.nprobe = first->nprobe;
    index.ef = first->ef;
    index.rerank = first->rerank;
    index.dtype = first->embeddings_dtype;
  }
  rep.recall = write_database_files(out, all, m, index, "merge into '" + out.string() + "'", {}, &rep.recall_raw);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace rdm::retrieval
