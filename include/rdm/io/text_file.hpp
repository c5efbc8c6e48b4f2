// Bounded reading of the text files users hand to rdm (prompt files, sweep JSONL, embed
// --text-file): a size and a line-length limit, regular files or FIFOs only (a device such as
// /dev/zero is refused at once instead of being read forever), a leading UTF-8 BOM dropped,
// CR LF line ends accepted, and every line checked to be valid UTF-8.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace rdm::io {

struct TextLimits {
  uint64_t max_bytes = uint64_t(64) << 20;  // whole file (64 MiB)
  size_t max_line = size_t(64) << 10;       // one line (64 KiB)
  bool check_utf8 = true;                    // every line must be valid UTF-8
};

// One line of a text file and its 1-based number.
struct TextLine {
  size_t number = 0;
  std::string text;  // without the line end (LF or CR LF)
};

// The lines of `path` (`what` names the file's role in errors, e.g. "prompt file"). Throws
// rdm::Error naming the file (and the line) when it is missing, not a regular file or FIFO,
// larger than max_bytes, has a line longer than max_line, or has invalid UTF-8.
std::vector<TextLine> read_text_lines(const std::filesystem::path& path, const std::string& what,
                                      const TextLimits& limits = {});

// The non-blank lines of a prompt file (spaces/tabs only count as blank), in order.
std::vector<TextLine> read_prompt_lines(const std::filesystem::path& path, const std::string& what,
                                        const TextLimits& limits = {});

// Byte offset of the first invalid UTF-8 sequence in s, or npos when s is valid UTF-8
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t find_invalid_utf8(std::string_view s);

}  // namespace rdm::io
