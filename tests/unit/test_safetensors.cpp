// Unit tests: safetensors reader/writer and strict loading.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/formats/state_dict.hpp"

namespace fs = std::filesystem;
using namespace rdm::formats;

namespace {
fs::path tmpfile(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("rdm_unit_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}
}  // namespace

TEST(Safetensors, RoundTripAllDtypes) {
  StateDict sd;
  sd["f32"] = torch::randn({3, 4});
  sd["f64"] = torch::randn({2}, torch::kFloat64);
  sd["f16"] = torch::randn({5}).to(torch::kFloat16);
  sd["bf16"] = torch::randn({5}).to(torch::kBFloat16);
  sd["i64"] = torch::arange(7);
  sd["i32"] = torch::arange(3).to(torch::kInt32);
  sd["u8"] = torch::arange(9).to(torch::kUInt8);
  sd["b"] = torch::tensor({true, false});
  sd["scalar"] = torch::tensor(3.5f);
  auto p = tmpfile("rt.safetensors");
  write_safetensors(p, sd, {{"k", "v"}});
  auto tf = read_safetensors(p);
  EXPECT_EQ(tf.metadata.at("k"), "v");
  ASSERT_EQ(tf.tensors.size(), sd.size());
  for (auto& [k, v] : sd) {
    ASSERT_TRUE(tf.tensors.count(k)) << k;
    EXPECT_EQ(tf.tensors[k].scalar_type(), v.scalar_type()) << k;
    EXPECT_TRUE(torch::equal(tf.tensors[k], v)) << k;
  }
}

TEST(Safetensors, RejectsTruncatedFile) {
  StateDict sd;
  sd["w"] = torch::randn({16, 16});
  auto p = tmpfile("trunc.safetensors");
  write_safetensors(p, sd);
  fs::resize_file(p, fs::file_size(p) - 10);
  try {
    read_safetensors(p);
    FAIL() << "no error";
  } catch (const rdm::Error& e) {
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
  }
}

TEST(StrictLoad, ReportsEveryProblemAtOnce) {
  torch::nn::Sequential m(torch::nn::Linear(4, 3), torch::nn::Linear(3, 2));
  StateDict sd;
  sd["0.weight"] = torch::zeros({3, 4});
  sd["0.bias"] = torch::zeros({3});
  sd["1.weight"] = torch::zeros({2, 4});  // wrong shape
  sd["extra"] = torch::zeros({1});        // unexpected; 1.bias missing
  try {
    load_into(*m, sd, "", {"m.ckpt"});
    FAIL() << "no error";
  } catch (const rdm::Error& e) {
    std::string s = e.what();
    EXPECT_NE(s.find("1.bias"), std::string::npos) << s;
    EXPECT_NE(s.find("extra"), std::string::npos) << s;
    EXPECT_NE(s.find("1.weight"), std::string::npos) << s;
    EXPECT_NE(s.find("m.ckpt"), std::string::npos) << s;
  }
}

TEST(Ema, KeyMapping) {
  EXPECT_EQ(ema_key("model.diffusion_model.input_blocks.11.proj_in.weight"),
            "model_ema.diffusion_modelinput_blocks11proj_inweight");
}
