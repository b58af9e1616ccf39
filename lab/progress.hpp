// lab/progress.hpp: what the running experiment is doing, shown on the terminal while it runs.
//
// main() opens each experiment with begin() and closes it with end(); the experiment says what
// it is doing with phase() ("CPython, 2 threads") and interleaved() (lab/evidence.hpp) adds the
// repetition ("repetition 2 of 5"). Each update shows the seconds since the experiment began
// beside its expected duration, so a learner sees it is alive and roughly how far it is.
//
// On a terminal the updates rewrite one status line in place (erased by end(), before the
// experiment's results print). In a log (stdout not a terminal: CI, `| tee`) each update is its
// own line, but at most one every few seconds, so a log shows progress without thousands of lines.
//
// No thread of its own: several experiments count or fork this process's threads, so progress
// is drawn only when the experiment calls in. Thread safety: any thread (a mutex guards it).
#pragma once

#include <string>

namespace concur::lab::progress {

void begin(const std::string& experiment, double expected_seconds);
// What the experiment does now; replaces the previous phase and clears the repetition.
void phase(const std::string& what);
// Repetition `index` (from 1) of `count` of the current phase.
void repetition(int index, int count);
// Erases the status line (on a terminal); nothing is shown until the next begin().
void end();

}  // namespace concur::lab::progress
