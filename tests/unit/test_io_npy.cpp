// Unit tests: .npy / .npz reading and writing.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "io_test_util.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/formats/tensor_file.hpp"

using namespace rdm::io;
using namespace rdm::formats;

namespace {
// A .npy file with a hand-written header (format 1.0, or 2.0 with `v2`).
std::string npy(const std::string& dict, const std::string& data, bool v2 = false) {
  std::string h = dict;
  const std::size_t pre = v2 ? 12 : 10;
  while ((pre + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = std::string("\x93NUMPY", 6) + (v2 ? std::string("\x02\x00", 2) : std::string("\x01\x00", 2));
  out += iotest::le(h.size(), v2 ? 4 : 2);
  return out + h + data;
}

void expect_error(const std::string& name, const std::string& bytes, const std::string& what) {
  auto p = iotest::write(name, bytes);
  try {
    read_tensor_file(p);
    ADD_FAILURE() << "no error for " << name;
  } catch (const rdm::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(p.string()), std::string::npos) << m;
    EXPECT_NE(m.find(what), std::string::npos) << m;
  }
}
}  // namespace

TEST(Npy, RoundTripEveryDtype) {
  torch::manual_seed(3);
  const std::vector<torch::Tensor> ts = {
      torch::randn({3, 4}),  torch::randn({2, 3, 2}, torch::kFloat64), torch::randn({5}).to(torch::kFloat16),
      torch::arange(-5, 5).to(torch::kInt8), torch::arange(-300, 300, 7).to(torch::kInt16),
      torch::arange(7).to(torch::kInt32), torch::arange(3) + static_cast<int64_t>(1LL << 40), torch::arange(200).to(torch::kUInt8),
      torch::tensor({true, false, true}), torch::tensor(2.5), torch::zeros({0, 3})};
  for (const auto& t : ts) {
    auto p = iotest::tmpdir() / "rt.npy";
    write_npy(p, t);
    EXPECT_EQ(sniff_format(p), Format::Npy);
    torch::Tensor r = read_npy(p);
    ASSERT_EQ(r.scalar_type(), t.scalar_type());
    ASSERT_EQ(r.sizes(), t.sizes());
    EXPECT_TRUE(torch::equal(r, t));
  }
  // The header is numpy's own: padded to 64 bytes, shape written as Python tuples.
  const std::string b = npy_bytes(torch::zeros({3}, torch::kFloat32));
  EXPECT_EQ(b.find("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"), 10u);
  EXPECT_EQ((b.size() - 12) % 64, 0u);
  EXPECT_NE(npy_bytes(torch::zeros({2, 3})).find("'shape': (2, 3), }"), std::string::npos);
  EXPECT_NE(npy_bytes(torch::tensor(1.0)).find("'shape': (), }"), std::string::npos);
  EXPECT_THROW(npy_bytes(torch::zeros({2}, torch::kBFloat16)), rdm::Error);
}

TEST(Npy, HandWrittenHeaders) {
  // format 2.0, big-endian int32, unsigned 16 bit, double quotes and extra spaces
  std::string be;
  for (std::uint32_t v : {1u, 2u, 0xfffffffeu}) be += std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  auto p = iotest::write("be.npy", npy("{'descr': '>i4', 'fortran_order': False, 'shape': (3,), }", be, true));
  EXPECT_TRUE(torch::equal(read_npy(p), torch::tensor({1, 2, -2}, torch::kInt32)));
  p = iotest::write("u2.npy", npy("{\"descr\":\"<u2\",\"fortran_order\":False,\"shape\":( 2 , )}",
                                  iotest::le(65535, 2) + iotest::le(7, 2)));
  EXPECT_TRUE(torch::equal(read_npy(p), torch::tensor({65535, 7}, torch::kInt32)));
  p = iotest::write("f8.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }", iotest::le(0x4004000000000000ULL, 8)));
  EXPECT_EQ(read_npy(p).item<double>(), 2.5);
}

TEST(Npy, BrokenFilesGiveErrorsNamingTheFile) {
  const std::string f4x2 = iotest::le(0, 8);
  expect_error("fortran.npy", npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }", f4x2), "Fortran");
  expect_error("object.npy", npy("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", f4x2), "object");
  expect_error("record.npy", npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", f4x2),
               "structured");
  expect_error("trunc.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f4x2), "truncated");
  expect_error("huge.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999), }", f4x2),
               "shape");
  expect_error("dtype.npy", npy("{'descr': '<x9', 'fortran_order': False, 'shape': (2,), }", f4x2), "dtype");
  expect_error("bool.npy", npy("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", "\x01\x07"), "bool");
  expect_error("nokey.npy", npy("{'descr': '<f4', 'shape': (2,), }", f4x2), "fortran_order");
  std::string hdr = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f4x2);
  hdr[8] = '\xff';  // header length beyond the file
  hdr[9] = '\x7f';
  expect_error("hlen.npy", hdr, "truncated");
  expect_error("version.npy", std::string("\x93NUMPY\x09\x00\x10\x00", 10) + std::string(16, ' '), "version");
}

TEST(Npz, StoredAndDeflated) {
  std::map<std::string, torch::Tensor> arrays = {{"emb", torch::randn({4, 8})}, {"ids", torch::arange(4)},
                                                 {"nested/name", torch::ones({2}, torch::kFloat16)}};
  for (bool compressed : {false, true}) {
    auto p = iotest::tmpdir() / "a.npz";
    write_npz(p, arrays, compressed);
    EXPECT_EQ(sniff_format(p), Format::Npz);
    auto r = read_npz(p);
    ASSERT_EQ(r.size(), arrays.size());
    for (const auto& [k, t] : arrays) EXPECT_TRUE(torch::equal(r.at(k), t)) << k;
    TensorFile tf = read_tensor_file(p);
    EXPECT_EQ(tf.format, Format::Npz);
    EXPECT_EQ(tf.order.size(), 3u);
  }
  // A zip member that is not an array.
  auto p = iotest::write("mixed.npz", make_zip({{"a.npy", npy_bytes(torch::ones({1}))}, {"data.txt", "x"}}));
  try {
    read_npz(p);
    ADD_FAILURE();
  } catch (const rdm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.txt"), std::string::npos);
  }
}
