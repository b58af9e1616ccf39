// concur/asyncio.hpp: everything of concur::asyncio (Python's asyncio, on libuv).
#pragma once

#include "concur/asyncio/barrier.hpp"
#include "concur/asyncio/call_graph.hpp"
#include "concur/asyncio/datagram.hpp"
#include "concur/asyncio/gather_limited.hpp"
#include "concur/asyncio/loop.hpp"
#include "concur/asyncio/queues.hpp"
#include "concur/asyncio/streams.hpp"
#include "concur/asyncio/subprocess.hpp"
#include "concur/asyncio/sync.hpp"
#include "concur/asyncio/task.hpp"
#include "concur/asyncio/task_group_limited.hpp"
#include "concur/asyncio/tasks.hpp"
#include "concur/asyncio/threads.hpp"
