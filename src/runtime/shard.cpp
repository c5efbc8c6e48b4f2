// `--shard I/N` (include/rdm/runtime/shard.hpp).
#include "rdm/runtime/shard.hpp"

#include <stdexcept>

#include "rdm/runtime/error.hpp"

namespace rdm {

Shard parse_shard(const std::string& spec) {
  const auto slash = spec.find('/');
  try {
    if (slash != std::string::npos) {
      size_t a = 0, b = 0;
      const int64_t i = std::stoll(spec.substr(0, slash), &a);
      const int64_t n = std::stoll(spec.substr(slash + 1), &b);
      if (a == slash && b == spec.size() - slash - 1 && n >= 1 && i >= 0 && i < n) return {i, n};
    }
  } catch (const std::exception&) {
  }
  fail("--shard '{}' must be I/N with 0 <= I < N (e.g. 0/4 ... 3/4; Slurm: $SLURM_ARRAY_TASK_ID/N)", spec);
}

}  // namespace rdm
