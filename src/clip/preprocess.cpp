// CLIP image preprocessing. Ports:
//  * clip.clip._transform (github.com/openai/CLIP): torchvision 0.14 Resize(R, BICUBIC),
//    CenterCrop(R), convert("RGB"), ToTensor, Normalize;
//  * Pillow 9.4 Image.resize (PIL/Image.py mode rules) and libImaging/Resample.c
//    (precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc and
//    _32bpc), libImaging/Convert.c premultiplication (rgbA2rgba / rgba2rgbA), and the nearest
//    neighbour affine transform used for modes P and 1;
//  * ldm/modules/encoders/modules.py FrozenClipImageEmbedder.preprocess (CompVis
//    latent-diffusion): kornia resize(bicubic, align_corners=True, antialias=False).
#include "rdm/clip/preprocess.hpp"

#include <cmath>

#include "rdm/runtime/error.hpp"

namespace rdm::clip {
using image::Image;
using image::ImageMode;

std::pair<int, int> resize_target(int w, int h, int size) {
  // torchvision _compute_resized_output_size for an int size.
  if (w <= h) return {size, static_cast<int>(static_cast<double>(size) * h / w)};
  return {static_cast<int>(static_cast<double>(size) * w / h), size};
}

static int round_half_even(double x) { return static_cast<int>(std::nearbyint(x)); }  // FE_TONEAREST

std::pair<int, int> center_crop_offsets(int w, int h, int crop) {
  // torchvision center_crop: pads with (crop - size) // 2 on the left/top when smaller,
  // then crops at round((size - crop) / 2) (Python round: half to even).
  const int left = w < crop ? -((crop - w) / 2) : round_half_even((w - crop) / 2.0);
  const int top = h < crop ? -((crop - h) / 2) : round_half_even((h - crop) / 2.0);
  return {left, top};
}

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic_filter(double x) {  // Keys cubic, a = -0.5 (Resample.c)
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;    // xmin, xcount per output
  std::vector<double> kk;     // normalised weights, ksize per output
};

Coeffs precompute_coeffs(int in_size, int out_size) {
  Coeffs c;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.kk.assign(static_cast<size_t>(out_size) * c.ksize, 0.0);
  c.bounds.resize(static_cast<size_t>(out_size) * 2);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double* k = &c.kk[static_cast<size_t>(xx) * c.ksize];
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x)
      if (ww != 0.0) k[x] /= ww;
    c.bounds[2 * xx] = xmin;
    c.bounds[2 * xx + 1] = xmax;
  }
  return c;
}

std::vector<int32_t> fixed_point(const Coeffs& c) {
  std::vector<int32_t> out(c.kk.size());
  for (size_t i = 0; i < c.kk.size(); ++i)
    out[i] = c.kk[i] < 0 ? static_cast<int32_t>(-0.5 + c.kk[i] * (1 << kPrecisionBits))
                         : static_cast<int32_t>(0.5 + c.kk[i] * (1 << kPrecisionBits));
  return out;
}

inline uint8_t clip8(int32_t in) {
  if (in >= (1 << kPrecisionBits) << 8) return 255;  // same bound as Resample.c
  if (in <= 0) return 0;
  return static_cast<uint8_t>(in >> kPrecisionBits);
}

// One 8-bit pass along x (horizontal) or y (vertical) of an interleaved image.
std::vector<uint8_t> pass_8bpc(const std::vector<uint8_t>& in, int w, int h, int ch, int out_size, bool horizontal) {
  const int in_size = horizontal ? w : h;
  const Coeffs c = precompute_coeffs(in_size, out_size);
  const std::vector<int32_t> k = fixed_point(c);
  const int ow = horizontal ? out_size : w, oh = horizontal ? h : out_size;
  std::vector<uint8_t> out(static_cast<size_t>(ow) * oh * ch);
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x) {
      const int o = horizontal ? x : y;
      const int xmin = c.bounds[2 * o], n = c.bounds[2 * o + 1];
      const int32_t* kp = &k[static_cast<size_t>(o) * c.ksize];
      for (int b = 0; b < ch; ++b) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int t = 0; t < n; ++t) {
          const size_t idx = horizontal ? (static_cast<size_t>(y) * w + xmin + t) * ch + b
                                        : (static_cast<size_t>(xmin + t) * w + x) * ch + b;
          ss += in[idx] * kp[t];
        }
        out[(static_cast<size_t>(y) * ow + x) * ch + b] = clip8(ss);
      }
    }
  return out;
}

// 32-bit ("I") pass: double weights, ROUND_UP to int.
std::vector<int32_t> pass_32bpc(const std::vector<int32_t>& in, int w, int h, int out_size, bool horizontal) {
  const int in_size = horizontal ? w : h;
  const Coeffs c = precompute_coeffs(in_size, out_size);
  const int ow = horizontal ? out_size : w, oh = horizontal ? h : out_size;
  std::vector<int32_t> out(static_cast<size_t>(ow) * oh);
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x) {
      const int o = horizontal ? x : y;
      const int xmin = c.bounds[2 * o], n = c.bounds[2 * o + 1];
      const double* kp = &c.kk[static_cast<size_t>(o) * c.ksize];
      double ss = 0.0;
      for (int t = 0; t < n; ++t)
        ss += in[horizontal ? static_cast<size_t>(y) * w + xmin + t : static_cast<size_t>(xmin + t) * w + x] * kp[t];
      out[static_cast<size_t>(y) * ow + x] = static_cast<int32_t>(ss >= 0.0 ? ss + 0.5f : ss - 0.5f);
    }
  return out;
}

Image resize_nearest(const Image& img, int ow, int oh) {
  // Pillow resize(NEAREST) = affine transform with a = (in/out, 0, 0, 0, in/out, 0), sampled
  // at pixel centres: running sums starting at s/2, truncated.
  Image out = img;
  out.width = ow;
  out.height = oh;
  const int ch = img.mode == ImageMode::I ? 1 : img.channels();
  const double sx = static_cast<double>(img.width) / ow, sy = static_cast<double>(img.height) / oh;
  std::vector<int> xs(static_cast<size_t>(ow));
  double xx = sx / 2;
  for (int x = 0; x < ow; ++x, xx += sx) xs[x] = std::min(static_cast<int>(xx), img.width - 1);
  out.pixels.assign(static_cast<size_t>(ow) * oh * (img.mode == ImageMode::I ? 0 : ch), 0);
  if (img.mode == ImageMode::I) out.pixels_i.assign(static_cast<size_t>(ow) * oh, 0);
  double yy = sy / 2;
  for (int y = 0; y < oh; ++y, yy += sy) {
    const int sy_i = std::min(static_cast<int>(yy), img.height - 1);
    for (int x = 0; x < ow; ++x) {
      const size_t src = static_cast<size_t>(sy_i) * img.width + xs[x], dst = static_cast<size_t>(y) * ow + x;
      if (img.mode == ImageMode::I) out.pixels_i[dst] = img.pixels_i[src];
      else
        for (int b = 0; b < ch; ++b) out.pixels[dst * ch + b] = img.pixels[src * ch + b];
    }
  }
  return out;
}

}  // namespace

Image pil_resize(const Image& img, int ow, int oh) {
  if (ow <= 0 || oh <= 0) fail("resize: invalid target size {}x{}", ow, oh);
  if (img.width == ow && img.height == oh) return img;
  if (img.mode == ImageMode::P || img.mode == ImageMode::One) return resize_nearest(img, ow, oh);
  Image out = img;
  out.width = ow;
  out.height = oh;
  const bool need_h = ow != img.width, need_v = oh != img.height;
  if (img.mode == ImageMode::I) {
    std::vector<int32_t> d = img.pixels_i;
    int w = img.width;
    if (need_h) d = pass_32bpc(d, w, img.height, ow, true), w = ow;
    if (need_v) d = pass_32bpc(d, w, img.height, oh, false);
    out.pixels_i = std::move(d);
    return out;
  }
  const int ch = img.channels();
  std::vector<uint8_t> d = img.pixels;
  const bool alpha = img.mode == ImageMode::RGBA || img.mode == ImageMode::LA;
  if (alpha) {  // convert to RGBa / La: premultiply with MULDIV255
    for (size_t i = 0; i < d.size(); i += ch) {
      const int a = d[i + ch - 1];
      for (int b = 0; b < ch - 1; ++b) {
        const int t = d[i + b] * a + 128;
        d[i + b] = static_cast<uint8_t>((t + (t >> 8)) >> 8);
      }
    }
  }
  int w = img.width;
  if (need_h) d = pass_8bpc(d, w, img.height, ch, ow, true), w = ow;
  if (need_v) d = pass_8bpc(d, w, img.height, ch, oh, false);
  if (alpha) {  // back from premultiplied: c = CLIP8(255 * c / a) for 0 < a < 255
    for (size_t i = 0; i < d.size(); i += ch) {
      const int a = d[i + ch - 1];
      if (a == 0 || a == 255) continue;
      for (int b = 0; b < ch - 1; ++b) d[i + b] = static_cast<uint8_t>(std::min(255, 255 * d[i + b] / a));
    }
  }
  out.pixels = std::move(d);
  return out;
}

Image pil_crop(const Image& img, int left, int top, int cw, int chh) {
  if (cw <= 0 || chh <= 0) fail("crop: invalid size {}x{}", cw, chh);
  Image out = img;
  out.width = cw;
  out.height = chh;
  const bool is_i = img.mode == ImageMode::I;
  const int ch = is_i ? 1 : img.channels();
  out.pixels.assign(is_i ? 0 : static_cast<size_t>(cw) * chh * ch, 0);
  out.pixels_i.assign(is_i ? static_cast<size_t>(cw) * chh : 0, 0);
  for (int y = 0; y < chh; ++y) {
    const int sy = y + top;
    if (sy < 0 || sy >= img.height) continue;
    for (int x = 0; x < cw; ++x) {
      const int sx = x + left;
      if (sx < 0 || sx >= img.width) continue;
      const size_t src = static_cast<size_t>(sy) * img.width + sx, dst = static_cast<size_t>(y) * cw + x;
      if (is_i) out.pixels_i[dst] = img.pixels_i[src];
      else
        for (int b = 0; b < ch; ++b) out.pixels[dst * ch + b] = img.pixels[src * ch + b];
    }
  }
  return out;
}

torch::Tensor to_normalized_tensor(const Image& rgb, const float (&mean)[3], const float (&std)[3]) {
  if (rgb.mode != ImageMode::RGB) fail("to_normalized_tensor: expected an RGB image, got mode {}", image::image_mode_name(rgb.mode));
  const int64_t h = rgb.height, w = rgb.width;
  auto t = torch::empty({3, h, w}, torch::kFloat32);
  float* p = t.data_ptr<float>();
  for (int c = 0; c < 3; ++c) {
    const float m = mean[c], s = std[c];
    for (int64_t i = 0; i < h * w; ++i) {
      volatile float x = static_cast<float>(rgb.pixels[static_cast<size_t>(i) * 3 + c]) / 255.0f;  // ToTensor
      volatile float d = x - m;                                                                    // Normalize: sub_
      p[c * h * w + i] = d / s;                                                                     // then div_
    }
  }
  return t;
}

torch::Tensor preprocess_image(const Image& img, int64_t resolution, Preprocess kind) {
  if (resolution <= 0 || resolution > 16384) fail("preprocess: invalid resolution {}", resolution);
  const int r = static_cast<int>(resolution);
  if (kind == Preprocess::Clip) {
    auto [w, h] = resize_target(img.width, img.height, r);
    Image resized = pil_resize(img, w, h);
    auto [left, top] = center_crop_offsets(w, h, r);
    return to_normalized_tensor(image::to_rgb(pil_crop(resized, left, top, r, r)));
  }
  // Rdm: RGB uint8 -> [-1, 1] -> bicubic (a = -0.75, align_corners) to R x R -> [0, 1] -> normalise.
  Image rgb = image::to_rgb(img);
  auto u8 = torch::from_blob(rgb.pixels.data(), {1, img.height, img.width, 3}, torch::kUInt8);
  auto x = u8.permute({0, 3, 1, 2}).to(torch::kFloat32) / 127.5 - 1.0;
  x = torch::upsample_bicubic2d(x, {resolution, resolution}, /*align_corners=*/true);
  x = (x + 1.0) / 2.0;
  auto mean = torch::tensor({kClipMean[0], kClipMean[1], kClipMean[2]}).view({1, 3, 1, 1});
  auto stdv = torch::tensor({kClipStd[0], kClipStd[1], kClipStd[2]}).view({1, 3, 1, 1});
  return ((x - mean) / stdv).squeeze(0).contiguous();
}

torch::Tensor preprocess_file(const std::filesystem::path& image, int64_t resolution, Preprocess kind) {
  Image img = image::read_image(image);
  try {
    return preprocess_image(img, resolution, kind);
  } catch (const Error& e) {
    fail("image '{}': {}", image.string(), e.what());
  }
}

}  // namespace rdm::clip
