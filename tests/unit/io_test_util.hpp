// Helpers of the io unit tests: temp files, a pickle writer for hand-made checkpoints.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <torch/types.h>

#include "rdm/formats/zip.hpp"

namespace iotest {
namespace fs = std::filesystem;

inline fs::path tmpdir() {
  fs::path d = fs::temp_directory_path() / ("rdm_io_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

inline fs::path write(const std::string& name, const std::string& bytes) {
  fs::path p = tmpdir() / name;
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p;
}

// Resident set size of this process, bytes.
inline long rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, res = 0;
  f >> pages >> res;
  return res * ::sysconf(_SC_PAGESIZE);
}

inline std::string le(std::uint64_t v, int n) {
  std::string s;
  for (int k = 0; k < n; ++k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
  return s;
}

// Emits pickle opcodes (protocol 2, as torch.save writes them).
struct Pickle {
  std::string b;
  Pickle() { b += "\x80\x02"; }
  Pickle& raw(const std::string& s) { b += s; return *this; }
  Pickle& op(char c) { b.push_back(c); return *this; }
  Pickle& mark() { return op('('); }
  Pickle& tuple() { return op('t'); }
  Pickle& empty_tuple() { return op(')'); }
  Pickle& empty_dict() { return op('}'); }
  Pickle& empty_list() { return op(']'); }
  Pickle& setitems() { return op('u'); }
  Pickle& setitem() { return op('s'); }
  Pickle& appends() { return op('e'); }
  Pickle& reduce() { return op('R'); }
  Pickle& build() { return op('b'); }
  Pickle& newobj() { return op('\x81'); }
  Pickle& none() { return op('N'); }
  Pickle& boolean(bool v) { return op(v ? '\x88' : '\x89'); }
  Pickle& stop() { return op('.'); }
  Pickle& put(int n) { op('q'); return op(static_cast<char>(n)); }
  Pickle& get(int n) { op('h'); return op(static_cast<char>(n)); }
  Pickle& str(const std::string& s) { op('X'); b += le(s.size(), 4); b += s; return *this; }
  Pickle& integer(std::int64_t v) {
    if (v >= 0 && v < 256) { op('K'); return op(static_cast<char>(v)); }
    if (v >= INT32_MIN && v <= INT32_MAX) { op('J'); b += le(static_cast<std::uint32_t>(v), 4); return *this; }
    op('\x8a'); op('\x08'); b += le(static_cast<std::uint64_t>(v), 8); return *this;
  }
  Pickle& real(double v) {
    op('G');
    std::uint64_t bits;
    std::memcpy(&bits, &v, 8);
    for (int k = 7; k >= 0; --k) b.push_back(static_cast<char>((bits >> (8 * k)) & 0xff));
    return *this;
  }
  Pickle& global(const std::string& module, const std::string& name) {
    op('c'); b += module + "\n" + name + "\n"; return *this;
  }
  Pickle& ints(const std::vector<std::int64_t>& v) {
    mark();
    for (auto x : v) integer(x);
    return tuple();
  }
  // torch._utils._rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())
  Pickle& tensor(const std::string& key, const std::string& storage_type, std::int64_t numel, std::int64_t offset,
                 const std::vector<std::int64_t>& size, const std::vector<std::int64_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2");
    mark();
    mark().str("storage").global("torch", storage_type).str(key).str("cpu").integer(numel).tuple().op('Q');
    integer(offset).ints(size).ints(stride).boolean(false);
    global("collections", "OrderedDict").empty_tuple().reduce();
    tuple();
    return reduce();
  }
};

inline std::string bytes_of(const torch::Tensor& t0) {
  torch::Tensor t = t0.contiguous();
  return std::string(static_cast<const char*>(t.data_ptr()), static_cast<std::size_t>(t.numel() * t.element_size()));
}

// A torch.save-like archive: <folder>/data.pkl, <folder>/data/<key>..., <folder>/version.
inline std::string torch_archive(const std::string& folder, const std::string& pickle,
                                 const std::vector<std::pair<std::string, std::string>>& records,
                                 const rdm::formats::ZipWriteOptions& o = {}) {
  std::vector<std::pair<std::string, std::string>> m;
  m.emplace_back(folder + "/data.pkl", pickle);
  for (const auto& [k, v] : records) m.emplace_back(folder + "/data/" + k, v);
  m.emplace_back(folder + "/version", "3\n");
  return rdm::formats::make_zip(m, o);
}

}  // namespace iotest
