// Block-style YAML writer (see train/yaml.hpp).
#include "train/yaml.hpp"

#include <regex>

#include <spdlog/fmt/fmt.h>

namespace rdm::train::detail {
namespace {
using nlohmann::ordered_json;

std::string scalar(const ordered_json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  if (v.is_number_float()) {
    std::string s = fmt::format("{}", v.get<double>());  // shortest round trip
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
  }
  const std::string s = v.get<std::string>();
  static const std::regex plain(R"(^[A-Za-z_][A-Za-z0-9_./-]*$)");
  static const std::regex special(
      R"(^(~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)$)");
  if (std::regex_match(s, plain) && !std::regex_match(s, special)) return s;
  return ordered_json(s).dump();  // a JSON string is a valid double-quoted YAML scalar
}

void emit(const ordered_json& v, int indent, std::string& out) {
  const std::string pad(static_cast<size_t>(indent), ' ');
  if (v.is_object()) {
    for (const auto& [k, x] : v.items()) {
      if ((x.is_object() && !x.empty()) || (x.is_array() && !x.empty())) {
        out += pad + k + ":\n";
        emit(x, indent + 2, out);
      } else {
        out += pad + k + ": " + (x.is_object() ? "{}" : x.is_array() ? "[]" : scalar(x)) + "\n";
      }
    }
  } else if (v.is_array()) {
    for (const auto& x : v) {
      if (x.is_object() || x.is_array()) {
        out += pad + "-\n";
        emit(x, indent + 2, out);
      } else {
        out += pad + "- " + scalar(x) + "\n";
      }
    }
  } else {
    out += pad + scalar(v) + "\n";
  }
}
}  // namespace

std::string to_yaml(const ordered_json& doc) {
  std::string out;
  emit(doc, 0, out);
  return out;
}

}  // namespace rdm::train::detail
