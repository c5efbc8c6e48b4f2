// CLIP BPE tokenizer: a port of clip/simple_tokenizer.py (bytes_to_unicode, get_pairs,
// SimpleTokenizer.bpe/encode/decode) and clip.tokenize (clip/clip.py), github.com/openai/CLIP.
// Symbols are handled as integer ids (merge results are ids 512 + rank in the reference
// vocabulary); BPE results are cached per piece like the reference's `self.cache`.
#include "rdm/clip/tokenizer.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "clip/text_util.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::clip {
namespace fs = std::filesystem;

namespace {
// Number of merges the reference reads: lines [1, 49152 - 256 - 2 + 1) of the merge file.
constexpr size_t kMergeLinesEnd = 49152 - 256 - 2 + 1;

// bytes_to_unicode(): the printable bytes map to themselves, the other 68 to 256, 257, ...
struct ByteTable {
  char32_t byte_to_char[256];
  int byte_order[256];  // byte -> index in the reference's list `bs` (= its vocabulary id)
  std::unordered_map<char32_t, uint8_t> char_to_byte;
  ByteTable() {
    std::vector<int> bs;
    for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
    for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
    for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
    std::vector<char32_t> cs(bs.begin(), bs.end());
    int n = 0;
    for (int b = 0; b < 256; ++b)
      if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
        bs.push_back(b);
        cs.push_back(256 + n++);
      }
    for (int i = 0; i < 256; ++i) {
      byte_to_char[bs[i]] = cs[i];
      byte_order[bs[i]] = i;
      char_to_byte[cs[i]] = static_cast<uint8_t>(bs[i]);
    }
  }
};
const ByteTable& bytes_table() {
  static ByteTable t;
  return t;
}

std::string read_all_gz(const fs::path& p) {
  gzFile f = gzopen(p.c_str(), "rb");
  if (!f) fail("cannot open CLIP vocabulary '{}'", p.string());
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  int err = 0;
  const char* msg = gzerror(f, &err);
  std::string m = (n < 0 || (err != Z_OK && err != Z_STREAM_END)) ? std::string(msg ? msg : "read error") : "";
  gzclose(f);
  if (!m.empty()) fail("CLIP vocabulary '{}': {}", p.string(), m);
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t b = 0;
  while (true) {
    size_t e = text.find('\n', b);
    if (e == std::string::npos) {
      lines.push_back(text.substr(b));
      break;
    }
    lines.push_back(text.substr(b, e - b));
    b = e + 1;
  }
  return lines;
}

// Python str.split() on ASCII whitespace (merge lines are ASCII-separated).
std::vector<std::string> split_ws(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}
}  // namespace

struct Tokenizer::Impl {
  std::vector<std::string> symbols;                 // id -> symbol (UTF-8)
  std::unordered_map<std::string, int32_t> encoder;  // symbol -> id (later duplicates win)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (a, b) -> (rank, merged id)
  int32_t byte_id[256];      // first characters: byte -> id
  int32_t byte_id_end[256];  // last character + "</w>"
  int64_t sot = -1, eot = -1;

  mutable std::shared_mutex mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  static uint64_t key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

  int32_t id_of(const std::string& s, const char* what) const {
    auto it = encoder.find(s);
    if (it == encoder.end()) fail("CLIP vocabulary: {} '{}' is missing", what, s);
    return it->second;
  }

  void finish(const std::vector<std::pair<std::string, std::string>>& merge_list) {
    const ByteTable& bt = bytes_table();
    for (int b = 0; b < 256; ++b) {
      std::string c;
      utf8_append(c, bt.byte_to_char[b]);
      byte_id[b] = id_of(c, "byte symbol");
      byte_id_end[b] = id_of(c + "</w>", "byte symbol");
    }
    int32_t rank = 0;
    for (auto& [a, b] : merge_list) {
      auto ia = encoder.find(a), ib = encoder.find(b), ic = encoder.find(a + b);
      if (ia != encoder.end() && ib != encoder.end() && ic != encoder.end())
        merges.emplace(key(ia->second, ib->second), std::make_pair(rank, ic->second));  // first rank wins
      ++rank;
    }
    sot = id_of("<|startoftext|>", "special token");
    eot = id_of("<|endoftext|>", "special token");
  }

  // SimpleTokenizer.bpe on one regex piece (raw UTF-8); returns ids.
  std::vector<int32_t> bpe(std::string_view piece) const {
    std::vector<int32_t> word;
    word.reserve(piece.size());
    for (size_t i = 0; i < piece.size(); ++i) {
      auto b = static_cast<uint8_t>(piece[i]);
      word.push_back(i + 1 == piece.size() ? byte_id_end[b] : byte_id[b]);
    }
    while (word.size() > 1) {
      int32_t best_rank = INT32_MAX, first = 0, second = 0, merged = 0;
      for (size_t i = 0; i + 1 < word.size(); ++i) {
        auto it = merges.find(key(word[i], word[i + 1]));
        if (it != merges.end() && it->second.first < best_rank) {
          best_rank = it->second.first;
          first = word[i];
          second = word[i + 1];
          merged = it->second.second;
        }
      }
      if (best_rank == INT32_MAX) break;
      size_t w = 0;
      for (size_t i = 0; i < word.size();) {
        if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
          word[w++] = merged;
          i += 2;
        } else {
          word[w++] = word[i++];
        }
      }
      word.resize(w);
    }
    return word;
  }

  void encode_piece(std::string_view piece, std::vector<int64_t>& ids) const {
    if (piece == "<|startoftext|>") return ids.push_back(sot);
    if (piece == "<|endoftext|>") return ids.push_back(eot);
    std::string k(piece);
    {
      std::shared_lock lock(mu);
      auto it = cache.find(k);
      if (it != cache.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> r = bpe(piece);
    ids.insert(ids.end(), r.begin(), r.end());
    std::unique_lock lock(mu);
    if (cache.size() > 1000000) cache.clear();  // bound memory on adversarial input
    cache.emplace(std::move(k), std::move(r));
  }
};

Tokenizer Tokenizer::from_merges(const std::vector<std::string>& merge_lines) {
  auto impl = std::make_shared<Impl>();
  const ByteTable& bt = bytes_table();
  // vocab = byte chars (in `bs` order) + the same with </w> + merges + specials.
  std::vector<std::string> vocab(256);
  for (int b = 0; b < 256; ++b) utf8_append(vocab[bt.byte_order[b]], bt.byte_to_char[b]);
  for (int i = 0; i < 256; ++i) vocab.push_back(vocab[i] + "</w>");
  std::vector<std::pair<std::string, std::string>> merge_list;
  for (size_t i = 0; i < merge_lines.size(); ++i) {
    auto parts = split_ws(merge_lines[i]);
    if (parts.empty()) continue;
    if (parts.size() != 2) fail("CLIP vocabulary: merge line {} has {} parts, expected 2", i + 2, parts.size());
    merge_list.emplace_back(parts[0], parts[1]);
    vocab.push_back(parts[0] + parts[1]);
  }
  vocab.push_back("<|startoftext|>");
  vocab.push_back("<|endoftext|>");
  for (size_t i = 0; i < vocab.size(); ++i) impl->encoder[vocab[i]] = static_cast<int32_t>(i);
  impl->symbols = std::move(vocab);
  impl->finish(merge_list);
  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

Tokenizer Tokenizer::load(const fs::path& vocab) {
  fs::path vocab_json, merges_txt;
  if (fs::is_directory(vocab)) {
    vocab_json = vocab / "vocab.json";
    merges_txt = vocab / "merges.txt";
  } else if (vocab.extension() == ".json") {
    vocab_json = vocab;
    merges_txt = vocab.parent_path() / "merges.txt";
  }
  if (vocab_json.empty()) {
    if (!fs::is_regular_file(vocab)) fail("CLIP vocabulary '{}' does not exist", vocab.string());
    auto lines = split_lines(read_all_gz(vocab));
    if (lines.size() < 2) fail("CLIP vocabulary '{}' has no merges", vocab.string());
    std::vector<std::string> merges(lines.begin() + 1, lines.begin() + std::min(lines.size(), kMergeLinesEnd));
    try {
      return from_merges(merges);
    } catch (const Error& e) {
      fail("'{}': {}", vocab.string(), e.what());
    }
  }
  // Hugging Face: vocab.json (symbol -> id) + merges.txt ("#version" line, then merges).
  for (auto& p : {vocab_json, merges_txt})
    if (!fs::is_regular_file(p)) fail("CLIP vocabulary: '{}' does not exist", p.string());
  auto impl = std::make_shared<Impl>();
  nlohmann::json j;
  try {
    std::ifstream in(vocab_json, std::ios::binary);
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    fail("CLIP vocabulary '{}': invalid JSON ({})", vocab_json.string(), e.what());
  }
  if (!j.is_object()) fail("CLIP vocabulary '{}': expected an object symbol -> id", vocab_json.string());
  int64_t max_id = -1;
  for (auto& [k, v] : j.items()) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 10000000)
      fail("CLIP vocabulary '{}': bad id for '{}'", vocab_json.string(), k);
    impl->encoder[k] = v.get<int32_t>();
    max_id = std::max<int64_t>(max_id, v.get<int64_t>());
  }
  impl->symbols.assign(static_cast<size_t>(max_id + 1), std::string());
  for (auto& [k, v] : impl->encoder) impl->symbols[static_cast<size_t>(v)] = k;
  auto lines = split_lines(read_all_gz(merges_txt));
  std::vector<std::pair<std::string, std::string>> merge_list;
  for (size_t i = 1; i < std::min(lines.size(), kMergeLinesEnd); ++i) {
    auto parts = split_ws(lines[i]);
    if (parts.empty()) continue;
    if (parts.size() != 2) fail("'{}': merge line {} has {} parts, expected 2", merges_txt.string(), i + 1, parts.size());
    merge_list.emplace_back(parts[0], parts[1]);
  }
  try {
    impl->finish(merge_list);
  } catch (const Error& e) {
    fail("'{}': {}", vocab_json.string(), e.what());
  }
  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

Tokenizer::Trace Tokenizer::trace(const std::string& text) const {
  Trace t;
  t.cleaned = clean_text(text);
  std::vector<std::string_view> pieces;
  split_pieces(t.cleaned, pieces);
  for (auto p : pieces) {
    t.pieces.emplace_back(p);
    size_t before = t.ids.size();
    impl_->encode_piece(p, t.ids);
    for (size_t i = before; i < t.ids.size(); ++i) t.bpe_tokens.push_back(symbol(t.ids[i]));
  }
  return t;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  std::string cleaned = clean_text(text);
  thread_local std::vector<std::string_view> pieces;
  split_pieces(cleaned, pieces);
  std::vector<int64_t> ids;
  ids.reserve(cleaned.size() / 3 + 4);
  for (auto p : pieces) impl_->encode_piece(p, ids);
  return ids;
}

torch::Tensor Tokenizer::tokenize(const std::vector<std::string>& texts, int64_t context_length,
                                  bool truncate) const {
  if (context_length < 2) fail("CLIP tokenize: context_length must be at least 2, got {}", context_length);
  auto out = torch::zeros({static_cast<int64_t>(texts.size()), context_length}, torch::kInt64);
  auto acc = out.accessor<int64_t, 2>();
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int64_t> ids = encode(texts[i]);
    auto n = static_cast<int64_t>(ids.size()) + 2;
    if (n > context_length) {
      std::string shown = texts[i].size() > 60 ? texts[i].substr(0, 60) + "..." : texts[i];
      if (!truncate)
        fail("Input \"{}\" is too long for context length {} ({} tokens with start and end)", shown,
             context_length, n);
      spdlog::warn("prompt \"{}\" has {} tokens with start and end; truncated to {}", shown, n, context_length);
    }
    acc[i][0] = impl_->sot;
    // [sot] + ids + [eot]; truncation keeps the first context_length and sets the last to eot.
    int64_t m = std::min<int64_t>(static_cast<int64_t>(ids.size()), context_length - 2);
    for (int64_t k = 0; k < m; ++k) acc[i][k + 1] = ids[static_cast<size_t>(k)];
    acc[i][m + 1] = impl_->eot;
  }
  return out;
}

std::string Tokenizer::symbol(int64_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(impl_->symbols.size())) return {};
  return impl_->symbols[static_cast<size_t>(id)];
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  const ByteTable& bt = bytes_table();
  std::string bytes;
  for (int64_t id : ids) {
    if (id < 0 || id >= static_cast<int64_t>(impl_->symbols.size())) fail("CLIP decode: token id {} out of range", id);
    for (char32_t c : utf8_decode(impl_->symbols[static_cast<size_t>(id)], "vocabulary symbol")) {
      auto it = bt.char_to_byte.find(c);
      if (it == bt.char_to_byte.end()) fail("CLIP decode: symbol of id {} is not in the byte alphabet", id);
      bytes.push_back(static_cast<char>(it->second));
    }
  }
  // bytes.decode('utf-8', errors='replace'): one U+FFFD per maximal invalid subpart.
  std::string text;
  size_t i = 0, n = bytes.size();
  while (i < n) {
    auto c = static_cast<uint8_t>(bytes[i]);
    if (c < 0x80) {
      text.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    int len = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    if (len == 0) {
      utf8_append(text, 0xFFFD);
      ++i;
      continue;
    }
    size_t k = 1;
    for (; k < static_cast<size_t>(len) && i + k < n; ++k) {
      auto cc = static_cast<uint8_t>(bytes[i + k]);
      if (k == 1 ? (cc < lo || cc > hi) : (cc & 0xC0) != 0x80) break;
    }
    if (k == static_cast<size_t>(len)) text.append(bytes, i, k);
    else utf8_append(text, 0xFFFD);
    i += k;
  }
  std::string out;
  for (size_t p = 0; p < text.size();) {
    if (text.compare(p, 4, "</w>") == 0) {
      out.push_back(' ');
      p += 4;
    } else {
      out.push_back(text[p++]);
    }
  }
  return out;
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->symbols.size()); }
int64_t Tokenizer::sot_token() const { return impl_->sot; }
int64_t Tokenizer::eot_token() const { return impl_->eot; }

}  // namespace rdm::clip
