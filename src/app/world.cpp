// The procedural world: names, scene sampling and captions (rendering: world_render.cpp and
// world_shapes.cpp; writing a folder: world_write.cpp).
#include "rdm/app/world.hpp"

#include <algorithm>

#include "app/world_internal.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::world {
using namespace detail;

namespace {
template <size_t N>
std::vector<std::string> names_of(const NamedRgb (&table)[N]) {
  std::vector<std::string> v;
  for (const auto& e : table) v.emplace_back(e.name);
  return v;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

void check_names(const std::vector<std::string>& given, const std::vector<std::string>& known,
                 const char* what) {
  for (const auto& g : given)
    if (std::find(known.begin(), known.end(), g) == known.end())
      fail("unknown {} '{}' (known: {})", what, g, joined(known));
}

const std::vector<std::string>& or_all(const std::vector<std::string>& v,
                                       const std::vector<std::string>& all) {
  return v.empty() ? all : v;
}

// The random stream of item `index` (a different stream per purpose via `salt`).
Stream item_stream(const WorldSpec& spec, uint64_t index, uint64_t salt) {
  return Stream{mix64(mix64(spec.seed ^ salt) ^ index)};
}
constexpr uint64_t kContentSalt = 0x636F6E74656E74ull, kStyleSalt = 0x7374796C65ull;
}  // namespace

const std::vector<std::string>& object_names() {
  static const std::vector<std::string> v = {"circle", "square", "triangle", "star",
                                             "house", "tree", "boat", "lighthouse",
                                             "moon", "fish", "mountain", "flower"};
  return v;
}
const std::vector<std::string>& colour_names() {
  static const std::vector<std::string> v = names_of(kColours);
  return v;
}
const std::vector<std::string>& size_names() {
  static const std::vector<std::string> v = {"small", "large"};
  return v;
}
const std::vector<std::string>& position_names() {
  static const std::vector<std::string> v = {"top-left", "top", "top-right", "left", "middle",
                                             "right", "bottom-left", "bottom", "bottom-right"};
  return v;
}
const std::vector<std::string>& background_names() {
  static const std::vector<std::string> v = names_of(kBackgrounds);
  return v;
}
const std::vector<std::string>& style_names() {
  static const std::vector<std::string> v = {"flat", "stripes", "dots", "checks",
                                             "gradient", "sketch", "mosaic", "watercolour",
                                             "grain", "hatching", "pixel"};
  return v;
}

std::string position_phrase(const std::string& position) {
  if (position == "middle") return "in the middle";
  if (position == "left" || position == "right") return "on the " + position;
  std::string p = position;
  std::replace(p.begin(), p.end(), '-', ' ');
  return "at the " + p;
}

void validate(const WorldSpec& spec) {
  check_names(spec.styles, style_names(), "style");
  check_names(spec.objects, object_names(), "object");
  check_names(spec.colours, colour_names(), "colour");
  if (!(spec.detail_prob >= 0 && spec.detail_prob <= 1))
    fail("caption detail probability {} is not in [0, 1]", spec.detail_prob);
  if (!(spec.style_prob >= 0 && spec.style_prob <= 1))
    fail("caption style probability {} is not in [0, 1]", spec.style_prob);
  if (spec.size < 16 || spec.size > 512) fail("picture size {} out of range [16, 512]", spec.size);
}

Scene sample_scene(const WorldSpec& spec, const std::string& style, uint64_t index) {
  validate(spec);
  check_names({style}, style_names(), "style");
  const Stream s = item_stream(spec, index, kContentSalt);
  const auto& objects = or_all(spec.objects, object_names());
  const auto& colours = or_all(spec.colours, colour_names());
  Scene sc;
  sc.style = style;
  sc.object = objects[s.below(1, static_cast<int>(objects.size()))];
  sc.colour = colours[s.below(2, static_cast<int>(colours.size()))];
  sc.size = size_names()[s.below(3, static_cast<int>(size_names().size()))];
  sc.position = position_names()[s.below(4, static_cast<int>(position_names().size()))];
  // A background that contrasts with the object's colour.
  const auto colour_it = std::find(colour_names().begin(), colour_names().end(), sc.colour);
  const Rgb rgb = kColours[colour_it - colour_names().begin()].rgb;
  std::vector<std::string> backgrounds;
  for (const auto& b : kBackgrounds)
    if (contrasts(rgb, b.rgb)) backgrounds.emplace_back(b.name);
  sc.background = backgrounds[s.below(5, static_cast<int>(backgrounds.size()))];
  sc.say_size = s.chance(6, spec.detail_prob);
  sc.say_position = s.chance(7, spec.detail_prob);
  sc.seed = s.draw(8);
  return sc;
}

Scene sample_scene(const WorldSpec& spec, uint64_t index) {
  const auto& styles = or_all(spec.styles, style_names());
  const Stream s = item_stream(spec, index, kStyleSalt);
  return sample_scene(spec, styles[s.below(1, static_cast<int>(styles.size()))], index);
}

bool says_style(const WorldSpec& spec, const Scene& scene) {
  return Stream{mix64(scene.seed ^ hash_name(scene.style))}.chance(1, spec.style_prob);
}

std::string caption(const Scene& scene, bool with_style) {
  const std::string first = scene.say_size ? scene.size : scene.colour;
  std::string c = std::string(first.find_first_of("aeiou") == 0 ? "an " : "a ");
  if (scene.say_size) c += scene.size + " ";
  c += scene.colour + " " + scene.object;
  if (scene.say_position) c += " " + position_phrase(scene.position);
  if (with_style) c += " in the style of " + scene.style;
  return c;
}

}  // namespace rdm::world
