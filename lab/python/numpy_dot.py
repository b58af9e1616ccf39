"""CPython side of concur-lab's numpy-dot: numpy.dot from several threads, and one dot's cores.

--mode threads: the BLAS held to one thread of its own (its environment variables, set before
numpy is imported), then `threads` dots one after another on one thread vs one per thread at once,
repeated and interleaved. --mode one: the BLAS at its default; one dot's CPU time over its wall
time. Both print JSON, with which BLAS numpy loaded and its thread count (threadpoolctl, when it
is installed: Debian's python3-threadpoolctl).
"""
import argparse
import json
import os
import sys
import threading
import time


def blas_info(numpy):
    try:
        import threadpoolctl
    except ImportError:
        return "BLAS unknown (python3-threadpoolctl is not installed)"
    pools = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        return "no BLAS seen by threadpoolctl (numpy's own reference loops?)"
    return "; ".join("{} {} ({}), {} threads".format(p.get("internal_api"), p.get("version"),
                                                      os.path.basename(p.get("filepath", "")),
                                                      p.get("num_threads")) for p in pools)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mode", choices=["threads", "one"], required=True)
    args = ap.parse_args()
    if args.mode == "threads":
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS"):
            os.environ[var] = "1"
    import numpy

    rng = numpy.random.default_rng(42)
    a = rng.uniform(-1, 1, (args.size, args.size))
    b = rng.uniform(-1, 1, (args.size, args.size))
    expect = float(a[0, :] @ b[:, 0])

    def dot():
        c = numpy.dot(a, b)
        assert abs(c[0, 0] - expect) < 1e-9 * args.size, "wrong product"

    dot()  # warm: the BLAS starts its threads
    out = {"version": sys.version.split()[0], "numpy": numpy.__version__,
           "blas": blas_info(numpy), "size": args.size, "threads": args.threads}
    if args.mode == "threads":
        def one_thread():
            t0 = time.perf_counter()
            for _ in range(args.threads):
                dot()
            return time.perf_counter() - t0

        def many_threads():
            workers = [threading.Thread(target=dot) for _ in range(args.threads)]
            t0 = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return time.perf_counter() - t0

        out["one_thread_s"], out["many_threads_s"] = [], []
        for _ in range(args.repeat):
            out["one_thread_s"].append(one_thread())
            out["many_threads_s"].append(many_threads())
    else:
        out["one_multiply"] = []
        for _ in range(args.repeat):
            cpu0, t0 = time.process_time(), time.perf_counter()
            dot()
            out["one_multiply"].append({"wall_s": time.perf_counter() - t0,
                                        "cpu_s": time.process_time() - cpu0})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
