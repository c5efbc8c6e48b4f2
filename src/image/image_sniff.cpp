// Image formats that rdm recognises but does not decode, named from their first bytes so
// that `db build` can list them with a clear reason (see image.hpp: unsupported_format).
#include <cctype>

#include "rdm/image/image_formats.hpp"

namespace rdm::image {

const char* unsupported_format(std::string_view d) {
  auto starts = [&](std::string_view p) { return d.substr(0, p.size()) == p; };
  if (starts("/* XPM */")) return "XPM";
  if (starts("\x1f\x8b")) return "gzip-compressed data (SVGZ?)";
  if (starts("8BPS")) return "PSD";
  if (starts("icns")) return "ICNS";
  if (starts("%PDF")) return "PDF";
  if (d.size() >= 12 && d.substr(4, 4) == "ftyp") {
    std::string_view brand = d.substr(8, 4);
    if (brand == "avif" || brand == "avis") return "AVIF";
    if (brand == "heic" || brand == "heix" || brand == "mif1" || brand == "msf1") return "HEIF";
  }
  // XML text: SVG when an <svg element starts within the first 4 KiB.
  size_t i = starts("\xEF\xBB\xBF") ? 3 : 0;
  while (i < d.size() && std::isspace(static_cast<unsigned char>(d[i]))) ++i;
  if (i < d.size() && d[i] == '<') {
    std::string_view head = d.substr(i, 4096);
    if (head.find("<svg") != std::string_view::npos) return "SVG (vector graphics)";
    return "XML or HTML text";
  }
  if (starts("#define ")) return "XBM";
  return nullptr;
}

}  // namespace rdm::image
