// A procedural world of small pictures with captions, for training tiny CLIP / autoencoder /
// RDM models on the CPU: CONTENT (an object of a colour and size at a place on a background)
// rendered in one of several STYLES (flat, stripes, dots, ..., watercolour). Content and style
// are independent, so a style database made of one style shows what retrieval transfers.
//
// Everything is seeded and counter-based: item `index` of a world depends only on the spec and
// the index (not on which other items are made, nor in which order), and rendering uses integer
// arithmetic only, so the bytes are the same on every machine and compiler.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace rdm::world {

// The known names (in this order; the order is part of the world's definition).
const std::vector<std::string>& object_names();     // circle, square, triangle, star, house, ...
const std::vector<std::string>& colour_names();     // red, orange, yellow, green, blue, ...
const std::vector<std::string>& size_names();       // small, large
const std::vector<std::string>& position_names();   // top-left, top, top-right, left, middle, ...
const std::vector<std::string>& background_names(); // sky, sand, sage, stone, ...
const std::vector<std::string>& style_names();      // flat, stripes, dots, checks, gradient, ...

// The phrase of a position in captions: "at the top left", "on the left", "in the middle".
std::string position_phrase(const std::string& position);

// One picture's description. `seed` drives the small random details (jitter, texture phase,
// noise) and is derived from the world seed and the index.
struct Scene {
  std::string object, colour, size, position, background, style;
  uint64_t seed = 0;
  bool say_size = true, say_position = true;  // which details the caption mentions
};

// What a world is made of. Empty lists mean "all known".
struct WorldSpec {
  uint64_t seed = 0;
  std::vector<std::string> styles, objects, colours;
  double detail_prob = 0.75;  // probability that a caption names the size (and, independently, the position)
  double style_prob = 0.0;    // probability that a caption ends with "in the style of <style>"
  int size = 64;              // picture width = height in pixels (16..512)
};

// Throws rdm::Error for an unknown style/object/colour, a probability outside [0, 1] or a size
// outside 16..512.
void validate(const WorldSpec& spec);

// Item `index` of the world: content from (seed, index) only, so the same index shows the same
// content in every style; the style is drawn from spec.styles.
Scene sample_scene(const WorldSpec& spec, uint64_t index);
// Item `index` of the world rendered in `style` (same content as sample_scene(spec, index)).
Scene sample_scene(const WorldSpec& spec, const std::string& style, uint64_t index);

// Whether the caption of this picture carries the style (drawn with spec.style_prob from the
// scene's seed and style).
bool says_style(const WorldSpec& spec, const Scene& scene);

// "a small yellow star at the top" (+ " in the style of dots" when with_style).
std::string caption(const Scene& scene, bool with_style);

// 8-bit RGB, row-major height x width x 3.
struct Picture {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

// Renders a scene at size x size pixels (16..512). Throws rdm::Error for unknown names.
Picture render(const Scene& scene, int size);

// ---------------------------------------------------------------------------------------------
// Writing a world to a folder: OUT/<style>/<index>.png (5-digit index), OUT/captions.jsonl and
// OUT/contact_sheet.png (one row per style). Every file is written atomically.
struct WriteOptions {
  WorldSpec spec;
  std::filesystem::path out;
  int64_t count = 100;     // pictures per style
  int64_t sheet_columns = 6;
  int threads = 0;         // 0 = all cores
};
struct WriteReport {
  int64_t pictures = 0;
  std::filesystem::path captions, contact_sheet;
  double seconds = 0;
};
// Called after each picture with (done, total).
using WriteProgressFn = std::function<void(int64_t done, int64_t total)>;
WriteReport write_world(const WriteOptions& options, const WriteProgressFn& progress = {});

}  // namespace rdm::world
