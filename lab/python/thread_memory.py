"""CPython side of concur-lab's thread-memory: memory added per parked thread or asyncio task.

--what threads: COUNT threading.Thread waiting on one threading.Event; --what tasks: COUNT
asyncio tasks awaiting one asyncio.Event. Prints JSON: the growth of VmRSS and VmSize (KiB, from
/proc/self/status) between before the first was started and when all of them were parked.
"""
import argparse
import asyncio
import json
import sys
import threading
import time


def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmSize"):
                out[key] = int(value.split()[0])
    return out


def growth(before, after):
    return {"rss_kib": after["VmRSS"] - before["VmRSS"],
            "vsize_kib": after["VmSize"] - before["VmSize"]}


def threads(count):
    go = threading.Event()
    parked = [0]
    lock = threading.Lock()

    def body():
        with lock:
            parked[0] += 1
        go.wait()

    workers = [threading.Thread(target=body) for _ in range(count)]
    before = status()
    for w in workers:
        w.start()
    while parked[0] < count:
        time.sleep(0.001)
    after = status()
    go.set()
    for w in workers:
        w.join()
    return growth(before, after)


async def tasks_main(count):
    event = asyncio.Event()
    done = [0]

    async def body():
        await event.wait()
        done[0] += 1

    before = status()
    tasks = [asyncio.create_task(body()) for _ in range(count)]
    await asyncio.sleep(0)  # every task runs up to its wait
    after = status()
    event.set()
    await asyncio.gather(*tasks)
    assert done[0] == count, "not every task finished"
    return growth(before, after)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--what", choices=["threads", "tasks"], required=True)
    ap.add_argument("--count", type=int, required=True)
    args = ap.parse_args()
    result = threads(args.count) if args.what == "threads" else asyncio.run(tasks_main(args.count))
    result.update({"count": args.count, "version": sys.version.split()[0]})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
