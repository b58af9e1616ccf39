"""CPython side of concur-lab's fork-with-lock: fork while another thread holds a lock.

A threading.Lock is held (or not) by another thread when the child starts; the child takes it.
Three trials: os.fork() with the lock free (the control: the child also sums its parent's data),
os.fork() with it held, and a multiprocessing.Process started by CPython's default method with it
held. A child that has not finished after --stuck-after seconds is killed. Prints JSON.
"""
import argparse
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings

LOCK = threading.Lock()
DATA = list(range(1, 1 << 16))


def take_lock():
    with LOCK:
        pass


class Holder:
    def __enter__(self):
        self.held, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self.hold)
        self.thread.start()
        self.held.wait()

    def hold(self):
        with LOCK:
            self.held.set()
            self.release.wait()

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join()


def fork_trial(stuck_after):
    expected = sum(DATA)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:
        ok = sum(DATA) == expected
        take_lock()
        os._exit(0 if ok else 3)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return {"finished": True, "copy_intact": code == 0,
                    "seconds": time.perf_counter() - t0}
        if time.perf_counter() - t0 > stuck_after:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"finished": False, "copy_intact": False,
                    "seconds": time.perf_counter() - t0}
        time.sleep(0.005)


def default_trial(stuck_after):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        p = multiprocessing.Process(target=take_lock)
        p.start()
    # A fresh interpreter (spawn, forkserver) takes longer to start: allow for it.
    p.join(stuck_after + (0 if multiprocessing.get_start_method() == "fork" else 10))
    finished = p.exitcode == 0
    if p.is_alive():
        p.kill()
        p.join()
    return {"finished": finished, "seconds": time.perf_counter() - t0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stuck-after", type=float, default=2.0)
    args = ap.parse_args()
    out = {"version": sys.version.split()[0],
           "default_method": multiprocessing.get_start_method()}
    out["control"] = fork_trial(args.stuck_after)
    with Holder():
        out["held"] = fork_trial(args.stuck_after)
    with Holder():
        out["default"] = default_trial(args.stuck_after)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
