// Internals shared by the files of `rdm eval` (eval_report.cpp, eval_html.cpp,
// eval_compare.cpp): number formatting and the HTML page.
#pragma once
#include <cmath>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

namespace rdm::eval::detail {

// A JSON number, or null for NaN / infinity (JSON has no NaN).
inline nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
// A JSON number or null -> double (NaN for null).
inline double to_double(const nlohmann::json& v) { return v.is_number() ? v.get<double>() : std::nan(""); }
// "0.812" or "-" for null / NaN.
inline std::string fixed(const nlohmann::json& v, int decimals = 3) {
  return v.is_number() && std::isfinite(v.get<double>()) ? fmt::format("{:.{}f}", v.get<double>(), decimals) : "-";
}

// report.html of an eval.json (the PNGs and images linked relatively).
std::string report_html(const nlohmann::json& eval);

}  // namespace rdm::eval::detail
