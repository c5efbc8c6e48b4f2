// rdm show-params FILE.png: prints the parameters an image was made with (its text chunks).
// The chunks are untrusted: the JSON record is parsed with size and nesting limits, and
// everything printed has its control characters escaped (no terminal escape gets through).
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/image/png.hpp"
#include "rdm/io/safe_text.hpp"

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
    using io::escape_for_terminal;
    for (const auto& file : opts->files) {
      auto text = image::read_png_text(file);
      const image::PngText* params = nullptr;
      const image::PngText* record = nullptr;
      for (const auto& t : text) {
        if (t.key == "parameters" && !params) params = &t;
        if (t.key == "rdm" && !record) record = &t;
      }
      const std::string what = fmt::format("'{}': the rdm metadata chunk", escape_for_terminal(file));
      if (opts->json) {
        if (!record) fail("'{}' has no rdm metadata chunk (not made by rdm?)", escape_for_terminal(file));
        std::cout << io::dump_json_safe(io::parse_json_bounded(record->text, what)) << "\n";
        continue;
      }
      if (opts->files.size() > 1) std::cout << "== " << escape_for_terminal(file) << "\n";
      if (text.empty()) {
        std::cout << "(no text chunks)\n";
        continue;
      }
      if (params) std::cout << escape_for_terminal(params->text, true) << "\n";
      if (record) std::cout << io::dump_json_safe(io::parse_json_bounded(record->text, what), 2) << "\n";
      for (const auto& t : text)
        if (&t != params && &t != record)
          std::cout << escape_for_terminal(t.key) << ": " << escape_for_terminal(t.text, true) << "\n";
    }
  });
}

}  // namespace rdm::cli
