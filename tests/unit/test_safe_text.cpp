// Untrusted text and files: bounded JSON records, the PNG text-chunk reader, terminal
// escaping, JSON output without control bytes, bounded reads of non-regular files, appends
// that refuse symlinks, atomic writes that do not follow a planted temporary symlink.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <iterator>

#include "unit/error_of.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/image/png.hpp"
#include "rdm/io/safe_text.hpp"
#include "unit/io_test_util.hpp"
#include "rdm/io/safe_file.hpp"
#include "rdm/image/png_text.hpp"

using namespace rdm::io;
using namespace rdm::image;
namespace fs = std::filesystem;

namespace {
using rdm_test::error_of;

void be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}
// A chunk with its CRC (crc_xor != 0 damages it).
std::string chunk(const std::string& type, const std::string& data, uint32_t crc_xor = 0) {
  std::string c;
  be32(c, static_cast<uint32_t>(data.size()));
  std::string td = type + data;
  c += td;
  be32(c, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(td.data()), td.size())) ^ crc_xor);
  return c;
}
std::string zlib(const std::string& s) {
  uLongf n = compressBound(s.size());
  std::string out(n, '\0');
  compress(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(s.data()), s.size());
  out.resize(n);
  return out;
}
const std::string kSig = "\x89PNG\r\n\x1a\n";
std::string ihdr() { return chunk("IHDR", std::string("\0\0\0\1\0\0\0\1\x08\x02\0\0\0", 13)); }
}  // namespace

TEST(SafeText, JsonNestingIsBoundedBeforeParsing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::string e = error_of([&] { parse_json_bounded(deep, "'x.png': the rdm metadata chunk"); });
  EXPECT_NE(e.find("'x.png': the rdm metadata chunk nests deeper than 64 levels"), std::string::npos) << e;
  // 64 levels are fine; brackets inside strings do not count.
  EXPECT_NO_THROW(parse_json_bounded(std::string(64, '[') + std::string(64, ']'), "r"));
  EXPECT_THROW(parse_json_bounded(std::string(65, '{') , "r"), rdm::Error);
  auto j = parse_json_bounded("{\"a\": \"[[[[\\\"[[[[\", \"b\": [1]}", "r", 1 << 20, 2);
  EXPECT_EQ(j["b"][0], 1);
}

TEST(SafeText, JsonSizeSyntaxAndNumberErrorsAreRdmErrors) {
  EXPECT_NE(error_of([] { parse_json_bounded(std::string(100, ' '), "rec", 50); }).find("over the limit of 50"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_json_bounded("{\"a\": tru}", "rec"); }).find("rec is not valid JSON"),
            std::string::npos);
  // nlohmann throws out_of_range (not parse_error) for a number too large: found by fuzz_png_record.
  EXPECT_THROW(parse_json_bounded("4444444444444444444444444444e00000002971381220773054237", "rec"), rdm::Error);
}

TEST(SafeText, EscapeForTerminal) {
  EXPECT_EQ(escape_for_terminal("a\x1b[31mb\x07"), "a\\x1b[31mb\\x07");
  EXPECT_EQ(escape_for_terminal("line\nnext\ttab"), "line\\x0anext\\x09tab");
  EXPECT_EQ(escape_for_terminal("line\nnext\ttab\r", true), "line\nnext\ttab\\x0d");
  EXPECT_EQ(escape_for_terminal("del\x7f"), "del\\x7f");
  EXPECT_EQ(escape_for_terminal("csi\xc2\x9b" "2J"), "csi\\u009b2J");          // C1 in UTF-8
  EXPECT_EQ(escape_for_terminal("raw\x9b"), "raw\\x9b");                        // invalid UTF-8 byte
  EXPECT_EQ(escape_for_terminal("caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x98\x80");
  EXPECT_EQ(escape_for_terminal("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // surrogate
  EXPECT_EQ(escape_for_terminal("\xc0\xaf"), "\\xc0\\xaf");                    // overlong
}

TEST(SafeText, JsonDumpHasNoControlBytesAndStaysValid) {
  nlohmann::json j{{"p", "a\x1b]0;t\x07 \x7f \xc2\x9b x"}, {"bad", std::string("\xff\xfe")}};
  std::string s = dump_json_safe(j, 2);
  for (unsigned char c : s) {
    EXPECT_FALSE(c < 0x20 && c != '\n') << int(c);
    EXPECT_NE(c, 0x7f);
  }
  EXPECT_EQ(s.find("\xc2\x9b"), std::string::npos);
  auto back = nlohmann::json::parse(s);
  EXPECT_EQ(back["p"], "a\x1b]0;t\x07 \x7f \xc2\x9b x");  // same text, escaped in the JSON
  EXPECT_EQ(back["bad"], "\xef\xbf\xbd\xef\xbf\xbd");    // invalid UTF-8 -> U+FFFD
}

TEST(PngText, ReadsTextZtxtItxtWithoutPixels) {
  const std::string rec = "{\"prompt\":\"caf\xc3\xa9\"}";
  std::string png = kSig + ihdr() + chunk("tEXt", std::string("parameters\0a fox", 16)) +
                    chunk("zTXt", std::string("z\0\0", 3) + zlib("zipped text")) +
                    chunk("IDAT", "garbage: never decoded") +
                    chunk("iTXt", std::string("rdm\0\0\0en\0rdm\0", 13) + rec) +
                    chunk("iTXt", std::string("c\0\1\0\0\0", 6) + zlib("compressed itxt")) +
                    chunk("tEXt", std::string("bad crc\0x", 9), 1) + chunk("IEND", "");
  auto t = decode_png_text(png, "t.png");
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].key, "parameters");
  EXPECT_EQ(t[0].text, "a fox");
  EXPECT_EQ(t[1].text, "zipped text");
  EXPECT_EQ(t[2].key, "rdm");
  EXPECT_EQ(t[2].text, rec);
  EXPECT_EQ(t[3].text, "compressed itxt");
  // What libpng writes reads back the same.
  auto file = iotest::tmpdir() / "lib.png";
  write_png(file, RgbImage(2, 3, 9), {{"parameters", "p"}, {"rdm", rec}});
  auto u = read_png_text(file);
  ASSERT_EQ(u.size(), 2u);
  EXPECT_EQ(u[1].text, rec);
}

TEST(PngText, HostileChunksAreOneError) {
  auto err = [](const std::string& bytes) { return error_of([&] { decode_png_text(bytes, "h.png"); }); };
  EXPECT_NE(err("GIF89a....").find("'h.png' is not a PNG file"), std::string::npos);
  EXPECT_NE(err(kSig + ihdr()).find("truncated"), std::string::npos);
  std::string huge = kSig + ihdr();
  be32(huge, 0x7ffffff0u);
  huge += "tEXt" + std::string(100, 'a');
  EXPECT_NE(err(huge).find("runs past the end"), std::string::npos);
  EXPECT_NE(err(kSig + chunk("tEXt", std::string("k\0v", 3)) + chunk("IEND", "")).find("not IHDR"), std::string::npos);
  // A zTXt bomb: 64 MiB of zeros compress to ~64 KiB; inflating stops at the limit.
  std::string bomb = kSig + ihdr() + chunk("zTXt", std::string("k\0\0", 3) + zlib(std::string(64u << 20, 'a'))) +
                     chunk("IEND", "");
  EXPECT_NE(err(bomb).find("inflates to more than"), std::string::npos);
  std::string many = kSig + ihdr();
  for (size_t i = 0; i <= kMaxPngTextChunks; ++i) many += chunk("tEXt", std::string("k\0v", 3));
  EXPECT_NE(err(many + chunk("IEND", "")).find("more than 1000 text chunks"), std::string::npos);
  EXPECT_NE(err(kSig + ihdr() + chunk("tEXt", "nokeyword") + chunk("IEND", "")).find("bad keyword"), std::string::npos);
}

TEST(BoundedRead, RefusesDevicesFifosAndLargeFiles) {
  EXPECT_NE(error_of([] { read_regular_file("/dev/zero", 1 << 20); }).find("not a regular file"), std::string::npos);
  fs::path fifo = iotest::tmpdir() / "fifo";
  fs::remove(fifo);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_NE(error_of([&] { read_regular_file(fifo, 1 << 20); }).find("not a regular file"), std::string::npos);
  EXPECT_THROW(read_png(fifo), rdm::Error);  // does not block on the FIFO
  EXPECT_THROW(read_png_text("/dev/zero"), rdm::Error);
  auto big = iotest::write("big.bin", std::string(1000, 'x'));
  EXPECT_NE(error_of([&] { read_regular_file(big, 999); }).find("over the limit of 999 bytes"), std::string::npos);
  EXPECT_EQ(read_regular_file(big, 1000).size(), 1000u);
}

TEST(SafeWrite, AppendRefusesSymlinks) {
  fs::path dir = iotest::tmpdir() / "append";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto target = dir / "elsewhere.txt";
  iotest::write("append/elsewhere.txt", "keep\n");
  fs::create_symlink(target, dir / "results.jsonl");
  std::string e = error_of([&] { append_file_nofollow(dir / "results.jsonl", "{}\n"); });
  EXPECT_NE(e.find("refusing to append to"), std::string::npos) << e;
  EXPECT_NE(e.find("symbolic link"), std::string::npos) << e;
  std::ifstream f(target);
  std::string body((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(body, "keep\n");
  append_file_nofollow(dir / "log.jsonl", "a\n");
  append_file_nofollow(dir / "log.jsonl", "b\n");
  std::ifstream g(dir / "log.jsonl");
  std::string log((std::istreambuf_iterator<char>(g)), {});
  EXPECT_EQ(log, "a\nb\n");
  fs::create_directories(dir / "adir");
  EXPECT_THROW(append_file_nofollow(dir / "adir", "x"), rdm::Error);
}

TEST(SafeWrite, AtomicReplaceDoesNotWriteThroughSymlinks) {
  fs::path dir = iotest::tmpdir() / "atomic";
  fs::remove_all(dir);
  fs::create_directories(dir);
  iotest::write("atomic/outside.txt", "keep");
  fs::create_symlink(dir / "outside.txt", dir / "index.html");
  write_file_atomic(dir / "index.html", "new");
  EXPECT_FALSE(fs::is_symlink(dir / "index.html"));  // the link itself was replaced
  std::ifstream f(dir / "outside.txt");
  std::string body((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(body, "keep");
  // The temporary file is created exclusively (O_EXCL | O_NOFOLLOW), never opened through a link.
  AtomicOutput out(dir / "x.bin");
  struct stat st {};
  ASSERT_EQ(::lstat(out.tmp_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}
