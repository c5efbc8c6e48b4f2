// Demo assets without tensors: procedural style images, the built-in word list, BPE merge
// learning (the training side of clip/simple_tokenizer.py's merge file), gzip output.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "rdm/app/demo.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"

namespace rdm::demo {
namespace fs = std::filesystem;

namespace {
// Pictures, databases and outputs of `styles` under root (the models are set by the caller).
DemoPaths outputs_under(const fs::path& root, const std::vector<std::string>& styles) {
  DemoPaths p;
  p.root = root;
  p.images = root / "images";
  p.databases = root / "databases";
  p.outputs = root / "outputs";
  p.styles = styles;
  for (const auto& s : styles) p.style_databases.push_back(p.databases / s);
  return p;
}
}  // namespace

DemoPaths DemoPaths::under(const fs::path& root) {
  DemoPaths p = outputs_under(root, style_names());
  p.models = root / "models";
  p.model_dir = p.models / "rdm" / "tiny";
  p.clip = p.models / "clip" / "tiny-clip.safetensors";
  p.vocab = p.models / "clip" / "tiny-clip.vocab.txt.gz";
  return p;
}

DemoPaths DemoPaths::trained(const fs::path& root, const PipelinePaths& model, const std::vector<std::string>& styles) {
  DemoPaths p = outputs_under(root, styles);
  p.models = p.model_dir = model.model.parent_path();
  p.clip = model.clip;
  p.vocab = model.vocab;
  return p;
}

const std::vector<std::string>& default_prompts(bool random_model) {
  static const std::vector<std::string> trained = {"a red boat", "a yellow star", "a green tree"};
  static const std::vector<std::string> random = {"a lighthouse in a storm"};
  return random_model ? random : trained;
}

const std::vector<std::string>& default_styles() {
  static const std::vector<std::string> v = {"stripes", "dots", "checks", "gradient", "mosaic", "hatching"};
  return v;
}

const std::vector<std::string>& style_names() {
  static const std::vector<std::string> names = {"stripes", "dots", "gradients", "checks"};
  return names;
}

namespace {
// SplitMix64: a tiny, portable deterministic generator (std distributions are not portable).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
};

struct Rgb {
  double r, g, b;
};
Rgb random_color(Rng& rng) { return {rng.uniform() * 255, rng.uniform() * 255, rng.uniform() * 255}; }
Rgb mix(const Rgb& a, const Rgb& b, double t) {
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}
void put(image::RgbImage& im, int64_t y, int64_t x, const Rgb& c) {
  uint8_t* p = im.at(y, x);
  p[0] = static_cast<uint8_t>(std::clamp(c.r, 0.0, 255.0));
  p[1] = static_cast<uint8_t>(std::clamp(c.g, 0.0, 255.0));
  p[2] = static_cast<uint8_t>(std::clamp(c.b, 0.0, 255.0));
}
}  // namespace

image::RgbImage style_image(const std::string& style, int64_t index, int64_t size) {
  auto it = std::find(style_names().begin(), style_names().end(), style);
  if (it == style_names().end()) fail("unknown demo style '{}'", style);
  Rng rng(0x5eed0000ull + static_cast<uint64_t>(it - style_names().begin()) * 1000003ull + static_cast<uint64_t>(index));
  image::RgbImage im(size, size);
  Rgb a = random_color(rng), b = random_color(rng);
  const double n = static_cast<double>(size);
  if (style == "stripes") {
    double angle = rng.uniform() * M_PI, period = 4 + rng.uniform() * 12;
    double ca = std::cos(angle), sa = std::sin(angle);
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x)
        put(im, y, x, std::fmod(std::fabs(x * ca + y * sa), period) < period / 2 ? a : b);
  } else if (style == "dots") {
    double step = 8 + rng.uniform() * 10, radius = step * (0.2 + rng.uniform() * 0.25);
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x) {
        double dx = std::fmod(x + 0.5, step) - step / 2, dy = std::fmod(y + 0.5, step) - step / 2;
        put(im, y, x, dx * dx + dy * dy < radius * radius ? a : b);
      }
  } else if (style == "gradients") {
    bool radial = rng.uniform() < 0.5;
    double angle = rng.uniform() * 2 * M_PI, cx = rng.uniform() * n, cy = rng.uniform() * n;
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x) {
        double t = radial ? std::hypot(x - cx, y - cy) / (n * 1.2)
                          : 0.5 + ((x - n / 2) * std::cos(angle) + (y - n / 2) * std::sin(angle)) / (n * 1.5);
        put(im, y, x, mix(a, b, std::clamp(t, 0.0, 1.0)));
      }
  } else {  // checks
    int64_t cell = 4 + static_cast<int64_t>(rng.uniform() * 12);
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x) put(im, y, x, ((x / cell + y / cell) % 2) ? a : b);
  }
  return im;
}

const std::vector<std::string>& demo_words() {
  static const std::vector<std::string> words = {
      "a", "an", "the", "of", "in", "on", "at", "by", "with", "and", "or", "to", "from", "under", "over", "into",
      "painting", "photo", "drawing", "sketch", "portrait", "landscape", "still", "life", "style", "art", "artist",
      "lighthouse", "storm", "sea", "ocean", "wave", "waves", "boat", "ship", "harbor", "beach", "sand", "cliff",
      "mountain", "mountains", "river", "lake", "forest", "tree", "trees", "flower", "flowers", "garden", "field",
      "city", "street", "house", "houses", "castle", "bridge", "tower", "church", "village", "market", "window",
      "sky", "cloud", "clouds", "sun", "sunset", "sunrise", "moon", "night", "star", "stars", "rain", "snow", "fog",
      "cat", "dog", "horse", "bird", "birds", "fish", "fox", "owl", "deer", "lion", "tiger", "dragon", "monster",
      "man", "woman", "child", "king", "queen", "knight", "dancer", "musician", "guitar", "playing", "reading",
      "red", "blue", "green", "yellow", "orange", "purple", "black", "white", "golden", "silver", "dark", "bright",
      "old", "new", "small", "big", "quiet", "calm", "wild", "ancient", "modern", "beautiful", "strange", "happy",
      "stripes", "striped", "dots", "dotted", "gradient", "gradients", "checks", "checkered", "pattern", "patterns",
      "abstract", "geometric", "colorful", "pastel", "vivid", "soft", "sharp", "texture", "line", "lines", "circle",
      "impressionism", "expressionism", "surrealism", "realism", "baroque", "renaissance", "romanticism", "ukiyo",
      "nouveau", "post", "oil", "watercolor", "ink", "charcoal", "pencil", "canvas", "virus", "robot", "astronaut"};
  return words;
}

std::vector<std::string> learn_bpe_merges(const std::vector<std::string>& words, size_t max_merges) {
  // Each distinct word once; symbols are its characters, the last one with "</w>".
  std::set<std::string> unique(words.begin(), words.end());
  std::vector<std::vector<std::string>> seqs;
  for (const auto& w : unique) {
    if (w.empty()) continue;
    std::vector<std::string> s;
    for (char c : w) s.push_back(std::string(1, c));
    s.back() += "</w>";
    seqs.push_back(std::move(s));
  }
  std::vector<std::string> merges;
  std::set<std::string> produced;
  while (merges.size() < max_merges) {
    std::map<std::pair<std::string, std::string>, int64_t> counts;
    for (const auto& s : seqs)
      for (size_t i = 0; i + 1 < s.size(); ++i) ++counts[{s[i], s[i + 1]}];
    if (counts.empty()) break;
    // Most frequent first; ties: the smaller pair (std::map order) wins. A pair whose merged
    // symbol already exists would duplicate a vocabulary entry: skip it.
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_count = 0;
    for (const auto& [pair, c] : counts) {
      if (produced.count(pair.first + pair.second)) continue;
      if (c > best_count) {
        best = &pair;
        best_count = c;
      }
    }
    if (!best) break;
    const auto [l, r] = *best;
    merges.push_back(l + " " + r);
    produced.insert(l + r);
    for (auto& s : seqs) {
      std::vector<std::string> out;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == l && s[i + 1] == r) {
          out.push_back(l + r);
          ++i;
        } else {
          out.push_back(s[i]);
        }
      }
      s = std::move(out);
    }
  }
  return merges;
}

void write_vocab_gz(const fs::path& path, const std::vector<std::string>& merges) {
  std::string text = "#version: 0.2";
  for (const auto& m : merges) text += "\n" + m;
  z_stream zs{};
  if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) fail("zlib: deflateInit2 failed");
  gz_header header{};  // mtime 0, no name: the same bytes on every run
  header.os = 3;
  deflateSetHeader(&zs, &header);
  std::string out(deflateBound(&zs, static_cast<uLong>(text.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(text.data());
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) fail("zlib: cannot compress the vocabulary");
  io::write_file_atomic(path, out);
}

}  // namespace rdm::demo
