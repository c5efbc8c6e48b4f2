// Running the rdm binary from CLI tests: `'$RDM_BIN' [--threads N] <args>` through the shell,
// stdout and stderr captured through files in a scratch folder of this test process.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace rdm_cli_test {
namespace fs = std::filesystem;

struct RunResult {
  int code = -1;
  std::string out, err;
};

inline std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

inline void spit(const fs::path& p, const std::string& bytes) {
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

inline std::string quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

// A fresh folder <tmp>/<prefix>_<pid> (emptied the first time this process asks for it).
inline fs::path process_scratch(const std::string& prefix) {
  const fs::path d = fs::temp_directory_path() / (prefix + "_" + std::to_string(::getpid()));
  static std::set<fs::path> made;
  if (made.insert(d).second) fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Runs `rdm [--threads N] <args>` (args already shell-quoted where needed; threads < 0: no
// --threads flag), capturing stdout and stderr in files under `dir`.
inline RunResult run_rdm_in(const fs::path& dir, const std::string& args, int threads = 1) {
  static int counter = 0;
  fs::create_directories(dir);
  const fs::path out = dir / ("out" + std::to_string(counter) + ".txt");
  const fs::path err = dir / ("err" + std::to_string(counter++) + ".txt");
  const std::string flag = threads >= 0 ? " --threads " + std::to_string(threads) + " " : " ";
  const std::string cmd = quote(env("RDM_BIN")) + flag + args + " >" + quote(out.string()) + " 2>" + quote(err.string());
  RunResult r;
  const int st = std::system(cmd.c_str());
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace rdm_cli_test
