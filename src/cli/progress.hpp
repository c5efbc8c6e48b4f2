// Sampling progress on stderr: a bar per image batch (step i/N, it/s, ETA) on a terminal,
// one line per quarter otherwise; and a total at the end. Used by sample, sweep and demo.
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "rdm/app/pipeline.hpp"

namespace rdm::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label = "") : label_(std::move(label)), tty_(::isatty(STDERR_FILENO) != 0) {}

  void set_label(std::string label) { label_ = std::move(label); }

  void operator()(const SampleProgress& p) {
    using Clock = std::chrono::steady_clock;
    if (spdlog::get_level() > spdlog::level::info) return;
    auto now = Clock::now();
    if (p.step <= 1 || p.image != image_) {
      start_ = now;
      image_ = p.image;
      last_quarter_ = -1;
    }
    double el = std::chrono::duration<double>(now - start_).count();
    double rate = p.step > 0 && el > 0 ? p.step / el : 0;
    double eta = rate > 0 ? (p.steps - p.step) / rate : 0;
    std::string which = p.batch > 1 ? fmt::format("images {}-{}/{}", p.image + 1, p.image + p.batch, p.images)
                                    : fmt::format("image {}/{}", p.image + 1, p.images);
    if (tty_) {
      const int width = 30;
      int fill = p.steps > 0 ? width * p.step / p.steps : 0;
      std::fprintf(stderr, "\r%s%s [%s%s] step %d/%d  %.2f it/s  ETA %.0fs ", label_.c_str(), which.c_str(),
                   std::string(fill, '#').c_str(), std::string(width - fill, '.').c_str(), p.step, p.steps, rate, eta);
      if (p.step == p.steps) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    } else {
      int quarter = p.steps > 0 ? 4 * p.step / p.steps : 4;
      if (quarter != last_quarter_ && (quarter > 0 || p.step == p.steps)) {
        last_quarter_ = quarter;
        spdlog::info("{}{}: step {}/{} ({:.2f} it/s, ETA {:.0f} s)", label_, which, p.step, p.steps, rate, eta);
      }
    }
  }

 private:
  std::string label_;
  bool tty_;
  int64_t image_ = -1;
  int last_quarter_ = -1;
  std::chrono::steady_clock::time_point start_{};
};

}  // namespace rdm::cli
