// Strict state-dict loading (the reference loads with strict=False; we do not) and the
// CompVis EMA mapping (ldm/modules/ema.py: LitEma names buffers after parameters, dots removed).
#include "rdm/formats/state_dict.hpp"

#include <chrono>
#include <set>
#include <algorithm>
#include <sstream>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "rdm/runtime/error.hpp"
#include "rdm/io/mapped_file.hpp"

namespace rdm::formats {

namespace {
std::string shape_str(c10::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? "," : "") << s[i];
  o << "]";
  return o.str();
}

template <typename Lookup, typename Consume>
void load_impl(torch::nn::Module& module, const StateDict& state, const std::string& prefix,
               const LoadOptions& opts, Lookup lookup, Consume consume) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string file = opts.file.empty() ? std::string("state dict") : opts.file;
  std::vector<std::string> missing, mismatched;
  std::set<std::string> used;
  int64_t nparams = 0;
  size_t ntensors = 0;
  torch::NoGradGuard no_grad;

  auto fill = [&](const std::string& name, torch::Tensor& target) {
    const std::string key = prefix + name;
    const torch::Tensor* src = lookup(key);
    if (!src) {
      missing.push_back(key);
      return;
    }
    if (src->sizes() != target.sizes()) {
      mismatched.push_back(fmt::format("tensor '{}' in '{}' has shape {}, expected {}", key, file,
                                       shape_str(src->sizes()), shape_str(target.sizes())));
      return;
    }
    if (target.is_floating_point() != src->is_floating_point()) {
      mismatched.push_back(fmt::format("tensor '{}' in '{}' has dtype {}, expected {}", key, file,
                                       c10::toString(src->scalar_type()), c10::toString(target.scalar_type())));
      return;
    }
    target.copy_(*src);
    used.insert(key);
    nparams += target.numel();
    ++ntensors;
    consume(key);
  };

  if (opts.dtype) {  // floating parameters and buffers only (Module::to would cast integer buffers too)
    for (auto& p : module.named_parameters(true))
      if (p.value().is_floating_point()) p.value().set_data(p.value().to(*opts.dtype));
    for (auto& b : module.named_buffers(true))
      if (b.value().is_floating_point()) b.value().set_data(b.value().to(*opts.dtype));
  }
  for (auto& p : module.named_parameters(/*recurse=*/true)) fill(p.key(), p.value());
  for (auto& b : module.named_buffers(/*recurse=*/true)) fill(b.key(), b.value());

  std::vector<std::string> unexpected;
  for (const auto& [k, v] : state)
    if (k.rfind(prefix, 0) == 0 && !used.count(k)) unexpected.push_back(k);

  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::ostringstream msg;
    msg << "cannot load '" << file << "'" << (prefix.empty() ? "" : " (prefix '" + prefix + "')") << ": ";
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      msg << v.size() << " " << what << " (";
      const size_t shown = std::min<size_t>(v.size(), 20);
      for (size_t i = 0; i < shown; ++i) msg << (i ? ", " : "") << v[i];
      if (shown < v.size()) msg << ", ...";
      msg << "); ";
    };
    list("missing keys", missing);
    list("unexpected keys", unexpected);
    list("shape mismatches", mismatched);
    std::string s = msg.str();
    s.resize(s.size() - 2);
    throw Error(s);
  }
  if (opts.device) module.to(*opts.device);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::debug("loaded {}{}: {} tensors, {} parameters, {:.2f} s", file,
                prefix.empty() ? "" : " [" + prefix + "]", ntensors, nparams, secs);
}
}  // namespace

void load_into(torch::nn::Module& module, const StateDict& state, const std::string& prefix,
               const LoadOptions& opts) {
  load_impl(
      module, state, prefix, opts,
      [&](const std::string& k) -> const torch::Tensor* {
        auto it = state.find(k);
        return it == state.end() ? nullptr : &it->second;
      },
      [](const std::string&) {});
}

void load_into_consuming(torch::nn::Module& module, StateDict& state, const std::string& prefix,
                         const LoadOptions& opts) {
  // Unexpected keys are computed from what remains, so consume only after the scan:
  // copy tensor by tensor, then release each source as soon as it is copied.
  std::set<std::string> done;
  load_impl(
      module, state, prefix, opts,
      [&](const std::string& k) -> const torch::Tensor* {
        auto it = state.find(k);
        return it == state.end() ? nullptr : &it->second;
      },
      [&](const std::string& k) {
        done.insert(k);
        // Drop the source now (key kept for the unexpected scan) and give its memory-mapped
        // pages back: otherwise the file's pages stay resident beside the model, i.e. two
        // copies at the peak. Safe even if another tensor aliases the storage: the mapping is
        // private and never written, so a dropped page is read again from the file on access.
        auto it = state.find(k);
        torch::Tensor t = std::move(it->second);
        it->second = torch::Tensor();
        if (t.defined() && t.storage().data())
          io::MappedFile::release_pages(t.storage().data(), t.storage().nbytes());
      });
  for (const auto& k : done) state.erase(k);
}

std::string ema_key(const std::string& model_key) {
  static const std::string kModel = "model.";
  std::string rest = model_key.rfind(kModel, 0) == 0 ? model_key.substr(kModel.size()) : model_key;
  std::string out = "model_ema.";
  for (char c : rest)
    if (c != '.') out.push_back(c);
  return out;
}

bool has_ema(const StateDict& state) {
  auto it = state.lower_bound("model_ema.");
  return it != state.end() && it->first.rfind("model_ema.", 0) == 0;
}

std::size_t apply_ema(StateDict& state) {
  std::size_t n = 0;
  for (auto& [k, v] : state) {
    if (k.rfind("model.diffusion_model.", 0) != 0) continue;
    auto it = state.find(ema_key(k));
    if (it != state.end()) {
      v = it->second;
      ++n;
    }
  }
  for (auto it = state.lower_bound("model_ema."); it != state.end() && it->first.rfind("model_ema.", 0) == 0;)
    it = state.erase(it);
  return n;
}

}  // namespace rdm::formats
