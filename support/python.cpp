#include "python.hpp"

#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

#include "subprocess.hpp"

namespace concur::support {

Python::Python(std::string interpreter) : interpreter_(std::move(interpreter)) {
  if (interpreter_.find('/') != std::string::npos && access(interpreter_.c_str(), X_OK) != 0) {
    unavailable_ = interpreter_ +
                   " is not an executable file here (install python3, or pass "
                   "--python PATH)";
    return;
  }
  try {
    const CommandResult r =
        run_command({interpreter_, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"},
                    std::chrono::seconds(30));
    if (r.exit_code != 0) {
      unavailable_ = interpreter_ + " failed to start: " + r.err;
      return;
    }
    version_ = r.out.substr(0, r.out.find('\n'));
  } catch (const std::exception& e) {
    unavailable_ = e.what();
  }
}

bool Python::has_module(const std::string& module) const {
  if (unavailable_) return false;
  const CommandResult r =
      run_command({interpreter_, "-c", "import " + module}, std::chrono::seconds(60));
  return r.exit_code == 0;
}

std::string Python::find_script(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("CONCUR_SCRIPTS_DIR")) dirs.emplace_back(env);
#ifdef CONCUR_SOURCE_SCRIPTS_DIRS
  // A ':'-separated list compiled in: the source folders of this build.
  std::string compiled = CONCUR_SOURCE_SCRIPTS_DIRS;
  for (std::size_t start = 0; start <= compiled.size();) {
    const std::size_t end = compiled.find(':', start);
    dirs.push_back(compiled.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
#endif
#ifdef CONCUR_INSTALLED_SCRIPTS_DIR
  dirs.emplace_back(CONCUR_INSTALLED_SCRIPTS_DIR);
#endif
  std::string looked;
  for (const std::string& dir : dirs) {
    const std::string path = dir + "/" + name;
    if (access(path.c_str(), R_OK) == 0) return path;
    looked += " " + dir;
  }
  throw std::runtime_error("cannot find the script " + name + " (looked in:" + looked +
                           "); set CONCUR_SCRIPTS_DIR to the folder that has it");
}

nlohmann::json Python::run_json(const std::string& script, const std::vector<std::string>& args,
                                std::chrono::seconds timeout) const {
  if (unavailable_) throw std::runtime_error(*unavailable_);
  std::vector<std::string> argv{interpreter_, find_script(script)};
  argv.insert(argv.end(), args.begin(), args.end());
  const CommandResult r = run_command(argv, timeout);
  if (r.timed_out) {
    throw std::runtime_error(script + " ran past its " + std::to_string(timeout.count()) +
                             " s limit and was stopped");
  }
  if (r.exit_code != 0) {
    throw std::runtime_error(script + " failed (exit " + std::to_string(r.exit_code) +
                             "): " + r.err);
  }
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    throw std::runtime_error(script + " printed something that is not JSON (" + e.what() +
                             "): " + r.out.substr(0, 200));
  }
}

}  // namespace concur::support
