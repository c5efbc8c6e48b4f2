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

}  // namespace

BuildReport build_database(const BuildOptions& opt, const BuildProgressFn& progress) {
  auto t0 = Clock::now();
  if (opt.batch <= 0) fail("--batch must be positive, got {}", opt.batch);
  if (opt.shard_count <= 0 || opt.shard_index < 0 || opt.shard_index >= opt.shard_count)
    fail("invalid shard {}/{} (expected I/N with 0 <= I < N)", opt.shard_index, opt.shard_count);
  const clip::Preprocess variant = preprocess_variant(opt.preprocess);
  const torch::Dtype dtype = parse_precision(opt.precision);
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

  // 1. Load CLIP and pin the build parameters (a resumed build must use the same ones).
  auto tl = Clock::now();
  const clip::QueryEncoder encoder = clip::QueryEncoder::load(opt.clip, {}, parse_device(opt.device), dtype);
  const clip::ClipModel& model = encoder.model();
  const auto& cfg = model.config();
  spdlog::info("CLIP '{}' loaded in {:.2f} s (embed dim {}, resolution {})", model.identity(),
               std::chrono::duration<double>(Clock::now() - tl).count(), cfg.embed_dim,
               cfg.image_resolution);
  validate_index_description(opt.index.description, cfg.embed_dim);
  {
    Store::Transaction tx(store);
    check_meta(store, "clip_identity", model.identity(), out);
    check_meta(store, "dim", std::to_string(cfg.embed_dim), out);
    check_meta(store, "preprocess", opt.preprocess, out);
    check_meta(store, "images", root.string(), out);
    check_meta(store, "shard", std::to_string(opt.shard_index) + "/" + std::to_string(opt.shard_count), out);
    tx.commit();
  }

  // 2. Scan and find what is left to do.
  std::vector<ScannedFile> files = scan_images(root, fs::absolute(out), opt.follow_links);
  if (opt.shard_count > 1) {
    std::vector<ScannedFile> mine;
    for (auto& f : files)
      if (shard_of(f.rel, opt.shard_count) == opt.shard_index) mine.push_back(std::move(f));
    files = std::move(mine);
  }
  const auto recorded = store.recorded_paths();
  BuildReport rep;
  rep.scanned = static_cast<int64_t>(files.size());
  std::vector<const ScannedFile*> pending;
  std::vector<size_t> window_of;  // batch window (position in `files` / batch) of each pending
  for (size_t i = 0; i < files.size(); ++i) {
    if (recorded.count(files[i].rel)) {
      ++rep.resumed;
    } else {
      pending.push_back(&files[i]);
      window_of.push_back(i / static_cast<size_t>(opt.batch));
    }
  }
  if (complete && !opt.append && !pending.empty())
    fail("database '{}' is complete and {} new image(s) were found in '{}'; use --append to add "
         "them, or choose another --out", out.string(), pending.size(), root.string());
  spdlog::info("{} files in '{}'{}: {} already recorded, {} to read", files.size(),
               root.string(),
               opt.shard_count > 1 ? fmt::format(" (shard {}/{})", opt.shard_index, opt.shard_count) : "",
               rep.resumed, pending.size());

  // 3. Decode on workers, encode batches on this thread, commit one transaction per batch.
  //    Batches are fixed windows of the sorted file list, so a resumed build encodes exactly
  //    the batches an uninterrupted one would (bit-identical embeddings).
  const int64_t workers = opt.workers > 0 ? opt.workers
                                          : std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t res = cfg.image_resolution;
  const int64_t max_pixels = opt.max_pixels;
  int64_t indexed_before = store.item_count(), run_done = 0;
  BuildProgress prog;
  prog.total = static_cast<int64_t>(files.size());
  prog.done = rep.resumed;
  prog.indexed = indexed_before;
  prog.skipped = store.skipped_count();
  prog.duplicates = store.duplicate_count();
  auto run_start = Clock::now();
  {
    DecodePool pool(pending, workers, 2 * opt.batch + workers,
                    [&](const ScannedFile& f) { return decode_one(f, res, variant, max_pixels); });
    size_t i = 0;
    c10::InferenceMode guard;
    while (i < pending.size()) {
      size_t w = window_of[i];
      std::vector<Decoded> batch;
      std::vector<std::pair<std::string, std::string>> skipped, dups;
      std::unordered_map<std::string, std::string> seen;  // hash -> path within this batch
      for (; i < pending.size() && window_of[i] == w; ++i) {
        Decoded d = pool.take(i);
        if (!d.error.empty()) {
          skipped.emplace_back(d.rel, d.error);
          spdlog::debug("skipped '{}': {}", d.rel, d.error);
          continue;
        }
        std::optional<std::string> orig;
        if (auto s = seen.find(d.hash); s != seen.end()) orig = s->second;
        else orig = store.path_of_hash(d.hash);
        if (orig) {
          dups.emplace_back(d.rel, *orig);
          continue;
        }
        seen.emplace(d.hash, d.rel);
        batch.push_back(std::move(d));
      }
      torch::Tensor emb;
      if (!batch.empty()) {
        std::vector<torch::Tensor> px;
        for (auto& d : batch) px.push_back(d.pixels);
        emb = encoder.image_features(torch::stack(px)).to(torch::kCPU).contiguous();
      }
      Store::Transaction tx(store);
      for (size_t b = 0; b < batch.size(); ++b) {
        StoreItem it;
        it.path = batch[b].rel;
        it.hash = batch[b].hash;
        it.width = batch[b].width;
        it.height = batch[b].height;
        it.label = label_of(batch[b].rel);
        const float* row = emb.data_ptr<float>() + b * emb.size(1);
        it.embedding.assign(row, row + emb.size(1));
        store.insert_item(it);
      }
      for (auto& [p, r] : skipped) store.insert_skipped(p, r);
      for (auto& [p, o] : dups) store.insert_duplicate(p, o);
      tx.commit();
      rep.new_items += static_cast<int64_t>(batch.size());
      run_done += static_cast<int64_t>(batch.size() + skipped.size() + dups.size());
      prog.done = rep.resumed + run_done;
      prog.indexed += static_cast<int64_t>(batch.size());
      prog.skipped += static_cast<int64_t>(skipped.size());
      prog.duplicates += static_cast<int64_t>(dups.size());
      prog.seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
      prog.rate = prog.seconds > 0 ? static_cast<double>(run_done) / prog.seconds : 0;
      if (progress) progress(prog);
    }
  }
  double embed_seconds = std::chrono::duration<double>(Clock::now() - run_start).count();

  // 4. Ids, report file, embeddings, index, manifest (last).
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

  if (complete && pending.empty()) {
    try {  // nothing new: leave a consistent database alone
      Manifest m = Manifest::read(out);
      if (m.count == rep.indexed && fs::exists(out / kIndexFile) && fs::exists(out / kEmbeddingsFile)) {
        spdlog::info("database '{}' is up to date ({} items)", out.string(), m.count);
        rep.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        if (m.report.contains("recall")) rep.recall = m.report["recall"].value("value", -1.0);
        return rep;
      }
    } catch (const Error&) {
    }
  }

  std::vector<StoreItem> items = store.items(true);
  const int64_t n = static_cast<int64_t>(items.size()), dim = cfg.embed_dim;
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
  std::vector<std::string> names;
  for (const auto& it : items) names.push_back(it.path);
  items.clear();
  Manifest m = old ? *old : Manifest{};
  m.name = !opt.name.empty() ? opt.name : (old && !old->name.empty() ? old->name : fs::absolute(out).filename().string());
  m.clip_identity = model.identity();
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
