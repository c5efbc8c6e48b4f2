// BPE learning in the CLIP vocabulary format (see rdm/train/bpe.hpp).
#include "rdm/train/bpe.hpp"

#include <zlib.h>

#include <algorithm>
#include <map>

#include "rdm/clip/tokenizer.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::train {
namespace {

// bytes_to_unicode() of clip/simple_tokenizer.py: printable bytes map to themselves, the others
// to U+0100 + n in byte order; returned as UTF-8.
const std::vector<std::string>& byte_symbols() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const unsigned cp = printable(b) ? static_cast<unsigned>(b) : 256u + static_cast<unsigned>(n++);
      std::string s;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
      t[static_cast<size_t>(b)] = s;
    }
    return t;
  }();
  return table;
}

using Word = std::vector<std::string>;

}  // namespace

std::vector<std::string> learn_bpe(const std::vector<std::string>& texts, int64_t max_merges) {
  std::map<std::string, int64_t> counts;  // piece -> occurrences
  for (const auto& t : texts)
    for (const auto& piece : clip::split_pieces(clip::clean_text(t))) ++counts[piece];
  std::vector<std::pair<Word, int64_t>> words;
  for (const auto& [piece, n] : counts) {
    Word w;
    for (unsigned char c : piece) w.push_back(byte_symbols()[c]);
    if (w.empty()) continue;
    w.back() += "</w>";
    words.emplace_back(std::move(w), n);
  }
  std::vector<std::string> merges;
  while (static_cast<int64_t>(merges.size()) < max_merges) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;
    for (const auto& [w, n] : words)
      for (size_t i = 0; i + 1 < w.size(); ++i) pairs[{w[i], w[i + 1]}] += n;
    auto best = pairs.end();
    for (auto it = pairs.begin(); it != pairs.end(); ++it)
      if (best == pairs.end() || it->second > best->second) best = it;  // first (smallest) pair wins ties
    if (best == pairs.end() || best->second < 2) break;
    const auto [a, b] = best->first;
    merges.push_back(a + " " + b);
    for (auto& [w, n] : words) {
      Word out;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) {
          out.push_back(a + b);
          ++i;
        } else {
          out.push_back(w[i]);
        }
      }
      w = std::move(out);
    }
  }
  return merges;
}

void write_bpe_vocab(const std::filesystem::path& path, const std::vector<std::string>& merges) {
  std::string text = "#version: 0.2 (rdm train)\n";
  for (const auto& m : merges) text += m + "\n";
  // gzip with zlib's deflate (windowBits 15 + 16), fixed header time 0: the same bytes every run.
  z_stream zs{};
  if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) fail("gzip: deflateInit2 failed");
  std::string out(deflateBound(&zs, static_cast<uLong>(text.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(text.data());
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) fail("gzip: deflate failed writing '{}'", path.string());
  out.resize(zs.total_out);
  io::write_file_atomic(path, out);
}

}  // namespace rdm::train
