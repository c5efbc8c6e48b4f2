// The data-driven golden runner: cases.json -> kind implementations -> comparisons.
#include <cctype>
#include <chrono>
#include <cmath>
#include <fstream>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/formats/torch_zip.hpp"
#include "rdm/selftest/selftest.hpp"
#include "selftest/case.hpp"

namespace rdm::selftest {

const formats::TensorFile& FileCache::get(const fs::path& p) {
  const std::string key = fs::weakly_canonical(p).string();
  auto it = files_.find(key);
  if (it != files_.end()) return *it->second;
  std::shared_ptr<formats::TensorFile> f;
  try {
    f = std::make_shared<formats::TensorFile>(formats::read_tensor_file(p));
  } catch (const std::exception& e) {
    case_fail("golden file: {}", e.what());
  }
  files_[key] = f;
  return *f;
}

const json& Case::params() const {
  static const json empty = json::object();
  auto it = j_.find("params");
  return it == j_.end() ? empty : *it;
}

fs::path Case::path(const std::string& rel) const {
  fs::path r(rel);
  if (r.is_absolute()) case_fail("case '{}': path '{}' must be relative to the golden folder", id(), rel);
  for (const auto& part : r)
    if (part == "..") case_fail("case '{}': path '{}' leaves the golden folder", id(), rel);
  const fs::path p = dir_ / r;
  std::error_code ec;
  if (!fs::exists(p, ec)) case_fail("case '{}': file '{}' does not exist in '{}'", id(), rel, dir_.string());
  return p;
}

torch::Dtype Case::compute_dtype() const {
  const std::string s = j_.at("model").value("compute_dtype", std::string("float32"));
  if (s == "float32") return target_.dtype;
  if (s == "float64") return torch::kFloat64;
  if (s == "float16") return torch::kFloat16;
  if (s == "bfloat16") return torch::kBFloat16;
  throw Unsupported(fmt::format("case '{}': compute_dtype '{}' is not supported", id(), s));
}

formats::TensorFile Case::read(const std::string& rel, const formats::TorchZipOptions& opts) const {
  const fs::path p = path(rel);
  try {
    return formats::read_tensor_file(p, opts);
  } catch (const std::exception& e) {
    case_fail("case '{}': golden file: {}", id(), e.what());
  }
}

torch::Tensor Case::tensor(const json& ref) const {
  std::string file;
  if (ref.contains("file")) file = ref.at("file").get<std::string>();
  else if (j_.contains("io")) file = j_.at("io").get<std::string>();
  else case_fail("case '{}': tensor reference without a file and no 'io' in the case", id());
  const std::string name = ref.at("tensor").get<std::string>();
  const formats::TensorFile& tf = cache_.get(path(file));
  auto it = tf.tensors.find(name);
  if (it == tf.tensors.end()) case_fail("case '{}': tensor '{}' not found in '{}'", id(), name, file);
  torch::Tensor t = it->second;
  if (ref.contains("dtype")) {
    const auto want = formats::safetensors_dtype(ref.at("dtype").get<std::string>());
    if (t.scalar_type() != want)
      case_fail("case '{}': tensor '{}' in '{}' has dtype {}, cases.json says {}", id(), name, file,
           c10::toString(t.scalar_type()), ref.at("dtype").get<std::string>());
  }
  if (ref.contains("shape")) {
    const auto want = ref.at("shape").get<std::vector<int64_t>>();
    if (t.sizes().vec() != want)
      case_fail("case '{}': tensor '{}' in '{}' has shape {}, cases.json says {}", id(), name, file,
           fmt::format("{}", fmt::join(t.sizes(), ",")), fmt::format("{}", fmt::join(want, ",")));
  }
  return t;
}

torch::Tensor Case::input(const std::string& role) const {
  const json& inputs = j_.at("inputs");
  if (!inputs.contains(role)) case_fail("case '{}': no input '{}'", id(), role);
  return tensor(inputs.at(role));
}

json Case::model_config() const {
  const json& cfg = j_.at("model").at("config");
  const fs::path p = path(cfg.at("file").get<std::string>());
  std::ifstream f(p);
  if (!f) case_fail("case '{}': cannot open config '{}'", id(), p.string());
  json doc;
  try {
    doc = json::parse(f);
  } catch (const json::exception& e) {
    case_fail("case '{}': config '{}' is not valid JSON: {}", id(), p.string(), e.what());
  }
  const std::string ptr = cfg.value("pointer", std::string());
  try {
    return doc.at(json::json_pointer(ptr));
  } catch (const json::exception& e) {
    case_fail("case '{}': config '{}' has nothing at pointer '{}'", id(), p.string(), ptr);
  }
}

formats::StateDict Case::weights(const json& spec) const {
  formats::TorchZipOptions opts;
  if (spec.contains("state_dict_path")) opts.state_dict_path = spec.at("state_dict_path").get<std::vector<std::string>>();
  formats::TensorFile tf = read(spec.at("file").get<std::string>(), opts);
  const std::string prefix = spec.value("prefix", std::string());
  if (prefix.empty()) return std::move(tf.tensors);
  formats::StateDict out;
  for (auto& [k, v] : tf.tensors)
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = v;
  return out;
}

// ---------------------------------------------------------------------------
void Report::compare(const std::string& role, const torch::Tensor& out0, const torch::Tensor& exp0,
                     const json& spec) {
  Entry e;
  e.role = role;
  const double atol = spec.value("atol", 0.0), rtol = spec.value("rtol", 0.0);
  if (out0.sizes() != exp0.sizes()) {
    e.pass = false;
    e.message = fmt::format("shape [{}], expected [{}]", fmt::join(out0.sizes(), ","), fmt::join(exp0.sizes(), ","));
    entries_.push_back(e);
    return;
  }
  torch::Tensor out = out0.detach().to(torch::kCPU, torch::kFloat64);
  torch::Tensor exp = exp0.detach().to(torch::kCPU, torch::kFloat64);
  torch::Tensor diff = (out - exp).abs();
  torch::Tensor tol = atol + rtol * exp.abs();
  const bool finite = torch::isfinite(out).all().item<bool>() || !torch::isfinite(exp).all().item<bool>();
  if (diff.numel() > 0) {
    // NaN-safe: a NaN difference counts as a failure
    torch::Tensor bad = ~(diff <= tol);
    e.pass = finite && !bad.any().item<bool>();
    const int64_t arg = diff.nan_to_num(INFINITY).argmax().item<int64_t>();
    e.max_abs = diff.nan_to_num(INFINITY).flatten()[arg].item<double>();
    e.tol = tol.flatten()[arg].item<double>();
    torch::Tensor ratio = diff / tol.clamp_min(1e-300);
    e.ratio = ratio.nan_to_num(INFINITY).max().item<double>();
    if (spec.contains("min_equal_fraction")) {
      const double want = spec.at("min_equal_fraction").get<double>();
      const double got = (diff == 0).to(torch::kFloat64).mean().item<double>();
      if (got < want) {
        e.pass = false;
        e.message = fmt::format("only {:.4f} of elements exactly equal, need {}", got, want);
      }
    }
    if (!e.pass && e.message.empty()) e.message = fmt::format("{} elements out of tolerance", bad.sum().item<int64_t>());
  }
  entries_.push_back(e);
}

void Report::check(const std::string& role, const torch::Tensor& out) {
  const json& outs = case_.j().at("outputs");
  if (!outs.contains(role)) case_fail("case '{}': no output '{}' in cases.json", case_.id(), role);
  compare(role, out, case_.tensor(outs.at(role)), outs.at(role));
}

void Report::check_optional(const std::string& role, const torch::Tensor& out) {
  auto it = case_.j().find("optional_outputs");
  if (it == case_.j().end() || !it->contains(role)) return;
  compare(role, out, case_.tensor(it->at(role)), it->at(role));
}

void Report::mismatch(const std::string& role, const std::string& message) {
  Entry e;
  e.role = role;
  e.pass = false;
  e.message = message;
  entries_.push_back(e);
}

void Report::match(const std::string& role) {
  Entry e;
  e.role = role;
  entries_.push_back(e);
}

bool Report::passed() const {
  for (const auto& e : entries_)
    if (!e.pass) return false;
  return true;
}

// ---------------------------------------------------------------------------
namespace {

// What an `expect_error` case asks for. cases.json may say only `expect_error: true` (any
// rejection by the implementation), or name the error: `expect_error` as a string (a part of
// the message) or an object {message|contains, category|type}, or the sibling fields
// `error_message` / `error_category` (`error` as a string or such an object is read too).
struct ExpectedError {
  bool expected = false;
  std::string message, category;
};

void read_error_spec(const json& v, ExpectedError& e) {
  if (v.is_string()) {
    e.message = v.get<std::string>();
  } else if (v.is_object()) {
    for (const char* k : {"message", "contains", "match"})
      if (v.contains(k) && v.at(k).is_string()) e.message = v.at(k).get<std::string>();
    for (const char* k : {"category", "type", "exception"})
      if (v.contains(k) && v.at(k).is_string()) e.category = v.at(k).get<std::string>();
  }
}

ExpectedError expected_error(const json& cj) {
  ExpectedError e;
  if (auto it = cj.find("expect_error"); it != cj.end()) {
    e.expected = it->is_boolean() ? it->get<bool>() : !it->is_null();
    read_error_spec(*it, e);
  }
  if (auto it = cj.find("error"); it != cj.end()) read_error_spec(*it, e);
  if (cj.contains("error_message") && cj.at("error_message").is_string()) e.message = cj.at("error_message").get<std::string>();
  if (cj.contains("error_category") && cj.at("error_category").is_string())
    e.category = cj.at("error_category").get<std::string>();
  if (!e.message.empty() || !e.category.empty()) e.expected = true;
  return e;
}

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// Where an exception of a case came from: the implementation rejecting the parameters (an
// rdm::Error), the golden data (CaseError), or anything else (a bug: a torch or JSON error).
enum class ErrorSource { None, Rejected, Golden, Internal };

const char* source_name(ErrorSource s) {
  switch (s) {
    case ErrorSource::Rejected: return "rejected";
    case ErrorSource::Golden: return "golden-data error";
    case ErrorSource::Internal: return "internal error";
    default: return "none";
  }
}

// Judges an expect_error case: passes only for a rejection by the implementation that matches
// the expected message and category when the case gives them.
bool judge_expected_error(const ExpectedError& want, ErrorSource src, const std::string& error, std::string& detail) {
  if (src == ErrorSource::None) {
    detail = "expected an error, got none";
    return false;
  }
  if (src != ErrorSource::Rejected) {
    detail = fmt::format("expected the implementation to reject the case, got a {}: {}", source_name(src), error);
    return false;
  }
  const std::string msg = lower(error);
  if (!want.message.empty() && msg.find(lower(want.message)) == std::string::npos) {
    detail = fmt::format("expected an error containing '{}', got: {}", want.message, error);
    return false;
  }
  if (!want.category.empty()) {
    const std::string cat = lower(want.category);
    if (cat != "rejected" && cat != "error" && msg.find(cat) == std::string::npos) {
      detail = fmt::format("expected a {} error, got: {}", want.category, error);
      return false;
    }
  }
  detail = "rejected as expected: " + error;
  return true;
}

// The one-line verdict of a case that ran without an expected error.
bool judge_outputs(const Report& r, ErrorSource src, const std::string& error, std::string& detail) {
  if (src != ErrorSource::None) {
    detail = fmt::format("{}: {}", src == ErrorSource::Rejected ? "error" : source_name(src), error);
    return false;
  }
  if (r.entries().empty()) {
    detail = "no output was compared";
    return false;
  }
  const Report::Entry* worst = &r.entries().front();
  for (const auto& e : r.entries())
    if (!e.pass || e.ratio > worst->ratio) {
      if (!worst->pass && e.pass) continue;
      worst = &e;
    }
  detail = fmt::format("max_abs_err {:.3g} tol {:.3g} [{}] ({} outputs)", worst->max_abs, worst->tol, worst->role,
                       r.entries().size());
  if (!worst->pass && !worst->message.empty()) detail += ": " + worst->message;
  return r.passed();
}

json read_cases(const fs::path& dir) {
  const fs::path cases_path = dir / "cases.json";
  std::ifstream f(cases_path);
  if (!f) fail("cannot open '{}': is '{}' a golden folder?", cases_path.string(), dir.string());
  json doc;
  try {
    doc = json::parse(f);
  } catch (const json::exception& e) {
    fail("'{}' is not valid JSON: {}", cases_path.string(), e.what());
  }
  if (!doc.contains("cases") || !doc["cases"].is_array())
    fail("'{}' has no 'cases' array (schema golden-cases/1)", cases_path.string());
  return doc;
}

}  // namespace

Summary run(const fs::path& dir, const Options& opts, std::ostream& out) {
  const json doc = read_cases(dir);
  torch::NoGradGuard no_grad;
  FileCache cache;
  Summary s;
  s.total = static_cast<int>(doc["cases"].size());
  const auto& table = kinds();
  for (const json& cj : doc["cases"]) {
    const std::string id = cj.value("id", std::string("?"));
    const std::string kind = cj.value("kind", std::string("?"));
    if (!opts.filter.empty() && id.find(opts.filter) == std::string::npos) continue;
    ++s.selected;
    const auto t0 = std::chrono::steady_clock::now();
    auto it = table.find(kind);
    if (it == table.end()) {
      out << fmt::format("SKIP  {}  (kind '{}' is not implemented by this runner)\n", id, kind);
      ++s.skipped;
      continue;
    }
    Case c(dir, cj, cache, Target{opts.device, opts.dtype});
    Report r(c);
    const ExpectedError want = expected_error(cj);
    ErrorSource src = ErrorSource::None;
    std::string error;
    try {
      it->second(c, r);
    } catch (const Unsupported& e) {
      out << fmt::format("SKIP  {}  (not supported: {})\n", id, e.what());
      ++s.skipped;
      continue;
    } catch (const CaseError& e) {
      src = ErrorSource::Golden;
      error = e.what();
    } catch (const Error& e) {
      src = ErrorSource::Rejected;
      error = e.what();
    } catch (const std::exception& e) {
      src = ErrorSource::Internal;
      error = e.what();
    }
    if (auto nl = error.find('\n'); nl != std::string::npos) error.resize(nl);  // c10 backtraces
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::string detail;
    const bool pass = want.expected ? judge_expected_error(want, src, error, detail) : judge_outputs(r, src, error, detail);
    out << fmt::format("{}  {}  {}  {:.2f}s\n", pass ? "PASS" : "FAIL", id, detail, secs);
    if (opts.verbose || !pass)
      for (const auto& e : r.entries())
        if (opts.verbose || !e.pass)
          out << fmt::format("        {} {}  max_abs_err {:.3g} tol {:.3g}{}\n", e.pass ? "ok " : "BAD", e.role,
                             e.max_abs, e.tol, e.message.empty() ? "" : "  " + e.message);
    out.flush();
    (pass ? s.passed : s.failed)++;
  }
  out << fmt::format("{} passed, {} failed, {} skipped\n", s.passed, s.failed, s.skipped);
  return s;
}

}  // namespace rdm::selftest
