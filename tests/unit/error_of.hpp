// The message of the rdm::Error a call throws ("" when it throws none), for tests that check
// what an error names. Other exceptions propagate and fail the test.
#pragma once
#include <functional>
#include <string>

#include "rdm/runtime/error.hpp"

namespace rdm_test {
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const rdm::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace rdm_test
