// `rdm eval`: the paper's experiment. A style classifier agrees more often with images styled
// by swapping the retrieval database than with images styled by appending "in the style of
// <style>" to the prompt (Blattmann et al. 2022, RDM, the ArtBench experiment). For every
// prompt x style x seed the eval samples, with the same seed in each mode:
//
//   retrieval  k neighbours from that style's database, the query being the bare prompt
//   postfix    no retrieval, the text "<prompt> in the style of <style>" (SampleRequest's
//              no_retrieval + style, the pipeline's postfix baseline)
//   text       the bare prompt, no retrieval (a control; the same image serves every style)
//
// then scores the images: style accuracy of a linear probe trained on the databases' CLIP
// embeddings (eval_classifier.hpp), content similarity to the bare prompt, diversity across
// seeds, timings (eval_report.cpp). Images go through the sweep machinery (sweep.hpp) into
// OUT/images, so a rerun skips finished images and --shard I/N splits the work; the report is
// written by an unsharded run over every shard's images.
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rdm/app/eval_classifier.hpp"
#include "rdm/app/pipeline.hpp"
#include "rdm/app/sweep.hpp"

namespace rdm::clip {
class QueryEncoder;
}

namespace rdm::eval {

// "retrieval", "postfix", "text" (the order of every table).
const std::vector<std::string>& mode_names();

// One style: a database whose manifest name is the class label.
struct Style {
  std::string name;           // manifest name (the class label)
  std::filesystem::path dir;  // absolute folder
  std::string postfix;        // what follows "in the style of" (style_from_database_name)
  int64_t size = 0, dim = 0;
  std::string clip_identity;
  std::string preprocess;  // how its images were preprocessed: clip | rdm | unknown
};

// Database specs (names under $RDM_DATABASES or folders) -> styles. A folder without a
// manifest.json whose sub-folders are databases stands for all of them (sorted by name).
// rdm::Error for an unknown database, two styles of one name, fewer than 2 styles, or
// databases of different embedding widths or CLIP models.
std::vector<Style> resolve_styles(const std::vector<std::string>& specs);

// What an eval folder measures. Written as OUT/eval-plan.json by the first run, so that later
// runs (other shards, the final report) need only --out.
struct Plan {
  std::vector<std::string> prompts;
  std::vector<Style> styles;
  std::vector<uint64_t> seeds;
  // Which of mode_names() to sample and score (in that order); all three by default. A
  // solver's yardstick needs only "retrieval".
  std::vector<std::string> modes = mode_names();
  SampleRequest sampling;  // k, sampler, spacing, steps, eta, scale, width, height
  PipelinePaths model;     // absolute paths

  nlohmann::json to_json() const;
  // `where` names the file in errors; the styles are opened again (resolve_styles).
  static Plan from_json(const nlohmann::json& j, const std::string& where);
  // rdm::Error naming the files when something is missing or contradictory (no prompt, a
  // prompt twice, no seed, a seed twice, k above a database's size, an unknown or repeated mode).
  void validate() const;
};

inline constexpr const char* kPlanFile = "eval-plan.json";
std::filesystem::path images_dir(const std::filesystem::path& out);  // OUT/images

// OUT/eval-plan.json, or nullopt when the folder has none.
std::optional<Plan> read_plan(const std::filesystem::path& out);
// Writes OUT/eval-plan.json atomically. When one exists it must describe the same eval
// (rdm::Error naming the first difference otherwise: a folder holds one eval).
void write_plan(const Plan& plan, const std::filesystem::path& out);

// One image of the eval.
struct Job {
  std::string mode;    // retrieval | postfix | text
  size_t prompt = 0;   // index into Plan::prompts
  int64_t style = -1;  // index into Plan::styles (-1 for text)
  uint64_t seed = 0;
  SweepJob sweep;  // the request; its file name marks it done
};

// For each prompt and seed: the text image, then per style the retrieval and postfix images
// (only the plan's modes).
std::vector<Job> plan_jobs(const Plan& plan);
std::vector<SweepJob> sweep_jobs(const std::vector<Job>& jobs);
// Jobs of shard (index, count) whose image is not in OUT/images yet.
int64_t count_missing(const std::vector<Job>& jobs, const std::filesystem::path& out, int64_t shard_index,
                      int64_t shard_count);

// Samples this shard's missing images into OUT/images (run_sweep: results log, gallery).
SweepReport sample_images(const Pipeline& pipeline, const std::vector<Job>& jobs, const std::filesystem::path& out,
                          int64_t shard_index, int64_t shard_count, const std::atomic<bool>* stop,
                          const std::function<void(const SweepProgress&)>& progress = {});

struct ReportOptions {
  ProbeOptions probe;
  bool allow_missing = false;  // score the images present (else a missing image is an error)
  // Another eval folder of the same model whose images serve as the reference (e.g. DDIM with
  // 250 steps): each image is compared with the reference's image of the same mode, prompt,
  // style and seed by PSNR (8-bit RGB) and CLIP image cosine similarity. Empty: none.
  std::filesystem::path against;
};

// What write_report made.
struct ReportFiles {
  std::filesystem::path json, csv, html, accuracy_png;
  std::vector<std::filesystem::path> confusion_pngs;
  int64_t images = 0, missing = 0;
  double classifier_accuracy = 0;
  nlohmann::json eval;  // the content of eval.json
};

// Trains the style classifier on the databases, embeds every image and prompt with `encoder`
// (the CLIP the databases were built with), computes the metrics and writes eval.json,
// eval.csv, confusion-<mode>.png, accuracy.png and report.html into `out`, atomically.
ReportFiles write_report(const Plan& plan, const std::vector<Job>& jobs, const clip::QueryEncoder& encoder,
                         const std::filesystem::path& out, const ReportOptions& options);

// The style classifier trained on the styles' stored embeddings (labels = style order).
StyleProbe train_style_probe(const std::vector<Style>& styles, const ProbeOptions& options);

// A fixed-width table of eval.json's rows (style, mode, accuracy with its interval, content
// similarity, diversity, seconds per image) and the classifier's held-out accuracy.
std::string summary_table(const nlohmann::json& eval);

// `rdm eval --compare A B`: per style x mode, accuracy and content similarity of A and B, their
// difference with 95 % intervals (Newcombe for accuracies, Wald for similarities), and the
// overall rows per mode. rdm::Error naming the file for an unreadable, non-eval or mismatched
// file.
std::string compare_reports(const std::filesystem::path& a, const std::filesystem::path& b,
                            nlohmann::json* as_json = nullptr);

// `rdm eval --tabulate`: one line per eval (a folder or its eval.json): sampler, spacing, steps,
// model calls per image, PSNR with a 95 % interval and CLIP similarity against the eval's
// --against reference, style accuracy with its interval, prompt similarity and seconds per image
// of the retrieval mode (the first mode when there is none), as a Markdown table sorted by
// sampler and calls. With `plot`, a PNG of PSNR and style accuracy against model calls, one line
// per sampler (and spacing). rdm::Error naming the file for an unreadable report.
std::string tabulate_reports(const std::vector<std::filesystem::path>& evals, const std::filesystem::path& plot,
                             nlohmann::json* as_json = nullptr);

// eval.json as written by write_report, checked; rdm::Error naming the file otherwise.
nlohmann::json read_eval_json(const std::filesystem::path& file);

}  // namespace rdm::eval
