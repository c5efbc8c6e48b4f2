// rdm::Error: every user, file and configuration problem the library reports.
// Exceptions inside the library, one catch in main (see docs: conventions §7).
#pragma once
#include <stdexcept>
#include <string>
#include <spdlog/fmt/fmt.h>

namespace rdm {

// A problem the user can fix: bad file, bad option, bad configuration.
// The message is one line naming the object and the problem.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Thrown by code that is asked for something it does not implement (e.g. a selftest kind).
struct Unsupported : Error {
  using Error::Error;
};

template <typename... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace rdm
