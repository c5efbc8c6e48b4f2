// Bounded text-file reading (prompt files, sweep JSONL, embed --text-file): BOM, CR LF, size and
// line limits, devices refused, FIFOs read, invalid UTF-8 named by line.
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "unit/error_of.hpp"
#include "io_test_util.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/io/text_file.hpp"

namespace {
using rdm::io::find_invalid_utf8;
using rdm::io::read_prompt_lines;
using rdm::io::read_text_lines;

using rdm_test::error_of;

TEST(TextFile, StripsBomAndCrLf) {
  auto p = iotest::write("bom.txt", "\xEF\xBB\xBF" "a fox\r\n\r\n  \nsecond line\n");
  auto lines = read_text_lines(p, "prompt file");
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0].text, "a fox");
  EXPECT_EQ(lines[0].number, 1u);
  EXPECT_EQ(lines[3].text, "second line");
  auto prompts = read_prompt_lines(p, "prompt file");
  ASSERT_EQ(prompts.size(), 2u);
  EXPECT_EQ(prompts[0].text, "a fox");
  EXPECT_EQ(prompts[1].number, 4u);
}

TEST(TextFile, BomOnlyInFirstLineIsStripped) {
  auto p = iotest::write("bom2.txt", "x\n\xEF\xBB\xBFy");
  auto lines = read_text_lines(p, "f");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].text, "\xEF\xBB\xBFy");  // a BOM inside the text is a character (U+FEFF)
}

TEST(TextFile, InvalidUtf8NamesFileAndLine) {
  auto p = iotest::write("bad.txt", "ok\nstill ok\nbad \xC3\x28 here\n");
  std::string msg = error_of([&] { read_text_lines(p, "prompt file"); });
  EXPECT_NE(msg.find("prompt file"), std::string::npos) << msg;
  EXPECT_NE(msg.find("bad.txt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
}

TEST(TextFile, FindInvalidUtf8) {
  EXPECT_EQ(find_invalid_utf8("plain ascii"), std::string::npos);
  EXPECT_EQ(find_invalid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), std::string::npos);
  EXPECT_EQ(find_invalid_utf8("\xC0\x80"), 0u);          // overlong NUL
  EXPECT_EQ(find_invalid_utf8("ab\xED\xA0\x80"), 2u);    // surrogate
  EXPECT_EQ(find_invalid_utf8("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("x\xE2\x82"), 1u);         // truncated
  EXPECT_EQ(find_invalid_utf8("\x80"), 0u);              // lone continuation byte
}

TEST(TextFile, SizeAndLineLimits) {
  rdm::io::TextLimits small;
  small.max_bytes = 1 << 20;
  small.max_line = 1 << 10;
  auto big = iotest::write("big.txt", std::string((1 << 20) + 1, 'a'));
  EXPECT_NE(error_of([&] { read_text_lines(big, "jobs file", small); }).find("larger than 1 MiB"), std::string::npos);
  auto longline = iotest::write("long.txt", "short\n" + std::string(2000, 'b') + "\n");
  std::string msg = error_of([&] { read_text_lines(longline, "jobs file", small); });
  EXPECT_NE(msg.find("line 2 is longer than 1 KiB"), std::string::npos) << msg;
}

TEST(TextFile, DevicesAndFoldersAreRefusedAtOnce) {
  auto t0 = std::chrono::steady_clock::now();
  std::string msg = error_of([] { read_text_lines("/dev/zero", "prompt file"); });
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_NE(error_of([] { read_text_lines(iotest::tmpdir(), "prompt file"); }).find("not a regular file"),
            std::string::npos);
  EXPECT_NE(error_of([] { read_text_lines("/nonexistent/rdm/prompts.txt", "prompt file"); }).find("cannot read"),
            std::string::npos);
}

TEST(TextFile, FifoIsReadButBounded) {
  const auto fifo = iotest::tmpdir() / "prompts.fifo";
  std::filesystem::remove(fifo);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::thread writer([&] {
    std::ofstream f(fifo);
    f << "\xEF\xBB\xBF" "from a pipe\n";
  });
  auto lines = read_text_lines(fifo, "prompt file");
  writer.join();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].text, "from a pipe");

  // An endless writer is cut off at the size limit (the writer then gets EPIPE, not SIGPIPE).
  auto old = std::signal(SIGPIPE, SIG_IGN);
  rdm::io::TextLimits small;
  small.max_bytes = 1 << 20;
  std::thread flood([&] {
    std::ofstream f(fifo);
    std::string chunk(1 << 16, 'x');
    for (int i = 0; i < 64 && f; ++i) f << chunk;
  });
  std::string msg = error_of([&] { read_text_lines(fifo, "prompt file", small); });
  flood.join();
  std::signal(SIGPIPE, old);
  EXPECT_NE(msg.find("larger than 1 MiB"), std::string::npos) << msg;
  std::filesystem::remove(fifo);
}

}  // namespace
