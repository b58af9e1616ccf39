"""CPython side of concur-lab's asyncio-io-bound: the tutorial's scraper written with asyncio.

Each "fetch" opens a TCP connection to the slow server on 127.0.0.1:PORT that concur-lab runs
(it answers "GET <id>\\n" with "Data <id> Downloaded\\n" after a fixed latency), sends the request
and reads the answer. Variants, timed one after another:
  sequential   one asyncio loop, `await fetch(i)` for each id in turn
  asyncio      asyncio.gather() of all the fetches on asyncio's own loop
  uvloop       the same on uvloop's loop (skipped, with the reason, when it cannot be imported)
  threads      concurrent.futures.ThreadPoolExecutor(count) with blocking sockets

Prints JSON: {"version", "runs": {variant: {"wall_s", "spans": [[id, start, end]...],
"results_ok"}}, "uvloop_skipped": reason or null}.
"""
import argparse
import asyncio
import concurrent.futures
import json
import socket
import sys
import time

HOST = "127.0.0.1"


async def fetch(port, url_id, origin, spans):
    start = time.perf_counter() - origin
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(f"GET {url_id}\n".encode())
    await writer.drain()
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    spans.append([url_id, start, time.perf_counter() - origin])
    return line.decode().rstrip("\n")


async def sequential(port, count, spans):
    origin = time.perf_counter()
    return [await fetch(port, i, origin, spans) for i in range(count)]


async def together(port, count, spans):
    origin = time.perf_counter()
    return await asyncio.gather(*(fetch(port, i, origin, spans) for i in range(count)))


def blocking_fetch(port, url_id, origin, spans, timeout):
    start = time.perf_counter() - origin
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(f"GET {url_id}\n".encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    spans.append([url_id, start, time.perf_counter() - origin])
    return data.decode().rstrip("\n")


def threaded(port, count, spans, timeout):
    origin = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as executor:
        return list(executor.map(lambda i: blocking_fetch(port, i, origin, spans, timeout),
                                 range(count)))


def timed(run):
    spans = []
    t0 = time.perf_counter()
    results = run(spans)
    return time.perf_counter() - t0, results, spans


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--latency", type=float, required=True, help="the server's, in seconds")
    args = ap.parse_args()
    expected = [f"Data {i} Downloaded" for i in range(args.count)]
    timeout = 10 + 2 * args.latency * args.count

    def on_loop(factory, coro_fn):
        def run(spans):
            loop = factory()
            try:
                return loop.run_until_complete(
                    asyncio.wait_for(coro_fn(args.port, args.count, spans), timeout))
            finally:
                loop.close()
        return run

    variants = {
        "sequential": on_loop(asyncio.new_event_loop, sequential),
        "asyncio": on_loop(asyncio.new_event_loop, together),
    }
    uvloop_skipped = None
    try:
        import uvloop
        variants["uvloop"] = on_loop(uvloop.new_event_loop, together)
    except ImportError as e:
        uvloop_skipped = f"uvloop is not importable in {sys.executable}: {e}"
    variants["threads"] = lambda spans: threaded(args.port, args.count, spans, timeout)

    runs = {}
    for name, run in variants.items():
        wall, results, spans = timed(run)
        runs[name] = {"wall_s": wall, "spans": sorted(spans), "results_ok": results == expected}
    print(json.dumps({"version": sys.version.split()[0], "runs": runs,
                      "uvloop_skipped": uvloop_skipped}))


if __name__ == "__main__":
    main()
