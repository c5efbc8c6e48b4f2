// Unit tests: a corpus of broken and hostile files, generated at run time from valid ones
// (truncated, bit-flipped, huge lengths, overlapping offsets). Every reader must either
// succeed or throw an rdm::Error naming the file: never crash, hang or allocate wildly.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "io_test_util.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/formats/tensor_file.hpp"

using namespace rdm::io;
using namespace rdm::formats;
using iotest::Pickle;

namespace {
// Reads `bytes` as a file; returns false on an rdm::Error (checked to name the file).
bool try_read(const std::string& bytes, const std::string& label) {
  auto p = iotest::write("broken.bin", bytes);
  try {
    TensorFile tf = read_tensor_file(p);
    for (const auto& [k, t] : tf.tensors) (void)t.sum();  // touch every tensor's data
    return true;
  } catch (const rdm::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(p.string()), std::string::npos) << label << ": " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << label << ": " << m;
    return false;
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": not an rdm::Error: " << e.what();
    return false;
  }
}

std::vector<std::pair<std::string, std::string>> valid_files() {
  torch::manual_seed(5);
  StateDict sd = {{"a", torch::randn({4, 3})}, {"b", torch::arange(5)}, {"c", torch::randn({2}).to(torch::kFloat16)}};
  std::vector<std::pair<std::string, std::string>> out;
  auto st = iotest::tmpdir() / "v.safetensors";
  write_safetensors(st, sd, {{"k", "v"}});
  out.emplace_back("safetensors", read_file(st));
  Pickle p;
  p.empty_dict().put(0).mark().str("epoch").integer(1).str("state_dict");
  p.global("collections", "OrderedDict").empty_tuple().reduce().mark();
  p.str("a").tensor("0", "FloatStorage", 12, 0, {4, 3}, {3, 1});
  p.str("b").tensor("1", "LongStorage", 5, 0, {5}, {1});
  p.setitems().setitems().stop();
  const std::vector<std::pair<std::string, std::string>> recs = {{"0", iotest::bytes_of(sd["a"])},
                                                                  {"1", iotest::bytes_of(sd["b"])}};
  out.emplace_back("torch_zip", iotest::torch_archive("archive", p.b, recs));
  ZipWriteOptions o;
  o.deflate = true;
  o.zip64 = true;
  out.emplace_back("torch_zip_deflated_zip64", iotest::torch_archive("archive", p.b, recs, o));
  out.emplace_back("npy", npy_bytes(sd["a"]));
  out.emplace_back("npz", make_zip({{"a.npy", npy_bytes(sd["a"])}, {"b.npy", npy_bytes(sd["b"])}}, o));
  return out;
}
}  // namespace

TEST(BrokenFiles, ValidFilesRead) {
  for (const auto& [label, bytes] : valid_files()) EXPECT_TRUE(try_read(bytes, label)) << label;
}

TEST(BrokenFiles, EveryTruncationFailsCleanly) {
  for (const auto& [label, bytes] : valid_files()) {
    const std::size_t step = std::max<std::size_t>(1, bytes.size() / 150);
    for (std::size_t n = 0; n < bytes.size(); n += step)
      EXPECT_FALSE(try_read(bytes.substr(0, n), label + " truncated to " + std::to_string(n))) << label << " " << n;
  }
}

TEST(BrokenFiles, BitFlipsNeverCrash) {
  std::mt19937 rng(1234);
  for (const auto& [label, bytes] : valid_files()) {
    for (int k = 0; k < 200; ++k) {
      std::string b = bytes;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) b[rng() % b.size()] ^= static_cast<char>(1u << (rng() % 8));
      try_read(b, label + " flipped #" + std::to_string(k));
    }
  }
}

TEST(BrokenFiles, SafetensorsHeaders) {
  auto st = [](const std::string& json, std::size_t data, std::uint64_t claimed = 0) {
    return iotest::le(claimed ? claimed : json.size(), 8) + json + std::string(data, '\0');
  };
  EXPECT_FALSE(try_read(st("{}", 0, 1ULL << 62), "huge header length"));
  EXPECT_FALSE(try_read(st("{\"a\":{}}", 0, 4000), "header length > file"));
  EXPECT_FALSE(try_read(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12),
                        "overlapping offsets"));
  EXPECT_FALSE(try_read(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "size mismatch"));
  EXPECT_FALSE(try_read(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8),
                        "huge shape"));
  EXPECT_FALSE(try_read(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999]}}", 8), "offset > file"));
  EXPECT_FALSE(try_read(st("{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "bad dtype"));
  EXPECT_FALSE(try_read(st("{\"a\":", 8), "bad json"));
}

TEST(BrokenFiles, ZipStructure) {
  const std::string good = make_zip({{"a.npy", npy_bytes(torch::ones({4}))}, {"b.npy", npy_bytes(torch::ones({2}))}});
  // Central directory claiming a huge entry count / offset.
  std::string b = good;
  const std::size_t eocd = b.size() - 22;
  b[eocd + 10] = '\xff';
  b[eocd + 11] = '\xfe';
  EXPECT_FALSE(try_read(b, "entry count"));
  b = good;
  b[eocd + 16] = '\xff';
  b[eocd + 19] = '\x7f';
  EXPECT_FALSE(try_read(b, "cd offset"));
  // Two members pointing at the same local header (overlap).
  b = good;
  const std::size_t cd2 = b.rfind(std::string("PK\x01\x02", 4));
  for (int k = 0; k < 4; ++k) b[cd2 + 42 + k] = 0;
  EXPECT_FALSE(try_read(b, "overlapping members"));
  // Deflated member whose declared size is a bomb.
  ZipWriteOptions o;
  o.deflate = true;
  b = make_zip({{"a.npy", npy_bytes(torch::zeros({1000}))}}, o);
  const std::size_t cd = b.rfind(std::string("PK\x01\x02", 4));
  b[cd + 24] = '\xff';
  b[cd + 25] = '\xff';
  b[cd + 26] = '\xff';
  b[cd + 27] = '\x7f';
  EXPECT_FALSE(try_read(b, "zip bomb size"));
  // Not a zip at all / empty file / a directory.
  EXPECT_FALSE(try_read("", "empty"));
  EXPECT_FALSE(try_read("PK\x03\x04 garbage", "garbage zip"));
  try {
    read_tensor_file(iotest::tmpdir());
    ADD_FAILURE();
  } catch (const rdm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("directory"), std::string::npos);
  }
}

TEST(BrokenFiles, LegacyTorchFormatIsNamed) {
  const std::string legacy("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
  auto p = iotest::write("legacy.pt", legacy);
  try {
    read_tensor_file(p);
    ADD_FAILURE();
  } catch (const rdm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("legacy"), std::string::npos);
  }
}
