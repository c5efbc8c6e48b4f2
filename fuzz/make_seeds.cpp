// Writes one small valid input per fuzz target into <dir>/<target>/ (the starting corpora).
#include <filesystem>
#include <fstream>
#include <iostream>

#include <torch/types.h>

#include "rdm/io/atomic_file.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/formats/zip.hpp"
#include "unit/io_test_util.hpp"

namespace fs = std::filesystem;
using namespace rdm::io;
using namespace rdm::formats;

static void put(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_seeds DIR\n";
    return 2;
  }
  const fs::path dir = argv[1];
  StateDict sd = {{"a", torch::arange(6, torch::kFloat32).reshape({2, 3})}, {"b", torch::arange(3)}};
  fs::create_directories(dir / "safetensors");
  write_safetensors(dir / "safetensors" / "seed.safetensors", sd, {{"k", "v"}});
  iotest::Pickle p;
  p.empty_dict().put(0).mark().str("epoch").integer(1).str("cb").global("pl", "ModelCheckpoint").empty_tuple().newobj();
  p.empty_dict().str("x").real(0.5).setitem().build().str("state_dict");
  p.global("collections", "OrderedDict").empty_tuple().reduce().mark();
  p.str("a").tensor("0", "FloatStorage", 6, 0, {2, 3}, {3, 1});
  p.str("b").tensor("1", "LongStorage", 3, 0, {3}, {1});
  p.setitems().setitems().stop();
  put(dir / "pickle", "seed.pkl", p.b);
  const std::vector<std::pair<std::string, std::string>> recs = {{"0", iotest::bytes_of(sd["a"])},
                                                                  {"1", iotest::bytes_of(sd["b"])}};
  ZipWriteOptions o;
  o.align = 16;
  put(dir / "torch_zip", "seed.ckpt", iotest::torch_archive("a", p.b, recs, o));
  o.deflate = true;
  o.zip64 = true;
  put(dir / "torch_zip", "seed64.ckpt", iotest::torch_archive("a", p.b, recs, o));
  put(dir / "npy", "seed.npy", npy_bytes(sd["a"]));
  put(dir / "npy", "seed.npz", make_zip({{"a.npy", npy_bytes(sd["a"])}, {"b.npy", npy_bytes(sd["b"])}}, o));
  return 0;
}
