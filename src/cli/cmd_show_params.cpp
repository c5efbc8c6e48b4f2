// rdm show-params FILE.png: prints the parameters an image was made with (its text chunks).
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "rdm/error.hpp"
#include "rdm/io/png.hpp"

namespace rdm::cli {

void add_show_params_command(CLI::App& app) {
  struct Opts {
    std::vector<std::string> files;
    bool json = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("show-params", "Print the parameters stored in PNG files made by rdm");
  cmd->add_option("files", opts->files, "PNG files")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--json", opts->json, "Print only the rdm JSON record (one line per file)");
  cmd->callback([opts] {
    for (const auto& file : opts->files) {
      auto text = io::read_png_text(file);
      const io::PngText* params = nullptr;
      const io::PngText* record = nullptr;
      for (const auto& t : text) {
        if (t.key == "parameters" && !params) params = &t;
        if (t.key == "rdm" && !record) record = &t;
      }
      if (opts->json) {
        if (!record) fail("'{}' has no rdm metadata chunk (not made by rdm?)", file);
        nlohmann::json j = nlohmann::json::parse(record->text, nullptr, false);
        if (j.is_discarded()) fail("'{}': the rdm metadata chunk is not valid JSON", file);
        std::cout << j.dump() << "\n";
        continue;
      }
      if (opts->files.size() > 1) std::cout << "== " << file << "\n";
      if (text.empty()) {
        std::cout << "(no text chunks)\n";
        continue;
      }
      if (params) std::cout << params->text << "\n";
      if (record) {
        nlohmann::json j = nlohmann::json::parse(record->text, nullptr, false);
        std::cout << (j.is_discarded() ? record->text : j.dump(2)) << "\n";
      }
      for (const auto& t : text)
        if (&t != params && &t != record) std::cout << t.key << ": " << t.text << "\n";
    }
  });
}

}  // namespace rdm::cli
