// Internal to concur: what a process pool's manager and its workers say to each other besides
// tasks and results (task_message.hpp): control frames (kControl) with these payloads.
//   worker -> manager  kReady            the worker's initializer ran; tasks may come
//                      kInitFailed "\n" TYPE "\n" MESSAGE   the initializer threw; the worker exits
//   manager -> worker  kExit             finish what was sent, then exit
//   either way         kRing + 1 descriptor   the shared-memory ring (shared_ring.hpp) the sender
//                      writes large values into from now on: the manager its tasks' arguments,
//                      the worker its results. Sent once, before the first message that uses it.
#pragma once

#include <string_view>

namespace concur::multiprocessing::detail {

inline constexpr std::string_view kReady = "ready";
inline constexpr std::string_view kExit = "exit";
inline constexpr std::string_view kInitFailed = "init-failed";
inline constexpr std::string_view kRing = "ring";

}  // namespace concur::multiprocessing::detail
