// Batch sampling over one loaded pipeline: jobs, shards, resume, results log, gallery.
// (No reference file: knn2img loops over prompt chunks of one file; this generalises it.)
#include "rdm/app/sweep.hpp"
#include "rdm/image/contact_sheet.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/io/safe_file.hpp"
#include "rdm/io/text_file.hpp"
#include "rdm/app/request_checks.hpp"
#include "rdm/app/model_paths.hpp"
#include "rdm/app/output.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/io/sha256.hpp"

namespace rdm {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::string SweepJob::id() const { return io::sha256_hex(to_json().dump()).substr(0, 12); }

std::string SweepJob::file_name() const {
  const SampleRequest& r = request;
  std::string slug = slugify(r.prompt.empty() && r.image_prompt ? r.image_prompt->stem().string() : r.prompt, 32);
  return slug + "_" + id() + ".png";
}

std::string SweepJob::style_label() const {
  if (request.no_retrieval) return "postfix: " + request.style;
  std::string s;
  for (const auto& d : request.databases) {
    std::string shown = d.dir.filename().string();
    if (shown.empty()) shown = d.dir.parent_path().filename().string();
    s += (s.empty() ? "" : "+") + shown + (d.weight != 1.0 ? fmt::format(":{}", d.weight) : "");
  }
  return s.empty() ? "text only" : s;
}

namespace {
// A job is one image (its JSON, and so its id, has no n, batch_size or first_index).
SampleRequest one_image(SampleRequest r) {
  r.n = 1;
  r.batch_size = 1;
  r.first_index = 0;
  return r;
}
}  // namespace

SweepJob SweepJob::from_json(const json& j, const SampleRequest& d, const std::string& where) {
  if (!j.is_object()) fail("{}: a job must be a JSON object", where);
  static const std::set<std::string> known = {"prompt", "database", "databases", "seed", "scale", "k",
                                              "sampler", "spacing", "steps", "eta", "width", "height", "image_prompt",
                                              "no_retrieval", "style"};
  for (auto& [key, v] : j.items())
    if (!known.count(key)) fail("{}: unknown job key '{}'", where, key);
  return SweepJob{SampleRequest::from_json(j, one_image(d), where), where};
}

std::vector<SweepJob> read_jobs_jsonl(const fs::path& file, const SampleRequest& defaults) {
  std::vector<SweepJob> jobs;
  for (const auto& [line_no, line] : io::read_text_lines(file, "jobs file")) {
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[line.find_first_not_of(" \t")] == '#') continue;
    std::string where = fmt::format("{}:{}", file.string(), line_no);
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) fail("{}: not valid JSON", where);
    std::vector<uint64_t> seeds;
    std::vector<double> scales;
    if (j.is_object() && j.contains("seeds")) {
      if (!j["seeds"].is_array() || j["seeds"].empty())
        fail("{}: 'seeds' must be a non-empty list of seeds (whole numbers from 0 to 2^64 - 1)", where);
      for (const auto& v : j["seeds"]) seeds.push_back(json_seed(v, where));
      j.erase("seeds");
    }
    if (j.is_object() && j.contains("scales")) {
      if (!j["scales"].is_array() || j["scales"].empty()) fail("{}: 'scales' must be a non-empty list of numbers", where);
      for (const auto& v : j["scales"]) {
        if (!v.is_number()) fail("{}: 'scales' must be a list of numbers, got {}", where, v.dump());
        check_scale(v.get<double>(), where);
        scales.push_back(v.get<double>());
      }
      j.erase("scales");
    }
    SweepJob base = SweepJob::from_json(j, defaults, where);
    if (scales.empty()) scales = {base.request.scale};
    if (seeds.empty()) seeds = {base.request.seed};
    for (double sc : scales)
      for (uint64_t sd : seeds) {
        SweepJob x = base;
        x.request.scale = sc;
        x.request.seed = sd;
        jobs.push_back(x);
      }
  }
  if (jobs.empty()) fail("jobs file '{}' has no jobs", file.string());
  return jobs;
}

std::vector<SweepJob> cartesian_jobs(const std::vector<std::string>& prompts, const std::vector<std::string>& databases,
                                     const std::vector<uint64_t>& seeds, const std::vector<double>& scales,
                                     const SampleRequest& d) {
  if (prompts.empty()) fail("a sweep needs at least one prompt (--prompts or a jobs file)");
  std::vector<std::string> dbs = databases.empty() ? std::vector<std::string>{""} : databases;
  std::vector<uint64_t> sds = seeds.empty() ? std::vector<uint64_t>{d.seed} : seeds;
  std::vector<double> scs = scales.empty() ? std::vector<double>{d.scale} : scales;
  std::vector<SweepJob> jobs;
  for (const auto& p : prompts)
    for (const auto& db : dbs) {
      // "a:0.7+b:0.3": a mix; "" or "none": text only.
      std::vector<DatabaseChoice> mix;
      if (!db.empty() && db != "none") {
        size_t start = 0;
        while (start <= db.size()) {
          size_t plus = db.find('+', start);
          std::string part = db.substr(start, plus == std::string::npos ? std::string::npos : plus - start);
          if (!part.empty()) mix.push_back(DatabaseChoice::parse(part));
          if (plus == std::string::npos) break;
          start = plus + 1;
        }
      }
      for (double sc : scs)
        for (uint64_t sd : sds) {
          SweepJob j{one_image(d), ""};
          j.request.prompt = p;
          j.request.databases = mix;
          j.request.scale = sc;
          j.request.seed = sd;
          jobs.push_back(j);
        }
    }
  return jobs;
}

std::vector<size_t> shard_positions(size_t jobs, int64_t shard_index, int64_t shard_count) {
  std::vector<size_t> out;
  for (size_t p = static_cast<size_t>(shard_index); p < jobs; p += static_cast<size_t>(shard_count)) out.push_back(p);
  return out;
}

json SweepReport::to_json() const {
  return {{"total", total},     {"in_shard", in_shard},       {"skipped", skipped},
          {"done", done},       {"failed", failed},           {"interrupted", interrupted},
          {"seconds", seconds}, {"log", log.string()},        {"gallery", gallery.string()},
          {"contact_sheet", contact_sheet.string()}};
}

SampleRequest job_request(const SweepJob& j) {
  SampleRequest r = j.request;
  r.resolve_databases();
  return r;
}

void check_jobs(const std::vector<SweepJob>& jobs, const fs::path& model_config, const std::string& device,
                const std::string& precision) {
  const ModelFacts facts = ModelFacts::from_file(model_config);
  const MachineMemory machine = machine_memory();
  std::set<std::string> seen_dbs;
  std::set<std::pair<int64_t, int64_t>> seen_sizes;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const SweepJob& job = jobs[i];
    const std::string what =
        job.source.empty() ? fmt::format("job {} ('{}')", i + 1, job.request.prompt) : job.source;
    SampleRequest req;
    try {
      req = job_request(job);
    } catch (const Error& e) {
      fail("{}: {}", what, e.what());
    }
    // Each database is checked once (its manifest is read for the first job that names it).
    std::vector<DatabaseChoice> unseen;
    for (const auto& d : req.databases)
      if (seen_dbs.insert(fs::absolute(d.dir).lexically_normal().string()).second) unseen.push_back(d);
    req.databases = unseen;
    req.validate(facts, what);
    if (seen_sizes.insert({req.width, req.height}).second)
      check_memory(req.width, req.height, 1, facts, device, precision, machine, what);
  }
}

namespace {

void append_line(const fs::path& log, const json& j) {
  io::append_file_nofollow(log, j.dump() + "\n");  // a symlink planted as the log is refused
}
}  // namespace

SweepReport run_sweep(const Pipeline& pipeline, const std::vector<SweepJob>& jobs, const SweepOptions& o,
                      const std::function<void(const SweepProgress&)>& progress) {
  auto t0 = std::chrono::steady_clock::now();
  ensure_writable_dir(o.out);
  SweepReport rep;
  rep.total = static_cast<int64_t>(jobs.size());
  rep.log = o.out / (o.shard_count > 1 ? fmt::format("results-shard-{}-of-{}.jsonl", o.shard_index, o.shard_count)
                                       : std::string("results.jsonl"));
  // Duplicate jobs (same parameters) would write the same file twice.
  std::set<std::string> ids;
  for (const auto& j : jobs)
    if (!ids.insert(j.id()).second)
      spdlog::warn("sweep: job '{}' (seed {}, {}) appears more than once; it runs once", j.request.prompt,
                   j.request.seed, j.style_label());
  auto positions = shard_positions(jobs.size(), o.shard_index, o.shard_count);
  rep.in_shard = static_cast<int64_t>(positions.size());
  std::vector<size_t> todo;
  std::set<std::string> queued;
  for (size_t p : positions) {
    if (fs::exists(o.out / jobs[p].file_name()) || !queued.insert(jobs[p].id()).second)
      ++rep.skipped;
    else
      todo.push_back(p);
  }
  spdlog::info("sweep: {} job(s), {} in shard {}/{}, {} already done, {} to run", rep.total, rep.in_shard,
               o.shard_index, o.shard_count, rep.skipped, todo.size());
  for (size_t t = 0; t < todo.size(); ++t) {
    if (o.stop && o.stop->load()) {
      rep.interrupted = true;
      spdlog::warn("sweep: interrupted; {} job(s) left, run the same command again to resume", todo.size() - t);
      break;
    }
    const SweepJob& job = jobs[todo[t]];
    fs::path png = o.out / job.file_name();
    json line = {{"position", todo[t]}, {"id", job.id()}, {"file", png.filename().string()}, {"job", job.to_json()}};
    try {
      auto result = pipeline.sample(job_request(job), [&](const SampleProgress& sp) {
        if (progress) progress({static_cast<int64_t>(t) + 1, static_cast<int64_t>(todo.size()), sp});
      });
      ImageRecord rec = result.images.at(0).record;
      rec.job_id = job.id();
      if (o.neighbors_sheet && !result.neighbors.empty()) {
        fs::path sheet = o.out / (png.stem().string() + "-neighbors.png");
        write_neighbor_sheet(sheet, result.neighbors);
        rec.contact_sheet = sheet.filename().string();
      }
      write_image_with_record(png, result.images[0].image, rec, /*sidecar=*/true, /*overwrite=*/true);
      line["status"] = "done";
      line["seconds"] = rec.seconds.value_or(std::map<std::string, double>{});
      ++rep.done;
    } catch (const std::exception& e) {
      spdlog::error("sweep: job {} ('{}', {}): {}", job.id(), job.request.prompt, job.style_label(), e.what());
      line["status"] = "error";
      line["error"] = e.what();
      ++rep.failed;
    }
    append_line(rep.log, line);
  }
  write_sweep_gallery(jobs, o.out, &rep.gallery, &rep.contact_sheet);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

namespace {
// The record beside a finished image (<stem>.json); none when it is missing or unreadable (the
// gallery shows the job's own values then). A record of a newer schema is an error.
std::optional<ImageRecord> read_sidecar(const fs::path& png) {
  fs::path side = png;
  side.replace_extension(".json");
  if (!fs::exists(side)) return std::nullopt;
  const json raw = json::parse(io::read_file(side), nullptr, false);
  if (raw.is_discarded() || !raw.is_object()) return std::nullopt;
  ImageRecord::check_schema(raw, "'" + side.string() + "'");
  try {
    return ImageRecord::from_json(raw, "'" + side.string() + "'");
  } catch (const Error&) {
    return std::nullopt;
  }
}
}  // namespace

void write_sweep_gallery(const std::vector<SweepJob>& jobs, const fs::path& out, fs::path* gallery, fs::path* sheet) {
  std::vector<json> entries;
  std::vector<std::string> prompts, styles;
  std::map<std::pair<std::string, std::string>, fs::path> cells;
  std::set<std::string> seen;
  for (const auto& j : jobs) {
    if (!seen.insert(j.id()).second) continue;
    fs::path png = out / j.file_name();
    const SampleRequest& r = j.request;
    if (std::find(prompts.begin(), prompts.end(), r.prompt) == prompts.end()) prompts.push_back(r.prompt);
    if (std::find(styles.begin(), styles.end(), j.style_label()) == styles.end()) styles.push_back(j.style_label());
    if (!fs::exists(png)) continue;
    const std::optional<ImageRecord> rec = read_sidecar(png);
    json e = {{"file", png.filename().string()}, {"prompt", r.prompt}, {"seed", r.seed}, {"scale", r.scale},
              {"sampler", r.sampler},            {"steps", r.steps}};
    e["text"] = rec ? rec->text : r.prompt;
    e["mode"] = rec ? rec->mode : std::string();
    json names = json::array();
    if (rec)
      for (const auto& d : rec->databases) names.push_back(d.name);
    if (names.empty() && r.no_retrieval) names.push_back("postfix: " + r.style);
    e["databases"] = names;
    e["neighbors"] = rec ? ImageRecord::neighbors_json(rec->neighbors) : json::array();
    if (rec && rec->contact_sheet) e["contact_sheet"] = *rec->contact_sheet;
    entries.push_back(e);
    cells.emplace(std::make_pair(r.prompt, j.style_label()), png);  // first seed/scale wins
  }
  fs::path html = out / "index.html";
  write_gallery(html, fmt::format("rdm sweep: {} image(s)", entries.size()), entries);
  if (gallery) *gallery = html;
  if (entries.empty()) return;
  std::vector<std::string> images, captions;
  for (const auto& p : prompts)
    for (const auto& s : styles) {
      auto it = cells.find({p, s});
      images.push_back(it == cells.end() ? std::string() : it->second.string());
      captions.push_back(p + "\n" + s);
    }
  fs::path cs = out / "contact_sheet.png";
  image::write_contact_sheet(cs, images, captions, 192, static_cast<int64_t>(styles.size()));
  if (sheet) *sheet = cs;
}

}  // namespace rdm
