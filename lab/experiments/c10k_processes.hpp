// lab/experiments/c10k_processes.hpp: the helper processes of the c10k experiment (c10k.cpp),
// each a run of concur-lab itself (`concur-lab __c10k MODE --flag value ...`):
//   server-asyncio   an echo server on concur::asyncio, one thread (c10k_server.cpp)
//   server-threads   an echo server with one OS thread per connection (c10k_server.cpp)
//   client           opens the connections and drives the paced and burst phases
//                    (c10k_client.cpp)
// They talk to the experiment by lines on stdout: "PORT n" once listening; the client's
// "READY ..." once connected and "RESULT {json}" at the end; "ERROR ..." on failure.
#pragma once

#include <concur/asyncio.hpp>
#include <cstddef>
#include <map>
#include <string>

namespace concur::lab::c10k {

inline constexpr std::size_t kMessageBytes = 64;  // each echo, checked byte for byte
inline constexpr int kConnectParallel = 256;      // connects in flight at once
inline constexpr int kBacklog = 1024;             // the servers' listen backlog
inline constexpr const char* kHost = "127.0.0.1";

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit now in force.
long raise_fd_limit();
// One line on stdout, flushed (the experiment reads it as it comes).
void say(const std::string& line);

asyncio::Task<void> serve_with_loop(int backlog);
int serve_with_threads(int backlog);
// flags: --port --connections --paced-rounds --period --burst-rounds --parallel --deadline
int run_client(const std::map<std::string, std::string>& flags);

}  // namespace concur::lab::c10k
