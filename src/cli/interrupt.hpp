// Ctrl-C (SIGINT) and SIGTERM for the long-running sampling commands: the first signal sets a
// flag that the work checks (finished images are kept, the command exits with status 130); a
// second one stops the process at once (default action).
#pragma once
#include <atomic>
#include <csignal>

namespace rdm::cli {

inline std::atomic<bool>& interrupt_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}

extern "C" inline void rdm_on_interrupt(int) {
  interrupt_flag().store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C stops at once
  std::signal(SIGTERM, SIG_DFL);
}

// Installs the handlers for its lifetime and restores the previous ones.
class InterruptGuard {
 public:
  InterruptGuard() {
    interrupt_flag().store(false);
    old_int_ = std::signal(SIGINT, rdm_on_interrupt);
    old_term_ = std::signal(SIGTERM, rdm_on_interrupt);
  }
  ~InterruptGuard() {
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
  const std::atomic<bool>* flag() const { return &interrupt_flag(); }
  bool interrupted() const { return interrupt_flag().load(); }

 private:
  void (*old_int_)(int) = SIG_DFL;
  void (*old_term_)(int) = SIG_DFL;
};

// The status of a command stopped by Ctrl-C after writing what it finished (128 + SIGINT).
constexpr int kInterruptedExitCode = 130;

}  // namespace rdm::cli
