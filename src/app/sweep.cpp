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

json SweepJob::to_json() const {
  json j = {{"prompt", prompt}, {"databases", databases}, {"seed", seed}, {"scale", scale},
            {"k", k},           {"sampler", sampler},     {"steps", steps}, {"eta", eta},
            {"width", width},   {"height", height}};
  if (!image_prompt.empty()) j["image_prompt"] = image_prompt;
  // Jobs of the reference's spacing keep the ids they had before spacings existed.
  if (spacing != "uniform") j["spacing"] = spacing;
  if (no_retrieval) {
    j["no_retrieval"] = true;
    j["style"] = style;
  }
  return j;
}

std::string SweepJob::id() const { return io::sha256_hex(to_json().dump()).substr(0, 12); }

std::string SweepJob::file_name() const {
  std::string slug = slugify(prompt.empty() ? fs::path(image_prompt).stem().string() : prompt, 32);
  return slug + "_" + id() + ".png";
}

std::string SweepJob::style_label() const {
  if (no_retrieval) return "postfix: " + style;
  std::string s;
  for (const auto& d : databases) {
    auto [name, weight] = parse_weighted(d);
    std::string shown = fs::path(name).filename().string();
    if (shown.empty()) shown = fs::path(name).parent_path().filename().string();
    s += (s.empty() ? "" : "+") + shown + (weight != 1.0 ? fmt::format(":{}", weight) : "");
  }
  return s.empty() ? "text only" : s;
}

SweepJob SweepJob::from_json(const json& j, const SweepJob& d, const std::string& where) {
  if (!j.is_object()) fail("{}: a job must be a JSON object", where);
  static const std::set<std::string> known = {"prompt", "database", "databases", "seed", "scale", "k",
                                              "sampler", "spacing", "steps", "eta", "width", "height", "image_prompt",
                                              "no_retrieval", "style"};
  for (auto& [key, v] : j.items())
    if (!known.count(key)) fail("{}: unknown job key '{}'", where, key);
  SweepJob s = d;
  try {
    s.prompt = j.value("prompt", d.prompt);
    for (const char* key : {"database", "databases"}) {
      if (!j.contains(key)) continue;
      const auto& v = j.at(key);
      s.databases.clear();
      if (v.is_string()) {
        if (!v.get<std::string>().empty()) s.databases.push_back(v.get<std::string>());
      } else {
        for (const auto& x : v) s.databases.push_back(x.get<std::string>());
      }
    }
    if (j.contains("seed")) s.seed = json_seed(j.at("seed"), where);
    s.scale = json_number(j, "scale", d.scale, where);
    s.k = json_integer(j, "k", d.k, where);
    s.sampler = j.value("sampler", d.sampler);
    s.spacing = j.value("spacing", d.spacing);
    const int64_t steps = json_integer(j, "steps", d.steps, where);
    if (steps < 1 || steps > (int64_t(1) << 30)) fail("{}: steps {} must be at least 1", where, steps);
    s.steps = static_cast<int>(steps);
    s.eta = json_number(j, "eta", d.eta, where);
    s.width = json_integer(j, "width", d.width, where);
    s.height = json_integer(j, "height", d.height, where);
    s.image_prompt = j.value("image_prompt", d.image_prompt);
    s.no_retrieval = j.value("no_retrieval", d.no_retrieval);
    s.style = j.value("style", d.style);
  } catch (const json::exception& e) {
    fail("{}: {}", where, e.what());
  }
  check_sampler(s.sampler, s.spacing, where);
  check_scale(s.scale, where);
  check_eta(s.eta, s.sampler, where);
  check_k(s.k, where);
  if (s.width < 0 || s.height < 0) fail("{}: width and height must not be negative (0 = the model's)", where);
  if (!s.prompt.empty() && !s.image_prompt.empty())
    fail("{}: a job has either a prompt or an image_prompt, not both (the image's CLIP embedding replaces the "
         "text query)",
         where);
  s.source = where;
  if (s.prompt.empty() && s.image_prompt.empty()) fail("{}: a job needs a prompt or an image_prompt", where);
  return s;
}

std::vector<SweepJob> read_jobs_jsonl(const fs::path& file, const SweepJob& defaults) {
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
    if (scales.empty()) scales = {base.scale};
    if (seeds.empty()) seeds = {base.seed};
    for (double sc : scales)
      for (uint64_t sd : seeds) {
        SweepJob x = base;
        x.scale = sc;
        x.seed = sd;
        jobs.push_back(x);
      }
  }
  if (jobs.empty()) fail("jobs file '{}' has no jobs", file.string());
  return jobs;
}

std::vector<SweepJob> cartesian_jobs(const std::vector<std::string>& prompts, const std::vector<std::string>& databases,
                                     const std::vector<uint64_t>& seeds, const std::vector<double>& scales,
                                     const SweepJob& d) {
  if (prompts.empty()) fail("a sweep needs at least one prompt (--prompts or a jobs file)");
  std::vector<std::string> dbs = databases.empty() ? std::vector<std::string>{""} : databases;
  std::vector<uint64_t> sds = seeds.empty() ? std::vector<uint64_t>{d.seed} : seeds;
  std::vector<double> scs = scales.empty() ? std::vector<double>{d.scale} : scales;
  std::vector<SweepJob> jobs;
  for (const auto& p : prompts)
    for (const auto& db : dbs)
      for (double sc : scs)
        for (uint64_t sd : sds) {
          SweepJob j = d;
          j.prompt = p;
          j.databases.clear();
          if (!db.empty() && db != "none") {
            size_t start = 0;
            while (start <= db.size()) {
              size_t plus = db.find('+', start);
              std::string part = db.substr(start, plus == std::string::npos ? std::string::npos : plus - start);
              if (!part.empty()) j.databases.push_back(part);
              if (plus == std::string::npos) break;
              start = plus + 1;
            }
          }
          j.scale = sc;
          j.seed = sd;
          jobs.push_back(j);
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
  SampleRequest r;
  r.prompt = j.prompt;
  for (const auto& spec : j.databases) {
    auto [name, weight] = parse_weighted(spec);
    r.databases.push_back({resolve_database(name), weight});
  }
  if (!j.image_prompt.empty()) r.image_prompt = fs::path(j.image_prompt);
  r.no_retrieval = j.no_retrieval;
  r.style = j.style;
  r.k = j.k;
  r.sampler = j.sampler;
  r.spacing = j.spacing;
  r.steps = j.steps;
  r.eta = j.eta;
  r.scale = j.scale;
  r.seed = j.seed;
  r.width = j.width;
  r.height = j.height;
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
    const std::string what = job.source.empty() ? fmt::format("job {} ('{}')", i + 1, job.prompt) : job.source;
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
    check_request(req, facts, what);
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
      spdlog::warn("sweep: job '{}' (seed {}, {}) appears more than once; it runs once", j.prompt, j.seed,
                   j.style_label());
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
      json rec = result.images.at(0).record;
      rec["job_id"] = job.id();
      if (o.neighbors_sheet && !result.neighbors.empty()) {
        std::vector<std::string> images, captions;
        int rank = 1;
        for (const auto& nb : result.neighbors) {
          images.push_back(nb.path);
          captions.push_back(fmt::format("#{} {:.3f}\n{} {}", rank++, nb.score, nb.database, nb.label));
        }
        fs::path sheet = o.out / (png.stem().string() + "-neighbors.png");
        image::write_contact_sheet(sheet, images, captions, 128, 0);
        rec["contact_sheet"] = sheet.filename().string();
      }
      write_image_with_record(png, result.images[0].image, rec, /*sidecar=*/true, /*overwrite=*/true);
      line["status"] = "done";
      line["seconds"] = rec["seconds"];
      ++rep.done;
    } catch (const std::exception& e) {
      spdlog::error("sweep: job {} ('{}', {}): {}", job.id(), job.prompt, job.style_label(), e.what());
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

void write_sweep_gallery(const std::vector<SweepJob>& jobs, const fs::path& out, fs::path* gallery, fs::path* sheet) {
  std::vector<json> entries;
  std::vector<std::string> prompts, styles;
  std::map<std::pair<std::string, std::string>, fs::path> cells;
  std::set<std::string> seen;
  for (const auto& j : jobs) {
    if (!seen.insert(j.id()).second) continue;
    fs::path png = out / j.file_name();
    if (std::find(prompts.begin(), prompts.end(), j.prompt) == prompts.end()) prompts.push_back(j.prompt);
    if (std::find(styles.begin(), styles.end(), j.style_label()) == styles.end()) styles.push_back(j.style_label());
    if (!fs::exists(png)) continue;
    fs::path side = png;
    side.replace_extension(".json");
    json rec;
    if (fs::exists(side)) rec = json::parse(io::read_file(side), nullptr, false);
    if (rec.is_discarded() || !rec.is_object()) rec = json::object();
    json e = {{"file", png.filename().string()}, {"prompt", j.prompt}, {"seed", j.seed}, {"scale", j.scale},
              {"sampler", j.sampler},            {"steps", j.steps}};
    e["text"] = rec.value("text", j.prompt);
    e["mode"] = rec.value("mode", std::string());
    json names = json::array();
    for (const auto& d : rec.value("databases", json::array())) names.push_back(d.value("name", std::string()));
    if (names.empty() && j.no_retrieval) names.push_back("postfix: " + j.style);
    e["databases"] = names;
    e["neighbors"] = rec.value("neighbors", json::array());
    if (rec.contains("contact_sheet")) e["contact_sheet"] = rec["contact_sheet"];
    entries.push_back(e);
    cells.emplace(std::make_pair(j.prompt, j.style_label()), png);  // first seed/scale wins
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
