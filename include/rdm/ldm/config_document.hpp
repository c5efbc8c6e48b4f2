// Reading a config document of the reference (YAML with PyYAML's scalar rules, or JSON, sniffed
// from the text) as JSON, for configs that are not a LatentDiffusion (a standalone first stage).
// The LatentDiffusion reader (config.hpp) uses the same function.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace rdm::ldm {

// rdm::Error naming `name` when the text does not parse.
nlohmann::json parse_config_document(const std::string& text, const std::string& name = "config");

}  // namespace rdm::ldm
