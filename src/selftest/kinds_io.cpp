// Selftest kinds about files: checkpoint_equal (a state-dict source holds exactly the
// tensors of a reference source; schema in the golden folders' CASES.md).
#include <cstring>
#include <set>

#include <torch/types.h>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/torch_zip.hpp"
#include "selftest/kinds.hpp"

namespace rdm::selftest {

namespace {
struct Source {
  formats::TensorFile file;
  formats::StateDict tensors;  // prefix-filtered, prefix removed
  std::string format;     // detected
};

Source load_source(const Case& c, const json& spec, Report& r, const std::string& role) {
  formats::TorchZipOptions opts;
  if (spec.contains("state_dict_path")) opts.state_dict_path = spec.at("state_dict_path").get<std::vector<std::string>>();
  Source s;
  s.file = formats::read_tensor_file(c.path(spec.at("file").get<std::string>()), opts);
  s.format = formats::format_name(s.file.format);
  const std::string want = spec.value("format", std::string());
  if (!want.empty()) {
    if (want != s.format)
      r.mismatch(role + ":format", "detected format '" + s.format + "', cases.json says '" + want + "'");
    else
      r.match(role + ":format");
  }
  const std::string prefix = spec.value("prefix", std::string());
  for (const auto& [k, v] : s.file.tensors)
    if (k.rfind(prefix, 0) == 0) s.tensors[k.substr(prefix.size())] = v;
  return s;
}

bool bit_equal(const torch::Tensor& a0, const torch::Tensor& b0) {
  if (a0.scalar_type() != b0.scalar_type() || a0.sizes() != b0.sizes()) return false;
  const torch::Tensor a = a0.contiguous(), b = b0.contiguous();
  return std::memcmp(a.data_ptr(), b.data_ptr(), static_cast<std::size_t>(a.numel() * a.element_size())) == 0;
}

std::string shape_str(const torch::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ",")); }

std::string first_names(const std::vector<std::string>& v) {
  std::string s;
  for (std::size_t k = 0; k < v.size() && k < 5; ++k) s += (k ? ", " : "") + ("'" + v[k] + "'");
  if (v.size() > 5) s += fmt::format(", ... ({} in all)", v.size());
  return s;
}

// Compares a metadata string (Python-like repr of a scalar) with an expected JSON scalar.
bool scalar_matches(const std::string& got, const json& want) {
  if (want.is_string()) return got == want.get<std::string>();
  if (want.is_boolean()) return got == (want.get<bool>() ? "True" : "False");
  if (want.is_null()) return got == "None";
  if (want.is_number_integer()) {
    try {
      std::size_t pos = 0;
      const long long v = std::stoll(got, &pos);
      return pos == got.size() && v == want.get<long long>();
    } catch (...) {
      return false;
    }
  }
  if (want.is_number()) {
    try {
      return std::stod(got) == want.get<double>();
    } catch (...) {
      return false;
    }
  }
  return false;
}
}  // namespace

void run_checkpoint_equal(const Case& c, Report& r) {
  const json& p = c.params();
  const Source file = load_source(c, c.j().at("file"), r, "file");
  const Source ref = load_source(c, c.j().at("reference"), r, "reference");
  const std::string rule = p.value("dtype_rule", std::string("identical"));
  if (rule != "identical" && rule != "float_as_f16") throw Unsupported("dtype_rule '" + rule + "'");
  const std::string key_match = p.value("key_match", std::string("equal"));
  if (key_match != "equal") throw Unsupported("key_match '" + key_match + "'");

  // Extra keys of the file (e.g. TorchScript CLIP's scalar buffers) with expected values.
  std::set<std::string> extra;
  if (c.j().contains("extra_file_keys")) {
    for (const auto& [k, want] : c.j().at("extra_file_keys").items()) {
      extra.insert(k);
      auto it = file.tensors.find(k);
      if (it == file.tensors.end()) {
        r.mismatch("extra:" + k, "missing from the file");
        continue;
      }
      if (it->second.numel() != 1 || !want.is_number()) {
        r.mismatch("extra:" + k, fmt::format("expected a scalar, file has shape {}", shape_str(it->second)));
        continue;
      }
      json spec = {{"atol", 0}, {"rtol", 0}};
      r.compare("extra:" + k, it->second.reshape({}), torch::tensor(want.get<double>(), torch::kFloat64), spec);
    }
  }

  std::vector<std::string> missing, unexpected, bad;
  std::int64_t compared = 0;
  for (const auto& [k, t] : file.tensors)
    if (!ref.tensors.count(k) && !extra.count(k)) unexpected.push_back(k);
  for (const auto& [k, want] : ref.tensors) {
    auto it = file.tensors.find(k);
    if (it == file.tensors.end()) {
      missing.push_back(k);
      continue;
    }
    ++compared;
    const torch::Tensor& got = it->second;
    if (got.sizes() != want.sizes()) {
      bad.push_back(fmt::format("'{}' has shape {}, reference {}", k, shape_str(got), shape_str(want)));
      continue;
    }
    torch::Tensor expect = want;
    if (rule == "float_as_f16" && want.is_floating_point()) expect = want.to(torch::kFloat16);
    if (got.scalar_type() != expect.scalar_type()) {
      bad.push_back(fmt::format("'{}' has dtype {}, expected {}", k, c10::toString(got.scalar_type()),
                                c10::toString(expect.scalar_type())));
      continue;
    }
    if (!bit_equal(got, expect)) {
      const double d = (got.to(torch::kFloat64) - expect.to(torch::kFloat64)).abs().max().item<double>();
      bad.push_back(fmt::format("'{}' differs (max abs difference {:.3g})", k, d));
    }
  }
  if (!missing.empty()) r.mismatch("keys", fmt::format("{} reference keys missing from the file: {}", missing.size(), first_names(missing)));
  if (!unexpected.empty())
    r.mismatch("keys", fmt::format("{} unexpected keys in the file: {}", unexpected.size(), first_names(unexpected)));
  if (missing.empty() && unexpected.empty()) r.match("keys");
  if (!bad.empty()) r.mismatch("tensors", fmt::format("{} tensors differ: {}", bad.size(), first_names(bad)));
  else r.match("tensors");
  if (p.contains("num_tensors")) {
    const auto want = p.at("num_tensors").get<std::int64_t>();
    if (compared != want) r.mismatch("num_tensors", fmt::format("compared {} tensors, cases.json says {}", compared, want));
    else r.match("num_tensors");
  }
  if (c.j().contains("top_level")) {
    for (const auto& [k, want] : c.j().at("top_level").items()) {
      auto it = file.file.metadata.find(k);
      if (it == file.file.metadata.end()) r.mismatch("top_level:" + k, "no such scalar at the top level of the file");
      else if (!scalar_matches(it->second, want))
        r.mismatch("top_level:" + k, fmt::format("is {}, expected {}", it->second, want.dump()));
      else r.match("top_level:" + k);
    }
  }
}

}  // namespace rdm::selftest
