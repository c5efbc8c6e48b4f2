// manifest.json of a style database (format: databases/README.md).
#include "rdm/retrieval/manifest.hpp"

#include <ctime>

#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"

namespace rdm::retrieval {
namespace fs = std::filesystem;
using nlohmann::json;

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Manifest::source_kind() const { return source.value("kind", std::string()); }
std::string Manifest::source_root() const { return source.value("root", std::string()); }
std::string Manifest::source_clip_model() const { return source.value("clip_model", std::string()); }

json Manifest::to_json() const {
  return json{
      {"format", "rdm-style-database"},
      {"format_version", format_version},
      {"name", name},
      {"created", created},
      {"clip", {{"identity", clip_identity}, {"embed_dim", dim}, {"preprocess", preprocess}}},
      {"count", count},
      {"embeddings",
       {{"file", kEmbeddingsFile}, {"dtype", embeddings_dtype}, {"normalization", normalization},
        {"content_hash", content_hash}}},
      {"index",
       {{"file", kIndexFile}, {"description", index}, {"metric", "inner_product"},
        {"nprobe", nprobe}, {"ef", ef}, {"rerank", rerank}}},
      {"store", {{"file", kStoreFile}}},
      {"source", source},
      {"report", report},
  };
}

Manifest Manifest::from_json(const json& j, const std::string& where) {
  Manifest m;
  try {
    if (j.value("format", std::string()) != "rdm-style-database")
      fail("{}: not an rdm style database manifest (\"format\" is not \"rdm-style-database\")",
           where);
    m.format_version = j.at("format_version").get<int>();
    if (m.format_version > kFormatVersion)
      fail("{}: format version {} is newer than this rdm supports ({})", where, m.format_version,
           kFormatVersion);
    m.name = j.value("name", std::string());
    m.created = j.value("created", std::string());
    const json& clip = j.at("clip");
    m.clip_identity = clip.at("identity").get<std::string>();
    m.dim = clip.at("embed_dim").get<int64_t>();
    m.preprocess = clip.value("preprocess", std::string("unknown"));
    m.count = j.at("count").get<int64_t>();
    const json& emb = j.at("embeddings");
    m.embeddings_dtype = emb.at("dtype").get<std::string>();
    m.normalization = emb.value("normalization", std::string("l2"));
    m.content_hash = emb.value("content_hash", std::string());
    const json& idx = j.at("index");
    m.index = idx.at("description").get<std::string>();
    m.nprobe = idx.value("nprobe", int64_t{0});
    m.ef = idx.value("ef", int64_t{0});
    m.rerank = idx.value("rerank", int64_t{0});
    m.source = j.value("source", json::object());
    m.report = j.value("report", json::object());
  } catch (const json::exception& e) {
    fail("{}: damaged manifest ({}); run `rdm db build` (or import) again to repair it", where,
         e.what());
  }
  if (m.dim <= 0 || m.count < 0)
    fail("{}: damaged manifest (dim {} count {}); run `rdm db build` again to repair it", where,
         m.dim, m.count);
  if (m.embeddings_dtype != "float32" && m.embeddings_dtype != "float16")
    fail("{}: unsupported embeddings dtype '{}'", where, m.embeddings_dtype);
  return m;
}

Manifest Manifest::read(const fs::path& dir) {
  fs::path file = dir / kManifestFile;
  if (!fs::is_directory(dir))
    fail("database '{}' does not exist (create it with `rdm db build --images DIR --clip MODEL "
         "--out {}`)", dir.string(), dir.string());
  if (!fs::exists(file))
    fail("database '{}' has no {} (not a database, or an unfinished build); run `rdm db build` "
         "with the same options to finish or repair it", dir.string(), kManifestFile);
  json j;
  try {
    j = json::parse(io::read_file(file));
  } catch (const json::exception& e) {
    fail("{}: damaged manifest ({}); run `rdm db build` again to repair it", file.string(),
         e.what());
  }
  return from_json(j, file.string());
}

void Manifest::write(const fs::path& dir) const {
  io::write_file_atomic(dir / kManifestFile, to_json().dump(2) + "\n");
}

}  // namespace rdm::retrieval
