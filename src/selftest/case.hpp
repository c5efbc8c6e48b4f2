// Internal API of the selftest runner shared by the kind implementations (kinds_*.cpp).
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/tensor_file.hpp"
#include "rdm/formats/torch_zip.hpp"

namespace rdm::selftest {
using nlohmann::json;
namespace fs = std::filesystem;

// A problem of the golden data itself (a missing or unreadable file, a missing tensor, param or
// field, a dtype or shape that disagrees with cases.json). Never counts as the rejection an
// `expect_error` case asks for: only an rdm::Error raised by the implementation does.
struct CaseError : Error {
  using Error::Error;
};

template <typename... Args>
[[noreturn]] inline void case_fail(fmt::format_string<Args...> f, Args&&... args) {
  throw CaseError(fmt::format(f, std::forward<Args>(args)...));
}

// Caches tensor files opened during one run (the same io file serves many cases).
class FileCache {
 public:
  const formats::TensorFile& get(const fs::path& p);
  void clear() { files_.clear(); }

 private:
  std::map<std::string, std::shared_ptr<formats::TensorFile>> files_;
};

// Where the model kinds run and in which floating dtype the float32 cases compute
// (rdm::selftest::Options::device / dtype).
struct Target {
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;
};

// One entry of cases.json plus helpers to resolve what it references.
class Case {
 public:
  Case(fs::path dir, const json& j, FileCache& cache, Target target = {})
      : dir_(std::move(dir)), j_(j), cache_(cache), target_(target) {}
  const Target& target() const { return target_; }
  // A model case's compute dtype: "float32" (the default) -> the target's dtype, "float64" ->
  // float64, "float16" / "bfloat16" as named; rdm::Unsupported for anything else.
  torch::Dtype compute_dtype() const;
  // t on the target device (inputs of the model kinds; CPU tensors stay where they are on the CPU).
  torch::Tensor on_device(const torch::Tensor& t) const { return t.defined() ? t.to(target_.device) : t; }
  const json& j() const { return j_; }
  std::string id() const { return j_.at("id").get<std::string>(); }
  const json& params() const;  // j["params"] (empty object if absent)
  const fs::path& dir() const { return dir_; }

  // dir / rel of an existing file; rejects absolute paths, paths leaving the folder and
  // missing files (CaseError).
  fs::path path(const std::string& rel) const;
  // Reads the tensor file at `rel`; any failure is a CaseError (golden data, not the code
  // under test).
  formats::TensorFile read(const std::string& rel, const formats::TorchZipOptions& opts = {}) const;
  // A tensor reference {tensor, dtype, shape, file?}: loads it from `file` or the case's `io`
  // and checks dtype and shape against the reference.
  torch::Tensor tensor(const json& ref) const;
  // inputs[role] as a tensor.
  torch::Tensor input(const std::string& role) const;
  // model.config: the JSON file at the pointer.
  json model_config() const;
  // Loads a weights spec {file, format, prefix}: returns the state dict with the prefix
  // stripped from keys that have it (others dropped when a prefix is given).
  formats::StateDict weights(const json& spec) const;
  formats::StateDict model_weights() const { return weights(j_.at("model").at("weights")); }
  FileCache& cache() const { return cache_; }

 private:
  fs::path dir_;
  const json& j_;
  FileCache& cache_;
  Target target_;
};

// Collects the comparisons of one case.
class Report {
 public:
  explicit Report(const Case& c) : case_(c) {}
  // Compares `out` with outputs[role] (required: missing role in outputs is a runner error).
  void check(const std::string& role, const torch::Tensor& out);
  // Compares with optional_outputs[role] when that role is listed; no-op otherwise.
  void check_optional(const std::string& role, const torch::Tensor& out);
  // Compares against an explicit expected tensor with the tolerances of `spec`
  // (atol, rtol, min_equal_fraction). Use for `field` references (tokenize).
  void compare(const std::string& role, const torch::Tensor& out, const torch::Tensor& expected,
               const json& spec);
  // Records a non-numeric failure (e.g. a string mismatch) with a message.
  void mismatch(const std::string& role, const std::string& message);
  // Records a check that passed without numbers (e.g. equal strings).
  void match(const std::string& role);

  struct Entry {
    std::string role;
    bool pass = true;
    double max_abs = 0, tol = 0;  // max |out-ref| and the tolerance at that element
    double ratio = 0;             // max over elements of |out-ref| / (atol + rtol|ref|)
    std::string message;
  };
  const std::vector<Entry>& entries() const { return entries_; }
  bool passed() const;

 private:
  const Case& case_;
  std::vector<Entry> entries_;
};

using KindFn = void (*)(const Case&, Report&);

// kind name -> implementation (kinds.cpp). A kind function throws rdm::Unsupported for
// variants it cannot run (the case is reported as skipped).
const std::map<std::string, KindFn>& kinds();

}  // namespace rdm::selftest
