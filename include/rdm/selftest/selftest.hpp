// rdm selftest: the data-driven golden runner. Reads DIR/cases.json (schema: CASES.md in every
// golden folder) and runs every case whose kind it supports; nothing about a golden set is
// hard-coded. A case is skipped (and counted as such) when its kind, or a variant of it, is not
// implemented; an `expect_error` case passes only when the implementation itself rejects it
// (with the message or category the case names, if any), never on a missing or broken golden
// file.
#pragma once
#include <filesystem>
#include <ostream>
#include <string>

#include <torch/types.h>

namespace rdm::selftest {

struct Options {
  std::string filter;    // run only cases whose id contains this
  bool verbose = false;  // one line per compared output as well
  // Where the model cases (CLIP, UNet, autoencoders, apply_model, samplers) run: their weights
  // and inputs go to `device`, and the cases the reference computed in float32 compute in
  // `dtype` (float64 cases stay float64). Outputs are compared on the CPU in float64 with the
  // case's tolerances, which are float32's: fp16/bf16 runs report their errors and fail.
  // File, tokenizer, preprocessing and schedule cases run on the CPU whatever is asked.
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;
};

struct Summary {
  int total = 0;     // cases in cases.json
  int selected = 0;  // cases matching the filter (= passed + failed + skipped)
  int passed = 0, failed = 0, skipped = 0;
};

// Runs the cases; prints one line per case and the final "N passed, M failed, K skipped".
Summary run(const std::filesystem::path& golden_dir, const Options& opts, std::ostream& out);

}  // namespace rdm::selftest
