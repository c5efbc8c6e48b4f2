// Internal: block-style YAML text of a JSON document (keys in insertion order), for the configs
// `rdm train` writes in the reference's YAML form. Strings that YAML would read as another type
// are quoted; floats keep a dot or exponent so that they read back as floats.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace rdm::train::detail {
std::string to_yaml(const nlohmann::ordered_json& doc);
}
