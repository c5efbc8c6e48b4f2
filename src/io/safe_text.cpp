// Untrusted text in and out (see safe_text.hpp).
#include "rdm/io/safe_text.hpp"

#include <spdlog/fmt/fmt.h>

#include "rdm/runtime/error.hpp"

namespace rdm::io {

namespace {
// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one (overlong forms,
// surrogates and code points above U+10FFFF are invalid).
size_t utf8_length(std::string_view s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n;
  uint32_t v;
  if (c < 0x80) return *cp = c, 1;
  if (c >= 0xC2 && c <= 0xDF) n = 2, v = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, v = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, v = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) || (v >= 0xD800 && v <= 0xDFFF))
    return 0;
  *cp = v;
  return n;
}
}  // namespace

nlohmann::json parse_json_bounded(std::string_view text, const std::string& what, size_t max_bytes,
                                  int max_depth) {
  if (text.size() > max_bytes)
    fail("{} is {} bytes, over the limit of {} bytes", what, text.size(), max_bytes);
  // Nesting pre-scan: nlohmann builds (and dumps) values recursively.
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) fail("{} nests deeper than {} levels (at byte {})", what, max_depth, i);
    } else if (c == ']' || c == '}') --depth;
  }
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    fail("{} is not valid JSON (error at byte {})", what, e.byte);
  } catch (const nlohmann::json::exception& e) {  // e.g. out_of_range 406: a number too large
    fail("{} is not valid JSON (error {}: a number out of range?)", what, e.id);
  }
}

std::string escape_for_terminal(std::string_view s, bool keep_newlines) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_length(s, i, &cp);
    if (n == 0) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(s[i]));
      ++i;
      continue;
    }
    if (cp < 0x20 || cp == 0x7F) {
      if (keep_newlines && (cp == '\n' || cp == '\t')) out += static_cast<char>(cp);
      else out += fmt::format("\\x{:02x}", cp);
    } else if (cp >= 0x80 && cp <= 0x9F) {
      out += fmt::format("\\u{:04x}", cp);
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

std::string dump_json_safe(const nlohmann::json& j, int indent) {
  const std::string raw = j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
  // The dump is valid UTF-8 and escapes C0 already; DEL and C1 occur only inside strings.
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    const auto c = static_cast<unsigned char>(raw[i]);
    if (c == 0x7F) {
      out += "\\u007f";
    } else if (c == 0xC2 && i + 1 < raw.size() && static_cast<unsigned char>(raw[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(raw[i + 1]) <= 0x9F) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(raw[i + 1]));
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace rdm::io
