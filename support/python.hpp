// support/python.hpp: the CPython that the lab and the benchmarks measure beside concur.
//
// By default /usr/bin/python3, Debian's own, which can import Debian's python3-numpy and
// python3-uvloop (a `python3` first on PATH may be a separate build that cannot). Every user of
// this offers a --python option to choose another. Scripts are looked up by name in the folders
// that hold them: $CONCUR_SCRIPTS_DIR, then the source tree this binary was built from, then the
// installed share/concur/python.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace concur::support {

inline constexpr const char* kDefaultPython = "/usr/bin/python3";

class Python {
 public:
  explicit Python(std::string interpreter = kDefaultPython);

  // Why this interpreter cannot be used here, or nullopt if it can.
  const std::optional<std::string>& unavailable() const { return unavailable_; }
  const std::string& interpreter() const { return interpreter_; }
  // "3.11.2", or "" when unavailable.
  const std::string& version() const { return version_; }
  // Whether `import module` works in this interpreter.
  bool has_module(const std::string& module) const;

  // Runs the named script (see above) with args; parses its standard output as JSON. Throws
  // std::runtime_error naming the script and its stderr if it fails or overruns.
  nlohmann::json run_json(const std::string& script, const std::vector<std::string>& args,
                          std::chrono::seconds timeout) const;

  // The full path of a script, or throws std::runtime_error saying where it looked.
  static std::string find_script(const std::string& name);

 private:
  std::string interpreter_;
  std::string version_;
  std::optional<std::string> unavailable_;
};

}  // namespace concur::support
