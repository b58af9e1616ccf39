#!/usr/bin/env bash
# tests/fuzz/run.sh TARGET SEEDS_DIR WORK_DIR: runs one libFuzzer target for a bounded time.
#   CONCUR_FUZZ_SECONDS  how long (default 30; `scripts/test-all --fuzz-seconds N` sets it)
# New inputs go to WORK_DIR (in the build tree), never into the seed corpus in the repo; a crash
# leaves its input in WORK_DIR/crash-* and fails the test: add it to the seeds as a regression.
# The malloc limit makes any single allocation above 256 MiB a failure: nothing a fuzz input of
# at most 64 KiB says may make the decoders allocate that much.
set -euo pipefail
target=$1 seeds=$2 work=$3
mkdir -p "$work/corpus"
cd "$work"
exec "$target" -max_total_time="${CONCUR_FUZZ_SECONDS:-30}" -max_len=65536 -timeout=10 \
  -rss_limit_mb=2048 -malloc_limit_mb=256 -close_fd_mask=2 -print_final_stats=1 \
  "$work/corpus" "$seeds"
