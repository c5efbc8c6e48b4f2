// PyTorch zip checkpoints and TorchScript archives. Port of the reading side of
// torch/serialization.py (_load: data.pkl + persistent ids ('storage', type, key, location,
// numel) -> records data/<key>) and of torch/csrc/jit/serialization/import.cpp (module tree in
// data.pkl, class declarations in code/), without executing anything.
#include "rdm/formats/torch_zip.hpp"

#include <cstring>
#include <limits>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "rdm/runtime/error.hpp"
#include "rdm/io/mapped_file.hpp"
#include "rdm/formats/pickle.hpp"

namespace rdm::formats {
namespace fs = std::filesystem;
using pickle::Kind;
using pickle::Value;

std::string torch_zip_prefix(const ZipArchive& zip) {
  for (const auto& e : zip.entries()) {
    if (e.name == "data.pkl") return "";
    const auto slash = e.name.find('/');
    if (slash != std::string::npos && slash > 0 && e.name.compare(slash, std::string::npos, "/data.pkl") == 0)
      return e.name.substr(0, slash);
  }
  fail("'{}' is a zip archive without data.pkl: not a PyTorch checkpoint", zip.path().string());
}

bool is_torchscript(const ZipArchive& zip) {
  std::string pre = torch_zip_prefix(zip);
  if (!pre.empty()) pre += "/";
  if (zip.find(pre + "constants.pkl")) return true;
  for (const auto& e : zip.entries())
    if (e.name.rfind(pre + "code/", 0) == 0) return true;
  return false;
}

namespace {
constexpr std::uint64_t kMaxPickle = std::uint64_t(1) << 28;  // data.pkl size limit (256 MiB; real ones are < 1 MiB)
constexpr int kMaxDepth = 128;

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

// Resolves persistent ids to storages backed by the archive's data/<key> records.
class StorageLoader {
 public:
  StorageLoader(const ZipArchive& zip, std::string pre) : zip_(zip), pre_(std::move(pre)) {}

  Value* operator()(const Value& pid, pickle::Document& doc) {
    const std::string file = zip_.path().string();
    if (pid.kind != Kind::Tuple || pid.items.size() < 5 || pid.items[0]->kind != Kind::Str ||
        pid.items[0]->s != "storage")
      fail("'{}': unsupported persistent id {} in data.pkl", file, pid.repr(1));
    const Value* type = pid.items[1];
    const Value* key = pid.items[2];
    const Value* numel_v = pid.items[4];
    if (type->kind != Kind::Global || key->kind != Kind::Str || numel_v->kind != Kind::Int || numel_v->i < 0)
      fail("'{}': malformed storage id {} in data.pkl", file, pid.repr(1));
    torch::Dtype dtype;
    if (!pickle::storage_dtype(type->s, dtype)) fail("'{}': unsupported storage type {}", file, type->s);
    auto it = cache_.find(key->s);
    if (it != cache_.end()) {
      if (it->second->tensor.scalar_type() != dtype)
        fail("'{}': storage '{}' is used with two dtypes", file, key->s);
      return it->second;
    }
    const std::string rec = pre_ + "data/" + key->s;
    const ZipArchive::Entry* e = zip_.find(rec);
    if (!e) fail("'{}': storage record '{}' is missing", file, rec);
    const std::uint64_t itemsize = c10::elementSize(dtype);
    const std::uint64_t numel = static_cast<std::uint64_t>(numel_v->i);
    if (numel > std::numeric_limits<std::uint64_t>::max() / itemsize || numel * itemsize > e->uncompressed_size)
      fail("'{}': storage '{}' claims {} elements of {} but its record has {} bytes", file, key->s, numel,
           c10::toString(dtype), e->uncompressed_size);
    const std::int64_t n = static_cast<std::int64_t>(numel);
    auto opts = torch::TensorOptions().dtype(dtype);
    torch::Tensor t;
    const std::uint8_t* ptr = zip_.stored_data(*e);
    if (n == 0) {
      t = torch::empty({0}, opts);
    } else if (ptr && reinterpret_cast<std::uintptr_t>(ptr) % itemsize == 0) {
      // Zero copy: the tensor aliases the (private, copy-on-write) mapping and keeps it alive.
      std::shared_ptr<const io::MappedFile> keep = zip_.file();
      t = torch::from_blob(const_cast<std::uint8_t*>(ptr), {n}, [keep](void*) mutable { keep.reset(); }, opts);
    } else {
      t = torch::empty({n}, opts);
      if (ptr) {  // misaligned record (not written by torch.save): copy, then drop the source pages
        std::memcpy(t.data_ptr(), ptr, numel * itemsize);
        zip_.file()->release(ptr, static_cast<std::size_t>(numel * itemsize));
      } else {
        const std::string bytes = zip_.read(*e, std::numeric_limits<std::uint64_t>::max());
        std::memcpy(t.data_ptr(), bytes.data(), numel * itemsize);
      }
    }
    Value* s = doc.make(Kind::Storage);
    s->tensor = t;
    s->storage_key = key->s;
    cache_[key->s] = s;
    return s;
  }

 private:
  const ZipArchive& zip_;
  std::string pre_;
  std::map<std::string, Value*> cache_;
};

void add_tensor(TensorFile& out, const std::string& name, const torch::Tensor& t) {
  if (!out.tensors.count(name)) out.order.push_back(name);
  out.tensors[name] = t;
}

// ---- TorchScript: parameters and buffers of the module tree ----------------------------
struct ClassDecl {
  bool found = false;
  std::unordered_set<std::string> names;  // __parameters__ + __buffers__
};

// Parses `__parameters__ = ["a", "b", ]` / `__buffers__ = [...]` of class `cls` in code/.
ClassDecl class_decl(const ZipArchive& zip, const std::string& pre, const std::string& qualname,
                     std::map<std::string, std::string>& code_cache) {
  ClassDecl d;
  const auto dot = qualname.rfind('.');
  if (dot == std::string::npos) return d;
  std::string module = qualname.substr(0, dot), cls = qualname.substr(dot + 1);
  std::string file = pre + "code/";
  for (char c : module) file += c == '.' ? '/' : c;
  file += ".py";
  auto it = code_cache.find(file);
  if (it == code_cache.end()) {
    const ZipArchive::Entry* e = zip.find(file);
    std::string text = e ? zip.read(*e, std::uint64_t(1) << 28) : std::string();
    it = code_cache.emplace(file, std::move(text)).first;
  }
  const std::string& code = it->second;
  const std::string head = "class " + cls + "(";
  std::size_t p = 0;
  while ((p = code.find(head, p)) != std::string::npos && p != 0 && code[p - 1] != '\n') p += head.size();
  if (p == std::string::npos) return d;
  d.found = true;
  std::size_t end = code.find("\nclass ", p + 1);
  if (end == std::string::npos) end = code.size();
  for (const char* list : {"__parameters__ = [", "__buffers__ = ["}) {
    std::size_t q = code.find(list, p);
    if (q == std::string::npos || q > end) continue;
    q += std::strlen(list);
    const std::size_t close = code.find(']', q);
    if (close == std::string::npos || close > end) continue;
    const std::string body = code.substr(q, close - q);
    for (std::size_t a = 0; (a = body.find('"', a)) != std::string::npos;) {
      const std::size_t b = body.find('"', a + 1);
      if (b == std::string::npos) break;
      d.names.insert(body.substr(a + 1, b - a - 1));
      a = b + 1;
    }
  }
  return d;
}

void walk_module(const ZipArchive& zip, const std::string& pre, const Value* obj, const std::string& prefix,
                 int depth, std::unordered_set<const Value*>& seen, std::map<std::string, std::string>& code_cache,
                 TensorFile& out) {
  if (depth > kMaxDepth) fail("'{}': module tree deeper than {} levels", zip.path().string(), kMaxDepth);
  if (!seen.insert(obj).second) return;  // shared or cyclic submodule: first path wins
  if (!obj->state || obj->state->kind != Kind::Dict) return;
  const ClassDecl decl = class_decl(zip, pre, obj->s, code_cache);
  if (!decl.found) spdlog::debug("'{}': no declaration of {} in code/; taking every tensor attribute", zip.path().string(), obj->s);
  for (const auto& [k, v] : obj->state->dict) {
    if (k->kind != Kind::Str) continue;
    if (v->kind == Kind::Tensor) {
      if (!decl.found || decl.names.count(k->s)) add_tensor(out, prefix + k->s, v->tensor);
    } else if (v->kind == Kind::Object && v->s.rfind("__torch__.", 0) == 0) {
      walk_module(zip, pre, v, prefix + k->s + ".", depth + 1, seen, code_cache, out);
    }
  }
}

const Value* follow(const Value* v, const std::vector<std::string>& path, const std::string& file) {
  std::string at;
  for (const auto& key : path) {
    const Value* next = v->get(key);
    if (!next)
      fail("'{}': no member '{}' at {} of the checkpoint (a {})", file, key, at.empty() ? "the top level" : "'" + at + "'",
           pickle::kind_name(v->kind));
    at += (at.empty() ? "" : ".") + key;
    v = next;
  }
  return v;
}

bool holds_tensors(const Value* v) {
  if (v->kind != Kind::Dict && v->kind != Kind::Object) return false;
  for (const auto& kv : v->dict)
    if (kv.second->kind == Kind::Tensor) return true;
  return false;
}

std::string top_level_summary(const Value* root) {
  if (root->kind != Kind::Dict) return std::string("a ") + pickle::kind_name(root->kind);
  std::string s;
  for (const auto& [k, v] : root->dict) s += (s.empty() ? "" : ", ") + k->repr(1) + " (" + pickle::kind_name(v->kind) + ")";
  return "keys " + s;
}
}  // namespace

TensorFile read_torch_zip(const fs::path& path, const TorchZipOptions& opts) {
  const std::string file = path.string();
  ZipArchive zip = ZipArchive::open(io::MappedFile::open(path));
  const std::string prefix = torch_zip_prefix(zip);
  const std::string pre = prefix.empty() ? "" : prefix + "/";
  if (const auto* bo = zip.find(pre + "byteorder")) {
    const std::string order = trim(zip.read(*bo, 64));
    if (order != "little") fail("'{}': byte order '{}' is not supported (only little-endian)", file, order);
  }
  const bool script = is_torchscript(zip);
  const ZipArchive::Entry* pkl = zip.find(pre + "data.pkl");
  const std::string bytes = zip.read(*pkl, kMaxPickle);
  StorageLoader loader(zip, pre);
  auto doc = pickle::unpickle(bytes, file, [&](const Value& pid, pickle::Document& d) { return loader(pid, d); });
  const Value* root = doc->root;

  TensorFile out;
  out.path = path;
  out.format = script ? Format::TorchScript : Format::TorchZip;
  if (const auto* v = zip.find(pre + "version")) out.metadata["archive_version"] = trim(zip.read(*v, 64));
  out.metadata["archive_folder"] = prefix;

  if (script) {
    if (root->kind != Kind::Object || root->s.rfind("__torch__.", 0) != 0)
      fail("'{}': TorchScript data.pkl does not hold a module (got {})", file, root->repr(1));
    out.metadata["torchscript_class"] = root->s.substr(std::strlen("__torch__."));
    std::unordered_set<const Value*> seen;
    std::map<std::string, std::string> code_cache;
    walk_module(zip, pre, root, "", 0, seen, code_cache, out);
    return out;
  }

  // Scalar top-level entries become metadata (epoch, global_step, pytorch-lightning_version).
  if (root->kind == Kind::Dict)
    for (const auto& [k, v] : root->dict)
      if (k->kind == Kind::Str && v->is_scalar()) out.metadata[k->s] = v->repr(0);

  const Value* sd = nullptr;
  if (opts.state_dict_path) {
    sd = follow(root, *opts.state_dict_path, file);
  } else if (holds_tensors(root) || (root->kind == Kind::Dict && root->dict.empty())) {
    sd = root;
  } else if (const Value* v = root->get("state_dict"); v && (v->kind == Kind::Dict || v->kind == Kind::Object)) {
    sd = v;
    out.metadata["state_dict_path"] = "state_dict";
  } else {
    fail("'{}': cannot find a state dict (no tensors at the top level and no 'state_dict' member; top level: {})",
         file, top_level_summary(root));
  }
  // A dict, or a placeholder of a dict subclass whose items came from SETITEMS.
  if (sd->kind != Kind::Dict && !(sd->kind == Kind::Object && !sd->dict.empty()))
    fail("'{}': the state dict is a {}, not a dict", file, pickle::kind_name(sd->kind));
  std::size_t skipped = 0;
  for (const auto& [k, v] : sd->dict) {
    if (k->kind == Kind::Str && v->kind == Kind::Tensor) add_tensor(out, k->s, v->tensor);
    else ++skipped;
  }
  if (skipped) {
    out.metadata["non_tensor_entries"] = std::to_string(skipped);
    spdlog::debug("'{}': {} non-tensor entries in the state dict ignored", file, skipped);
  }
  return out;
}

}  // namespace rdm::formats
