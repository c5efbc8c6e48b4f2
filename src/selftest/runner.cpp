// The data-driven golden runner: cases.json -> kind implementations -> comparisons.
#include <chrono>
#include <cmath>
#include <fstream>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "rdm/error.hpp"
#include "rdm/io/safetensors.hpp"
#include "rdm/io/torch_zip.hpp"
#include "rdm/selftest.hpp"
#include "selftest/case.hpp"

namespace rdm::selftest {

const io::TensorFile& FileCache::get(const fs::path& p) {
  const std::string key = fs::weakly_canonical(p).string();
  auto it = files_.find(key);
  if (it != files_.end()) return *it->second;
  auto f = std::make_shared<io::TensorFile>(io::read_tensor_file(p));
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
  if (r.is_absolute()) fail("case '{}': path '{}' must be relative to the golden folder", id(), rel);
  for (const auto& part : r)
    if (part == "..") fail("case '{}': path '{}' leaves the golden folder", id(), rel);
  return dir_ / r;
}

torch::Tensor Case::tensor(const json& ref) const {
  std::string file;
  if (ref.contains("file")) file = ref.at("file").get<std::string>();
  else if (j_.contains("io")) file = j_.at("io").get<std::string>();
  else fail("case '{}': tensor reference without a file and no 'io' in the case", id());
  const std::string name = ref.at("tensor").get<std::string>();
  const io::TensorFile& tf = cache_.get(path(file));
  auto it = tf.tensors.find(name);
  if (it == tf.tensors.end()) fail("case '{}': tensor '{}' not found in '{}'", id(), name, file);
  torch::Tensor t = it->second;
  if (ref.contains("dtype")) {
    const auto want = io::safetensors_dtype(ref.at("dtype").get<std::string>());
    if (t.scalar_type() != want)
      fail("case '{}': tensor '{}' in '{}' has dtype {}, cases.json says {}", id(), name, file,
           c10::toString(t.scalar_type()), ref.at("dtype").get<std::string>());
  }
  if (ref.contains("shape")) {
    const auto want = ref.at("shape").get<std::vector<int64_t>>();
    if (t.sizes().vec() != want)
      fail("case '{}': tensor '{}' in '{}' has shape {}, cases.json says {}", id(), name, file,
           fmt::format("{}", fmt::join(t.sizes(), ",")), fmt::format("{}", fmt::join(want, ",")));
  }
  return t;
}

torch::Tensor Case::input(const std::string& role) const {
  const json& inputs = j_.at("inputs");
  if (!inputs.contains(role)) fail("case '{}': no input '{}'", id(), role);
  return tensor(inputs.at(role));
}

json Case::model_config() const {
  const json& cfg = j_.at("model").at("config");
  const fs::path p = path(cfg.at("file").get<std::string>());
  std::ifstream f(p);
  if (!f) fail("case '{}': cannot open config '{}'", id(), p.string());
  json doc;
  try {
    doc = json::parse(f);
  } catch (const json::exception& e) {
    fail("case '{}': config '{}' is not valid JSON: {}", id(), p.string(), e.what());
  }
  const std::string ptr = cfg.value("pointer", std::string());
  try {
    return doc.at(json::json_pointer(ptr));
  } catch (const json::exception& e) {
    fail("case '{}': config '{}' has nothing at pointer '{}'", id(), p.string(), ptr);
  }
}

io::StateDict Case::weights(const json& spec) const {
  const fs::path p = path(spec.at("file").get<std::string>());
  io::TorchZipOptions opts;
  if (spec.contains("state_dict_path")) opts.state_dict_path = spec.at("state_dict_path").get<std::vector<std::string>>();
  io::TensorFile tf = io::read_tensor_file(p, opts);
  const std::string prefix = spec.value("prefix", std::string());
  if (prefix.empty()) return std::move(tf.tensors);
  io::StateDict out;
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
  if (!outs.contains(role)) fail("case '{}': no output '{}' in cases.json", case_.id(), role);
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
Summary run(const fs::path& dir, const Options& opts, std::ostream& out) {
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

  torch::NoGradGuard no_grad;
  FileCache cache;
  Summary s;
  const auto& table = kinds();
  for (const json& cj : doc["cases"]) {
    const std::string id = cj.value("id", std::string("?"));
    const std::string kind = cj.value("kind", std::string("?"));
    if (!opts.filter.empty() && id.find(opts.filter) == std::string::npos) continue;
    const auto t0 = std::chrono::steady_clock::now();
    auto it = table.find(kind);
    if (it == table.end()) {
      out << fmt::format("SKIP  {}  (kind '{}' not supported)\n", id, kind);
      ++s.skipped;
      continue;
    }
    Case c(dir, cj, cache);
    Report r(c);
    const bool expect_error = cj.value("expect_error", false);
    std::string error;
    try {
      it->second(c, r);
    } catch (const Unsupported& e) {
      out << fmt::format("SKIP  {}  ({})\n", id, e.what());
      ++s.skipped;
      continue;
    } catch (const std::exception& e) {
      error = e.what();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    bool pass;
    std::string detail;
    if (expect_error) {
      pass = !error.empty();
      detail = pass ? "rejected as expected: " + error : "expected an error, got none";
    } else if (!error.empty()) {
      pass = false;
      detail = "error: " + error;
    } else if (r.entries().empty()) {
      pass = false;
      detail = "no output was compared";
    } else {
      pass = r.passed();
      const Report::Entry* worst = &r.entries().front();
      for (const auto& e : r.entries())
        if (!e.pass || e.ratio > worst->ratio) {
          if (!worst->pass && e.pass) continue;
          worst = &e;
        }
      detail = fmt::format("max_abs_err {:.3g} tol {:.3g} [{}] ({} outputs)", worst->max_abs, worst->tol,
                           worst->role, r.entries().size());
      if (!worst->pass && !worst->message.empty()) detail += ": " + worst->message;
    }
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
