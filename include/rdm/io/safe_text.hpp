// Untrusted text on its way in (JSON records from PNG chunks, bounded in size and nesting)
// and on its way out (to a terminal: control characters escaped, JSON kept valid).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace rdm::io {

// Limits of a JSON record read from a file (the PNG `rdm` chunk, a sidecar).
inline constexpr size_t kMaxRecordBytes = size_t(16) << 20;
inline constexpr int kMaxJsonDepth = 64;

// Parses untrusted JSON: over max_bytes, nested deeper than max_depth (checked before any
// value is built, so `[` x 100000 cannot exhaust the stack) or invalid is one rdm::Error
// "<what> ..." (what: e.g. "'x.png': the rdm metadata chunk").
nlohmann::json parse_json_bounded(std::string_view text, const std::string& what,
                                  size_t max_bytes = kMaxRecordBytes, int max_depth = kMaxJsonDepth);

// Text for a terminal: every C0 control, DEL, C1 control (U+0080..U+009F) and byte that is
// not valid UTF-8 becomes a visible escape (\x1b, \u009b, \xff). keep_newlines keeps \n and
// \t (multi-line text such as the `parameters` chunk); file names escape them too.
std::string escape_for_terminal(std::string_view s, bool keep_newlines = false);

// JSON for stdout: valid JSON (invalid UTF-8 replaced by U+FFFD) in which DEL and C1
// controls, which JSON allows raw, are written as \u escapes too, so no control byte reaches
// a terminal. indent < 0: one line.
std::string dump_json_safe(const nlohmann::json& j, int indent = -1);

}  // namespace rdm::io
