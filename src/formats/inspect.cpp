// rdm inspect: summary of a tensor file (see rdm/io/inspect.hpp).
#include "rdm/formats/inspect.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/formats/state_dict.hpp"
#include "rdm/formats/tensor_file.hpp"

namespace rdm::formats {

namespace {
std::string dtype_code(torch::Dtype dt) {
  try {
    return safetensors_dtype_code(dt);
  } catch (const Error&) {
    return c10::toString(dt);
  }
}

std::string human_bytes(std::int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.2f} {}", v, units[u]);
}
}  // namespace

Inspection inspect_file(const std::filesystem::path& path, const InspectOptions& opts) {
  const TensorFile tf = read_tensor_file(path);
  Inspection in;
  in.path = path.string();
  in.format = format_name(tf.format);
  in.metadata = tf.metadata;
  in.total_tensors = static_cast<std::int64_t>(tf.order.size());
  for (const auto& name : tf.order) {
    if (name.rfind(opts.filter, 0) != 0) continue;
    const torch::Tensor& t = tf.tensors.at(name);
    TensorInfo ti;
    ti.name = name;
    ti.dtype = dtype_code(t.scalar_type());
    ti.shape = t.sizes().vec();
    ti.numel = t.numel();
    ti.bytes = t.numel() * static_cast<std::int64_t>(t.element_size());
    in.listed_numel += ti.numel;
    in.listed_bytes += ti.bytes;
    in.tensors.push_back(std::move(ti));
  }
  const std::string unet = "model.diffusion_model.";
  for (const auto& [name, t] : tf.tensors) {
    if (name.rfind("model_ema.", 0) == 0) ++in.ema_tensors;
    if (name.rfind(unet, 0) == 0) {
      in.compvis = true;
      ++in.unet_params;
      if (tf.tensors.count(ema_key(name))) ++in.unet_params_with_ema;
    }
  }
  return in;
}

std::string inspection_text(const Inspection& in) {
  std::size_t w_name = 4, w_dtype = 5, w_shape = 5;
  std::vector<std::string> shapes;
  for (const auto& t : in.tensors) {
    shapes.push_back(fmt::format("[{}]", fmt::join(t.shape, ", ")));
    w_name = std::max(w_name, t.name.size());
    w_dtype = std::max(w_dtype, t.dtype.size());
    w_shape = std::max(w_shape, shapes.back().size());
  }
  std::string s;
  s += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>12}\n", "name", w_name, "dtype", w_dtype, "shape", w_shape, "bytes");
  for (std::size_t k = 0; k < in.tensors.size(); ++k) {
    const auto& t = in.tensors[k];
    s += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>12}\n", t.name, w_name, t.dtype, w_dtype, shapes[k], w_shape, t.bytes);
  }
  s += "\n";
  s += fmt::format("file:       {}\n", in.path);
  s += fmt::format("format:     {}\n", in.format);
  if (static_cast<std::int64_t>(in.tensors.size()) == in.total_tensors)
    s += fmt::format("tensors:    {}\n", in.total_tensors);
  else
    s += fmt::format("tensors:    {} listed of {}\n", in.tensors.size(), in.total_tensors);
  s += fmt::format("elements:   {}\n", in.listed_numel);
  s += fmt::format("bytes:      {} ({})\n", in.listed_bytes, human_bytes(in.listed_bytes));
  if (in.compvis) {
    if (in.ema_tensors)
      s += fmt::format("EMA:        present: {} model_ema.* tensors; {} of {} UNet parameters have an EMA copy\n",
                       in.ema_tensors, in.unet_params_with_ema, in.unet_params);
    else
      s += fmt::format("EMA:        absent (no model_ema.* tensors; sampling uses the raw UNet weights)\n");
  }
  if (!in.metadata.empty()) {
    s += "metadata:\n";
    for (const auto& [k, v] : in.metadata) {
      std::string val = v.size() > 200 ? v.substr(0, 200) + "..." : v;
      for (auto& c : val)
        if (c == '\n') c = ' ';
      s += fmt::format("  {}: {}\n", k, val);
    }
  }
  return s;
}

std::string inspection_json(const Inspection& in) {
  nlohmann::ordered_json j;
  j["file"] = in.path;
  j["format"] = in.format;
  j["num_tensors"] = in.total_tensors;
  j["listed_tensors"] = in.tensors.size();
  j["listed_elements"] = in.listed_numel;
  j["listed_bytes"] = in.listed_bytes;
  j["metadata"] = in.metadata;
  if (in.compvis)
    j["ema"] = {{"present", in.ema_tensors > 0},
                {"model_ema_tensors", in.ema_tensors},
                {"unet_parameters", in.unet_params},
                {"unet_parameters_with_ema", in.unet_params_with_ema}};
  auto& arr = j["tensors"] = nlohmann::ordered_json::array();
  for (const auto& t : in.tensors)
    arr.push_back({{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape}, {"bytes", t.bytes}});
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace rdm::formats
