// `rdm db import`: the CompVis retrieval databases (ldm/.../knn2img.py Searcher.load_database:
// every *.npz of a folder, keys `embedding`, `img_id`, `patch_coords`, concatenated along axis 0
// -- here in sorted file-name order) and plain .npy embedding matrices, into the rdm format.
#include "retrieval/importer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <iterator>

#include "rdm/formats/npy.hpp"
#include "rdm/formats/npy_strings.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/retrieval/manifest.hpp"
#include "rdm/runtime/error.hpp"
#include "retrieval/finalize.hpp"

namespace rdm::retrieval {
namespace fs = std::filesystem;

namespace import_detail {
namespace {
std::string lower_ext(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

// The arrays of a .npz part: embedding, and img_id as numbers or strings, patch_coords.
struct NpzPart {
  torch::Tensor embedding, img_id, patch_coords;
  std::vector<std::string> str_ids;  // img_id as strings (<U.. / |S..)
  bool have_str_ids = false;
};

NpzPart read_npz_part(const fs::path& f) {
  formats::NpzArrays arrays = formats::read_npz_arrays(f);
  auto get = [&](const char* key) -> torch::Tensor {
    auto it = arrays.tensors.find(key);
    if (it == arrays.tensors.end() && arrays.strings.count(key))
      fail("'{}': array '{}' holds strings, expected numbers", f.string(), key);
    return it == arrays.tensors.end() ? torch::Tensor() : it->second;
  };
  NpzPart p;
  p.embedding = get("embedding");
  if (!p.embedding.defined()) fail("'{}' has no 'embedding' array (keys: embedding, img_id, patch_coords)", f.string());
  if (auto it = arrays.strings.find("img_id"); it != arrays.strings.end()) {
    const auto& shape = arrays.string_shapes["img_id"];
    if (shape.size() != 1) fail("'{}': string 'img_id' must be 1-d, got {} dimensions", f.string(), shape.size());
    p.str_ids = std::move(it->second);
    p.have_str_ids = true;
  } else {
    p.img_id = get("img_id");
  }
  p.patch_coords = get("patch_coords");
  if (!p.img_id.defined() && !p.have_str_ids) spdlog::warn("'{}' has no 'img_id' array", f.string());
  return p;
}
}  // namespace

std::vector<fs::path> expand_inputs(const std::vector<fs::path>& inputs) {
  std::vector<fs::path> out;
  for (const auto& in : inputs) {
    if (fs::is_directory(in)) {
      std::vector<fs::path> npz, npy;
      for (const auto& e : fs::directory_iterator(in)) {
        if (!e.is_regular_file()) continue;
        std::string ext = lower_ext(e.path());
        if (ext == ".npz") npz.push_back(e.path());
        if (ext == ".npy") npy.push_back(e.path());
      }
      auto& pick = npz.empty() ? npy : npz;
      if (pick.empty()) fail("No npz-files in specified path '{}' (nor .npy files)", in.string());
      std::sort(pick.begin(), pick.end(),
                [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
      out.insert(out.end(), pick.begin(), pick.end());
    } else if (fs::exists(in)) {
      std::string ext = lower_ext(in);
      if (ext != ".npz" && ext != ".npy")
        fail("cannot import '{}': expected a .npz part, a .npy matrix or a folder of them",
             in.string());
      out.push_back(in);
    } else {
      fail("cannot import '{}': no such file or folder", in.string());
    }
  }
  if (out.empty()) fail("nothing to import: give .npz/.npy files or folders");
  return out;
}

void check_output(const fs::path& out) {
  if (fs::exists(out / kManifestFile) && Manifest::read(out).source_kind() != "import")
    fail("'{}' already holds a built database; import into another --out", out.string());
}

std::string row_json(const torch::Tensor& t, int64_t r) {
  torch::Tensor row = t[r].flatten();
  nlohmann::json j = nlohmann::json::array();
  if (row.is_floating_point()) {
    auto v = row.to(torch::kFloat64).contiguous();
    for (int64_t i = 0; i < v.numel(); ++i) j.push_back(v.data_ptr<double>()[i]);
  } else {
    auto v = row.to(torch::kInt64).contiguous();
    for (int64_t i = 0; i < v.numel(); ++i) j.push_back(v.data_ptr<int64_t>()[i]);
  }
  if (t.dim() == 1) return j[0].dump();
  return j.dump();
}

Part read_part(const fs::path& f, int64_t first_id, int64_t dim) {
  NpzPart p;
  if (lower_ext(f) == ".npz") p = read_npz_part(f);
  else p.embedding = formats::read_npy(f);
  const torch::Tensor& emb = p.embedding;
  if (emb.dim() != 2 || !emb.is_floating_point())
    fail("'{}': embeddings must be a 2-d float array, got shape {} dtype {}", f.string(),
         c10::str(emb.sizes()), c10::toString(emb.scalar_type()));
  if (dim >= 0 && emb.size(1) != dim)
    fail("'{}' has {}-d embeddings, earlier parts have {}-d", f.string(), emb.size(1), dim);
  const int64_t n = emb.size(0);
  for (auto* meta : {&p.img_id, &p.patch_coords})
    if (meta->defined() && (meta->dim() == 0 || meta->size(0) != n))
      fail("'{}': metadata array has {} rows, embedding has {}", f.string(), meta->dim() ? meta->size(0) : 0, n);
  if (p.have_str_ids && static_cast<int64_t>(p.str_ids.size()) != n)
    fail("'{}': metadata array 'img_id' has {} rows, embedding has {}", f.string(), p.str_ids.size(), n);
  Part part;
  for (int64_t r = 0; r < n; ++r) {
    StoreItem it;
    it.orig_id = p.have_str_ids       ? p.str_ids[r]
                 : p.img_id.defined() ? row_json(p.img_id, r)
                                      : std::to_string(first_id + r);
    if (p.patch_coords.defined()) it.patch_coords = row_json(p.patch_coords, r);
    it.final_id = first_id + r;
    part.items.push_back(std::move(it));
  }
  part.info = {{"file", fs::absolute(f).string()}, {"rows", n}, {"dtype", c10::toString(emb.scalar_type())}};
  spdlog::info("read '{}': {} x {} {}", f.string(), n, emb.size(1), c10::toString(emb.scalar_type()));
  part.embeddings = emb;
  return part;
}

void write_store(const fs::path& out, const std::vector<StoreItem>& items, const std::string& clip_identity,
                 int64_t dim) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(out / (std::string(kStoreFile) + suffix));
  fs::remove(out / kManifestFile);
  Store store = Store::open(out / kStoreFile, true);
  Store::Transaction tx(store);
  store.set_meta("clip_identity", clip_identity);
  store.set_meta("dim", std::to_string(dim));
  store.set_meta("preprocess", "unknown");
  for (const auto& it : items) store.insert_item(it);
  tx.commit();
}

}  // namespace import_detail

BuildReport import_database(const ImportOptions& opt) {
  using namespace import_detail;
  const auto t0 = std::chrono::steady_clock::now();
  embeddings_dtype(opt.index.dtype);
  const std::vector<fs::path> files = expand_inputs(opt.inputs);
  const fs::path out = opt.out;
  check_output(out);

  // 1. Every part, concatenated in order.
  std::vector<torch::Tensor> parts;
  std::vector<StoreItem> items;
  int64_t dim = -1;
  nlohmann::json part_list = nlohmann::json::array();
  std::vector<std::pair<int64_t, std::string>> part_rows;  // first row, file
  for (const auto& f : files) {
    Part part = read_part(f, static_cast<int64_t>(items.size()), dim);
    dim = part.embeddings.size(1);
    part_rows.emplace_back(static_cast<int64_t>(items.size()), f.string());
    std::move(part.items.begin(), part.items.end(), std::back_inserter(items));
    parts.push_back(part.embeddings.to(torch::kFloat32));
    part_list.push_back(std::move(part.info));
  }
  torch::Tensor all = torch::cat(parts, 0).contiguous();
  parts.clear();

  // 2. Zero / NaN / infinite vectors cannot be normalised: refuse them before touching --out.
  auto name_of = [&](int64_t r) {
    size_t p = 0;
    while (p + 1 < part_rows.size() && part_rows[p + 1].first <= r) ++p;
    return fmt::format("img_id {} in '{}'", items[r].orig_id, part_rows[p].second);
  };
  const std::string source = fmt::format("db import into '{}'", out.string());
  check_embeddings(all, source, name_of);

  // 3. The store, then the embeddings, index and manifest.
  FolderLock lock(out);
  remove_stale_temporaries(out);
  write_store(out, items, opt.clip_identity, dim);
  Manifest m;
  m.name = !opt.name.empty() ? opt.name : fs::absolute(out).filename().string();
  m.clip_identity = opt.clip_identity;
  m.preprocess = "unknown";
  m.source = {{"kind", "import"}, {"parts", part_list}};
  BuildReport rep;
  rep.scanned = rep.indexed = rep.new_items = all.size(0);
  m.report = {{"imported", rep.indexed}};
  rep.recall = write_database_files(out, all, m, opt.index, source, name_of, &rep.recall_raw);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace rdm::retrieval
