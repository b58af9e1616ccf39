// bench/common/race.hpp: runs Google Benchmark cases for concur and its peers, then prints one
// table of medians with the ratio of each peer to concur, and optionally writes it as JSON.
//
// A case is named "<scenario>/<peer>" and reports its headline figure as a user counter (the
// scenario says which, and whether lower is better). Repetitions are interleaved at random across
// cases (Google Benchmark's random interleaving), so a noisy minute on a shared machine does not
// land on one peer only. Figures measured by other programs (CPython) are added with
// add_external().
#pragma once

#include <benchmark/benchmark.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "options.hpp"

namespace concur::bench {

struct Scenario {
  std::string name;     // "a_submit_result"
  std::string title;    // what a reader sees in the table
  std::string counter;  // the headline user counter
  std::string unit;     // "tasks/s", "us", "ms"
  bool lower_is_better;
  std::vector<std::string> extra_counters;  // shown beside the headline (e.g. "p99_us")
};

class Race {
 public:
  explicit Race(std::string title) : title_(std::move(title)) {}

  void add_scenario(Scenario scenario) { scenarios_.push_back(std::move(scenario)); }
  // A figure measured outside Google Benchmark (one value per repetition).
  void add_external(const std::string& scenario, const std::string& peer,
                    const std::string& counter, std::vector<double> values);
  // A peer that could not be measured here, with the reason (shown in the table).
  void add_skipped(const std::string& peer, const std::string& reason);
  // A fixed cell, e.g. "deadlocks" for a peer that cannot run a scenario.
  void add_note(const std::string& scenario, const std::string& peer, const std::string& note);

  // Runs the registered benchmarks (with options.benchmark_args, their repetitions interleaved at
  // random), prints the machine context and the table; writes JSON to options.json_path if not
  // empty. Returns the process exit code.
  int run(const RaceOptions& options);

  // The median of the headline counter, if measured.
  std::optional<double> median(const std::string& scenario, const std::string& peer,
                               const std::string& counter) const;

 private:
  friend class RaceReporter;
  std::string title_;
  std::vector<Scenario> scenarios_;
  std::vector<std::string> peers_;  // in first-seen order; "concur" first
  // samples_[scenario][peer][counter] = values, one per repetition
  std::map<std::string, std::map<std::string, std::map<std::string, std::vector<double>>>> samples_;
  std::map<std::string, std::string> skipped_;
  std::map<std::string, std::map<std::string, std::string>> notes_;

  void record(const std::string& scenario, const std::string& peer, const std::string& counter,
              double value);
  void note_peer(const std::string& peer);
};

}  // namespace concur::bench
