// `rdm db import`: the CompVis retrieval databases (ldm/.../knn2img.py Searcher.load_database:
// every *.npz of a folder, keys `embedding`, `img_id`, `patch_coords`, concatenated along axis 0
// -- here in sorted file-name order) and plain .npy embedding matrices, into the rdm format.
#include "retrieval/importer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <malloc.h>

#include <chrono>
#include <fstream>
#include <iterator>

#include "rdm/formats/npy.hpp"
#include "rdm/formats/npy_strings.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/retrieval/manifest.hpp"
#include "rdm/runtime/error.hpp"
#include "retrieval/finalize.hpp"
#include "retrieval/index.hpp"
#include "retrieval/rows.hpp"
#include "rdm/io/sha256.hpp"

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

namespace import_detail {
namespace {
// The embeddings are appended part by part to this file (the .npy header is reserved at the
// front and written last), so an import holds one part in memory, and an interrupted import
// resumes after the last part it finished (recorded in the store with the inputs' identity).
constexpr const char* kPartialFile = ".embeddings.npy.partial";
constexpr int64_t kHeaderBytes = 128;  // npy_header of any [N, D] float array with N < 10^40

std::string inputs_identity(const std::vector<fs::path>& files, const std::string& dtype) {
  nlohmann::json j = {{"dtype", dtype}, {"files", nlohmann::json::array()}};
  for (const auto& f : files) {
    std::error_code ec;
    const auto size = fs::file_size(f, ec);
    const auto time = fs::last_write_time(f, ec).time_since_epoch().count();
    j["files"].push_back({fs::absolute(f).string(), ec ? -1 : static_cast<int64_t>(size), static_cast<int64_t>(time)});
  }
  return j.dump();
}

std::string sha256_of_file(const fs::path& file) {
  io::Sha256 h;
  std::ifstream in(file, std::ios::binary);
  std::vector<char> buf(16 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return "sha256:" + h.hex();
}

struct ImportState {
  size_t parts_done = 0;
  int64_t rows = 0, dim = -1;
  nlohmann::json part_list = nlohmann::json::array();
};

// The state of an earlier, interrupted run of the same import (parts_done 0: none).
ImportState find_resume(const fs::path& out, const std::string& identity, int64_t element_size) {
  const fs::path partial = out / kPartialFile;
  if (!fs::exists(out / kStoreFile) || !fs::exists(partial) || fs::exists(out / kManifestFile)) return {};
  Store store = Store::open(out / kStoreFile, false);
  // Same dtype, and the parts already done are the same files (later parts are read anew).
  nlohmann::json now = nlohmann::json::parse(identity);
  nlohmann::json then = nlohmann::json::parse(store.meta("import_inputs").value_or("{}"), nullptr, false);
  if (then.is_discarded() || !then.contains("files") || then["dtype"] != now["dtype"]) return {};
  ImportState st;
  st.parts_done = std::stoul(store.meta("import_parts_done").value_or("0"));
  if (st.parts_done > now["files"].size() || st.parts_done > then["files"].size()) return {};
  for (size_t i = 0; i < st.parts_done; ++i)
    if (now["files"][i] != then["files"][i]) return {};
  st.rows = std::stoll(store.meta("import_rows").value_or("0"));
  st.dim = std::stoll(store.meta("dim").value_or("-1"));
  st.part_list = nlohmann::json::parse(store.meta("import_part_list").value_or("[]"));
  const auto want = static_cast<uintmax_t>(kHeaderBytes + st.rows * std::max<int64_t>(st.dim, 0) * element_size);
  if (st.parts_done == 0 || fs::file_size(partial) < want) return {};
  fs::resize_file(partial, want);  // drop a part written after the last commit
  Store::Transaction tx(store);
  store.set_meta("import_inputs", identity);
  tx.commit();
  spdlog::info("resuming the import into '{}' after {} parts ({} rows)", out.string(), st.parts_done, st.rows);
  return st;
}

// A fresh store and partial file (an earlier database in `out` is replaced).
void start_fresh(const fs::path& out, const std::string& identity, const std::string& clip_identity) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(out / (std::string(kStoreFile) + suffix));
  for (const char* f : {kManifestFile, kIndexFile, kEmbeddingsFile}) fs::remove(out / f);
  {
    Store store = Store::open(out / kStoreFile, true);
    Store::Transaction tx(store);
    store.set_meta("clip_identity", clip_identity);
    store.set_meta("preprocess", "unknown");
    store.set_meta("import_inputs", identity);
    tx.commit();
  }
  std::ofstream(out / kPartialFile, std::ios::binary | std::ios::trunc) << std::string(kHeaderBytes, '\0');
}

struct ReadyPart {
  torch::Tensor stored;  // [n, d] normalised, in the file dtype
  Part part;
};

// One part read, checked (rdm::Error naming the first bad row before anything of it is
// written) and normalised.
ReadyPart prepare_part(const fs::path& f, const ImportState& st, torch::Dtype dtype, const std::string& source) {
  ReadyPart r;
  r.part = read_part(f, st.rows, st.dim);
  const int64_t n = r.part.embeddings.size(0), d = r.part.embeddings.size(1);
  torch::Tensor x = r.part.embeddings.to(torch::kFloat32).contiguous().clone();
  r.part.embeddings = torch::Tensor();
  auto name_of = [&](int64_t row) { return fmt::format("img_id {} in '{}'", r.part.items[row].orig_id, f.string()); };
  check_embeddings(x, source, name_of);
  normalize_rows(x.data_ptr<float>(), n, d);
  r.stored = x.to(dtype).contiguous();
  return r;
}

// Appends a prepared part to the partial file, then records its items and the progress in one
// store transaction.
void write_part(const fs::path& out, ReadyPart& r, size_t index, ImportState& st) {
  const int64_t n = r.stored.size(0), d = r.stored.size(1);
  {
    std::fstream o(out / kPartialFile, std::ios::binary | std::ios::in | std::ios::out);
    o.seekp(static_cast<std::streamoff>(kHeaderBytes + st.rows * d * r.stored.element_size()));
    o.write(static_cast<const char*>(r.stored.data_ptr()), static_cast<std::streamsize>(r.stored.nbytes()));
    o.flush();
    if (!o) fail("cannot write '{}': disk full or not writable", (out / kPartialFile).string());
  }
  st.part_list.push_back(r.part.info);
  Store store = Store::open(out / kStoreFile, false);
  Store::Transaction tx(store);
  for (const auto& it : r.part.items) store.insert_item(it);
  st.rows += n;
  st.dim = d;
  st.parts_done = index + 1;
  store.set_meta("dim", std::to_string(d));
  store.set_meta("import_rows", std::to_string(st.rows));
  store.set_meta("import_parts_done", std::to_string(st.parts_done));
  store.set_meta("import_part_list", st.part_list.dump());
  tx.commit();
}
}  // namespace
}  // namespace import_detail

BuildReport import_database(const ImportOptions& opt) {
  using namespace import_detail;
  const auto t0 = std::chrono::steady_clock::now();
  const torch::Dtype dtype = embeddings_dtype(opt.index.dtype);
  const int64_t esize = dtype == torch::kFloat16 ? 2 : 4;
  const std::vector<fs::path> files = expand_inputs(opt.inputs);
  const fs::path out = opt.out;
  check_output(out);
  const std::string source = fmt::format("db import into '{}'", out.string());

  FolderLock lock(out);
  remove_stale_temporaries(out);
  const std::string identity = inputs_identity(files, opt.index.dtype);
  ImportState st = find_resume(out, identity, esize);
  const int64_t resumed = st.rows;
  // 1. Part by part: one part in memory at a time.
  for (size_t i = st.parts_done; i < files.size(); ++i) {
    ReadyPart ready = prepare_part(files[i], st, dtype, source);
    if (i == 0) start_fresh(out, identity, opt.clip_identity);
    write_part(out, ready, i, st);
    ready = ReadyPart();
    ::malloc_trim(0);  // give the part's freed heap back (bounded RSS over many parts)
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rate = static_cast<double>(st.rows - resumed) / std::max(s, 1e-9);
    spdlog::info("import: part {}/{} done, {} rows ({:.0f} rows/s, {:.0f} s)", i + 1, files.size(), st.rows, rate, s);
  }

  // 2. The header, then the finished file under its name.
  const fs::path partial = out / kPartialFile;
  std::string header = formats::npy_header(dtype, {st.rows, st.dim});
  if (static_cast<int64_t>(header.size()) != kHeaderBytes)
    fail("{}: {} x {} does not fit the reserved .npy header", source, st.rows, st.dim);
  {
    std::fstream o(partial, std::ios::binary | std::ios::in | std::ios::out);
    o.write(header.data(), static_cast<std::streamsize>(header.size()));
    o.flush();
    if (!o) fail("cannot write '{}'", partial.string());
  }
  Manifest m;
  m.content_hash = sha256_of_file(partial);
  fs::rename(partial, out / kEmbeddingsFile);
  spdlog::info("wrote {} ({} x {} {})", (out / kEmbeddingsFile).string(), st.rows, st.dim, opt.index.dtype);

  // 3. Index (streamed from the file), recall, manifest (last).
  m.name = !opt.name.empty() ? opt.name : fs::absolute(out).filename().string();
  m.clip_identity = opt.clip_identity;
  m.preprocess = "unknown";
  m.source = {{"kind", "import"}, {"parts", st.part_list}};
  BuildReport rep;
  rep.scanned = rep.indexed = st.rows;
  rep.new_items = st.rows - resumed;
  rep.resumed = resumed;
  m.report = {{"imported", rep.indexed}};
  NpyRows rows(out / kEmbeddingsFile);
  rep.recall = finish_database(out, rows, m, opt.index, &rep.recall_raw);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  m.report["import_seconds"] = rep.seconds;
  m.write(out);
  return rep;
}

}  // namespace rdm::retrieval
