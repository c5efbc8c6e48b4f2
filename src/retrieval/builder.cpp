// `rdm db build`: embeds an image collection with the CLIP image encoder into a style database.
// Port of the reference database side (the sister repo's ClipImageRetriever embedding loop and
// train_searcher.py) with: decoding + preprocessing on worker threads while the main thread
// encodes batches, a SQLite transaction per batch (resumable after any interruption), skipped
// and duplicate files recorded, deterministic sharding, and a FAISS index at the end.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "rdm/clip/query_encoder.hpp"
#include "rdm/runtime/device.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/image/image.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/retrieval/manifest.hpp"
#include "retrieval/finalize.hpp"
#include "retrieval/auto_index.hpp"
#include "retrieval/index.hpp"
#include "retrieval/scan.hpp"
#include "rdm/io/sha256.hpp"
#include "retrieval/store.hpp"
#include "rdm/io/safe_file.hpp"
#include "rdm/image/image_formats.hpp"

namespace rdm::retrieval {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

nlohmann::json BuildReport::to_json() const {
  nlohmann::json j{{"scanned", scanned},       {"indexed", indexed}, {"new_items", new_items},
                   {"skipped", skipped},       {"duplicates", duplicates},
                   {"resumed", resumed},       {"seconds", seconds},
                   {"images_per_second", images_per_second},
                   {"report_file", report_file.string()}};
  if (recall >= 0) j["recall"] = recall;
  if (recall_raw >= 0) j["recall_raw_ann"] = recall_raw;
  return j;
}

namespace {

// One file after the worker stage.
struct Decoded {
  std::string rel;
  std::string hash;
  int64_t width = 0, height = 0;
  torch::Tensor pixels;  // [3, R, R] float32; undefined when skipped
  std::string error;     // reason when skipped
};

// libjpeg (through OpenCV) decodes a truncated JPEG with a warning and grey fill; Pillow
// refuses it ("image file is truncated"). A complete JPEG has an EOI marker (FF D9) after its
// last start-of-scan (FF DA); entropy-coded data never contains FF DA (0xFF is stuffed).
bool is_truncated_jpeg(const std::string& b) {
  if (b.size() < 4 || static_cast<unsigned char>(b[0]) != 0xFF || static_cast<unsigned char>(b[1]) != 0xD8)
    return false;
  auto sos = b.rfind("\xFF\xDA");
  if (sos == std::string::npos) return true;  // no image data at all
  return b.find("\xFF\xD9", sos + 2) == std::string::npos;
}

Decoded decode_one(const ScannedFile& f, int64_t resolution, clip::Preprocess variant,
                   int64_t max_pixels) {
  Decoded d;
  d.rel = f.rel;
  if (!f.skip.empty()) {  // the scan already knows (not an image file, link leaving the root, ...)
    d.error = f.skip;
    return d;
  }
  try {
    std::string bytes = io::read_regular_file(f.abs, image::kMaxImageFileBytes);
    if (bytes.empty()) {
      d.error = "empty file";
      return d;
    }
    d.hash = "sha256:" + io::sha256_hex(bytes);
    if (is_truncated_jpeg(bytes)) {
      d.error = "truncated JPEG (no end-of-image marker after the last scan)";
      return d;
    }
    image::Image img = image::read_image(f.abs, max_pixels);
    d.width = img.width;
    d.height = img.height;
    d.pixels = clip::preprocess_image(img, resolution, variant);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    d.error = msg;
    d.pixels = torch::Tensor();
  }
  return d;
}

// Decodes files on worker threads, in order, at most `lookahead` tasks ahead of the consumer.
class DecodePool {
 public:
  DecodePool(const std::vector<const ScannedFile*>& files, int64_t workers, int64_t lookahead,
             std::function<Decoded(const ScannedFile&)> fn)
      : files_(files), fn_(std::move(fn)), lookahead_(lookahead), slots_(files.size()) {
    for (int64_t i = 0; i < workers; ++i) threads_.emplace_back([this] { run(); });
  }
  ~DecodePool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  // Blocks until task i is done and hands it over.
  Decoded take(size_t i) {
    std::unique_lock lock(mu_);
    consumed_ = i;
    cv_.notify_all();
    done_cv_.wait(lock, [&] { return slots_[i].has_value(); });
    Decoded d = std::move(*slots_[i]);
    slots_[i].reset();
    return d;
  }

 private:
  void run() {
    for (;;) {
      size_t i;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] {
          return stop_ || (next_ < files_.size() && next_ < consumed_ + lookahead_);
        });
        if (stop_) return;
        i = next_++;
      }
      Decoded d = fn_(*files_[i]);
      {
        std::lock_guard lock(mu_);
        slots_[i] = std::move(d);
      }
      done_cv_.notify_all();
    }
  }
  const std::vector<const ScannedFile*>& files_;
  std::function<Decoded(const ScannedFile&)> fn_;
  size_t lookahead_;
  std::vector<std::optional<Decoded>> slots_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  size_t next_ = 0, consumed_ = 0;
  bool stop_ = false;
};

clip::Preprocess preprocess_variant(const std::string& p) {
  if (p == "clip") return clip::Preprocess::Clip;
  if (p == "rdm") return clip::Preprocess::Rdm;
  fail("unknown preprocessing '{}' (clip or rdm)", p);
}

// Checks a stored build parameter, or records it for a new store.
void check_meta(Store& store, const std::string& key, const std::string& value,
                const fs::path& out) {
  auto have = store.meta(key);
  if (!have) {
    store.set_meta(key, value);
  } else if (*have != value) {
    fail("database '{}' was started with {} = '{}', this command has '{}'; rerun with the same "
         "options to resume, or choose another --out", out.string(), key, *have, value);
  }
}

void write_report_file(const fs::path& file, const Store& store) {
  std::string text = "status\tpath\tdetail\n";
  auto clean = [](std::string s) {
    for (char& c : s)
      if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    return s;
  };
  for (auto& [p, reason] : store.skipped()) text += "skipped\t" + clean(p) + "\t" + clean(reason) + "\n";
  for (auto& [p, orig] : store.duplicates())
    text += "duplicate\t" + clean(p) + "\tsame bytes as " + clean(orig) + "\n";
  io::write_file_atomic(file, text);
}

// The steps of build_database, in order: 1. check the options and open the store; 2. load CLIP
// and pin the build parameters; 3. scan; 4. hash + dedupe, 5. embed and 6. store each batch;
// 7. final ids and the report file; 8. the embeddings matrix, index and manifest.

// 1. The options, before anything is touched.
void check_build_options(const BuildOptions& opt) {
  if (opt.batch <= 0) fail("--batch must be positive, got {}", opt.batch);
  if (opt.shard_count <= 0 || opt.shard_index < 0 || opt.shard_index >= opt.shard_count)
    fail("invalid shard {}/{} (expected I/N with 0 <= I < N)", opt.shard_index, opt.shard_count);
}

// 2. CLIP on its device, and the build parameters pinned in the store (a resumed build must use
//    the same ones).
clip::QueryEncoder load_encoder(const BuildOptions& opt, const fs::path& root, Store& store) {
  auto tl = Clock::now();
  const torch::Device device = parse_device(opt.device);
  clip::QueryEncoder encoder = clip::QueryEncoder::load(opt.clip, {}, device, parse_precision(opt.precision, device));
  const clip::ClipModel& model = encoder.model();
  const auto& cfg = model.config();
  spdlog::info("CLIP '{}' loaded in {:.2f} s (embed dim {}, resolution {})", model.identity(),
               std::chrono::duration<double>(Clock::now() - tl).count(), cfg.embed_dim,
               cfg.image_resolution);
  if (!is_auto_index(opt.index.description)) validate_index_description(opt.index.description, cfg.embed_dim);
  Store::Transaction tx(store);
  check_meta(store, "clip_identity", model.identity(), opt.out);
  check_meta(store, "dim", std::to_string(cfg.embed_dim), opt.out);
  check_meta(store, "preprocess", opt.preprocess, opt.out);
  check_meta(store, "images", root.string(), opt.out);
  check_meta(store, "shard", std::to_string(opt.shard_index) + "/" + std::to_string(opt.shard_count), opt.out);
  tx.commit();
  return encoder;
}

// 3. This shard's files under the root.
std::vector<ScannedFile> scan_shard(const BuildOptions& opt, const fs::path& root) {
  std::vector<ScannedFile> files = scan_images(root, fs::absolute(opt.out), opt.follow_links);
  if (opt.shard_count > 1) {
    std::vector<ScannedFile> mine;
    for (auto& f : files)
      if (shard_of(f.rel, opt.shard_count) == opt.shard_index) mine.push_back(std::move(f));
    files = std::move(mine);
  }
  return files;
}

// What is left to do: the files no earlier run recorded, each with its batch window (position
// in `files` / batch), so that a resumed build encodes exactly the batches an uninterrupted one
// would (bit-identical embeddings).
struct Pending {
  std::vector<const ScannedFile*> files;
  std::vector<size_t> window_of;
};
Pending find_pending(const std::vector<ScannedFile>& files, const Store& store, int64_t batch, BuildReport& rep) {
  const auto recorded = store.recorded_paths();
  rep.scanned = static_cast<int64_t>(files.size());
  Pending p;
  for (size_t i = 0; i < files.size(); ++i) {
    if (recorded.count(files[i].rel)) {
      ++rep.resumed;
    } else {
      p.files.push_back(&files[i]);
      p.window_of.push_back(i / static_cast<size_t>(batch));
    }
  }
  return p;
}

// One batch window after decoding: the images to embed, the files skipped, the duplicates.
struct Batch {
  std::vector<Decoded> images;
  std::vector<std::pair<std::string, std::string>> skipped, dups;
};

// 4. The next batch window of decoded files, duplicates (same bytes as a stored item or an
//    earlier file of the window) set aside.
Batch take_batch(DecodePool& pool, const Pending& pending, size_t& i, const Store& store) {
  const size_t w = pending.window_of[i];
  Batch b;
  std::unordered_map<std::string, std::string> seen;  // hash -> path within this batch
  for (; i < pending.files.size() && pending.window_of[i] == w; ++i) {
    Decoded d = pool.take(i);
    if (!d.error.empty()) {
      b.skipped.emplace_back(d.rel, d.error);
      spdlog::debug("skipped '{}': {}", d.rel, d.error);
      continue;
    }
    std::optional<std::string> orig;
    if (auto s = seen.find(d.hash); s != seen.end()) orig = s->second;
    else orig = store.path_of_hash(d.hash);
    if (orig) {
      b.dups.emplace_back(d.rel, *orig);
      continue;
    }
    seen.emplace(d.hash, d.rel);
    b.images.push_back(std::move(d));
  }
  return b;
}

// 5. CLIP image features of the batch, float32 on the CPU (normalised later, with the index).
torch::Tensor embed_batch(const clip::QueryEncoder& encoder, const std::vector<Decoded>& images) {
  if (images.empty()) return {};
  std::vector<torch::Tensor> px;
  for (const auto& d : images) px.push_back(d.pixels);
  return encoder.image_features(torch::stack(px)).to(torch::kCPU).contiguous();
}

// 6. The batch in one transaction: items with their embeddings, skipped files, duplicates.
void store_batch(Store& store, const Batch& b, const torch::Tensor& emb) {
  Store::Transaction tx(store);
  for (size_t k = 0; k < b.images.size(); ++k) {
    StoreItem it;
    it.path = b.images[k].rel;
    it.hash = b.images[k].hash;
    it.width = b.images[k].width;
    it.height = b.images[k].height;
    it.label = label_of(b.images[k].rel);
    const float* row = emb.data_ptr<float>() + k * emb.size(1);
    it.embedding.assign(row, row + emb.size(1));
    store.insert_item(it);
  }
  for (auto& [p, r] : b.skipped) store.insert_skipped(p, r);
  for (auto& [p, o] : b.dups) store.insert_duplicate(p, o);
  tx.commit();
}

// Steps 4-6 over every pending file: decoding on worker threads, encoding on this one, one
// transaction per batch. Returns the files handled in this run.
int64_t embed_pending(const BuildOptions& opt, const clip::QueryEncoder& encoder, const Pending& pending,
                      Store& store, BuildReport& rep, const BuildProgressFn& progress) {
  const int64_t workers = opt.workers > 0 ? opt.workers
                                          : std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t res = encoder.config().image_resolution;
  const clip::Preprocess variant = preprocess_variant(opt.preprocess);
  const int64_t max_pixels = opt.max_pixels;
  int64_t run_done = 0;
  BuildProgress prog;
  prog.total = rep.scanned;
  prog.done = rep.resumed;
  prog.indexed = store.item_count();
  prog.skipped = store.skipped_count();
  prog.duplicates = store.duplicate_count();
  auto run_start = Clock::now();
  DecodePool pool(pending.files, workers, 2 * opt.batch + workers,
                  [&](const ScannedFile& f) { return decode_one(f, res, variant, max_pixels); });
  c10::InferenceMode guard;
  for (size_t i = 0; i < pending.files.size();) {
    const Batch b = take_batch(pool, pending, i, store);
    store_batch(store, b, embed_batch(encoder, b.images));
    rep.new_items += static_cast<int64_t>(b.images.size());
    run_done += static_cast<int64_t>(b.images.size() + b.skipped.size() + b.dups.size());
    prog.done = rep.resumed + run_done;
    prog.indexed += static_cast<int64_t>(b.images.size());
    prog.skipped += static_cast<int64_t>(b.skipped.size());
    prog.duplicates += static_cast<int64_t>(b.dups.size());
    prog.seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
    prog.rate = prog.seconds > 0 ? static_cast<double>(run_done) / prog.seconds : 0;
    if (progress) progress(prog);
  }
  return run_done;
}

// 7. Final ids (path order), counts, and the report file of skipped and duplicate files.
void finalize_store(Store& store, const fs::path& out, BuildReport& rep) {
  {
    Store::Transaction tx(store);
    store.assign_final_ids();
    tx.commit();
  }
  rep.indexed = store.item_count();
  rep.skipped = store.skipped_count();
  rep.duplicates = store.duplicate_count();
  rep.report_file = out / kReportFile;
  write_report_file(rep.report_file, store);
}

// Nothing new in a finished database: true (and the report completed) when its files are
// consistent and can be left alone.
bool up_to_date(const fs::path& out, BuildReport& rep) {
  try {
    Manifest m = Manifest::read(out);
    if (m.count == rep.indexed && fs::exists(out / kIndexFile) && fs::exists(out / kEmbeddingsFile)) {
      spdlog::info("database '{}' is up to date ({} items)", out.string(), m.count);
      if (m.report.contains("recall")) rep.recall = m.report["recall"].value("value", -1.0);
      return true;
    }
  } catch (const Error&) {
  }
  return false;
}

// 8. The embeddings of every item in id order: from the store, or for items stored without an
//    embedding blob, from the previous embeddings file. `names` gets the items' paths.
torch::Tensor gather_embeddings(const Store& store, const fs::path& out, int64_t dim, std::vector<std::string>& names) {
  std::vector<StoreItem> items = store.items(true);
  const int64_t n = static_cast<int64_t>(items.size());
  torch::Tensor all = torch::empty({n, dim}, torch::kFloat32);
  std::optional<torch::Tensor> previous;  // rows of items stored without an embedding blob
  for (int64_t r = 0; r < n; ++r) {
    const auto& it = items[r];
    if (static_cast<int64_t>(it.embedding.size()) == dim) {
      std::memcpy(all[r].data_ptr<float>(), it.embedding.data(), dim * sizeof(float));
    } else {
      if (!previous) previous = formats::read_npy(out / kEmbeddingsFile).to(torch::kFloat32);
      if (it.final_id < 0 || it.final_id >= previous->size(0))
        fail("item store '{}' lacks the embedding of '{}'; rebuild the database",
             (out / kStoreFile).string(), it.path);
      all[r].copy_((*previous)[it.final_id]);
    }
  }
  for (const auto& it : items) names.push_back(it.path);
  return all;
}

}  // namespace

BuildReport build_database(const BuildOptions& opt, const BuildProgressFn& progress) {
  auto t0 = Clock::now();
  // 1. Options; the store (locked; leftovers of interrupted writes removed).
  check_build_options(opt);
  preprocess_variant(opt.preprocess);
  parse_precision(opt.precision, parse_device(opt.device));
  embeddings_dtype(opt.index.dtype);
  if (!fs::is_directory(opt.images))
    fail("image folder '{}' does not exist or is not a folder", opt.images.string());
  const fs::path root = fs::canonical(opt.images);
  const fs::path out = opt.out;
  const bool complete = fs::exists(out / kManifestFile);
  if (complete && !opt.append && !fs::exists(out / kStoreFile))
    fail("'{}' holds a database without an item store (an import?); choose another --out", out.string());
  FolderLock lock(out);
  remove_stale_temporaries(out);
  Store store = Store::open(out / kStoreFile, true);
  std::optional<Manifest> old;
  if (complete) old = Manifest::read(out);

  // 2. CLIP, build parameters pinned.
  const clip::QueryEncoder encoder = load_encoder(opt, root, store);

  // 3. Scan and find what is left to do.
  const std::vector<ScannedFile> files = scan_shard(opt, root);
  BuildReport rep;
  const Pending pending = find_pending(files, store, opt.batch, rep);
  if (complete && !opt.append && !pending.files.empty())
    fail("database '{}' is complete and {} new image(s) were found in '{}'; use --append to add "
         "them, or choose another --out", out.string(), pending.files.size(), root.string());
  spdlog::info("{} files in '{}'{}: {} already recorded, {} to read", files.size(),
               root.string(),
               opt.shard_count > 1 ? fmt::format(" (shard {}/{})", opt.shard_index, opt.shard_count) : "",
               rep.resumed, pending.files.size());

  // 4.-6. Hash, dedupe, embed and store batch by batch.
  auto run_start = Clock::now();
  const int64_t run_done = embed_pending(opt, encoder, pending, store, rep, progress);
  const double embed_seconds = std::chrono::duration<double>(Clock::now() - run_start).count();

  // 7. Ids and the report file.
  finalize_store(store, out, rep);
  if (complete && pending.files.empty() && up_to_date(out, rep)) {
    rep.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return rep;
  }

  // 8. Embeddings, index, manifest (last).
  std::vector<std::string> names;
  torch::Tensor all = gather_embeddings(store, out, encoder.config().embed_dim, names);
  Manifest m = old ? *old : Manifest{};
  m.name = !opt.name.empty() ? opt.name : (old && !old->name.empty() ? old->name : fs::absolute(out).filename().string());
  m.clip_identity = encoder.model().identity();
  m.preprocess = opt.preprocess;
  m.source = {{"kind", "build"}, {"root", root.string()},
              {"clip_model", fs::absolute(opt.clip).string()},
              {"shard", {{"index", opt.shard_index}, {"count", opt.shard_count}}}};
  m.report = {{"scanned", rep.scanned}, {"indexed", rep.indexed}, {"skipped", rep.skipped},
              {"duplicates", rep.duplicates}, {"report_file", kReportFile},
              {"embed_seconds_last_run", embed_seconds}, {"new_items_last_run", rep.new_items}};
  rep.recall = write_database_files(out, all, m, opt.index, "db build of '" + root.string() + "'",
                                    [&](int64_t r) { return "'" + names[r] + "'"; }, &rep.recall_raw);
  rep.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  rep.images_per_second = embed_seconds > 0 ? static_cast<double>(run_done) / embed_seconds : 0;
  return rep;
}

}  // namespace rdm::retrieval
