"""CPython side of concur-lab's gil-convoy: an I/O-bound thread beside a CPU-bound one.

The I/O thread does short blocking calls in a loop: it writes one byte to a `cat` process and
reads it back (the GIL is released around each os.write/os.read). The CPU thread counts. Prints
JSON with round trips per second for the I/O thread alone and beside the CPU thread at each
switch interval, and the CPU thread's loop rate alone and beside the I/O thread.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time


def io_loop(seconds, fd_out, fd_in, stop_at=None):
    trips = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        os.write(fd_out, b"x")
        os.read(fd_in, 1)
        trips += 1
    return trips / seconds


def cpu_loop(stop, out):
    n = 0
    t0 = time.perf_counter()
    while not stop.is_set():
        for _ in range(1000):
            n += 1
    out.append(n / (time.perf_counter() - t0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--intervals-ms", default="1,5,20")
    args = ap.parse_args()
    echo = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    fd_out, fd_in = echo.stdin.fileno(), echo.stdout.fileno()
    try:
        io_alone = io_loop(args.seconds, fd_out, fd_in)
        stop = threading.Event()
        rate = []
        t = threading.Thread(target=cpu_loop, args=(stop, rate))
        t.start()
        time.sleep(args.seconds)
        stop.set()
        t.join()
        cpu_alone = rate[0]
        rows = []
        for ms in [float(x) for x in args.intervals_ms.split(",")]:
            sys.setswitchinterval(ms / 1000)
            stop = threading.Event()
            rate = []
            t = threading.Thread(target=cpu_loop, args=(stop, rate))
            t.start()
            io_rate = io_loop(args.seconds, fd_out, fd_in)
            stop.set()
            t.join()
            rows.append({"interval_ms": ms, "io_per_s": io_rate, "cpu_per_s": rate[0]})
        sys.setswitchinterval(0.005)
    finally:
        echo.stdin.close()
        echo.wait()
    print(json.dumps({"io_alone_per_s": io_alone, "cpu_alone_per_s": cpu_alone, "rows": rows,
                      "version": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
