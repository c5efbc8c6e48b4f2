// CLIP byte-level BPE tokenizer, a port of clip/simple_tokenizer.py (SimpleTokenizer) and
// clip.tokenize from github.com/openai/CLIP (clip/clip.py).
//
// Text pipeline (reference `SimpleTokenizer.encode`): html.unescape twice, strip, collapse
// Unicode whitespace runs to one space, strip, Python str.lower() (full Unicode), split with
// the reference pattern (PCRE2, UTF + UCP), byte-to-unicode mapping, BPE with "</w>".
// ftfy.fix_text is NOT applied (see README "Embedding prompts and images").
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace rdm::clip {

// Text cleanup of the reference: html.unescape(html.unescape(text)).strip(), then
// re.sub(r"\s+", " ", .).strip(), then .lower(). Throws rdm::Error for invalid UTF-8.
std::string clean_text(const std::string& text);
// Python's html.unescape (HTML5 named references, numeric references with the same
// replacement rules). Input must be valid UTF-8.
std::string html_unescape(const std::string& text);
// Python's str.lower() on UTF-8 text (full Unicode case mapping, final sigma, U+0130).
std::string python_lower(const std::string& text);
// The reference pre-tokenizer split of already cleaned text (the `pieces`).
std::vector<std::string> split_pieces(const std::string& cleaned);

class Tokenizer {
 public:
  static constexpr int64_t kSotToken = 49406;
  static constexpr int64_t kEotToken = 49407;

  // `vocab`: bpe_simple_vocab_16e6.txt.gz (gzip or plain text merge list), or a directory /
  // vocab.json path with merges.txt beside it (Hugging Face layout).
  static Tokenizer load(const std::filesystem::path& vocab);
  // Builds from an in-memory merge list (the lines after the header line, "a b" each);
  // the vocabulary is derived as the reference does. Used by tests.
  static Tokenizer from_merges(const std::vector<std::string>& merges);

  // BPE ids without start/end tokens (SimpleTokenizer.encode).
  std::vector<int64_t> encode(const std::string& text) const;
  // clip.tokenize: int64 [N, context_length], [sot] + ids + [eot], zero padded. Too long rows:
  // truncate=true keeps the first context_length ids with eot last (logs a warning);
  // truncate=false throws rdm::Error naming the prompt.
  torch::Tensor tokenize(const std::vector<std::string>& texts, int64_t context_length = 77,
                         bool truncate = true) const;

  // Every stage of encode(), for tests and `rdm embed --tokens`.
  struct Trace {
    std::string cleaned;
    std::vector<std::string> pieces;      // regex split of `cleaned`
    std::vector<std::string> bpe_tokens;  // vocabulary symbols (byte alphabet, "</w>")
    std::vector<int64_t> ids;
  };
  Trace trace(const std::string& text) const;
  // SimpleTokenizer.decode: symbols joined, bytes decoded (invalid UTF-8 replaced by U+FFFD),
  // "</w>" turned into a space.
  std::string decode(const std::vector<int64_t>& ids) const;
  // Vocabulary symbol of an id ("" when out of range).
  std::string symbol(int64_t id) const;

  int64_t vocab_size() const;
  int64_t sot_token() const;
  int64_t eot_token() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;  // shared: copies share the (thread-safe) BPE cache
};

}  // namespace rdm::clip
