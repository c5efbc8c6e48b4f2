// Text cleanup and pre-tokenisation of the CLIP tokenizer, a port of basic_clean,
// whitespace_clean, str.lower() and the split pattern of clip/simple_tokenizer.py
// (github.com/openai/CLIP), plus Python's html.unescape (Lib/html/__init__.py).
//
// Unicode sources: utf8proc (case mapping, categories), PCRE2 with UTF + UCP (the split
// pattern's \p{L} / \p{N}). The whitespace sets are those of Python 3.11: `\s` of the regex
// module (used by whitespace_clean and the split pattern) and str.isspace (used by strip);
// they are listed explicitly below because PCRE2's \s also matches U+180E.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "clip/text_util.hpp"
#include "rdm/clip/tokenizer.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::clip {
namespace {

struct Entity {
  const char* name;
  const char* value;
};
const Entity kHtml5[] = {
#include "clip/html5_entities.inc"
};

const char* find_entity(std::string_view name) {
  auto it = std::lower_bound(std::begin(kHtml5), std::end(kHtml5), name,
                             [](const Entity& e, std::string_view n) { return std::string_view(e.name) < n; });
  if (it != std::end(kHtml5) && std::string_view(it->name) == name) return it->value;
  return nullptr;
}

// Python html._invalid_charrefs: numeric references replaced by another character.
char32_t invalid_charref(uint32_t n) {
  static const char32_t k80[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                   0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
                                   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                   0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
  if (n == 0) return 0xFFFD;
  if (n == 0x0D) return 0x0D;
  if (n >= 0x80 && n <= 0x9F) return k80[n - 0x80];
  return 0;
}

// Python html._invalid_codepoints: numeric references that are dropped.
bool invalid_codepoint(uint32_t n) {
  if ((n >= 0x1 && n <= 0x8) || (n >= 0xE && n <= 0x1F) || (n >= 0x7F && n <= 0x9F) ||
      (n >= 0xFDD0 && n <= 0xFDEF) || n == 0xB)
    return true;
  return (n & 0xFFFE) == 0xFFFE && n <= 0x10FFFF;
}

bool is_regex_space(char32_t c) {  // Python `regex` module \s (Unicode White_Space)
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}
bool is_py_space(char32_t c) {  // str.isspace (adds the separators U+001C..U+001F)
  return is_regex_space(c) || (c >= 0x1C && c <= 0x1F);
}

std::u32string strip(const std::u32string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_py_space(s[b])) ++b;
  while (e > b && is_py_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Python's Final_Sigma predicates (Objects/unicodeobject.c), from Unicode properties.
bool is_case_ignorable(char32_t c) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK:
      return true;
    default:
      break;
  }
  // Word_Break MidLetter, MidNumLet, Single_Quote.
  static const char32_t mid[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,  0x5F4,  0x2018, 0x2019,
                                 0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
  return std::find(std::begin(mid), std::end(mid), c) != std::end(mid);
}
bool is_cased(char32_t c) {
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return true;
  auto ci = static_cast<utf8proc_int32_t>(c);
  if (utf8proc_tolower(ci) != ci || utf8proc_toupper(ci) != ci) return true;
  // Other_Lowercase / Other_Uppercase code points without a case mapping.
  static const char32_t ranges[][2] = {{0xAA, 0xAA},     {0xBA, 0xBA},     {0x2B0, 0x2B8},   {0x2C0, 0x2C1},
                                       {0x2E0, 0x2E4},   {0x37A, 0x37A},   {0x1D2C, 0x1D6A}, {0x1D78, 0x1D78},
                                       {0x1D9B, 0x1DBF}, {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C},
                                       {0x2C7C, 0x2C7D}, {0xA69C, 0xA69D}, {0xA770, 0xA770}, {0xA7F8, 0xA7F9},
                                       {0xAB5C, 0xAB5F}};
  for (auto& r : ranges)
    if (c >= r[0] && c <= r[1]) return true;
  return false;
}

// Python's html._charref name class: [^\t\n\f <&#;]
bool is_name_char(char32_t c) {
  return !(c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';');
}

}  // namespace

std::u32string utf8_decode(std::string_view s, const char* what) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0, n = s.size();
  auto bad = [&](size_t at) {
    fail("{}: invalid UTF-8 at byte {} (0x{:02x})", what, at, static_cast<unsigned>(static_cast<unsigned char>(s[at])));
  };
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    int len;
    char32_t cp, min;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
    else bad(i);
    if (i + len > n) bad(i);
    for (int k = 1; k < len; ++k) {
      unsigned char cc = s[i + k];
      if ((cc & 0xC0) != 0x80) bad(i);
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) bad(i);
    out.push_back(cp);
    i += len;
  }
  return out;
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string utf8_encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

// Python's html.unescape on code points.
static std::u32string unescape32(const std::u32string& s) {
  if (s.find(U'&') == std::u32string::npos) return s;
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0, n = s.size();
  auto is_digit = [](char32_t c) { return c >= '0' && c <= '9'; };
  auto is_hex = [&](char32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); };
  while (i < n) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t p = i + 1;
    if (p < n && s[p] == U'#') {
      // numeric: #[0-9]+;? | #[xX][0-9a-fA-F]+;?
      bool hex = p + 1 < n && (s[p + 1] == U'x' || s[p + 1] == U'X');
      size_t d = p + (hex ? 2 : 1), e = d;
      while (e < n && (hex ? is_hex(s[e]) : is_digit(s[e]))) ++e;
      if (e > d) {
        uint64_t num = 0;
        for (size_t k = d; k < e; ++k) {
          uint32_t v = is_digit(s[k]) ? s[k] - '0' : (s[k] | 0x20) - 'a' + 10;
          num = num * (hex ? 16 : 10) + v;
          if (num > 0x10FFFF) num = 0x110000;  // saturate: anything larger maps to U+FFFD
        }
        if (e < n && s[e] == U';') ++e;
        auto n32 = static_cast<uint32_t>(num);
        if (char32_t r = invalid_charref(n32); r != 0 || n32 == 0) out.push_back(r ? r : 0xFFFD);
        else if ((n32 >= 0xD800 && n32 <= 0xDFFF) || n32 > 0x10FFFF) out.push_back(0xFFFD);
        else if (!invalid_codepoint(n32)) out.push_back(n32);
        i = e;
        continue;
      }
      // "&#" not followed by digits: the name alternative cannot match ('#' excluded).
      out.push_back(s[i++]);
      continue;
    }
    // named: [^\t\n\f <&#;]{1,32};?
    size_t e = p;
    while (e < n && e - p < 32 && is_name_char(s[e])) ++e;
    if (e == p) {
      out.push_back(s[i++]);
      continue;
    }
    if (e < n && s[e] == U';') ++e;
    std::string name = utf8_encode(s.substr(p, e - p));
    std::u32string name32 = s.substr(p, e - p);
    if (const char* v = find_entity(name)) {
      out += utf8_decode(v, "html entity");
    } else {
      bool found = false;
      for (size_t x = name32.size() - 1; x >= 2 && x < name32.size(); --x) {
        if (const char* v2 = find_entity(utf8_encode(name32.substr(0, x)))) {
          out += utf8_decode(v2, "html entity");
          out += name32.substr(x);
          found = true;
          break;
        }
      }
      if (!found) {
        out.push_back(U'&');
        out += name32;
      }
    }
    i = e;
  }
  return out;
}

std::string html_unescape(const std::string& text) {
  if (text.find('&') == std::string::npos) {
    utf8_decode(text, "text");  // validate
    return text;
  }
  return utf8_encode(unescape32(utf8_decode(text, "text")));
}

static std::u32string lower32(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size() + 4);
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else if (c == 0x130) {  // SpecialCasing: U+0130 -> "i" + U+0307
      out.push_back(U'i');
      out.push_back(0x307);
    } else if (c == 0x3A3) {  // Final_Sigma
      size_t j = i;
      char32_t prev = 0;
      bool has_prev = false;
      while (j > 0) {
        prev = s[--j];
        if (!is_case_ignorable(prev)) {
          has_prev = true;
          break;
        }
      }
      bool final_sigma = has_prev && is_cased(prev);
      if (final_sigma && i + 1 < s.size()) {
        size_t k = i + 1;
        while (k < s.size() && is_case_ignorable(s[k])) ++k;
        final_sigma = k == s.size() || !is_cased(s[k]);
      }
      out.push_back(final_sigma ? 0x3C2 : 0x3C3);
    } else {
      out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
  return out;
}

std::string python_lower(const std::string& text) { return utf8_encode(lower32(utf8_decode(text, "text"))); }

std::string clean_text(const std::string& text) {
  std::u32string s = utf8_decode(text, "text");
  s = strip(unescape32(unescape32(s)));
  std::u32string w;
  w.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (is_regex_space(s[i])) {
      while (i < s.size() && is_regex_space(s[i])) ++i;
      w.push_back(U' ');
    } else {
      w.push_back(s[i++]);
    }
  }
  return utf8_encode(lower32(strip(w)));
}

namespace {
// The reference pattern; \s spelled out as Python's regex module sees it (see top).
constexpr const char* kPattern =
    R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|)"
    R"([^\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\p{L}\p{N}]+)";

struct SplitRegex {
  pcre2_code* code = nullptr;
  bool jit = false;
  SplitRegex() {
    int err = 0;
    PCRE2_SIZE off = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                         PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS | PCRE2_NO_UTF_CHECK, &err, &off, nullptr);
    if (!code) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(err, buf, sizeof buf);
      fail("CLIP split pattern: PCRE2 compile error at {}: {}", off, reinterpret_cast<char*>(buf));
    }
    jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  }
  ~SplitRegex() { pcre2_code_free(code); }
};
const SplitRegex& split_regex() {
  static SplitRegex r;
  return r;
}
}  // namespace

void split_pieces(const std::string& cleaned, std::vector<std::string_view>& out) {
  const SplitRegex& re = split_regex();
  thread_local pcre2_match_data* md = nullptr;
  if (!md) md = pcre2_match_data_create(4, nullptr);
  out.clear();
  auto subject = reinterpret_cast<PCRE2_SPTR>(cleaned.data());
  PCRE2_SIZE len = cleaned.size(), pos = 0;
  while (pos < len) {
    int rc = re.jit ? pcre2_jit_match(re.code, subject, len, pos, 0, md, nullptr)
                    : pcre2_match(re.code, subject, len, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail("CLIP split pattern: PCRE2 match error {}", rc);
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] <= ov[0]) break;  // the pattern has no empty matches
    out.emplace_back(cleaned.data() + ov[0], ov[1] - ov[0]);
    pos = ov[1];
  }
}

std::vector<std::string> split_pieces(const std::string& cleaned) {
  utf8_decode(cleaned, "text");  // validate before PCRE2_NO_UTF_CHECK matching
  std::vector<std::string_view> views;
  split_pieces(cleaned, views);
  return {views.begin(), views.end()};
}

}  // namespace rdm::clip
