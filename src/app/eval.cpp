// `rdm eval`: styles, the plan, its jobs and their sampling (see rdm/app/eval.hpp). No
// reference file: the paper's ArtBench comparison (retrieval vs "in the style of" prompts) as a
// tool; the sampling is knn2img's through the sweep machinery.
#include "rdm/app/eval.hpp"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "rdm/app/model_paths.hpp"
#include "rdm/app/request_checks.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/io/text_file.hpp"
#include "rdm/retrieval/database.hpp"
#include "rdm/retrieval/manifest.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::eval {
namespace fs = std::filesystem;
using json = nlohmann::json;

const std::vector<std::string>& mode_names() {
  static const std::vector<std::string> m = {"retrieval", "postfix", "text"};
  return m;
}

fs::path images_dir(const fs::path& out) { return out / "images"; }

namespace {
bool is_database(const fs::path& dir) { return fs::is_regular_file(dir / retrieval::kManifestFile); }

// The database folders a spec stands for: itself, or the databases inside a folder of them.
std::vector<fs::path> database_dirs(const std::string& spec) {
  const fs::path dir = resolve_database(spec);
  if (is_database(dir)) return {fs::absolute(dir).lexically_normal()};
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && is_database(e.path())) out.push_back(fs::absolute(e.path()).lexically_normal());
  if (out.empty())
    fail("--databases: '{}' is neither a style database (no {}) nor a folder of style databases", dir.string(),
         retrieval::kManifestFile);
  std::sort(out.begin(), out.end());
  return out;
}

Style style_of(const fs::path& dir) {
  const retrieval::Manifest m = retrieval::Manifest::read(dir);
  Style s;
  s.name = m.name.empty() ? dir.filename().string() : m.name;
  s.dir = dir;
  s.postfix = style_from_database_name(s.name);
  s.size = m.count;
  s.dim = m.dim;
  s.clip_identity = m.clip_identity;
  s.preprocess = m.preprocess;
  return s;
}
}  // namespace

std::vector<Style> resolve_styles(const std::vector<std::string>& specs) {
  std::vector<Style> styles;
  std::set<std::string> names;
  for (const auto& spec : specs)
    for (const auto& dir : database_dirs(spec)) {
      Style s = style_of(dir);
      if (!names.insert(s.name).second)
        fail("--databases: two databases are named '{}' (the second is '{}'); the database name is the style label",
             s.name, dir.string());
      if (!styles.empty() && s.dim != styles.front().dim)
        fail(
            "--databases: database '{}' holds {}-d CLIP embeddings but '{}' holds {}-d ones: all styles must come "
            "from the same CLIP",
            dir.string(), s.dim, styles.front().dir.string(), styles.front().dim);
      if (!styles.empty() && !retrieval::clip_identities_compatible(s.clip_identity, styles.front().clip_identity))
        fail(
            "--databases: database '{}' was made with CLIP {} but '{}' with {}: all styles must come from the same "
            "CLIP",
            dir.string(), s.clip_identity, styles.front().dir.string(), styles.front().clip_identity);
      styles.push_back(std::move(s));
    }
  if (styles.size() < 2) fail("--databases: an eval needs at least 2 style databases, got {}", styles.size());
  return styles;
}

json Plan::to_json() const {
  json st = json::array();
  for (const auto& s : styles) st.push_back({{"name", s.name}, {"dir", s.dir.string()}});
  const SampleRequest& r = sampling;
  return {{"kind", "rdm-eval-plan"},
          {"version", 1},
          {"prompts", prompts},
          {"styles", st},
          {"seeds", seeds},
          {"modes", modes},
          {"sampling",
           {{"k", r.k},
            {"sampler", r.sampler},
            {"spacing", r.spacing},
            {"steps", r.steps},
            {"eta", r.eta},
            {"scale", r.scale},
            {"width", r.width},
            {"height", r.height}}},
          {"model",
           {{"model", model.model.string()},
            {"config", model.config.string()},
            {"clip", model.clip.string()},
            {"vocab", model.vocab.string()}}}};
}

Plan Plan::from_json(const json& j, const std::string& where) {
  if (!j.is_object() || j.value("kind", "") != "rdm-eval-plan") fail("{}: not an rdm eval plan", where);
  if (j.value("version", 0) != 1)
    fail("{}: eval plan version {} is not supported (1 is)", where, j.value("version", 0));
  Plan p;
  try {
    p.prompts = j.at("prompts").get<std::vector<std::string>>();
    for (const auto& v : j.at("seeds")) p.seeds.push_back(json_seed(v, where));
    if (j.contains("modes")) p.modes = j.at("modes").get<std::vector<std::string>>();  // older plans: all
    std::vector<std::string> dirs;
    for (const auto& s : j.at("styles")) dirs.push_back(s.at("dir").get<std::string>());
    p.styles = resolve_styles(dirs);
    json req = j.at("sampling");
    req["prompt"] = p.prompts.empty() ? std::string("-") : p.prompts.front();
    p.sampling = SampleRequest::from_json(req, SampleRequest{}, where);
    p.sampling.prompt.clear();
    const json& m = j.at("model");
    p.model = {m.at("model").get<std::string>(), m.at("config").get<std::string>(), m.at("clip").get<std::string>(),
               m.at("vocab").get<std::string>()};
  } catch (const json::exception& e) {
    fail("{}: {}", where, e.what());
  }
  p.validate();
  return p;
}

void Plan::validate() const {
  if (prompts.empty()) fail("an eval needs at least one prompt (--prompt or --prompts FILE)");
  std::set<std::string> seen;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].find_first_not_of(" \t\r\n") == std::string::npos) fail("prompt {} is empty", i + 1);
    if (io::find_invalid_utf8(prompts[i]) != std::string::npos) fail("prompt {} is not valid UTF-8", i + 1);
    if (!seen.insert(prompts[i]).second) fail("prompt '{}' is given twice", prompts[i]);
  }
  if (seeds.empty()) fail("an eval needs at least one seed");
  if (std::set<uint64_t>(seeds.begin(), seeds.end()).size() != seeds.size()) fail("--seeds: a seed is given twice");
  if (styles.size() < 2) fail("an eval needs at least 2 style databases");
  if (modes.empty()) fail("--modes: give at least one of retrieval, postfix, text");
  for (size_t i = 0; i < modes.size(); ++i) {
    if (std::find(mode_names().begin(), mode_names().end(), modes[i]) == mode_names().end())
      fail("--modes: unknown mode '{}' (retrieval, postfix, text)", modes[i]);
    if (std::find(modes.begin(), modes.begin() + static_cast<std::ptrdiff_t>(i), modes[i]) !=
        modes.begin() + static_cast<std::ptrdiff_t>(i))
      fail("--modes: '{}' is given twice", modes[i]);
  }
  if (sampling.k < 1) fail("-k {}: retrieval needs at least one neighbour", sampling.k);
  for (const auto& s : styles)
    if (sampling.k > s.size)
      fail("-k {} is more than the {} image(s) of database '{}' ({})", sampling.k, s.size, s.name, s.dir.string());
}

std::optional<Plan> read_plan(const fs::path& out) {
  const fs::path file = out / kPlanFile;
  if (!fs::exists(file)) return std::nullopt;
  const json j = json::parse(io::read_file(file), nullptr, false);
  if (j.is_discarded()) fail("'{}' is not valid JSON (delete it to start the eval afresh)", file.string());
  return Plan::from_json(j, "'" + file.string() + "'");
}

void write_plan(const Plan& plan, const fs::path& out) {
  const fs::path file = out / kPlanFile;
  const json now = plan.to_json();
  if (fs::exists(file)) {
    const json old = json::parse(io::read_file(file), nullptr, false);
    if (old.is_discarded()) fail("'{}' is not valid JSON (delete it to start the eval afresh)", file.string());
    for (const char* key : {"prompts", "styles", "seeds", "modes", "sampling", "model"})
      if (old.value(key, key == std::string("modes") ? json(mode_names()) : json()) != now[key])
        fail(
            "'{}' belongs to another eval (its {} differ from this command's): use another --out, or give only "
            "--out to continue that eval",
            file.string(), key);
    return;
  }
  io::write_file_atomic(file, now.dump(2) + "\n");
}

std::vector<Job> plan_jobs(const Plan& plan) {
  SampleRequest base = plan.sampling;
  base.n = 1;
  base.batch_size = 1;
  base.first_index = 0;
  base.databases.clear();
  base.no_retrieval = false;
  base.style.clear();
  base.image_prompt.reset();
  auto has = [&](const char* m) { return std::find(plan.modes.begin(), plan.modes.end(), m) != plan.modes.end(); };
  std::vector<Job> jobs;
  for (size_t p = 0; p < plan.prompts.size(); ++p)
    for (uint64_t seed : plan.seeds) {
      SampleRequest r = base;
      r.prompt = plan.prompts[p];
      r.seed = seed;
      const std::string where = fmt::format("prompt {} seed {}", p + 1, seed);
      if (has("text")) jobs.push_back({"text", p, -1, seed, SweepJob{r, where + " text"}});
      for (size_t s = 0; s < plan.styles.size(); ++s) {
        const Style& st = plan.styles[s];
        if (has("retrieval")) {
          SampleRequest rr = r;
          rr.databases = {DatabaseChoice{st.dir, 1.0, st.dir.string()}};
          jobs.push_back(
              {"retrieval", p, static_cast<int64_t>(s), seed, SweepJob{rr, where + " retrieval " + st.name}});
        }
        if (has("postfix")) {
          SampleRequest pr = r;
          pr.no_retrieval = true;
          pr.style = st.postfix;
          jobs.push_back({"postfix", p, static_cast<int64_t>(s), seed, SweepJob{pr, where + " postfix " + st.name}});
        }
      }
    }
  return jobs;
}

std::vector<SweepJob> sweep_jobs(const std::vector<Job>& jobs) {
  std::vector<SweepJob> out;
  out.reserve(jobs.size());
  for (const auto& j : jobs) out.push_back(j.sweep);
  return out;
}

int64_t count_missing(const std::vector<Job>& jobs, const fs::path& out, int64_t shard_index, int64_t shard_count) {
  int64_t n = 0;
  const fs::path dir = images_dir(out);
  for (size_t p : shard_positions(jobs.size(), shard_index, shard_count))
    if (!fs::exists(dir / jobs[p].sweep.file_name())) ++n;
  return n;
}

SweepReport sample_images(const Pipeline& pipeline, const std::vector<Job>& jobs, const fs::path& out,
                          int64_t shard_index, int64_t shard_count, const std::atomic<bool>* stop,
                          const std::function<void(const SweepProgress&)>& progress) {
  SweepOptions o;
  o.out = images_dir(out);
  o.shard_index = shard_index;
  o.shard_count = shard_count;
  o.stop = stop;
  return run_sweep(pipeline, sweep_jobs(jobs), o, progress);
}

StyleProbe train_style_probe(const std::vector<Style>& styles, const ProbeOptions& options) {
  std::vector<torch::Tensor> rows;
  std::vector<int64_t> labels;
  std::vector<std::string> names;
  for (size_t s = 0; s < styles.size(); ++s) {
    const retrieval::Database db = retrieval::Database::open(styles[s].dir);
    std::vector<int64_t> ids(static_cast<size_t>(db.size()));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i);
    rows.push_back(db.embeddings(ids).to(torch::kFloat32));
    labels.insert(labels.end(), ids.size(), static_cast<int64_t>(s));
    names.push_back(styles[s].name);
  }
  return train_probe(torch::cat(rows, 0), labels, names, options);
}

}  // namespace rdm::eval
