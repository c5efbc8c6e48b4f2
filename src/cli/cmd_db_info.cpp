// rdm db info: what a database holds (counts, dims, index, labels, size on disk, build report).
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

#include "cli/cmd_db.hpp"
#include "rdm/io/safe_text.hpp"
#include "rdm/retrieval/database.hpp"
#include "rdm/retrieval/norms.hpp"

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
    const retrieval::NormStats ns = retrieval::embedding_norms(a->dir);
    nlohmann::json j = m.to_json();
    j["norms"] = {{"min", ns.min}, {"max", ns.max}, {"not_finite", ns.not_finite}, {"zero", ns.zero},
                  {"off_unit", ns.off_unit}, {"tolerance", ns.tolerance}, {"l2_normalised", ns.normalised()}};
    j["path"] = fs::absolute(a->dir).string();
    j["labels"] = labels;
    j["size_on_disk"] = bytes;
    j["files"] = files;
    if (a->json) {
      std::cout << io::dump_json_safe(j, 2) << std::endl;
      return;
    }
    auto& o = std::cout;
    using io::escape_for_terminal;
    o << "database     " << escape_for_terminal(d.name()) << "  (" << escape_for_terminal(j["path"].get<std::string>()) << ")\n";
    o << "items        " << m.count << " x " << m.dim << " " << m.embeddings_dtype << " ("
      << (m.count == 0 ? std::string("empty")
          : ns.normalised()
              ? fmt::format("L2-normalised: norms {:.6f} to {:.6f}", ns.min, ns.max)
              : fmt::format("NOT L2-normalised: norms {:.6f} to {:.6f}, {} zero, {} NaN/infinite, "
                            "{} off unit length", ns.min, ns.max, ns.zero, ns.not_finite, ns.off_unit))
      << ")\n";
    o << "clip         " << escape_for_terminal(m.clip_identity) << ", preprocess " << escape_for_terminal(m.preprocess) << "\n";
    o << "index        " << escape_for_terminal(m.index);
    if (m.nprobe) o << ", nprobe " << m.nprobe;
    if (m.ef) o << ", ef " << m.ef;
    if (m.rerank) o << ", rerank " << m.rerank;
    if (m.report.contains("recall"))
      o << ", recall@" << m.report["recall"].value("k", 0) << " "
        << m.report["recall"].value("value", 0.0);
    o << "\n";
    const std::string kind = m.source_kind(), root = m.source_root();
    o << "source       " << escape_for_terminal(kind.empty() ? std::string("?") : kind);
    if (!root.empty()) o << " " << escape_for_terminal(root);
    o << "\n";
    if (m.report.contains("skipped") || m.report.contains("duplicates"))
      o << "report       " << m.report.value("skipped", int64_t{0}) << " skipped, "
        << m.report.value("duplicates", int64_t{0}) << " duplicates (see "
        << escape_for_terminal(m.report.value("report_file", std::string("-"))) << ")\n";
    o << "created      " << escape_for_terminal(m.created) << "\n";
    o << "content      " << escape_for_terminal(m.content_hash) << "\n";
    o << "size on disk " << (bytes + 512 * 1024) / (1024 * 1024) << " MiB (" << bytes << " bytes)\n";
    o << "labels       " << labels.size() << "\n";
    for (auto& [label, n] : labels.items())
      o << "  " << (label.empty() ? std::string("(root)") : io::escape_for_terminal(label)) << "  " << n.get<int64_t>() << "\n";
  });
}

}  // namespace rdm::cli
