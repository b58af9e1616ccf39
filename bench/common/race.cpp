#include "race.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "format.hpp"
#include "machine.hpp"
#include "stats.hpp"

namespace concur::bench {

void Race::note_peer(const std::string& peer) {
  if (std::find(peers_.begin(), peers_.end(), peer) != peers_.end()) return;
  // concur first, then the peers in the order they were first seen.
  if (peer == "concur") {
    peers_.insert(peers_.begin(), peer);
  } else {
    peers_.push_back(peer);
  }
}

void Race::record(const std::string& scenario, const std::string& peer, const std::string& counter,
                  double value) {
  note_peer(peer);
  samples_[scenario][peer][counter].push_back(value);
}

void Race::add_external(const std::string& scenario, const std::string& peer,
                        const std::string& counter, std::vector<double> values) {
  for (double v : values) record(scenario, peer, counter, v);
}

void Race::add_skipped(const std::string& peer, const std::string& reason) {
  note_peer(peer);
  skipped_[peer] = reason;
}

void Race::add_note(const std::string& scenario, const std::string& peer, const std::string& note) {
  note_peer(peer);
  notes_[scenario][peer] = note;
}

std::optional<double> Race::median(const std::string& scenario, const std::string& peer,
                                   const std::string& counter) const {
  auto s = samples_.find(scenario);
  if (s == samples_.end()) return std::nullopt;
  auto p = s->second.find(peer);
  if (p == s->second.end()) return std::nullopt;
  auto c = p->second.find(counter);
  if (c == p->second.end() || c->second.empty()) return std::nullopt;
  return support::median_of(c->second);
}

// Collects every repetition's counters; prints nothing itself beyond the usual console lines.
class RaceReporter : public benchmark::ConsoleReporter {
 public:
  explicit RaceReporter(Race& race) : race_(race) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred) continue;
      const std::string name = run.run_name.function_name;  // "<scenario>/<peer>"
      const auto slash = name.find('/');
      if (slash == std::string::npos) continue;
      for (const auto& [counter, value] : run.counters) {
        race_.record(name.substr(0, slash), name.substr(slash + 1), counter, value.value);
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }

 private:
  Race& race_;
};

int Race::run(const RaceOptions& options) {
  std::vector<std::string> args = options.benchmark_args;
  args.emplace_back("--benchmark_enable_random_interleaving=true");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  int argc = static_cast<int>(argv.size());
  benchmark::Initialize(&argc, argv.data());
  RaceReporter reporter(*this);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  const std::string context = "machine: " + support::describe(support::machine_info());
  fmt::print("\n{}\n{}\n", title_, context);
  nlohmann::json out;
  out["title"] = title_;
  out["machine"] = context;
  for (const Scenario& sc : scenarios_) {
    fmt::print("\n{} [{}, {}; medians]\n", sc.title, sc.unit,
               sc.lower_is_better ? "lower is better" : "higher is better");
    const auto ours = median(sc.name, "concur", sc.counter);
    for (const std::string& peer : peers_) {
      std::string cell;
      std::string ratio;
      nlohmann::json row;
      if (auto m = median(sc.name, peer, sc.counter)) {
        cell = format_number(*m);
        row["median"] = *m;
        row["repetitions"] = samples_[sc.name][peer][sc.counter].size();
        for (const std::string& extra : sc.extra_counters) {
          if (auto e = median(sc.name, peer, extra)) {
            cell += fmt::format("  ({} {})", extra, format_number(*e));
            row[extra] = *e;
          }
        }
        if (ours && peer != "concur" && *m > 0 && *ours > 0) {
          const double r = sc.lower_is_better ? *m / *ours : *ours / *m;
          ratio = format_advantage(r);
          row["concur_advantage"] = r;
        }
      } else if (auto n = notes_[sc.name].find(peer); n != notes_[sc.name].end()) {
        cell = n->second;
        row["note"] = n->second;
      } else if (auto s = skipped_.find(peer); s != skipped_.end()) {
        cell = "skipped: " + s->second;
        row["skipped"] = s->second;
      } else {
        continue;
      }
      fmt::print("  {:<24} {:<44} {}\n", peer, cell, ratio);
      out["scenarios"][sc.name]["title"] = sc.title;
      out["scenarios"][sc.name]["unit"] = sc.unit;
      out["scenarios"][sc.name]["peers"][peer] = row;
    }
  }
  if (!options.json_path.empty()) {
    std::ofstream(options.json_path) << out.dump(2) << '\n';
    fmt::print("\nwrote {}\n", options.json_path);
  }
  return 0;
}

}  // namespace concur::bench
