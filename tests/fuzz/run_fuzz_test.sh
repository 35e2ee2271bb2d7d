#!/usr/bin/env bash
# One fuzz target for a few seconds: its seeds are read, new inputs written
# to a scratch corpus, and any crash, leak, timeout or memory blow-up fails.
#   run_fuzz_test.sh FUZZER SEED_DIR WORK_DIR SECONDS
set -euo pipefail
fuzzer=$1 seeds=$2 work=$3 seconds=$4
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
# Every seed alone first: a regression seed that crashes fails here at once.
"$fuzzer" -runs=0 "$seeds"
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" "$seeds"
