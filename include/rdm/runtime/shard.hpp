// `--shard I/N`: part I of N of a piece of work that several processes (a Slurm array, GNU
// parallel) share: the jobs of `rdm sweep`, the files of `rdm db build`. Each command decides
// what belongs to a shard; the option's syntax and its checks are the same everywhere.
#pragma once
#include <cstdint>
#include <string>

namespace rdm {

struct Shard {
  int64_t index = 0;  // 0 <= index < count
  int64_t count = 1;
  bool operator==(const Shard& o) const { return index == o.index && count == o.count; }
};

// "I/N" with integers 0 <= I < N; rdm::Error naming --shard otherwise.
Shard parse_shard(const std::string& spec);

}  // namespace rdm
