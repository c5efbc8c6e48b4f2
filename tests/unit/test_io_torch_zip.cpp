// Unit tests: zip reader/writer, restricted unpickler, torch zip checkpoints, TorchScript.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "io_test_util.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/formats/pickle.hpp"
#include "rdm/formats/state_dict.hpp"
#include "rdm/formats/tensor_file.hpp"
#include "rdm/formats/torch_zip.hpp"

using namespace rdm::io;
using namespace rdm::formats;
using iotest::Pickle;

namespace {
// A Lightning-style checkpoint: {'epoch': 3, 'global_step': 1234, 'pytorch-lightning_version':
// '1.4.2', 'callbacks': {ModelCheckpoint: {...}}, 'checkpoint_callback': ModelCheckpoint
// instance (NEWOBJ + BUILD), 'lr': 0.5, 'state_dict': OrderedDict(a, b, c)}.
struct Lightning {
  torch::Tensor a = torch::randn({3, 4}, torch::Generator(at::detail::createCPUGenerator(7)));
  torch::Tensor b = torch::arange(10, torch::kInt64);
  torch::Tensor c = torch::randn({6}).to(torch::kFloat16);
  std::string pickle() const {
    Pickle p;
    p.empty_dict().put(0).mark();
    p.str("epoch").integer(3);
    p.str("global_step").integer(1234);
    p.str("pytorch-lightning_version").str("1.4.2");
    p.str("lr").real(0.5);
    p.str("callbacks").empty_dict().global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint").put(1);
    p.empty_dict().str("best_model_score").tensor("9", "FloatStorage", 1, 0, {}, {}).setitem().setitem();
    p.str("checkpoint_callback").get(1).empty_tuple().newobj().empty_dict().str("monitor").str("val/loss").setitem().build();
    p.str("state_dict").global("collections", "OrderedDict").empty_tuple().reduce().mark();
    p.str("a").tensor("0", "FloatStorage", 12, 0, {3, 4}, {4, 1});
    p.str("b").tensor("1", "LongStorage", 10, 0, {10}, {1});
    p.str("c").tensor("2", "HalfStorage", 6, 0, {6}, {1});
    p.setitems();
    p.setitems().stop();
    return p.b;
  }
  std::string archive(const std::string& folder = "archive", const ZipWriteOptions& o = {}) const {
    return iotest::torch_archive(folder, pickle(),
                                 {{"0", iotest::bytes_of(a)}, {"1", iotest::bytes_of(b)}, {"2", iotest::bytes_of(c)},
                                  {"9", iotest::bytes_of(torch::tensor({0.25f}))}},
                                 o);
  }
};

void expect_same(const torch::Tensor& x, const torch::Tensor& y) {
  ASSERT_EQ(x.scalar_type(), y.scalar_type());
  ASSERT_EQ(x.sizes(), y.sizes());
  EXPECT_TRUE(torch::equal(x, y));
}

// Every error is an rdm::Error whose message names the file.
template <typename F>
void expect_error_naming(const std::filesystem::path& p, F&& f, const std::string& also = "") {
  try {
    f();
    ADD_FAILURE() << "no error for " << p;
  } catch (const rdm::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(p.string()), std::string::npos) << m;
    if (!also.empty()) {
      EXPECT_NE(m.find(also), std::string::npos) << m;
    }
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}
}  // namespace

TEST(Zip, RoundTripStoredDeflatedZip64) {
  std::vector<std::pair<std::string, std::string>> m = {
      {"x/a.bin", std::string(1000, 'a')}, {"x/empty", ""}, {"x/b.txt", "hello zip"}};
  for (bool deflate : {false, true})
    for (bool z64 : {false, true}) {
      ZipWriteOptions o;
      o.deflate = deflate;
      o.zip64 = z64;
      auto p = iotest::write("rt.zip", make_zip(m, o));
      ZipArchive z = ZipArchive::open(p);
      ASSERT_EQ(z.entries().size(), 3u);
      for (const auto& [name, data] : m) {
        const auto* e = z.find(name);
        ASSERT_NE(e, nullptr) << name;
        EXPECT_EQ(z.read(*e), data);
        EXPECT_EQ(z.stored_data(*e) != nullptr, !deflate);
        if (!deflate && !data.empty()) {
          EXPECT_EQ(e->data_offset % 64, 0u) << "stored data aligned";
        }
      }
    }
}

TEST(Zip, CorruptMembersAreRejected) {
  ZipWriteOptions o;
  o.deflate = true;
  std::string good = make_zip({{"m", std::string(5000, 'q')}}, o);
  // Corrupt the deflate stream and the CRC.
  std::string bad = good;
  bad[40] ^= 0x55;
  auto p = iotest::write("crc.zip", bad);
  expect_error_naming(p, [&] {
    ZipArchive z = ZipArchive::open(p);
    z.read(z.entries().at(0));
  });
}

TEST(TorchZip, LightningCheckpoint) {
  Lightning l;
  for (const std::string folder : {"archive", "my_model-epoch=3"}) {
    auto p = iotest::write("l.ckpt", l.archive(folder));
    EXPECT_EQ(sniff_format(p), Format::TorchZip);
    TensorFile tf = read_tensor_file(p);
    EXPECT_EQ(tf.format, Format::TorchZip);
    ASSERT_EQ(tf.order, (std::vector<std::string>{"a", "b", "c"}));
    expect_same(tf.tensors.at("a"), l.a);
    expect_same(tf.tensors.at("b"), l.b);
    expect_same(tf.tensors.at("c"), l.c);
    EXPECT_EQ(tf.metadata.at("epoch"), "3");
    EXPECT_EQ(tf.metadata.at("global_step"), "1234");
    EXPECT_EQ(tf.metadata.at("pytorch-lightning_version"), "1.4.2");
    EXPECT_EQ(tf.metadata.at("lr"), "0.5");
    EXPECT_EQ(tf.metadata.at("archive_folder"), folder);
    // Explicit paths.
    TorchZipOptions o;
    o.state_dict_path = std::vector<std::string>{"state_dict"};
    EXPECT_EQ(read_torch_zip(p, o).tensors.size(), 3u);
    o.state_dict_path = std::vector<std::string>{"nope"};
    expect_error_naming(p, [&] { read_torch_zip(p, o); }, "nope");
  }
}

TEST(TorchZip, DeflatedAndZip64Archives) {
  Lightning l;
  for (bool deflate : {false, true}) {
    ZipWriteOptions o;
    o.deflate = deflate;
    o.zip64 = true;
    auto p = iotest::write("d.ckpt", l.archive("archive", o));
    TensorFile tf = read_torch_zip(p);
    expect_same(tf.tensors.at("a"), l.a);
    expect_same(tf.tensors.at("c"), l.c);
  }
}

TEST(TorchZip, PlainStateDictViewsAndSharedStorage) {
  // {'w': full [2,3] view of storage 0, 'wt': its transpose (same storage), 'tail': offset 2,
  //  'empty': [0, 5] tensor, 'flag': bool, 'i8': int8, 'bf': bfloat16, 'd': double}
  torch::Tensor base = torch::arange(6, torch::kFloat32);
  Pickle p;
  p.global("collections", "OrderedDict").empty_tuple().reduce().mark();
  p.str("w").tensor("0", "FloatStorage", 6, 0, {2, 3}, {3, 1});
  p.str("wt").tensor("0", "FloatStorage", 6, 0, {3, 2}, {1, 3});
  p.str("tail").tensor("0", "FloatStorage", 6, 2, {4}, {1});
  p.str("empty").tensor("0", "FloatStorage", 6, 0, {0, 5}, {5, 1});
  p.str("flag").tensor("1", "BoolStorage", 2, 0, {2}, {1});
  p.str("i8").tensor("2", "CharStorage", 3, 0, {3}, {1});
  p.str("bf").tensor("3", "BFloat16Storage", 2, 0, {2}, {1});
  p.str("d").tensor("4", "DoubleStorage", 1, 0, {}, {});
  p.setitems().stop();
  auto bf = torch::tensor({1.5f, -2.0f}).to(torch::kBFloat16);
  auto path = iotest::write(
      "sd.pt", iotest::torch_archive("sd", p.b,
                                     {{"0", iotest::bytes_of(base)},
                                      {"1", iotest::bytes_of(torch::tensor({true, false}))},
                                      {"2", iotest::bytes_of(torch::tensor({-1, 2, -3}, torch::kInt8))},
                                      {"3", iotest::bytes_of(bf)},
                                      {"4", iotest::bytes_of(torch::tensor({2.25}, torch::kFloat64))}}));
  TensorFile tf = read_torch_zip(path);
  expect_same(tf.tensors.at("w"), base.view({2, 3}));
  expect_same(tf.tensors.at("wt"), base.view({2, 3}).t());
  expect_same(tf.tensors.at("tail"), base.slice(0, 2));
  EXPECT_EQ(tf.tensors.at("empty").sizes(), (std::vector<int64_t>{0, 5}));
  expect_same(tf.tensors.at("flag"), torch::tensor({true, false}));
  expect_same(tf.tensors.at("i8"), torch::tensor({-1, 2, -3}, torch::kInt8));
  expect_same(tf.tensors.at("bf"), bf);
  EXPECT_EQ(tf.tensors.at("d").item<double>(), 2.25);
  // Shared storage: both views alias the same memory.
  EXPECT_EQ(tf.tensors.at("w").data_ptr(), tf.tensors.at("wt").data_ptr());
}

TEST(TorchZip, TorchScriptArchiveUsesClassDeclarations) {
  // data.pkl: __torch__.M(weight=tensor, scratch=tensor (not a parameter/buffer), training=True,
  //           sub=__torch__.S(bias=tensor))
  Pickle p;
  p.global("__torch__", "M").empty_tuple().newobj().empty_dict().mark();
  p.str("weight").tensor("0", "FloatStorage", 4, 0, {2, 2}, {2, 1});
  p.str("scratch").tensor("0", "FloatStorage", 4, 0, {4}, {1});
  p.str("training").boolean(true);
  p.str("sub").global("__torch__.pkg", "S").empty_tuple().newobj().empty_dict();
  p.str("bias").tensor("1", "LongStorage", 1, 0, {}, {}).setitem().build();
  p.setitems().build().stop();
  std::vector<std::pair<std::string, std::string>> m = {
      {"ts/data.pkl", p.b},
      {"ts/code/__torch__.py", "class M(Module):\n  __parameters__ = [\"weight\", ]\n  __buffers__ = []\n"},
      {"ts/code/__torch__/pkg.py", "class S(Module):\n  __parameters__ = []\n  __buffers__ = [\"bias\", ]\n"},
      {"ts/constants.pkl", "\x80\x02)."},
      {"ts/data/0", iotest::bytes_of(torch::arange(4, torch::kFloat32))},
      {"ts/data/1", iotest::bytes_of(torch::tensor({77}, torch::kInt64))},
      {"ts/version", "4\n"}};
  ZipWriteOptions o;
  o.deflate = true;  // code/ is deflated by torch; here everything is
  auto path = iotest::write("ts.pt", make_zip(m, o));
  EXPECT_EQ(sniff_format(path), Format::TorchScript);
  TensorFile tf = read_tensor_file(path);
  EXPECT_EQ(tf.format, Format::TorchScript);
  EXPECT_EQ(tf.order, (std::vector<std::string>{"weight", "sub.bias"}));
  EXPECT_EQ(tf.tensors.at("sub.bias").item<int64_t>(), 77);
}

TEST(Pickle, GlobalsNeverExecute) {
  // GLOBAL os.system + REDUCE ('touch <marker>',) must give a placeholder and run nothing.
  const auto marker = iotest::tmpdir() / "pwned";
  std::filesystem::remove(marker);
  for (const auto& [mod, fn] : std::vector<std::pair<std::string, std::string>>{
           {"os", "system"}, {"posix", "system"}, {"builtins", "eval"}, {"subprocess", "check_call"}}) {
    Pickle p;
    p.global(mod, fn).mark().str("touch " + marker.string()).tuple().reduce().stop();
    auto doc = pickle::unpickle(p.b, "evil.pkl", nullptr);
    ASSERT_EQ(doc->root->kind, pickle::Kind::Object);
    EXPECT_EQ(doc->root->s, mod + "." + fn);
    EXPECT_FALSE(std::filesystem::exists(marker));
  }
  // Inside a checkpoint: the state dict is still found, the evil entry is a placeholder.
  Pickle p;
  p.empty_dict().mark().str("evil").global("os", "system").mark().str("touch " + marker.string()).tuple().reduce();
  p.str("state_dict").empty_dict().str("w").tensor("0", "FloatStorage", 1, 0, {1}, {1}).setitem();
  p.setitems().stop();
  auto path = iotest::write("evil.ckpt", iotest::torch_archive("evil", p.b, {{"0", iotest::bytes_of(torch::ones({1}))}}));
  TensorFile tf = read_torch_zip(path);
  EXPECT_EQ(tf.tensors.size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(Pickle, ProtocolVariants) {
  // Protocol 4 framing, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE, LONG1, EMPTY_SET/ADDITEMS,
  // negative BININT, TUPLE1-3, APPENDS, text INT.
  std::string b = "\x80\x04\x95";
  b += iotest::le(0, 8);
  b += "\x8c\x0b""collections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94(";
  b += "\x8c\x01x\x8a\x02\xff\x7f";                 // 'x': 32767
  b += "\x8c\x01yJ\xfe\xff\xff\xff";                // 'y': -2
  b += "\x8c\x01z]\x94(K\x01K\x02K\x03K\x04\x87" "e";  // 'z': [1, (2, 3, 4)]
  b += "\x8c\x01sI01\n";                            // 's': True (protocol 0 bool)
  b += "u.";
  auto doc = pickle::unpickle(b, "p4.pkl", nullptr);
  const auto* r = doc->root;
  ASSERT_EQ(r->kind, pickle::Kind::Dict);
  EXPECT_EQ(r->get("x")->i, 32767);
  EXPECT_EQ(r->get("y")->i, -2);
  EXPECT_EQ(r->get("z")->items.size(), 2u);
  EXPECT_EQ(r->get("z")->items[1]->items.size(), 3u);
  EXPECT_TRUE(r->get("s")->b);
}

TEST(Pickle, HostileInputsGiveErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\x80\x02", "truncated"},
      {"\x80\x02X\xff\xff\xff\xff", "truncated"},                       // huge BINUNICODE length
      {"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff", "truncated"},  // huge BINUNICODE8
      {"\x80\x02h\x05.", "memo"},                                       // BINGET never stored
      {"\x80\x02t.", "MARK"},                                           // TUPLE without MARK
      {"\x80\x02.", "underflow"},                                       // STOP on empty stack
      {"\x80\x02(K\x01s.", "underflow"},                                // SETITEM past the mark
      {"\x80\x02K\x01K\x02R.", "REDUCE"},                               // call an int
      {"\x80\x02\xff.", "opcode"},                                      // unknown opcode
      {"\x80\x09N.", "protocol"},                                       // future protocol
      {"\x80\x02\x82\x01.", "extension"},                               // EXT1
      {"\x80\x02]K\x01K\x02s.", "SETITEM"},                                // SETITEM on a list
      {"\x80\x02\x8b\xff\xff\xff\xff.", "negative"},                    // LONG4 negative length
  };
  for (const auto& [bytes, what] : cases) {
    try {
      pickle::unpickle(bytes, "bad.pkl", nullptr);
      ADD_FAILURE() << "no error for " << what;
    } catch (const rdm::Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.pkl"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  }
  // A self-containing list (cycle through the memo) is fine and prints finitely.
  auto doc = pickle::unpickle(std::string("\x80\x02]q\x00h\x00\x61.", 9), "cyc.pkl", nullptr);
  EXPECT_EQ(doc->root->items.at(0), doc->root);
  EXPECT_LT(doc->root->repr().size(), 200u);
  // Value count limit.
  pickle::Limits lim;
  lim.max_values = 100;
  std::string many = "\x80\x02(";
  for (int k = 0; k < 200; ++k) many += "N";
  many += "l.";
  EXPECT_THROW(pickle::unpickle(many, "many.pkl", nullptr, lim), rdm::Error);
}

TEST(TorchZip, StorageBoundsAreChecked) {
  auto build = [](std::int64_t numel, std::int64_t offset, std::vector<std::int64_t> size,
                  std::vector<std::int64_t> stride, const std::string& record) {
    Pickle p;
    p.empty_dict().str("t").tensor("0", "FloatStorage", numel, offset, size, stride).setitem().stop();
    return iotest::torch_archive("b", p.b, {{"0", record}});
  };
  const std::string rec = iotest::bytes_of(torch::zeros({4}));
  struct C {
    std::int64_t numel, offset;
    std::vector<std::int64_t> size, stride;
    std::string record, what;
  };
  const std::vector<C> cases = {
      {8, 0, {8}, {1}, rec, "record has 16 bytes"},         // numel larger than the record
      {4, 2, {4}, {1}, rec, "storage"},                     // offset + size beyond storage
      {4, 0, {2, 2}, {4, 1}, rec, "storage"},               // stride beyond storage
      {4, 0, {2}, {-1}, rec, "out of range"},               // negative stride
      {4, -1, {2}, {1}, rec, "negative"},                   // negative offset
      {4, 0, {1LL << 40, 1LL << 40}, {1, 1}, rec, "size"},  // overflow
      {4, 0, {2}, {1, 1}, rec, "different lengths"},
  };
  for (const auto& c : cases) {
    auto p = iotest::write("bounds.pt", build(c.numel, c.offset, c.size, c.stride, c.record));
    expect_error_naming(p, [&] { read_torch_zip(p); }, c.what);
  }
  // Missing record.
  Pickle p;
  p.empty_dict().str("t").tensor("7", "FloatStorage", 1, 0, {1}, {1}).setitem().stop();
  auto path = iotest::write("missing.pt", iotest::torch_archive("m", p.b, {}));
  expect_error_naming(path, [&] { read_torch_zip(path); }, "missing");
}

TEST(TorchZip, ZeroCopyKeepsMemoryNearTensorSize) {
  // 24 MiB of float32 in one stored record; reading the checkpoint must not copy it.
  const std::int64_t n = 6 << 20;
  Pickle p;
  p.empty_dict().str("big").tensor("0", "FloatStorage", n, 0, {n}, {1}).setitem().stop();
  std::string rec(static_cast<std::size_t>(n) * 4, '\0');
  auto path = iotest::write("big.pt", iotest::torch_archive("big", p.b, {{"0", rec}}));
  rec.clear();
  rec.shrink_to_fit();
  auto rss = [] {
    std::ifstream f("/proc/self/statm");
    long pages = 0, res = 0;
    f >> pages >> res;
    return res * sysconf(_SC_PAGESIZE);
  };
  const long before = rss();
  TensorFile tf = read_torch_zip(path);
  const long after = rss();
  EXPECT_EQ(tf.tensors.at("big").numel(), n);
  EXPECT_LT(after - before, 8l << 20) << "reading a 24 MiB checkpoint grew RSS by " << (after - before);
  std::filesystem::remove(path);
}

TEST(TorchZip, ConsumingLoadDoesNotKeepTwoCopies) {
  // 24 MiB parameter loaded from a stored record: the mapped source pages are given back as
  // each tensor is copied, so RSS grows by far less than the tensor size.
  const std::int64_t n = 6 << 20;
  Pickle p;
  p.empty_dict().str("w").tensor("0", "FloatStorage", n, 0, {n}, {1}).setitem().stop();
  auto path = iotest::write("load.pt", iotest::torch_archive("load", p.b, {{"0", iotest::bytes_of(torch::full({n}, 1.5f))}}));
  struct M : torch::nn::Module {
    torch::Tensor w;
    explicit M(std::int64_t n) { w = register_parameter("w", torch::zeros({n})); }
  } m(n);
  TensorFile tf = read_torch_zip(path);
  const long before = iotest::rss_bytes();
  load_into_consuming(m, tf.tensors, "", LoadOptions{path.string(), std::nullopt, std::nullopt});
  const long after = iotest::rss_bytes();
  EXPECT_TRUE(tf.tensors.empty());
  EXPECT_EQ(m.w[n - 1].item<float>(), 1.5f);
  EXPECT_LT(after - before, 8l << 20) << "loading 24 MiB grew RSS by " << (after - before);
  std::filesystem::remove(path);
}

TEST(TorchZip, StateDictInAnUnknownDictSubclass) {
  // {'state_dict': pkg.AttributeDict() + SETITEMS, 'hparams': argparse.Namespace(lr=0.1)}
  Pickle p;
  p.empty_dict().mark();
  p.str("hparams").global("argparse", "Namespace").empty_tuple().newobj().empty_dict().str("lr").real(0.1).setitem().build();
  p.str("state_dict").global("pkg", "AttributeDict").empty_tuple().newobj().mark();
  p.str("w").tensor("0", "FloatStorage", 2, 0, {2}, {1}).setitems();
  p.setitems().stop();
  auto path = iotest::write("sub.ckpt", iotest::torch_archive("sub", p.b, {{"0", iotest::bytes_of(torch::ones({2}))}}));
  TensorFile tf = read_torch_zip(path);
  ASSERT_EQ(tf.order, std::vector<std::string>{"w"});
  EXPECT_TRUE(torch::equal(tf.tensors.at("w"), torch::ones({2})));
}
