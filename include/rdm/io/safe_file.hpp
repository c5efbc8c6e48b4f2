// File access for untrusted paths: bounded reads of regular files only, and appends that
// never follow a symlink (atomic replacement lives in atomic_file.hpp).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace rdm::io {

// Reads a whole untrusted file: refuses anything but a regular file (devices, FIFOs,
// folders: `/dev/zero` would never end) and files over max_bytes, before reading.
std::string read_regular_file(const std::filesystem::path& path, uint64_t max_bytes);

// Opens `path` for appending (created 0644 if missing) without following a symlink in its
// last component; a symlink, or anything but a regular file, is refused with rdm::Error
// naming the file. Returns the file descriptor (the caller closes it).
int open_append_nofollow(const std::filesystem::path& path);
// Appends bytes to path through open_append_nofollow (one write, then close).
void append_file_nofollow(const std::filesystem::path& path, std::string_view bytes);

}  // namespace rdm::io
