// Atomic output files: write to a temporary file beside the target, fsync, rename.
// A crash or an error never leaves a half-written file under the final name.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

namespace rdm::io {

// Writes bytes to path atomically. Throws rdm::Error naming the file on failure.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// For writers that need a path (OpenCV, FAISS, SQLite): write to tmp_path(), then commit().
// If commit() is never called the temporary file is removed by the destructor.
class AtomicOutput {
 public:
  explicit AtomicOutput(std::filesystem::path final_path);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;
  const std::filesystem::path& tmp_path() const { return tmp_; }
  const std::filesystem::path& final_path() const { return final_; }
  void commit();  // fsync + rename over the final path

 private:
  std::filesystem::path final_, tmp_;
  bool committed_ = false;
};

// Reads a whole file; throws rdm::Error naming the file.
std::string read_file(const std::filesystem::path& path);

}  // namespace rdm::io
