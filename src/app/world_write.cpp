// Writing a procedural world to a folder (rdm world): one sub-folder of PNGs per style (so
// `rdm db build` labels a database by style), captions.jsonl and a contact sheet. Pictures are
// rendered on several threads; every file is written atomically.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "rdm/app/world.hpp"
#include "rdm/image/contact_sheet.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/image/png.hpp"
#include "rdm/retrieval/build.hpp"

namespace rdm::world {
namespace fs = std::filesystem;

namespace {

struct Item {
  std::string file;  // relative to the output folder
  Scene scene;
  std::string caption;
  uint64_t index = 0;
};

nlohmann::json record(const Item& it) {
  return {{"file", it.file},
          {"caption", it.caption},
          {"object", it.scene.object},
          {"colour", it.scene.colour},
          {"size", it.scene.size},
          {"position", it.scene.position},
          {"background", it.scene.background},
          {"style", it.scene.style},
          {"index", it.index},
          {"seed", it.scene.seed}};
}

void make_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) fail("cannot create folder '{}': {}", dir.string(),
                                         ec ? ec.message() : "a file of that name exists");
}

// Item k of the world: style k / count, index k % count.
Item item_at(const WriteOptions& o, const std::vector<std::string>& styles, int64_t k) {
  Item it;
  it.index = static_cast<uint64_t>(k % o.count);
  it.scene = sample_scene(o.spec, styles[static_cast<size_t>(k / o.count)], it.index);
  it.caption = caption(it.scene, says_style(o.spec, it.scene));
  it.file = fmt::format("{}/{:05d}.png", it.scene.style, it.index);
  return it;
}

// Renders and writes every item on `threads` threads; rethrows the first error.
void render_all(const WriteOptions& o, const std::vector<std::string>& styles,
                const WriteProgressFn& progress) {
  const int64_t total = o.count * static_cast<int64_t>(styles.size());
  int threads = o.threads > 0 ? o.threads
                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<int64_t>(threads, total));
  std::atomic<int64_t> next{0}, done{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex mu;
  auto work = [&] {
    for (int64_t k; !failed && (k = next++) < total;) {
      try {
        const Item it = item_at(o, styles, k);
        const Picture p = render(it.scene, o.spec.size);
        image::RgbImage img(p.height, p.width);
        img.pixels = p.rgb;
        image::write_png(o.out / it.file, img, {{"parameters", it.caption}, {"rdm", record(it).dump()}});
        const int64_t d = ++done;
        std::lock_guard<std::mutex> lock(mu);
        if (progress) progress(d, total);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace

WriteReport write_world(const WriteOptions& o, const WriteProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  validate(o.spec);
  if (o.count < 1) fail("picture count {} must be at least 1", o.count);
  if (o.out.empty()) fail("no output folder given");
  const std::vector<std::string>& styles = o.spec.styles.empty() ? style_names() : o.spec.styles;
  for (const auto& style : styles) make_dir(o.out / style);
  render_all(o, styles, progress);

  WriteReport r;
  r.pictures = o.count * static_cast<int64_t>(styles.size());
  std::string lines;
  for (int64_t k = 0; k < r.pictures; ++k) lines += record(item_at(o, styles, k)).dump() + "\n";
  r.captions = o.out / "captions.jsonl";
  io::write_file_atomic(r.captions, lines);

  // Contact sheet: one row per style, the first few pictures of each.
  const int64_t cols = std::clamp<int64_t>(o.sheet_columns, 1, o.count);
  std::vector<std::string> files, captions;
  for (size_t s = 0; s < styles.size(); ++s)
    for (int64_t i = 0; i < cols; ++i) {
      const Item it = item_at(o, styles, static_cast<int64_t>(s) * o.count + i);
      files.push_back((o.out / it.file).string());
      captions.push_back(it.scene.style + "\n" + it.scene.colour + " " + it.scene.object);
    }
  r.contact_sheet = o.out / "contact_sheet.png";
  image::write_contact_sheet(r.contact_sheet, files, captions,
                                 std::clamp(o.spec.size * 3 / 2, 96, 192), cols);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace rdm::world
