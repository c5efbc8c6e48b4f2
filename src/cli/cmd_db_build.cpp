// rdm db build: embed an image folder into a style database (resumable, shardable).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/cmd_db.hpp"
#include "cli/commands.hpp"
#include "cli/index_options.hpp"
#include "cli/model_options.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/runtime/shard.hpp"

namespace rdm::cli {
namespace {

struct BuildArgs {
  std::string images, out, preprocess = "clip";
  std::string shard = "0/1", name;
  int64_t batch = 32, workers = 0, max_pixels = 2LL * 89478485;
  retrieval::IndexOptions index;
  bool append = false, json = false, follow_links = false;
  ModelOptions model;  // --clip, --device, --precision, --threads
};

std::string hms(double s) {
  if (!(s >= 0) || s > 1e7) return "--:--";
  int64_t t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60), (long long)(t % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

// A bar on a terminal, a log line every 10 s otherwise.
retrieval::BuildProgressFn make_progress() {
  const bool tty = isatty(STDERR_FILENO) && spdlog::get_level() <= spdlog::level::info;
  auto last = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  return [tty, last](const retrieval::BuildProgress& p) {
    double remaining = p.rate > 0 ? static_cast<double>(p.total - p.done) / p.rate : -1;
    if (tty) {
      const int width = 30;
      int filled = p.total ? static_cast<int>(width * p.done / p.total) : width;
      std::string bar(filled, '#');
      bar.resize(width, '.');
      std::fprintf(stderr, "\r[%s] %lld/%lld  %.1f img/s  ETA %s  (skipped %lld, duplicates %lld) ",
                   bar.c_str(), (long long)p.done, (long long)p.total, p.rate, hms(remaining).c_str(),
                   (long long)p.skipped, (long long)p.duplicates);
      if (p.done >= p.total) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    } else {
      auto now = std::chrono::steady_clock::now();
      if (p.done < p.total && now - *last < std::chrono::seconds(10)) return;
      *last = now;
      spdlog::info("embedded {}/{} files ({:.1f} img/s, ETA {}, {} skipped, {} duplicates)", p.done,
                   p.total, p.rate, hms(remaining), p.skipped, p.duplicates);
    }
  };
}

}  // namespace

void add_db_build_command(CLI::App& db) {
  auto args = std::make_shared<BuildArgs>();
  auto* c = db.add_subcommand("build", "Embed an image folder (recursively) into a style database");
  c->add_option("--images", args->images, "Collection root (sub-folder names become labels)")
      ->required()->check(CLI::ExistingDirectory);
  c->add_option("--out", args->out, "Database folder (created; rerun the same command to resume)")
      ->required();
  c->add_option("--batch", args->batch, "Images per CLIP batch")->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--preprocess", args->preprocess,
                "clip: resize shorter side + center crop (Pillow bicubic); rdm: the RDM embedder's "
                "straight resize")->capture_default_str()->check(CLI::IsMember({"clip", "rdm"}));
  c->add_option("--workers", args->workers, "Decode threads (0 = all cores)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  c->add_option("--max-pixels", args->max_pixels, "Skip images with more pixels (decompression bombs)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  c->add_flag("--append", args->append, "Add new images to an existing database");
  c->add_flag("--follow-links", args->follow_links,
              "Follow symbolic links that lead outside the image folder (default: listed as skipped)");
  c->add_option("--shard", args->shard, "Embed shard I of N (deterministic split by path hash)")
      ->capture_default_str();
  c->add_option("--name", args->name, "Database name (default: folder name)");
  add_index_options(c, args->index);
  add_trained_from_option(c, args->index);
  c->add_flag("--json", args->json, "Print the build report as JSON on stdout");
  ModelOptions::Use use;
  use.vocab = false;  // images only
  use.precision_of = "CLIP (fp16 needs CUDA)";
  args->model.add_to(c, use);
  c->callback([args] {
    retrieval::BuildOptions o;
    o.images = args->images;
    o.clip = args->model.clip_path();
    o.out = args->out;
    o.preprocess = args->preprocess;
    o.device = args->model.device;
    o.precision = args->model.precision;
    o.batch = args->batch;
    o.workers = args->workers;
    o.max_pixels = args->max_pixels;
    o.append = args->append;
    o.follow_links = args->follow_links;
    o.name = args->name;
    const Shard shard = parse_shard(args->shard);
    o.shard_index = shard.index;
    o.shard_count = shard.count;
    o.index = args->index;
    retrieval::BuildReport r = retrieval::build_database(o, make_progress());
    std::string recall;
    if (r.recall >= 0 && r.recall_raw >= 0 && r.recall_raw != r.recall)
      recall = fmt::format(", recall@{} {:.4f} with re-ranking ({:.4f} raw ANN)", args->index.recall_k, r.recall, r.recall_raw);
    else if (r.recall >= 0)
      recall = fmt::format(", recall@{} {:.4f}", args->index.recall_k, r.recall);
    spdlog::info("database '{}': {} files scanned: {} indexed ({} new), {} skipped, {} duplicates{} in "
                 "{:.1f} s; report: {}", args->out, r.scanned, r.indexed, r.new_items, r.skipped,
                 r.duplicates, recall, r.seconds, r.report_file.string());
    if (args->json) std::cout << r.to_json().dump(2) << std::endl;
  });
}

}  // namespace rdm::cli
