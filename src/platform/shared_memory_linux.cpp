// Shared memory on Linux: shm_open (files in /dev/shm) and memfd_create.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>

#include "platform/shared_memory.hpp"

namespace concur::platform {

int create_named_memory(const std::string& name) noexcept {
  return shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
}

int open_named_memory(const std::string& name) noexcept {
  return shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC, 0);
}

bool remove_named_memory(const std::string& name) noexcept {
  return shm_unlink(("/" + name).c_str()) == 0;
}

std::vector<std::string> named_memory_segments() {
  std::vector<std::string> names;
  if (DIR* dir = opendir("/dev/shm")) {
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    }
    closedir(dir);
  }
  return names;
}

int create_anonymous_memory(const char* label) noexcept {
  return memfd_create(label, MFD_CLOEXEC);
}

bool discard_shared_pages(void* addr, std::size_t bytes) noexcept {
  return madvise(addr, bytes, MADV_REMOVE) == 0;
}

}  // namespace concur::platform
