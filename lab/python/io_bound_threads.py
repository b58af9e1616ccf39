"""CPython side of concur-lab's io-bound-threads: the tutorial's scraper, timed.

Prints JSON: wall times of the sequential and the threaded run, each fetch's [start, end] in
seconds from its run's start, and whether the results came back right and in order.
"""
import argparse
import concurrent.futures
import json
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sleep", type=float, required=True)
    ap.add_argument("--count", type=int, default=10)
    args = ap.parse_args()

    spans = {}
    lock = threading.Lock()

    def scrape(url_id, origin, key):
        start = time.perf_counter() - origin
        time.sleep(args.sleep)  # stands in for waiting on the network
        end = time.perf_counter() - origin
        with lock:
            spans.setdefault(key, []).append([url_id, start, end])
        return f"Data {url_id} Downloaded"

    urls = range(args.count)
    expected = [f"Data {i} Downloaded" for i in urls]

    t0 = time.perf_counter()
    sequential = [scrape(i, t0, "sequential") for i in urls]
    sequential_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.count) as executor:
        threaded = list(executor.map(lambda i: scrape(i, t0, "threaded"), urls))
    threaded_s = time.perf_counter() - t0

    print(json.dumps({
        "sequential_s": sequential_s,
        "threaded_s": threaded_s,
        "results_ok": sequential == expected and threaded == expected,
        "spans": {k: sorted(v) for k, v in spans.items()},
    }))


if __name__ == "__main__":
    main()
