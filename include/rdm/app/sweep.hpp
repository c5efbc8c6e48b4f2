// Batch sampling (`rdm sweep`): many jobs over one loaded model, resumable and shardable.
//
// A job is one image: prompt x database mix x seed x scale (+ sampler settings). Its id is a
// hash of its parameters, and its PNG is named <slug>_<id>.png: a job whose PNG exists is done,
// so a re-run (after a crash, Ctrl-C, or on another machine sharing the folder) skips it.
// --shard I/N keeps the jobs at positions p with p % N == I of the full list: shards never
// overlap and together make the whole sweep, with no coordinator.
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rdm/app/pipeline.hpp"

namespace rdm {

struct SweepJob {
  SampleRequest request;  // one image (n = 1); databases as written (names or folders)
  std::string source;     // where the job came from ("jobs.jsonl:3"), for messages; not part of the id

  nlohmann::json to_json() const { return request.to_json(); }  // canonical (request.hpp)
  std::string id() const;           // 12 hex digits of SHA-256 of to_json().dump()
  std::string file_name() const;    // <slug>_<id>.png
  std::string style_label() const;  // databases joined with '+', or the mode
  // Fields missing in `j` keep the values of `defaults`; unknown keys -> rdm::Error (`where`).
  static SweepJob from_json(const nlohmann::json& j, const SampleRequest& defaults, const std::string& where);
};

// JOBS.jsonl: one JSON object per line ({"prompt": ..., "database": "a:0.7" or [...], "seed": 1,
// "seeds": [1, 2], "scale": 5, ...}); "seeds"/"scales" lists expand into one job each. Blank
// lines and lines starting with '#' are skipped.
std::vector<SweepJob> read_jobs_jsonl(const std::filesystem::path& file, const SampleRequest& defaults);
// prompts x databases x scales x seeds, in that nesting order. A database entry may mix
// several with '+' ("a:0.7+b:0.3"); "" or "none" means text only.
std::vector<SweepJob> cartesian_jobs(const std::vector<std::string>& prompts, const std::vector<std::string>& databases,
                                     const std::vector<uint64_t>& seeds, const std::vector<double>& scales,
                                     const SampleRequest& defaults);
// The request a job makes (database names resolved to folders).
SampleRequest job_request(const SweepJob& job);
// Every job against the rules of request_checks.hpp and the model's config, before the model
// loads; errors name the job's source line. `device` "cpu" (or "auto" without CUDA) also checks
// the memory estimate of each size.
void check_jobs(const std::vector<SweepJob>& jobs, const std::filesystem::path& model_config,
                const std::string& device, const std::string& precision);

// Positions of the jobs of shard I of N (--shard I/N: parse_shard, rdm/runtime/shard.hpp).
std::vector<size_t> shard_positions(size_t jobs, int64_t shard_index, int64_t shard_count);

struct SweepOptions {
  std::filesystem::path out;
  int64_t shard_index = 0, shard_count = 1;
  bool neighbors_sheet = false;
  const std::atomic<bool>* stop = nullptr;  // checked between jobs (SIGINT)
};

struct SweepReport {
  int64_t total = 0, in_shard = 0, skipped = 0, done = 0, failed = 0;
  bool interrupted = false;
  double seconds = 0;
  std::filesystem::path log, gallery, contact_sheet;
  nlohmann::json to_json() const;
};

struct SweepProgress {
  int64_t job = 0, jobs = 0;  // 1-based position in this shard's to-do list
  SampleProgress sample;
};

// Runs this shard's unfinished jobs; appends one line per job to results.jsonl
// (results-shard-I-of-N.jsonl for shards); then writes the gallery and contact sheet.
SweepReport run_sweep(const Pipeline& pipeline, const std::vector<SweepJob>& jobs, const SweepOptions& options,
                      const std::function<void(const SweepProgress&)>& progress = {});

// index.html (every finished image with prompt, style, seed, neighbours) and contact_sheet.png
// (first seed and scale of each prompt x style) from the PNGs present in `out`.
void write_sweep_gallery(const std::vector<SweepJob>& jobs, const std::filesystem::path& out,
                         std::filesystem::path* gallery = nullptr, std::filesystem::path* sheet = nullptr);

}  // namespace rdm
