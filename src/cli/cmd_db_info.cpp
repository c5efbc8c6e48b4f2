// rdm db info: what a database holds (counts, dims, index, labels, size on disk, build report).
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/cmd_db.hpp"
#include "rdm/retrieval/database.hpp"

namespace rdm::cli {
namespace fs = std::filesystem;

void add_db_info_command(CLI::App& db) {
  struct Args {
    std::string dir;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* c = db.add_subcommand("info", "Show what a style database holds");
  c->add_option("db", a->dir, "Database folder")->required();
  c->add_flag("--json", a->json, "JSON on stdout");
  c->callback([a] {
    auto d = retrieval::Database::open(a->dir);
    const auto& m = d.manifest();
    uintmax_t bytes = 0;
    nlohmann::json files = nlohmann::json::object();
    for (const auto& e : fs::directory_iterator(a->dir)) {
      if (!e.is_regular_file()) continue;
      bytes += e.file_size();
      files[e.path().filename().string()] = e.file_size();
    }
    nlohmann::json labels = nlohmann::json::object();
    for (auto& [label, n] : d.label_counts()) labels[label] = n;
    nlohmann::json j = m.to_json();
    j["path"] = fs::absolute(a->dir).string();
    j["labels"] = labels;
    j["size_on_disk"] = bytes;
    j["files"] = files;
    if (a->json) {
      std::cout << j.dump(2) << std::endl;
      return;
    }
    auto& o = std::cout;
    o << "database     " << d.name() << "  (" << j["path"].get<std::string>() << ")\n";
    o << "items        " << m.count << " x " << m.dim << " " << m.embeddings_dtype
      << " (L2-normalised)\n";
    o << "clip         " << m.clip_identity << ", preprocess " << m.preprocess << "\n";
    o << "index        " << m.index;
    if (m.nprobe) o << ", nprobe " << m.nprobe;
    if (m.ef) o << ", ef " << m.ef;
    if (m.rerank) o << ", rerank " << m.rerank;
    if (m.report.contains("recall"))
      o << ", recall@" << m.report["recall"].value("k", 0) << " "
        << m.report["recall"].value("value", 0.0);
    o << "\n";
    o << "source       " << m.source.value("kind", std::string("?"));
    if (m.source.contains("root")) o << " " << m.source["root"].get<std::string>();
    o << "\n";
    if (m.report.contains("skipped") || m.report.contains("duplicates"))
      o << "report       " << m.report.value("skipped", int64_t{0}) << " skipped, "
        << m.report.value("duplicates", int64_t{0}) << " duplicates (see "
        << m.report.value("report_file", std::string("-")) << ")\n";
    o << "created      " << m.created << "\n";
    o << "content      " << m.content_hash << "\n";
    o << "size on disk " << (bytes + 512 * 1024) / (1024 * 1024) << " MiB (" << bytes << " bytes)\n";
    o << "labels       " << labels.size() << "\n";
    for (auto& [label, n] : labels.items())
      o << "  " << (label.empty() ? std::string("(root)") : label) << "  " << n.get<int64_t>() << "\n";
  });
}

}  // namespace rdm::cli
