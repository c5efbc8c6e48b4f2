// Internal UTF-8 helpers of the CLIP tokenizer (src/clip/text_clean.cpp).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace rdm::clip {
// Strict UTF-8 decoding (no overlongs, no surrogates); throws rdm::Error "<what>: invalid UTF-8 ...".
std::u32string utf8_decode(std::string_view s, const char* what);
void utf8_append(std::string& out, char32_t c);
std::string utf8_encode(const std::u32string& s);
// Split of valid UTF-8 `cleaned` into views of it (no validation).
void split_pieces(const std::string& cleaned, std::vector<std::string_view>& out);
}  // namespace rdm::clip
