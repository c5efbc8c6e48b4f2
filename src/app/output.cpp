// Output files of the sampling commands (no reference file for the PNG metadata and gallery;
// make_grid follows torchvision.utils.make_grid as scripts/knn2img.py uses it).
#include "rdm/app/output.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <regex>

#include "rdm/runtime/error.hpp"
#include "rdm/image/contact_sheet.hpp"
#include "rdm/io/atomic_file.hpp"

namespace rdm {
namespace fs = std::filesystem;
using json = nlohmann::json;

image::RgbImage make_grid(const std::vector<image::RgbImage>& images, int64_t nrow, int64_t padding, uint8_t pad_value) {
  if (images.empty()) fail("make_grid: no images");
  if (images.size() == 1) return images[0];
  const int64_t h = images[0].height, w = images[0].width;
  for (const auto& im : images)
    if (im.height != h || im.width != w) fail("make_grid: images differ in size");
  const int64_t n = static_cast<int64_t>(images.size());
  const int64_t cols = std::min(std::max<int64_t>(nrow, 1), n);
  const int64_t rows = (n + cols - 1) / cols;
  image::RgbImage grid(rows * (h + padding) + padding, cols * (w + padding) + padding, pad_value);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t y0 = (k / cols) * (h + padding) + padding, x0 = (k % cols) * (w + padding) + padding;
    for (int64_t y = 0; y < h; ++y)
      std::copy_n(images[k].at(y, 0), w * 3, grid.at(y0 + y, x0));
  }
  return grid;
}

void ensure_writable_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) fail("cannot create output folder '{}': {}", dir.string(), ec ? ec.message() : "not a folder");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) fail("output folder '{}' is not writable", dir.string());
}

std::string slugify(const std::string& text, size_t max_chars) {
  std::string s;
  for (unsigned char c : text) {
    if (std::isalnum(c) && c < 0x80) {
      s += static_cast<char>(std::tolower(c));
    } else if (!s.empty() && s.back() != '-') {
      s += '-';
    }
    if (s.size() >= max_chars) break;
  }
  while (!s.empty() && s.back() == '-') s.pop_back();
  return s.empty() ? "image" : s;
}

fs::path next_image_path(const fs::path& dir, const std::string& slug, uint64_t seed, bool overwrite, int64_t start) {
  int64_t counter = start;
  if (!overwrite) {
    static const std::regex numbered(R"(^\d{5}-.*\.png$)");
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (std::regex_match(e.path().filename().string(), numbered)) ++counter;
  }
  for (;; ++counter) {
    fs::path p = dir / fmt::format("{:05d}-{}-{}.png", counter, slug, seed);
    if (overwrite || !fs::exists(p)) return p;
  }
}

void write_image_with_record(const fs::path& png, const image::RgbImage& image, const ImageRecord& record,
                             bool sidecar, bool overwrite, bool png_timings) {
  fs::path side = png;
  side.replace_extension(".json");
  if (!overwrite) {
    if (fs::exists(png)) fail("'{}' exists; pass --overwrite to replace it", png.string());
    if (sidecar && fs::exists(side)) fail("'{}' exists; pass --overwrite to replace it", side.string());
  }
  ImageRecord in_png = record;
  if (!png_timings) in_png.seconds.reset();
  image::write_png(png, image, {{"parameters", in_png.parameters_text()}, {"rdm", in_png.to_json().dump()}});
  if (sidecar) {
    ImageRecord rec = record;
    rec.file = png.filename().string();
    io::write_file_atomic(side, rec.to_json().dump(2) + "\n");
  }
}

void write_neighbor_sheet(const fs::path& sheet, const std::vector<NeighborRecord>& nbs) {
  std::vector<std::string> images, captions;
  int rank = 1;
  for (const auto& nb : nbs) {
    images.push_back(nb.path);
    captions.push_back(fmt::format("#{} {:.3f}\n{} {}", rank++, nb.score, nb.database, nb.label));
  }
  image::write_contact_sheet(sheet, images, captions, 128, 0);
}

namespace {
std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}
// A relative URL for a file path as seen from the gallery's folder.
std::string href(const fs::path& target, const fs::path& base) {
  fs::path rel = target.is_absolute() ? fs::relative(target, fs::absolute(base)) : target;
  std::string s = rel.empty() ? target.string() : rel.generic_string();
  std::string o;
  for (unsigned char c : s) {
    if (std::isalnum(c) || std::string("/-_.~").find(static_cast<char>(c)) != std::string::npos)
      o += static_cast<char>(c);
    else
      o += fmt::format("%{:02X}", c);
  }
  return o;
}
}  // namespace

void write_gallery(const fs::path& html, const std::string& title, const std::vector<json>& entries) {
  const fs::path base = html.parent_path().empty() ? fs::path(".") : html.parent_path();
  std::string o;
  o += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" + esc(title) + "</title>\n";
  o += "<style>body{font-family:sans-serif;margin:1em;background:#fafafa}"
       "figure{display:inline-block;vertical-align:top;margin:0.5em;padding:0.5em;background:#fff;"
       "border:1px solid #ddd;max-width:340px}figure img.main{width:320px;image-rendering:pixelated}"
       "figcaption{font-size:0.85em}.nb img{width:48px;height:48px;object-fit:cover;margin:1px}"
       ".meta{color:#555}</style>\n</head>\n<body>\n";
  o += "<h1>" + esc(title) + "</h1>\n<p class=\"meta\">" + std::to_string(entries.size()) +
       " image(s). Parameters are embedded in each PNG (<code>rdm show-params FILE.png</code>).</p>\n";
  o += "<div id=\"gallery\">\n";
  for (const auto& e : entries) {
    std::string file = e.value("file", std::string());
    std::vector<std::string> dbs;
    for (const auto& d : e.value("databases", json::array()))
      dbs.push_back(d.is_string() ? d.get<std::string>() : d.value("name", std::string()));
    std::string style;
    for (const auto& d : dbs) style += (style.empty() ? "" : " + ") + d;
    if (style.empty()) style = e.value("mode", std::string("text"));
    o += "<figure class=\"item\" data-seed=\"" + esc(std::to_string(e.value("seed", uint64_t(0)))) + "\">\n";
    o += "<a href=\"" + href(file, base) + "\"><img class=\"main\" src=\"" + href(file, base) + "\" alt=\"" +
         esc(e.value("prompt", std::string())) + "\"></a>\n<figcaption>\n";
    o += "<div class=\"prompt\"><b>" + esc(e.value("prompt", std::string())) + "</b></div>\n";
    if (e.value("text", std::string()) != e.value("prompt", std::string()))
      o += "<div class=\"text\">encoded: " + esc(e.value("text", std::string())) + "</div>\n";
    o += "<div class=\"style\">style: " + esc(style) + "</div>\n";
    o += "<div class=\"seed\">seed " + std::to_string(e.value("seed", uint64_t(0))) + ", scale " +
         fmt::format("{}", e.value("scale", 0.0)) + ", " + esc(e.value("sampler", std::string("ddim"))) + " " +
         std::to_string(e.value("steps", 0)) + " steps</div>\n";
    const auto nbs = e.value("neighbors", json::array());
    if (!nbs.empty()) {
      o += "<details class=\"nb\"><summary>" + std::to_string(nbs.size()) + " neighbours</summary>\n";
      for (const auto& nb : nbs) {
        std::string label = fmt::format("{} #{} {} ({:.3f})", nb.value("database", std::string()), nb.value("id", -1),
                                        nb.value("label", std::string()), nb.value("score", 0.0));
        std::string p = nb.value("path", std::string());
        if (!p.empty() && fs::exists(p))
          o += "<img src=\"" + href(p, base) + "\" title=\"" + esc(label) + "\" alt=\"" + esc(label) + "\">";
        else
          o += "<span class=\"nbtext\">" + esc(label) + "</span><br>";
      }
      o += "\n</details>\n";
    }
    if (e.contains("contact_sheet"))
      o += "<div><a class=\"sheet\" href=\"" + href(e["contact_sheet"].get<std::string>(), base) +
           "\">neighbours' contact sheet</a></div>\n";
    o += "</figcaption>\n</figure>\n";
  }
  o += "</div>\n</body>\n</html>\n";
  io::write_file_atomic(html, o);
}

}  // namespace rdm
