"""Reads mpi_pool_bench's and mpi4py_futures_bench.py's lines (several rounds of each); prints
each figure's median over the rounds and issue 20's ratios of the medians."""
import statistics
import sys

runs = {}
for line in sys.stdin:
    if not line.strip():
        continue
    name, *pairs = line.split()
    for k, v in (p.split("=") for p in pairs):
        runs.setdefault(name, {}).setdefault(k, []).append(float(v))
rows = {n: {k: statistics.median(v) for k, v in figs.items()} for n, figs in runs.items()}
for name, figs in rows.items():
    rounds = len(next(iter(runs[name].values())))
    print(f"median of {rounds}: {name} " + " ".join(f"{k}={v:g}" for k, v in figs.items()))
m, p, q = rows["concur_mpi"], rows["concur_process"], rows["mpi4py_futures"]
tiny = "tiny_tasks_per_s"
print(f"tiny tasks: {m[tiny] / q[tiny]:.1f}x mpi4py.futures (goal >= 20x), "
      f"{m[tiny] / p[tiny]:.2f}x ProcessPoolExecutor (goal >= 0.5x)")
rt = "round_trip_p50_us"
print(f"round trip p50: {m[rt] / q[rt]:.2f} of mpi4py.futures' (goal <= 0.2)")
big = "big_arg_mib_per_s"
line = f"64 MiB arguments: {m[big] / q[big]:.1f}x mpi4py.futures' MiB/s"
if "bare_mpi" in rows:
    bare = rows["bare_mpi"]["send_mib_per_s"]
    line += f", {m[big] / bare:.2f} of bare MPI_Isend/MPI_Recv's {bare:.0f} MiB/s (goal >= 0.8)"
print(line)
buf = "big_buffer_mib_per_s"
if buf in m:
    line = f"64 MiB ByteBuffer (out of band): {m[buf] / q[big]:.1f}x mpi4py.futures' MiB/s"
    if "bare_mpi" in rows:
        line += f", {m[buf] / bare:.2f} of bare MPI's (goal >= 0.8)"
    print(line)
