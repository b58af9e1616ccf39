// Internal to concur: what a process pool's manager and its workers say to each other besides
// tasks and results (task_message.hpp): control frames (kControl) with these payloads.
//   worker -> manager  kReady            the worker's initializer ran; tasks may come
//                      kInitFailed "\n" TYPE "\n" MESSAGE   the initializer threw; the worker exits
//   manager -> worker  kExit             finish what was sent, then exit
//   either way         kRing + 1 descriptor   the shared-memory ring (shared_ring.hpp) the sender
//                      writes large values into from now on: the manager its tasks' arguments,
//                      the worker its results. Sent once, before the first message that uses it.
#pragma once

#include <chrono>
#include <string_view>

namespace concur::multiprocessing::detail {

inline constexpr std::string_view kReady = "ready";
inline constexpr std::string_view kExit = "exit";
inline constexpr std::string_view kInitFailed = "init-failed";
inline constexpr std::string_view kRing = "ring";

// How long each side polls without sleeping for the other's next message after its own last one,
// where the machine lets this process use two or more CPUs. A task's answer, and the next task
// after an answer, are usually tens of microseconds away; a thread that slept meanwhile must be
// woken, and on a VM waking a halted vCPU costs several microseconds per hop (with two idle spin
// loops keeping both vCPUs awake, the round trip went from 38.5 to 31.2 us here). On one CPU the
// other side cannot run while this one polls, so there it sleeps at once.
inline constexpr auto kAnswerSpin = std::chrono::microseconds(50);

}  // namespace concur::multiprocessing::detail
