#include "rdm/runtime/runtime.hpp"

#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__unix__)
#include <dlfcn.h>
#endif

namespace rdm {

std::string configure_cpu_allocator() {
  static const std::string done = [] {
    const char* env = std::getenv("RDM_MALLOC");
    if (env && std::strcmp(env, "system") == 0) return std::string("C library defaults (RDM_MALLOC=system)");
#if defined(__GLIBC__)
    const bool ok = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;  // 2 GiB
    return std::string(ok ? "heap allocator: large buffers reused (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2GiB)"
                          : "heap allocator: mallopt refused, C library defaults");
#else
    return std::string("C library defaults (not glibc)");
#endif
  }();
  return done;
}

void release_free_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

namespace {
// OpenBLAS's thread-count functions, looked up at run time (absent with another BLAS).
struct BlasThreadFns {
  using set_fn = void (*)(int);
  using get_fn = int (*)();
  set_fn set = nullptr;
  get_fn get = nullptr;
  BlasThreadFns() {
#if defined(__unix__)
    set = reinterpret_cast<set_fn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    get = reinterpret_cast<get_fn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
#endif
  }
};
const BlasThreadFns& blas_thread_fns() {
  static const BlasThreadFns fns;
  return fns;
}
}  // namespace

SingleThreadBlas::SingleThreadBlas() {
  const BlasThreadFns& b = blas_thread_fns();
  if (b.set && b.get) {
    saved_ = b.get();
    if (saved_ != 1) b.set(1);
  }
}

SingleThreadBlas::~SingleThreadBlas() {
  if (saved_ > 1) blas_thread_fns().set(saved_);
}

namespace {
std::atomic<bool>& channels_last_setting() {
  static std::atomic<bool> on{[] {
    const char* e = std::getenv("RDM_CHANNELS_LAST");
    return e && (std::strcmp(e, "1") == 0 || std::strcmp(e, "true") == 0 || std::strcmp(e, "on") == 0);
  }()};
  return on;
}
}  // namespace

void set_channels_last(bool on) { channels_last_setting().store(on); }
bool channels_last() { return channels_last_setting().load(); }

}  // namespace rdm
