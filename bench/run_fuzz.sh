#!/usr/bin/env bash
# Every libFuzzer target (tests/fuzz/) for a long run: RUNS executions each
# (10 M by default), or MAX_TIME seconds when that is set and comes first,
# from its committed seeds plus a scratch corpus that grows as it runs.
# Prints one line per target: executions, coverage (libFuzzer's cov: edges
# and ft: features), corpus size, seconds, and the outcome; a crash, leak,
# timeout or out-of-memory leaves its input in WORK/<target>/artifacts/ and
# the script exits 1 at the end.
#
# Usage: bench/run_fuzz.sh [BUILD_DIR]   (default: build-fuzz, configured with
#          CC=clang cmake -S . -B build-fuzz -DMODA_FUZZ=ON -DMODA_CUDA=OFF)
# Env:   RUNS (default 10000000), MAX_TIME (seconds per target; default none),
#        TARGETS (default every target, e.g. "id image"), JOBS (targets run
#        at once, default 1), WORK (default BUILD_DIR/fuzz-work; corpora kept
#        between runs), RSS_MB (default 2048).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="$(cd "${1:-$root/build-fuzz}" && pwd)"
runs="${RUNS:-10000000}"
max_time="${MAX_TIME:-0}"
jobs="${JOBS:-1}"
work="${WORK:-$build/fuzz-work}"
rss="${RSS_MB:-2048}"
targets="${TARGETS:-$(cd "$build/fuzz" && ls fuzz_* | sed 's/^fuzz_//' | tr '\n' ' ')}"

run_one() { # target -> one result line
  local t=$1 dir="$work/$1" start end
  mkdir -p "$dir/corpus" "$dir/artifacts"
  start=$(date +%s)
  local rc=0
  OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 "$build/fuzz/fuzz_$t" -runs="$runs" -max_total_time="$max_time" \
    -timeout=10 -rss_limit_mb="$rss" -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
    "$dir/corpus" "$root/tests/fuzz/$t" > "$dir/log" 2>&1 || rc=$?
  end=$(date +%s)
  local execs cov ft corpus outcome
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  # The last status line libFuzzer printed carries the final coverage.
  cov=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2)
  corpus=$(find "$dir/corpus" -type f | wc -l)
  if [ "$rc" = 0 ]; then
    outcome=ok
  else
    outcome="FAILED (rc $rc): $(grep -m1 -o 'ERROR: [A-Za-z]*: .*\|ERROR: libFuzzer: .*' "$dir/log" || echo see log)"
    outcome="$outcome; artifacts: $(ls "$dir/artifacts" | tr '\n' ' ')"
  fi
  printf '%-18s execs %10s  cov %6s  ft %6s  corpus %5s  %5ss  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "$corpus" "$((end - start))" "$outcome"
  [ "$rc" = 0 ]
}

echo "fuzzing from $build, RUNS=$runs MAX_TIME=$max_time JOBS=$jobs, work in $work"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
failed=0
pids=()
for t in $targets; do
  if [ "$jobs" -le 1 ]; then
    run_one "$t" || failed=1
  else
    run_one "$t" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$jobs" ]; then
      wait "${pids[0]}" || failed=1
      pids=("${pids[@]:1}")
    fi
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
exit "$failed"
