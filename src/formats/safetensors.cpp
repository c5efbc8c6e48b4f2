// safetensors reader/writer (format of huggingface/safetensors), validated strictly.
#include "rdm/formats/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/io/mapped_file.hpp"

namespace rdm::formats {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr std::uint64_t kMaxHeader = 100ull << 20;  // 100 MB, as the reference implementation

struct DtypeInfo {
  const char* code;
  torch::Dtype dtype;
};
const DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16},
    {"BF16", torch::kBFloat16}, {"I64", torch::kInt64}, {"I32", torch::kInt32},
    {"I16", torch::kInt16},   {"I8", torch::kInt8},     {"U8", torch::kUInt8},
    {"BOOL", torch::kBool},
};
}  // namespace

torch::Dtype safetensors_dtype(const std::string& code) {
  for (const auto& d : kDtypes)
    if (code == d.code) return d.dtype;
  fail("unsupported safetensors dtype '{}'", code);
}

std::string safetensors_dtype_code(torch::Dtype dtype) {
  for (const auto& d : kDtypes)
    if (dtype == d.dtype) return d.code;
  fail("dtype {} cannot be stored in safetensors", c10::toString(dtype));
}

TensorFile read_safetensors(const fs::path& path) {
  const std::string file = path.string();
  auto map = io::MappedFile::open(path);
  const std::size_t size = map->size();
  if (size < 8) fail("'{}' is not a safetensors file: {} bytes, too short for a header", file, size);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | map->data()[i];
  if (n < 2 || n > kMaxHeader || n > size - 8)
    fail("'{}' is not a valid safetensors file: header length {} out of bounds (file has {} bytes)",
         file, n, size);
  const char* hdr = reinterpret_cast<const char*>(map->data() + 8);
  json j;
  try {
    j = json::parse(hdr, hdr + n);
  } catch (const json::exception& e) {
    fail("'{}' has a malformed safetensors header: {}", file, e.what());
  }
  if (!j.is_object()) fail("'{}' has a malformed safetensors header: not a JSON object", file);

  TensorFile out;
  out.path = path;
  out.format = Format::Safetensors;
  const std::uint8_t* base = map->data() + 8 + n;
  const std::uint64_t buffer_size = size - 8 - n;

  struct Span {
    std::uint64_t b, e;
    std::string name;
  };
  std::vector<Span> spans;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail("'{}': __metadata__ is not an object", file);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail("'{}': __metadata__ entry '{}' is not a string", file, m.key());
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail("'{}': tensor '{}' lacks dtype, shape or data_offsets", file, name);
    if (!v["dtype"].is_string()) fail("'{}': tensor '{}' has a non-string dtype", file, name);
    torch::Dtype dtype;
    try {
      dtype = safetensors_dtype(v["dtype"].get<std::string>());
    } catch (const Error& e) {
      fail("'{}': tensor '{}': {}", file, name, e.what());
    }
    const json& shp = v["shape"];
    const json& off = v["data_offsets"];
    if (!shp.is_array()) fail("'{}': tensor '{}' has a non-array shape", file, name);
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail("'{}': tensor '{}' has malformed data_offsets", file, name);
    std::vector<int64_t> shape;
    std::uint64_t numel = 1;
    for (const auto& d : shp) {
      if (!d.is_number_unsigned()) fail("'{}': tensor '{}' has a negative or non-integer dimension", file, name);
      std::uint64_t dim = d.get<std::uint64_t>();
      if (dim > static_cast<std::uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (dim != 0 && numel > std::numeric_limits<std::uint64_t>::max() / dim))
        fail("'{}': tensor '{}' has an impossible shape", file, name);
      numel *= dim;
      shape.push_back(static_cast<int64_t>(dim));
    }
    const std::uint64_t b = off[0].get<std::uint64_t>(), e = off[1].get<std::uint64_t>();
    const std::uint64_t itemsize = c10::elementSize(dtype);
    if (b > e || e > buffer_size)
      fail("'{}': tensor '{}' data_offsets [{}, {}] lie outside the data buffer ({} bytes)", file, name, b,
           e, buffer_size);
    if (numel > std::numeric_limits<std::uint64_t>::max() / itemsize || numel * itemsize != e - b)
      fail("'{}': tensor '{}' has {} bytes of data but shape and dtype need {}", file, name, e - b,
           numel * itemsize);
    spans.push_back({b, e, name});
    const std::uint8_t* ptr = base + b;
    auto opts = torch::TensorOptions().dtype(dtype);
    torch::Tensor t;
    if (reinterpret_cast<std::uintptr_t>(ptr) % itemsize == 0 && numel > 0) {
      auto keep = map;
      t = torch::from_blob(const_cast<std::uint8_t*>(ptr), shape, [keep](void*) mutable { keep.reset(); },
                           opts);
    } else {
      t = torch::empty(shape, opts);
      if (numel) std::memcpy(t.data_ptr(), ptr, numel * itemsize);
    }
    out.tensors[name] = t;
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.b < b.b; });
  for (std::size_t i = 1; i < spans.size(); ++i)
    if (spans[i].b < spans[i - 1].e && spans[i].e > spans[i].b)
      fail("'{}': tensors '{}' and '{}' overlap in the data buffer", file, spans[i - 1].name, spans[i].name);
  for (const auto& s : spans) out.order.push_back(s.name);
  return out;
}

void write_safetensors(const fs::path& path, const StateDict& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json hdr = json::object();
  if (!metadata.empty()) hdr["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  std::vector<torch::Tensor> data;
  for (const auto& [name, t0] : tensors) {
    torch::Tensor t = t0.detach().to(torch::kCPU).contiguous();
    std::uint64_t nbytes = static_cast<std::uint64_t>(t.numel()) * t.element_size();
    hdr[name] = {{"dtype", safetensors_dtype_code(t.scalar_type())},
                 {"shape", t.sizes().vec()},
                 {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(t);
  }
  std::string h = hdr.dump();
  while (h.size() % 8) h.push_back(' ');
  std::string bytes;
  bytes.reserve(8 + h.size() + offset);
  std::uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  bytes += h;
  for (const auto& t : data)
    bytes.append(static_cast<const char*>(t.data_ptr()), static_cast<std::size_t>(t.numel() * t.element_size()));
  io::write_file_atomic(path, bytes);
}

}  // namespace rdm::formats
