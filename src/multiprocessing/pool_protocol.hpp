// Internal to concur: what a process pool's manager and its workers say to each other besides
// tasks and results (task_message.hpp): control frames (kControl) with these payloads.
//   worker -> manager  kReady            the worker's initializer ran; tasks may come
//                      kInitFailed "\n" TYPE "\n" MESSAGE   the initializer threw; the worker exits
//   manager -> worker  kExit             finish what was sent, then exit
#pragma once

#include <string_view>

namespace concur::multiprocessing::detail {

inline constexpr std::string_view kReady = "ready";
inline constexpr std::string_view kExit = "exit";
inline constexpr std::string_view kInitFailed = "init-failed";

}  // namespace concur::multiprocessing::detail
