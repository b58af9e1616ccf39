// bench/common/format.hpp: how every benchmark table writes a figure, so that the same value reads
// the same in each of them (bench/common/race.cpp, bench/echo/echo_race.cpp).
#pragma once

#include <string>

namespace concur::bench {

// A count, rate or time in three significant-ish digits: "1.23M", "45.6k", "789", "12.3",
// "1.23"; "-" for NaN (not measured).
std::string format_number(double v);

// A size in bytes: "1.5 MiB", "2.0 KiB", "512 B"; "-" for NaN.
std::string format_bytes(double v);

// A ratio as a factor: "1.23x".
std::string format_times(double ratio);

// The peer-to-concur cell of a race table, where `advantage` is how many times better concur is
// (below 1: worse): "concur is 1.23x better", "concur is 2.00x worse".
std::string format_advantage(double advantage);

}  // namespace concur::bench
