// numpy .npy / .npz reader and writer. Port of numpy/lib/format.py (magic, header dict
// {'descr', 'fortran_order', 'shape'}, padding) and of numpy's savez (a zip of <name>.npy).
#include "rdm/formats/npy.hpp"
#include "rdm/formats/npy_strings.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>

#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/io/mapped_file.hpp"
#include "rdm/formats/zip.hpp"

namespace rdm::formats {
namespace fs = std::filesystem;

namespace {
constexpr std::size_t kMaxHeader = 1 << 20;

struct Header {
  char endian = '<';
  char kind = 'f';
  int itemsize = 4;
  std::vector<std::int64_t> shape;
  std::size_t data_offset = 0;
};

// A tiny parser for the Python dict literal of the header.
class HeaderParser {
 public:
  HeaderParser(std::string_view s, const std::string& name) : s_(s), name_(name) {}
  template <typename... A>
  [[noreturn]] void err(fmt::format_string<A...> f, A&&... a) {
    fail("'{}': malformed .npy header: {}", name_, fmt::format(f, std::forward<A>(a)...));
  }
  void ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\n' || s_[p_] == '\t')) ++p_;
  }
  bool eat(char c) {
    ws();
    if (p_ < s_.size() && s_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) err("expected '{}' at offset {}", c, p_);
  }
  std::string str() {
    ws();
    if (p_ >= s_.size() || (s_[p_] != '\'' && s_[p_] != '"')) err("expected a string at offset {}", p_);
    const char q = s_[p_++];
    const std::size_t e = s_.find(q, p_);
    if (e == std::string_view::npos) err("unterminated string");
    std::string r(s_.substr(p_, e - p_));
    p_ = e + 1;
    return r;
  }
  std::int64_t integer() {
    ws();
    std::size_t b = p_;
    while (p_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p_]))) ++p_;
    if (b == p_ || p_ - b > 18) err("expected a non-negative dimension at offset {}", b);
    if (p_ < s_.size() && s_[p_] == 'L') ++p_;
    return std::stoll(std::string(s_.substr(b, p_ - b)));
  }
  bool boolean() {
    ws();
    for (const auto& [word, v] : {std::pair<const char*, bool>{"True", true}, {"False", false}}) {
      const std::size_t n = std::strlen(word);
      if (s_.substr(p_, n) == word) {
        p_ += n;
        return v;
      }
    }
    err("expected True or False at offset {}", p_);
  }
  std::string_view s_;
  std::size_t p_ = 0;
  const std::string& name_;
};

Header parse_header(const std::uint8_t* d, std::size_t size, const std::string& name) {
  if (size < 10 || std::memcmp(d, "\x93NUMPY", 6) != 0) fail("'{}' is not a .npy file (bad magic)", name);
  const int major = d[6];
  std::size_t hlen, start;
  if (major == 1) {
    hlen = d[8] | (std::size_t(d[9]) << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) fail("'{}': truncated .npy header", name);
    hlen = d[8] | (std::size_t(d[9]) << 8) | (std::size_t(d[10]) << 16) | (std::size_t(d[11]) << 24);
    start = 12;
  } else {
    fail("'{}': unsupported .npy format version {}.{}", name, major, d[7]);
  }
  if (hlen > kMaxHeader) fail("'{}': .npy header length {} is too large", name, hlen);
  if (hlen > size - start) fail("'{}': truncated .npy file (header needs {} bytes, {} left)", name, hlen, size - start);
  HeaderParser p(std::string_view(reinterpret_cast<const char*>(d + start), hlen), name);
  Header h;
  h.data_offset = start + hlen;
  std::string descr;
  bool have_descr = false, have_order = false, have_shape = false, fortran = false;
  p.expect('{');
  while (!p.eat('}')) {
    const std::string key = p.str();
    p.expect(':');
    if (key == "descr") {
      p.ws();
      if (p.p_ < p.s_.size() && p.s_[p.p_] == '[')
        fail("'{}': structured (record) dtypes are not supported", name);
      descr = p.str();
      have_descr = true;
    } else if (key == "fortran_order") {
      fortran = p.boolean();
      have_order = true;
    } else if (key == "shape") {
      p.expect('(');
      while (!p.eat(')')) {
        h.shape.push_back(p.integer());
        if (h.shape.size() > 64) p.err("more than 64 dimensions");
        if (!p.eat(',')) {
          p.expect(')');
          break;
        }
      }
      have_shape = true;
    } else {
      p.err("unknown key '{}'", key);
    }
    if (!p.eat(',')) {
      p.expect('}');
      break;
    }
  }
  if (!have_descr || !have_order || !have_shape) p.err("needs descr, fortran_order and shape");
  if (fortran)
    fail("'{}': Fortran-order arrays are not supported (save with numpy.ascontiguousarray first)", name);
  if (descr.size() < 2) fail("'{}': unsupported dtype '{}'", name, descr);
  h.endian = descr[0];
  h.kind = descr[1];
  if (h.kind == 'O') fail("'{}': object arrays are not supported (dtype '{}'; they need pickle)", name, descr);
  if (h.endian != '<' && h.endian != '>' && h.endian != '|' && h.endian != '=')
    fail("'{}': unsupported dtype '{}'", name, descr);
  const std::string digits = descr.substr(2);
  const std::size_t max_digits = (h.kind == 'U' || h.kind == 'S') ? 6 : 2;  // string widths: <U14, |S100
  if (digits.empty() || digits.size() > max_digits || digits.find_first_not_of("0123456789") != std::string::npos)
    fail("'{}': unsupported dtype '{}'", name, descr);
  h.itemsize = std::stoi(digits);
  return h;
}

// torch dtype of the stored element type, and the dtype we hand out.
torch::Dtype stored_dtype(const Header& h, const std::string& name, const std::string& descr) {
  switch (h.kind) {
    case 'f':
      if (h.itemsize == 2) return torch::kFloat16;
      if (h.itemsize == 4) return torch::kFloat32;
      if (h.itemsize == 8) return torch::kFloat64;
      break;
    case 'i':
      if (h.itemsize == 1) return torch::kInt8;
      if (h.itemsize == 2) return torch::kInt16;
      if (h.itemsize == 4) return torch::kInt32;
      if (h.itemsize == 8) return torch::kInt64;
      break;
    case 'u':
      if (h.itemsize == 1) return torch::kUInt8;
      if (h.itemsize == 2) return torch::kInt16;  // reinterpreted below
      if (h.itemsize == 4) return torch::kInt32;
      if (h.itemsize == 8) return torch::kInt64;
      break;
    case 'b':
      if (h.itemsize == 1) return torch::kBool;
      break;
    case 'c':
      if (h.itemsize == 8) return torch::kComplexFloat;
      if (h.itemsize == 16) return torch::kComplexDouble;
      break;
  }
  fail("'{}': unsupported dtype '{}'", name, descr);
}

std::string descr_of(const Header& h) { return fmt::format("{}{}{}", h.endian, h.kind, h.itemsize); }

// Builds the tensor from the data bytes (aliasing `keep` when possible).
torch::Tensor make_tensor(const Header& h, const std::uint8_t* data, std::size_t avail, const std::string& name,
                          std::shared_ptr<const io::MappedFile> keep) {
  const std::string descr = descr_of(h);
  const torch::Dtype dt = stored_dtype(h, name, descr);
  std::uint64_t numel = 1;
  for (auto n : h.shape) {
    if (n && numel > (std::uint64_t(1) << 62) / static_cast<std::uint64_t>(n)) fail("'{}': impossible shape", name);
    numel *= static_cast<std::uint64_t>(n);
  }
  const std::uint64_t need = numel * static_cast<std::uint64_t>(h.itemsize);
  if (need > avail)
    fail("'{}': truncated .npy data: shape and dtype '{}' need {} bytes, the file has {}", name, descr, need, avail);
  auto opts = torch::TensorOptions().dtype(dt);
  const bool swap = h.endian == '>' && h.itemsize > 1;
  const bool convert_unsigned = h.kind == 'u' && h.itemsize > 1;
  torch::Tensor t;
  if (!swap && !convert_unsigned && keep && numel > 0 && reinterpret_cast<std::uintptr_t>(data) % h.itemsize == 0) {
    t = torch::from_blob(const_cast<std::uint8_t*>(data), h.shape, [keep](void*) mutable { keep.reset(); }, opts);
  } else {
    t = torch::empty(h.shape, opts);
    if (need) std::memcpy(t.data_ptr(), data, need);
    if (swap) {
      auto* b = static_cast<std::uint8_t*>(t.data_ptr());
      const int part = h.kind == 'c' ? h.itemsize / 2 : h.itemsize;  // complex: swap each half
      for (std::uint64_t k = 0; k < need; k += part) std::reverse(b + k, b + k + part);
    }
  }
  if (h.kind == 'b') {
    const auto* b = static_cast<const std::uint8_t*>(t.data_ptr());
    for (std::uint64_t k = 0; k < numel; ++k)
      if (b[k] > 1) fail("'{}': boolean array holds the byte value {}", name, b[k]);
  }
  if (convert_unsigned) {
    if (h.itemsize == 2) {
      t = t.to(torch::kInt32).bitwise_and(0xffff);
    } else if (h.itemsize == 4) {
      t = t.to(torch::kInt64).bitwise_and(static_cast<int64_t>(0xffffffffLL));
    } else if (numel && t.lt(0).any().item<bool>()) {
      fail("'{}': uint64 values above 2^63-1 cannot be represented", name);
    }
  }
  return t;
}

// numpy string arrays: |S<n> (bytes, NUL-padded) and <U<n> / >U<n> (UTF-32, NUL-padded),
// each element to UTF-8 without its trailing NULs (as numpy returns them).
std::vector<std::string> strings_from_bytes(const std::uint8_t* d, std::size_t size, const std::string& name,
                                            std::vector<int64_t>* shape) {
  const Header h = parse_header(d, size, name);
  if (h.kind != 'U' && h.kind != 'S') fail("'{}': not a string array (dtype '{}')", name, descr_of(h));
  const std::size_t width = h.kind == 'U' ? static_cast<std::size_t>(h.itemsize) * 4 : h.itemsize;
  std::uint64_t numel = 1;
  for (auto n : h.shape) {
    if (n && numel > (std::uint64_t(1) << 40) / static_cast<std::uint64_t>(n)) fail("'{}': impossible shape", name);
    numel *= static_cast<std::uint64_t>(n);
  }
  const std::size_t avail = size - h.data_offset;
  if (width && numel > avail / width)
    fail("'{}': truncated .npy data: {} strings of {} bytes need more than the {} bytes left", name, numel, width, avail);
  if (shape) *shape = h.shape;
  std::vector<std::string> out;
  out.reserve(static_cast<std::size_t>(numel));
  const std::uint8_t* p = d + h.data_offset;
  for (std::uint64_t i = 0; i < numel; ++i, p += width) {
    std::string s;
    if (h.kind == 'S') {
      std::size_t n = width;
      while (n > 0 && p[n - 1] == 0) --n;
      s.assign(reinterpret_cast<const char*>(p), n);
    } else {
      std::size_t n = width / 4;
      auto cp_at = [&](std::size_t k) {
        const std::uint8_t* q = p + 4 * k;
        return h.endian == '>' ? (std::uint32_t(q[0]) << 24) | (std::uint32_t(q[1]) << 16) | (std::uint32_t(q[2]) << 8) | q[3]
                               : (std::uint32_t(q[3]) << 24) | (std::uint32_t(q[2]) << 16) | (std::uint32_t(q[1]) << 8) | q[0];
      };
      while (n > 0 && cp_at(n - 1) == 0) --n;
      for (std::size_t k = 0; k < n; ++k) {
        const std::uint32_t c = cp_at(k);
        if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) fail("'{}': string {} holds the invalid code point {:#x}", name, i, c);
        if (c < 0x80) {
          s += static_cast<char>(c);
        } else if (c < 0x800) {
          s += static_cast<char>(0xC0 | (c >> 6));
          s += static_cast<char>(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
          s += static_cast<char>(0xE0 | (c >> 12));
          s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
          s += static_cast<char>(0x80 | (c & 0x3F));
        } else {
          s += static_cast<char>(0xF0 | (c >> 18));
          s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
          s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
          s += static_cast<char>(0x80 | (c & 0x3F));
        }
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

bool is_string_npy(const std::uint8_t* d, std::size_t size) {
  if (size < 10 || std::memcmp(d, "\x93NUMPY", 6) != 0) return false;
  try {
    const Header h = parse_header(d, size, "");
    return h.kind == 'U' || h.kind == 'S';
  } catch (const Error&) {
    return false;
  }
}

torch::Tensor from_bytes(const std::uint8_t* d, std::size_t size, const std::string& name,
                         std::shared_ptr<const io::MappedFile> keep) {
  const Header h = parse_header(d, size, name);
  return make_tensor(h, d + h.data_offset, size - h.data_offset, name, std::move(keep));
}

const char* npy_descr(torch::Dtype dt) {
  switch (dt) {
    case torch::kFloat16: return "<f2";
    case torch::kFloat32: return "<f4";
    case torch::kFloat64: return "<f8";
    case torch::kInt8: return "|i1";
    case torch::kInt16: return "<i2";
    case torch::kInt32: return "<i4";
    case torch::kInt64: return "<i8";
    case torch::kUInt8: return "|u1";
    case torch::kBool: return "|b1";
    case torch::kComplexFloat: return "<c8";
    case torch::kComplexDouble: return "<c16";
    default: return nullptr;
  }
}
}  // namespace

torch::Tensor read_npy(const fs::path& path) {
  auto map = io::MappedFile::open(path);
  return from_bytes(map->data(), map->size(), path.string(), map);
}

torch::Tensor parse_npy(std::string_view bytes, const std::string& name) {
  return from_bytes(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), name, nullptr);
}

std::string npy_header(torch::ScalarType dtype, const std::vector<int64_t>& sizes) {
  const char* descr = npy_descr(dtype);
  if (!descr) fail("dtype {} cannot be stored in a .npy file", c10::toString(dtype));
  std::string shape;
  if (sizes.empty()) shape = "()";
  else if (sizes.size() == 1) shape = fmt::format("({},)", sizes[0]);
  else shape = fmt::format("({})", fmt::join(sizes, ", "));
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, shape);
  // Pad with spaces so that the data starts at a multiple of 64, header ends with '\n'.
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  return out;
}

std::string npy_bytes(const torch::Tensor& tensor) {
  torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  std::string out = npy_header(t.scalar_type(), t.sizes().vec());
  out.append(static_cast<const char*>(t.data_ptr()), static_cast<std::size_t>(t.numel() * t.element_size()));
  return out;
}

// npy_bytes(tensor), written atomically without a copy of the data in memory.
void write_npy(const fs::path& path, const torch::Tensor& tensor) {
  torch::Tensor t;
  std::string header;
  try {
    t = tensor.detach().to(torch::kCPU).contiguous();
    header = npy_header(t.scalar_type(), t.sizes().vec());
  } catch (const Error& e) {
    fail("cannot write '{}': {}", path.string(), e.what());
  }
  io::AtomicOutput out(path);
  {
    std::ofstream f(out.tmp_path(), std::ios::binary | std::ios::trunc);
    if (!f) fail("cannot write '{}': {}", path.string(), std::strerror(errno));
    f.write(header.data(), static_cast<std::streamsize>(header.size()));
    f.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
    f.flush();
    if (!f) fail("cannot write '{}': write failed ({})", path.string(), std::strerror(errno));
  }
  out.commit();
}

namespace {
// The array name of an .npz member ("x.npy" -> "x"); nothing for a folder entry; rdm::Error for
// any other member (an .npz holds only .npy arrays).
std::optional<std::string> npz_member_key(const std::string& file, const std::string& name) {
  if (!name.empty() && name.back() == '/') return std::nullopt;
  if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0)
    fail("'{}': member '{}' is not a .npy array", file, name);
  return name.substr(0, name.size() - 4);
}
}  // namespace

TensorFile read_npz_file(const fs::path& path) {
  const std::string file = path.string();
  ZipArchive zip = ZipArchive::open(path);
  TensorFile out;
  out.path = path;
  out.format = Format::Npz;
  for (const auto& e : zip.entries()) {
    const auto member = npz_member_key(file, e.name);
    if (!member) continue;
    const std::string& key = *member;
    const std::string where = file + ":" + e.name;
    torch::Tensor t;
    if (const std::uint8_t* p = zip.stored_data(e)) {
      t = from_bytes(p, static_cast<std::size_t>(e.uncompressed_size), where, zip.file());
    } else {
      const std::string bytes = zip.read(e, std::numeric_limits<std::uint64_t>::max());
      t = parse_npy(bytes, where);
    }
    out.order.push_back(key);
    out.tensors[key] = t;
  }
  return out;
}

std::map<std::string, torch::Tensor> read_npz(const fs::path& path) { return read_npz_file(path).tensors; }

NpzArrays read_npz_arrays(const fs::path& path) {
  const std::string file = path.string();
  ZipArchive zip = ZipArchive::open(path);
  NpzArrays out;
  for (const auto& e : zip.entries()) {
    const auto member = npz_member_key(file, e.name);
    if (!member) continue;
    const std::string& key = *member;
    const std::string where = file + ":" + e.name;
    std::string copy;
    const std::uint8_t* p = zip.stored_data(e);
    std::size_t n = static_cast<std::size_t>(e.uncompressed_size);
    if (!p) {
      copy = zip.read(e, std::numeric_limits<std::uint64_t>::max());
      p = reinterpret_cast<const std::uint8_t*>(copy.data());
      n = copy.size();
    }
    if (is_string_npy(p, n)) {
      out.strings[key] = strings_from_bytes(p, n, where, &out.string_shapes[key]);
    } else {
      out.tensors[key] = copy.empty() && zip.stored_data(e) ? from_bytes(p, n, where, zip.file()) : parse_npy(copy, where);
    }
  }
  return out;
}

std::vector<std::string> parse_npy_strings(std::string_view bytes, const std::string& name,
                                           std::vector<int64_t>* shape) {
  return strings_from_bytes(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), name, shape);
}

void write_npz(const fs::path& path, const std::map<std::string, torch::Tensor>& arrays, bool compressed) {
  std::vector<std::pair<std::string, std::string>> members;
  for (const auto& [k, t] : arrays) {
    try {
      members.emplace_back(k + ".npy", npy_bytes(t));
    } catch (const Error& e) {
      fail("cannot write '{}': array '{}': {}", path.string(), k, e.what());
    }
  }
  ZipWriteOptions o;
  o.deflate = compressed;
  io::write_file_atomic(path, make_zip(members, o));
}

TensorFile read_npy_file(const fs::path& path) {
  TensorFile out;
  out.path = path;
  out.format = Format::Npy;
  const std::string key = path.stem().string();
  out.tensors[key] = read_npy(path);
  out.order.push_back(key);
  return out;
}

}  // namespace rdm::formats
