// Internal: shared memory the OS names, and shared memory with no name.
//
// Named segments are POSIX shared memory (Linux keeps them in /dev/shm); anonymous ones are
// memfd_create's, passed to other processes as descriptors. Both give a descriptor to size with
// ftruncate and map with mmap (POSIX, used directly). A port implements this file (macOS:
// shm_open, and shm_open + shm_unlink at once for the anonymous kind; Windows: file mappings).
// Names are given without the leading '/'. Failures return -1 / false with errno set.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace concur::platform {

// A new segment, readable and writable by this user only; fails with EEXIST if the name is taken.
int create_named_memory(const std::string& name) noexcept;
// An existing segment, read-write.
int open_named_memory(const std::string& name) noexcept;
// Removes the name; mappings and descriptors already open stay valid.
bool remove_named_memory(const std::string& name) noexcept;
// Every named segment on the machine this user can see.
std::vector<std::string> named_memory_segments();

// A segment with no name, close-on-exec; `label` shows in /proc/<pid>/fd for debugging.
int create_anonymous_memory(const char* label) noexcept;

// Gives the pages of [addr, addr + bytes) of a shared mapping back to the system: the memory is
// freed, and the range reads as zeros the next time it is touched, in every process mapping it.
// addr and bytes must be page-aligned. (Linux: madvise MADV_REMOVE; elsewhere a port may punch a
// hole in the file or do nothing.)
bool discard_shared_pages(void* addr, std::size_t bytes) noexcept;

}  // namespace concur::platform
