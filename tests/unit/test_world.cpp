// The procedural world (rdm/app/world.hpp): determinism, every style x object renders,
// captions, and the generator's promise that style and content are separable: nearest-centroid
// classifiers on simple image statistics recognise the style of pictures of objects they never
// saw, and the colour of the object in styles they never saw.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "rdm/app/world.hpp"
#include "rdm/runtime/error.hpp"

using namespace rdm::world;

namespace {

// See PinnedBytesAcrossMachines.
constexpr const char* kPinnedCaption =
    "a large yellow lighthouse at the bottom left in the style of watercolour";
constexpr uint64_t kPinnedHash = 0x1233dbd55cc7e33full;

uint64_t fnv(const std::vector<uint8_t>& v) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : v) h = (h ^ b) * 1099511628211ull;
  return h;
}

// ---- simple image statistics -------------------------------------------------------------
using Features = std::vector<double>;

std::vector<double> luma(const Picture& p) {
  std::vector<double> y(static_cast<size_t>(p.width) * p.height);
  for (size_t k = 0; k < y.size(); ++k)
    y[k] = 0.299 * p.rgb[3 * k] + 0.587 * p.rgb[3 * k + 1] + 0.114 * p.rgb[3 * k + 2];
  return y;
}

// Texture: mean absolute differences at several lags and directions (periodicity and
// orientation), flatness, saturation and the top-to-bottom brightness ramp.
Features style_features(const Picture& p) {
  const int w = p.width, h = p.height;
  const auto y = luma(p);
  Features f;
  const int dirs[4][2] = {{1, 0}, {0, 1}, {1, 1}, {1, -1}};
  for (int lag : {1, 2, 3, 4, 6, 8})
    for (const auto& d : dirs) {
      double sum = 0;
      int n = 0;
      for (int r = 8; r < h - 8; ++r)
        for (int c = 8; c < w - 8; ++c, ++n)
          sum += std::abs(y[r * w + c] - y[(r + lag * d[1]) * w + c + lag * d[0]]);
      f.push_back(std::log1p(sum / n));
    }
  // The same profile without the overall contrast (its shape: which lags repeat).
  double level = 0;
  for (double v : f) level += v / f.size();
  for (size_t k = 0, n = f.size(); k < n; ++k) f.push_back(f[k] - level);
  int flat = 0;
  double sat = 0, top = 0, bottom = 0;
  for (int r = 0; r + 1 < h; ++r)
    for (int c = 0; c + 1 < w; ++c) {
      const double g = std::abs(y[r * w + c + 1] - y[r * w + c]) + std::abs(y[(r + 1) * w + c] - y[r * w + c]);
      flat += g < 2;
    }
  for (int k = 0; k < w * h; ++k) {
    const uint8_t* px = &p.rgb[3 * k];
    sat += std::max({px[0], px[1], px[2]}) - std::min({px[0], px[1], px[2]});
  }
  for (int c = 0; c < w; ++c)
    for (int r = 0; r < h / 4; ++r) top += y[r * w + c], bottom += y[(h - 1 - r) * w + c];
  f.push_back(static_cast<double>(flat) / (w * h));
  f.push_back(sat / (w * h) / 64);
  f.push_back(std::abs(top - bottom) / (w * h / 4) / 32);
  return f;
}

// Colour: a 5x5x5 RGB histogram (square roots, so a small object still counts).
Features colour_features(const Picture& p) {
  Features f(125, 0.0);
  const size_t n = p.rgb.size() / 3;
  for (size_t k = 0; k < n; ++k)
    f[(p.rgb[3 * k] * 5 / 256) * 25 + (p.rgb[3 * k + 1] * 5 / 256) * 5 + p.rgb[3 * k + 2] * 5 / 256] += 1.0 / n;
  for (double& v : f) v = std::sqrt(v);
  return f;
}

// Nearest centroid after z-scoring with the training statistics; returns the test accuracy.
double nearest_centroid(const std::vector<Features>& train_x, const std::vector<std::string>& train_y,
                        const std::vector<Features>& test_x, const std::vector<std::string>& test_y) {
  const size_t d = train_x[0].size();
  std::vector<double> mean(d, 0), sd(d, 0);
  for (const auto& x : train_x)
    for (size_t k = 0; k < d; ++k) mean[k] += x[k] / train_x.size();
  for (const auto& x : train_x)
    for (size_t k = 0; k < d; ++k) sd[k] += (x[k] - mean[k]) * (x[k] - mean[k]) / train_x.size();
  for (double& s : sd) s = std::sqrt(s) + 1e-9;
  auto z = [&](const Features& x) {
    Features o(d);
    for (size_t k = 0; k < d; ++k) o[k] = (x[k] - mean[k]) / sd[k];
    return o;
  };
  std::map<std::string, std::pair<Features, int>> centroids;
  for (size_t i = 0; i < train_x.size(); ++i) {
    auto& [c, n] = centroids[train_y[i]];
    if (c.empty()) c.assign(d, 0);
    const Features zx = z(train_x[i]);
    for (size_t k = 0; k < d; ++k) c[k] += zx[k];
    ++n;
  }
  for (auto& [label, cn] : centroids)
    for (double& v : cn.first) v /= cn.second;
  int correct = 0;
  for (size_t i = 0; i < test_x.size(); ++i) {
    const Features zx = z(test_x[i]);
    double best = 1e300;
    std::string arg;
    for (const auto& [label, cn] : centroids) {
      double dist = 0;
      for (size_t k = 0; k < d; ++k) dist += (zx[k] - cn.first[k]) * (zx[k] - cn.first[k]);
      if (dist < best) best = dist, arg = label;
    }
    correct += arg == test_y[i];
  }
  return static_cast<double>(correct) / test_x.size();
}

}  // namespace

TEST(World, SameIndexSamePictureWhateverTheOrderOrSubset) {
  WorldSpec spec;
  spec.seed = 42;
  std::vector<uint64_t> forward;
  for (uint64_t i = 0; i < 12; ++i) forward.push_back(fnv(render(sample_scene(spec, i), 48).rgb));
  for (uint64_t i = 12; i-- > 0;) EXPECT_EQ(fnv(render(sample_scene(spec, i), 48).rgb), forward[i]) << i;
  // A subset (only index 7, fresh spec object) and the per-style stream.
  WorldSpec again;
  again.seed = 42;
  EXPECT_EQ(fnv(render(sample_scene(again, 7), 48).rgb), forward[7]);
  const Scene s7 = sample_scene(spec, 7);
  EXPECT_EQ(fnv(render(sample_scene(spec, s7.style, 7), 48).rgb), forward[7]);
  // Content depends on (seed, index) only: the same in every style and with fewer styles.
  WorldSpec dots = spec;
  dots.styles = {"dots"};
  const Scene a = sample_scene(spec, "stripes", 5), b = sample_scene(dots, 5);
  EXPECT_EQ(a.object, b.object);
  EXPECT_EQ(a.colour, b.colour);
  EXPECT_EQ(a.position, b.position);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(b.style, "dots");
  // Another seed gives other pictures.
  spec.seed = 43;
  int same = 0;
  for (uint64_t i = 0; i < 12; ++i) same += fnv(render(sample_scene(spec, i), 48).rgb) == forward[i];
  EXPECT_EQ(same, 0);
}

TEST(World, PinnedBytesAcrossMachines) {
  // Integer-only rendering: these bytes must be the same on every machine and compiler. A
  // deliberate change of the world's definition updates the constants (and the datasets
  // made from it change with them). One picture per style, all hashed together.
  WorldSpec spec;
  spec.seed = 1;
  std::vector<uint8_t> all;
  for (const auto& style : style_names()) {
    const Picture p = render(sample_scene(spec, style, 3), 64);
    ASSERT_EQ(p.rgb.size(), 64u * 64u * 3u);
    all.insert(all.end(), p.rgb.begin(), p.rgb.end());
  }
  const Scene s = sample_scene(spec, "watercolour", 3);
  std::printf("world pin: %s -> %016llx\n", caption(s, true).c_str(),
              static_cast<unsigned long long>(fnv(all)));
  EXPECT_EQ(caption(s, true), std::string(kPinnedCaption));
  EXPECT_EQ(fnv(all), kPinnedHash);
}

TEST(World, EveryStyleAndObjectRendersVisibly) {
  WorldSpec spec;
  for (const auto& style : style_names())
    for (size_t o = 0; o < object_names().size(); ++o) {
      Scene s = sample_scene(spec, style, o);
      s.object = object_names()[o];
      const Picture p = render(s, 64);
      ASSERT_EQ(p.width, 64);
      ASSERT_EQ(p.rgb.size(), 64u * 64u * 3u);
      // Not blank: brightness varies, and the object changes the picture.
      const auto y = luma(p);
      double mean = 0, var = 0;
      for (double v : y) mean += v / y.size();
      for (double v : y) var += (v - mean) * (v - mean) / y.size();
      EXPECT_GT(var, 8.0) << style << " " << s.object;
      Scene other = s;
      other.object = object_names()[(o + 1) % object_names().size()];
      const Picture q = render(other, 64);
      int differ = 0;
      for (size_t k = 0; k < p.rgb.size(); k += 3)
        differ += std::abs(p.rgb[k] - q.rgb[k]) + std::abs(p.rgb[k + 1] - q.rgb[k + 1]) > 60;
      EXPECT_GT(differ, 40) << style << " " << s.object << " vs " << other.object;
    }
  // Other sizes work too.
  for (int size : {16, 33, 128}) {
    const Picture p = render(sample_scene(spec, "mosaic", 1), size);
    EXPECT_EQ(p.rgb.size(), static_cast<size_t>(size * size * 3));
  }
}

TEST(World, CaptionsNameObjectColourSizeAndPosition) {
  WorldSpec spec;
  spec.detail_prob = 1.0;
  std::set<std::string> positions, objects, colours;
  for (uint64_t i = 0; i < 300; ++i) {
    const Scene s = sample_scene(spec, i);
    const std::string c = caption(s, false);
    EXPECT_NE(c.find(s.colour + " " + s.object), std::string::npos) << c;
    EXPECT_NE(c.find(s.size), std::string::npos) << c;
    EXPECT_NE(c.find(position_phrase(s.position)), std::string::npos) << c;
    EXPECT_EQ(c.find("style"), std::string::npos) << c;
    EXPECT_EQ(caption(s, true), c + " in the style of " + s.style);
    positions.insert(s.position), objects.insert(s.object), colours.insert(s.colour);
  }
  EXPECT_EQ(positions.size(), position_names().size());
  EXPECT_EQ(objects.size(), object_names().size());
  EXPECT_EQ(colours.size(), colour_names().size());
  EXPECT_EQ(position_phrase("top-left"), "at the top left");
  EXPECT_EQ(position_phrase("left"), "on the left");
  EXPECT_EQ(position_phrase("middle"), "in the middle");
  EXPECT_EQ(position_phrase("bottom"), "at the bottom");

  Scene s{"boat", "red", "large", "left", "sky", "dots", 1, false, false};
  EXPECT_EQ(caption(s, false), "a red boat");
  s.colour = "orange";
  EXPECT_EQ(caption(s, false), "an orange boat");
  s.say_size = s.say_position = true;
  EXPECT_EQ(caption(s, true), "a large orange boat on the left in the style of dots");

  // Probabilities: 0 never, 1 always, 0.5 about half.
  WorldSpec half;
  half.detail_prob = 0.0;
  half.style_prob = 0.5;
  int styled = 0;
  for (uint64_t i = 0; i < 400; ++i) {
    const Scene t = sample_scene(half, i);
    EXPECT_FALSE(t.say_size || t.say_position);
    styled += says_style(half, t);
  }
  EXPECT_GT(styled, 150);
  EXPECT_LT(styled, 250);
}

TEST(World, RejectsUnknownNamesAndBadSpecs) {
  WorldSpec spec;
  spec.styles = {"dots", "cubism"};
  try {
    validate(spec);
    FAIL() << "no error";
  } catch (const rdm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown style 'cubism'"), std::string::npos) << e.what();
  }
  spec.styles = {};
  spec.objects = {"dragon"};
  EXPECT_THROW(validate(spec), rdm::Error);
  EXPECT_THROW(sample_scene(spec, 0), rdm::Error);
  spec.objects = {};
  spec.style_prob = 1.5;
  EXPECT_THROW(validate(spec), rdm::Error);
  spec.style_prob = 0;
  spec.size = 8;
  EXPECT_THROW(validate(spec), rdm::Error);
  Scene s = sample_scene(WorldSpec{}, 0);
  EXPECT_THROW(render(s, 1000), rdm::Error);
  s.object = "dragon";
  EXPECT_THROW(render(s, 64), rdm::Error);
}

// Style is recognised on objects never seen in training; colour in styles never seen.
TEST(World, StyleAndContentAreSeparable) {
  const auto& objects = object_names();
  const std::set<std::string> train_objects(objects.begin(), objects.begin() + objects.size() / 2);
  WorldSpec spec;
  spec.seed = 7;
  std::vector<Features> tr_x, te_x;
  std::vector<std::string> tr_y, te_y;
  for (const auto& style : style_names())
    for (uint64_t i = 0; i < 80; ++i) {
      const Scene s = sample_scene(spec, style, i);
      const bool train = train_objects.count(s.object) > 0;
      (train ? tr_x : te_x).push_back(style_features(render(s, 64)));
      (train ? tr_y : te_y).push_back(style);
    }
  const double style_acc = nearest_centroid(tr_x, tr_y, te_x, te_y);

  const auto& styles = style_names();
  const std::set<std::string> train_styles(styles.begin(), styles.begin() + (styles.size() + 1) / 2);
  tr_x.clear(), te_x.clear(), tr_y.clear(), te_y.clear();
  for (uint64_t i = 0; i < 1200; ++i) {
    const Scene s = sample_scene(spec, i);
    const bool train = train_styles.count(s.style) > 0;
    (train ? tr_x : te_x).push_back(colour_features(render(s, 64)));
    (train ? tr_y : te_y).push_back(s.colour);
  }
  const double colour_acc = nearest_centroid(tr_x, tr_y, te_x, te_y);
  std::printf("style accuracy on unseen objects %.3f (chance %.3f); colour accuracy on unseen "
              "styles %.3f (chance %.3f)\n", style_acc, 1.0 / styles.size(), colour_acc,
              1.0 / colour_names().size());
  RecordProperty("style_accuracy", std::to_string(style_acc));
  RecordProperty("colour_accuracy", std::to_string(colour_acc));
  EXPECT_GT(style_acc, 0.85);
  EXPECT_GT(colour_acc, 0.75);
}
