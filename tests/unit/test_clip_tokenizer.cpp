// Unit tests: CLIP tokenizer (text cleanup, split, BPE on a small hand-made merge list,
// vocabulary file formats, truncation, errors).
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <torch/types.h>

#include "rdm/clip/tokenizer.hpp"
#include "rdm/runtime/error.hpp"

namespace fs = std::filesystem;
using rdm::clip::Tokenizer;

namespace {
fs::path tmpdir() {
  fs::path d = fs::temp_directory_path() / ("rdm_unit_clip_tok_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}
// Byte ids of the reference byte alphabet for printable ASCII: '!' = 0 ... '~' = 93.
int64_t byte_id(char c) { return c - '!'; }

const std::vector<std::string> kMerges = {"h e", "l o</w>", "he l", "hel lo</w>", "w o", "wo r", "l d</w>", "wor ld</w>"};
}  // namespace

TEST(ClipTokenizer, BpeOnSmallVocabulary) {
  auto tok = Tokenizer::from_merges(kMerges);
  EXPECT_EQ(tok.vocab_size(), 512 + 8 + 2);
  EXPECT_EQ(tok.sot_token(), 520);
  EXPECT_EQ(tok.eot_token(), 521);
  // "hello": h e l l o</w> -> he l l o</w> -> he l lo</w> -> hel lo</w> -> hello</w> (rank 3)
  EXPECT_EQ(tok.encode("hello"), (std::vector<int64_t>{512 + 3}));
  EXPECT_EQ(tok.encode("Hello World"), (std::vector<int64_t>{515, 512 + 7}));
  // single characters end with </w>: ids 256 + byte id
  EXPECT_EQ(tok.encode("a"), (std::vector<int64_t>{256 + byte_id('a')}));
  // no merge applies: characters, the last with </w>
  EXPECT_EQ(tok.encode("xyz"), (std::vector<int64_t>{byte_id('x'), byte_id('y'), 256 + byte_id('z')}));
  // "hell": h e l l</w>: he l l</w> -> hel l</w>
  auto tr = tok.trace("hell");
  EXPECT_EQ(tr.bpe_tokens, (std::vector<std::string>{"hel", "l</w>"}));
  EXPECT_EQ(tok.decode(tok.encode("hello world")), "hello world ");
  // special strings map straight to their ids
  EXPECT_EQ(tok.encode("<|startoftext|>hello<|endoftext|>"), (std::vector<int64_t>{520, 515, 521}));
}

TEST(ClipTokenizer, NonAsciiBytesUseTheByteAlphabet) {
  auto tok = Tokenizer::from_merges(kMerges);
  // U+00E9 = C3 A9. C3 maps to itself (id 0xC3 - 0xAE + 12 + 94), A9 likewise (id 0xA9 - 0xA1 + 94).
  auto ids = tok.encode("\xC3\xA9");
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], 94 + 12 + (0xC3 - 0xAE));
  EXPECT_EQ(ids[1], 256 + 94 + (0xA9 - 0xA1));
  EXPECT_EQ(tok.decode(ids), "\xC3\xA9 ");
  // space (0x20) is one of the remapped bytes: U+0120 'Ġ', the 33rd remapped -> id 188 + 32
  EXPECT_EQ(tok.symbol(188 + 32), "\xC4\xA0");
}

TEST(ClipTokenizer, TokenizeRowsAndTruncation) {
  auto tok = Tokenizer::from_merges(kMerges);
  auto t = tok.tokenize({"hello world", ""}, 6, true);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(t.scalar_type(), torch::kInt64);
  std::vector<int64_t> r0(t[0].data_ptr<int64_t>(), t[0].data_ptr<int64_t>() + 6);
  std::vector<int64_t> r1(t[1].data_ptr<int64_t>(), t[1].data_ptr<int64_t>() + 6);
  EXPECT_EQ(r0, (std::vector<int64_t>{520, 515, 519, 521, 0, 0}));
  EXPECT_EQ(r1, (std::vector<int64_t>{520, 521, 0, 0, 0, 0}));
  // 5 ids + 2 = 7 > 6: truncated, end token kept last
  auto tr = tok.tokenize({"a b c d e"}, 6, true);
  std::vector<int64_t> r(tr[0].data_ptr<int64_t>(), tr[0].data_ptr<int64_t>() + 6);
  EXPECT_EQ(r, (std::vector<int64_t>{520, 320, 321, 322, 323, 521}));
  // exactly fitting: no truncation
  auto fit = tok.tokenize({"a b c d"}, 6, false);
  EXPECT_EQ(fit[0][5].item<int64_t>(), 521);
  EXPECT_THROW(tok.tokenize({"a b c d e"}, 6, false), rdm::Error);
}

TEST(ClipTokenizer, CleanTextLikePython) {
  using rdm::clip::clean_text;
  EXPECT_EQ(clean_text("  A Happy   Pineapple!!  "), "a happy pineapple!!");
  EXPECT_EQ(clean_text("fish &amp;amp; chips"), "fish & chips");  // unescaped twice
  EXPECT_EQ(clean_text("&lt;b&gt; &#39;x&#x27;"), "<b> 'x'");
  EXPECT_EQ(clean_text("&notit; &amp &AMP;"), "\xC2\xACit; & &");  // longest prefix, no-';' forms
  EXPECT_EQ(clean_text("&bogus; &#; &#x;"), "&bogus; &#; &#x;");
  EXPECT_EQ(clean_text("&#128;&#0;&#x110000;&#1;"), "\xE2\x82\xAC\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(clean_text("&#128512;"), "\xF0\x9F\x98\x80");
  // Unicode whitespace (NBSP, thin space, ideographic space, form feed) collapses
  EXPECT_EQ(clean_text("a\xC2\xA0\xE2\x80\x89" "b\xE3\x80\x80\x0c" "c"), "a b c");
  // full lower(): U+0130 -> i + U+0307; final sigma; Roman numeral
  EXPECT_EQ(clean_text("\xC4\xB0"), "i\xCC\x87");
  EXPECT_EQ(clean_text("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3"), "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82");  // ΟΔΟΣ -> οδος
  EXPECT_EQ(clean_text("\xCE\xA3"), "\xCF\x83");                      // lone Σ -> σ
  EXPECT_EQ(clean_text("A\xCE\xA3" "B"), "a\xCF\x83" "b");            // medial -> σ
  EXPECT_EQ(clean_text("\xE2\x85\xAB"), "\xE2\x85\xBB");              // Ⅻ -> ⅻ
}

TEST(ClipTokenizer, SplitPattern) {
  using rdm::clip::split_pieces;
  EXPECT_EQ(split_pieces("it's 2022 &x"), (std::vector<std::string>{"it", "'s", "2", "0", "2", "2", "&", "x"}));
  EXPECT_EQ(split_pieces("'single"), (std::vector<std::string>{"'s", "ingle"}));
  EXPECT_EQ(split_pieces("hi!!?"), (std::vector<std::string>{"hi", "!!?"}));
  // combining marks are not letters: i + U+0307 splits
  EXPECT_EQ(split_pieces("i\xCC\x87x"), (std::vector<std::string>{"i", "\xCC\x87", "x"}));
  // letters of any script, digits of any script are single pieces
  EXPECT_EQ(split_pieces("\xE6\x97\xA5\xE6\x9C\xAC \xD9\xA3\xD9\xA4"),
            (std::vector<std::string>{"\xE6\x97\xA5\xE6\x9C\xAC", "\xD9\xA3", "\xD9\xA4"}));
}

TEST(ClipTokenizer, InvalidUtf8IsAnError) {
  auto tok = Tokenizer::from_merges(kMerges);
  for (const char* bad : {"\xff", "ab\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80"})
    EXPECT_THROW(tok.encode(bad), rdm::Error) << bad;
}

TEST(ClipTokenizer, GzAndHuggingFaceFilesGiveTheSameIds) {
  const fs::path d = tmpdir();
  // gz merge list: a header line, then the merges
  const fs::path gz = d / "vocab.txt.gz";
  {
    gzFile f = gzopen(gz.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::string s = "\"test#version: 0.2\n";
    for (auto& m : kMerges) s += m + "\n";
    gzwrite(f, s.data(), static_cast<unsigned>(s.size()));
    gzclose(f);
  }
  auto a = Tokenizer::from_merges(kMerges);
  auto b = Tokenizer::load(gz);
  // HF layout: vocab.json (the same symbol -> id map) + merges.txt
  const fs::path hf = d / "hf";
  fs::create_directories(hf);
  {
    std::ofstream v(hf / "vocab.json");
    v << "{";
    for (int64_t i = 0; i < a.vocab_size(); ++i) {
      std::string sym, esc;
      sym = a.symbol(i);
      for (char c : sym) {
        if (c == '"' || c == '\\') esc += '\\';
        esc += c;
      }
      v << (i ? "," : "") << "\"" << esc << "\":" << i;
    }
    v << "}";
    std::ofstream m(hf / "merges.txt");
    m << "#version: 0.2\n";
    for (auto& x : kMerges) m << x << "\n";
  }
  auto c = Tokenizer::load(hf);
  for (const char* text : {"hello world", "Hello, World! 123 caf\xC3\xA9", "<|endoftext|>"}) {
    EXPECT_EQ(a.encode(text), b.encode(text)) << text;
    EXPECT_EQ(a.encode(text), c.encode(text)) << text;
  }
  EXPECT_THROW(Tokenizer::load(d / "missing.gz"), rdm::Error);
  fs::remove_all(d);
}

TEST(ClipTokenizer, RealVocabularyExamples) {
  const char* g = std::getenv("RDM_GOLDEN_DIR");
  const fs::path vocab = fs::path(g ? g : "") / "clip" / "bpe_simple_vocab_16e6.txt.gz";
  if (!g || !fs::exists(vocab)) GTEST_SKIP() << "no CLIP vocabulary under RDM_GOLDEN_DIR";
  auto tok = Tokenizer::load(vocab);
  EXPECT_EQ(tok.vocab_size(), 49408);
  EXPECT_EQ(tok.encode("a painting of a virus monster playing guitar"),
            (std::vector<int64_t>{320, 3086, 539, 320, 11808, 6060, 1629, 5084}));
  EXPECT_EQ(tok.encode("A Happy   Pineapple!!"), (std::vector<int64_t>{320, 900, 14831, 748}));
  EXPECT_EQ(tok.encode("it's 2022 &amp; caf\xC3\xA9"),
            (std::vector<int64_t>{585, 568, 273, 271, 273, 273, 261, 15304}));
}
