// Internal: strict reading of a JSON object of constructor arguments (UNetConfig, LdmConfig,
// AutoencoderConfig / DDConfig).
// Every key must be read, explicitly ignored, or it is reported as unknown; a value of the
// wrong type is an error naming the key by its full path ("model.params.unet_config.params.dims").
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rdm/runtime/error.hpp"

namespace rdm::config_detail {

using nlohmann::json;

inline std::string type_name(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number_float()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a mapping";
  if (v.is_null()) return "null";
  return "a value";
}

// Integers: whole floats (4.0) accepted as integers (LdmConfig, UNetConfig), or JSON integers
// only (the first stage's configs, which have always been read that strictly).
enum class Integers { AllowWholeFloats, Strict };

class ObjectReader {
 public:
  ObjectReader(const json& j, std::string where, Integers integers = Integers::AllowWholeFloats)
      : j_(j), where_(std::move(where)), integers_(integers) {
    if (!j_.is_object()) fail("config: '{}' must be a mapping, got {}", where_, type_name(j_));
  }

  std::string path(const std::string& key) const { return where_.empty() ? key : where_ + "." + key; }
  bool has(const std::string& key) const { return j_.contains(key); }
  const json* find(const std::string& key) {
    auto it = j_.find(key);
    if (it == j_.end()) return nullptr;
    seen_.insert(key);
    return &*it;
  }

  // Optional keys: leave `out` unchanged when absent.
  void get(const std::string& key, int64_t& out) {
    if (const json* v = find(key)) out = integer(*v, path(key));
  }
  void get(const std::string& key, double& out) {
    if (const json* v = find(key)) out = as_double(*v, path(key));
  }
  void get(const std::string& key, bool& out) {
    if (const json* v = find(key)) {
      if (!v->is_boolean()) fail("config: '{}' must be true or false, got {}", path(key), type_name(*v));
      out = v->get<bool>();
    }
  }
  void get(const std::string& key, std::string& out) {
    if (const json* v = find(key)) {
      if (!v->is_string()) fail("config: '{}' must be a string, got {}", path(key), type_name(*v));
      out = v->get<std::string>();
    }
  }
  void get(const std::string& key, std::vector<int64_t>& out) {
    if (const json* v = find(key)) {
      if (!v->is_array()) fail("config: '{}' must be a list of integers, got {}", path(key), type_name(*v));
      out.clear();
      for (size_t i = 0; i < v->size(); ++i) out.push_back(integer((*v)[i], path(key) + "[" + std::to_string(i) + "]"));
    }
  }
  // Optional integer that may be null.
  void get(const std::string& key, std::optional<int64_t>& out) {
    if (const json* v = find(key)) {
      if (v->is_null()) out.reset();
      else out = integer(*v, path(key));
    }
  }
  template <typename T>
  T required(const std::string& key) {
    if (!has(key)) fail("config: '{}' is missing", path(key));
    T out{};
    get(key, out);
    return out;
  }
  // Keys accepted and ignored (training-only settings).
  void ignore(std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (has(k)) seen_.insert(k);
  }
  // Throws for the first key neither read nor ignored.
  void finish() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key())) fail("config: unknown key '{}'", path(it.key()));
  }

  static int64_t as_int(const json& v, const std::string& where) {
    if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>();
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9e15) return static_cast<int64_t>(d);
    }
    fail("config: '{}' must be an integer, got {}", where, type_name(v));
  }
  // as_int, or JSON integers only when reading with Integers::Strict.
  int64_t integer(const json& v, const std::string& where) const {
    if (integers_ == Integers::Strict && !v.is_number_integer())
      fail("config: '{}' must be an integer, got {}", where, type_name(v));
    return as_int(v, where);
  }
  static double as_double(const json& v, const std::string& where) {
    if (v.is_number()) return v.get<double>();
    fail("config: '{}' must be a number, got {}", where, type_name(v));
  }

 private:
  const json& j_;
  std::string where_;
  Integers integers_;
  std::set<std::string> seen_;
};

}  // namespace rdm::config_detail
