// Internals shared by the files of `rdm eval` (eval_report.cpp, eval_html.cpp,
// eval_compare.cpp): number formatting and the HTML page.
#pragma once
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

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

#include "rdm/app/eval.hpp"
#include "rdm/image/image.hpp"

namespace rdm::eval::detail {

// PSNR in dB of two 8-bit RGB images of one size (100 dB when identical); rdm::Error naming
// `where` when the sizes differ.
double psnr_8bit(const image::RgbImage& a, const image::RgbImage& b, const std::string& where);

// For each job, the image of the same mode, prompt text, style name and seed in the eval folder
// `against` whose plan is `ref` (an empty path where it has none). rdm::Error naming the folder
// when no job has a counterpart there (eval_against.cpp).
std::vector<std::filesystem::path> reference_images(const Plan& plan, const std::vector<const Job*>& jobs,
                                                    const Plan& ref, const std::filesystem::path& against);

}  // namespace rdm::eval::detail
