// rdm inspect FILE: tensors, totals, metadata and format of a checkpoint or tensor file.
#include <iostream>

#include "cli/commands.hpp"
#include "rdm/formats/inspect.hpp"

namespace rdm::cli {

namespace {
struct InspectArgs {
  std::string file;
  std::string filter;
  bool json = false;
};
}  // namespace

void add_inspect_command(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "List the tensors (name, dtype, shape, bytes), totals, metadata and format of a tensor file "
                 "(safetensors, PyTorch/Lightning .ckpt/.pt/.pth, TorchScript, .npy, .npz)");
  cmd->add_option("file", args->file, "Tensor file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--filter", args->filter, "Only tensors whose name starts with this prefix");
  cmd->add_flag("--json", args->json, "Print JSON on stdout");
  cmd->callback([args] {
    formats::InspectOptions o;
    o.filter = args->filter;
    const formats::Inspection in = formats::inspect_file(args->file, o);
    std::cout << (args->json ? formats::inspection_json(in) : formats::inspection_text(in));
    std::cout.flush();
  });
}

}  // namespace rdm::cli
