"""Reads mpi_pool_bench's and mpi4py_futures_bench.py's lines; prints issue 20's ratios."""
import sys

rows = {}
for line in sys.stdin:
    name, *pairs = line.split()
    rows[name] = {k: float(v) for k, v in (p.split("=") for p in pairs)}
m, p, q = rows["concur_mpi"], rows["concur_process"], rows["mpi4py_futures"]
tiny = "tiny_tasks_per_s"
print(f"tiny tasks: {m[tiny] / q[tiny]:.1f}x mpi4py.futures (goal >= 20x), "
      f"{m[tiny] / p[tiny]:.2f}x ProcessPoolExecutor (goal >= 0.5x)")
rt = "round_trip_p50_us"
print(f"round trip p50: {m[rt] / q[rt]:.2f} of mpi4py.futures' (goal <= 0.2)")
big = "big_arg_mib_per_s"
print(f"64 MiB arguments: {m[big] / q[big]:.1f}x mpi4py.futures' MiB/s")
