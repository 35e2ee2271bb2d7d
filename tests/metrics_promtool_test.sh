#!/usr/bin/env bash
# /metrics of a live moda-server through promtool's linter (Debian's
# prometheus package): after inference (batched, failed), compose, cache
# hits, repository calls and a registry reload, every histogram has its _bucket, _sum and
# _count series, and promtool flags nothing but the legacy Triton-style
# counters that docs/server.md lists (kept for compatibility), each for the
# reasons listed there.
# Usage: metrics_promtool_test.sh MODA_SERVER REPO_ROOT
# Exits 77 (skipped) without promtool or curl.
set -u
source "$(dirname "$0")/server_port.sh"
server=$1
root=$2
command -v promtool >/dev/null && command -v curl >/dev/null || {
  echo "SKIP: promtool (Debian's prometheus package) or curl missing"
  exit 77
}
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}

OMP_NUM_THREADS=1 "$server" --registry "$root/models" --port 0 --threads 2 --workers 2 --batch-max 4 \
  --batch-delay-us 1000 >"$work/server.log" 2>&1 &
pid=$!
port=$(server_port "$work/server.log" "$pid") || fail "moda-server did not start: $(cat "$work/server.log")"
base=http://127.0.0.1:$port
raw="$root/examples/ankle-boot.u8"
for id in fmnist-lenet5 'fmnist-lenet5~7-8-9~0.9' 'fmnist-lenet5~7-8-9~0.9' nope; do
  curl -s -o /dev/null -X POST --data-binary "@$raw" -H 'Content-Type: application/octet-stream' \
    "$base/v1/infer?id=$id&dtype=uint8&shape=1,1,28,28"
done
curl -s -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "@$root/examples/infer-ankle-boot.json" \
  "$base/v1/infer"
# 8 samples of zeros: over the light-request size, so through a worker and the batcher.
head -c $((8 * 32 * 32 * 4)) /dev/zero >"$work/zeros.f32"
curl -s -o /dev/null -X POST --data-binary "@$work/zeros.f32" -H 'Content-Type: application/octet-stream' \
  "$base/v1/infer?id=fmnist-lenet5~7-8-9~0.9&dtype=float32&shape=8,1,32,32"
curl -s -o /dev/null -X POST -d '{}' "$base/v2/repository/models/fmnist-lenet5~1-2~0.9/load"
curl -s -o /dev/null "$base/v2/models/stats"
curl -s -o /dev/null -X POST "$base/v1/registry/reload"
curl -s -o /dev/null "$base/no/such/route"
curl -sf "$base/metrics" >"$work/metrics.txt" || fail "GET /metrics"

# Histograms: each with buckets up to +Inf, a sum and a count.
for h in 'moda_http_request_duration_seconds{route="/v1/infer"' \
  'moda_inference_duration_seconds{model="fmnist-lenet5~7-8-9~0.9"' \
  'moda_batch_size{model="fmnist-lenet5~7-8-9~0.9"' \
  'moda_batch_queue_duration_seconds{model="fmnist-lenet5~7-8-9~0.9"'; do
  name=${h%%\{*}
  labels=${h#*\{}
  grep -qF "# TYPE $name histogram" "$work/metrics.txt" || fail "$name is not declared a histogram"
  grep -qF "${name}_bucket{$labels,le=\"+Inf\"}" "$work/metrics.txt" || fail "no +Inf bucket for $h"
  grep -qF "${name}_sum{$labels}" "$work/metrics.txt" || fail "no _sum for $h"
  grep -qF "${name}_count{$labels}" "$work/metrics.txt" || fail "no _count for $h"
done
grep -qF 'moda_http_request_duration_seconds_count{route="other"} 1' "$work/metrics.txt" ||
  fail "an unknown path is not counted under route \"other\""

# promtool: its findings, "<metric> <problem>", one a line.
promtool check metrics <"$work/metrics.txt" >"$work/lint.txt" 2>&1
rc=$?
legacy=(moda_inference_request_success moda_inference_request_failure moda_inference_count
  moda_inference_exec_count moda_inference_request_duration_us moda_inference_request_failure_duration_us
  moda_inference_queue_duration_us
  moda_inference_compute_infer_duration_us moda_compose_count moda_compose_duration_us
  moda_cache_hit_count moda_cache_miss_count moda_cache_eviction_count moda_registry_reload_count
  moda_registry_reload_failure_count)
known=0
while read -r name problem; do
  [ -n "$name" ] || continue
  ok=0
  for l in "${legacy[@]}"; do [ "$name" = "$l" ] && ok=1; done
  [ $ok = 1 ] || fail "promtool flags a metric that is not a legacy counter: $name $problem"
  case "$problem" in
  'counter metrics should have "_total" suffix' | 'metric names should not contain abbreviated units' | \
    'non-histogram and non-summary metrics should not have "_count" suffix') ;;
  *) fail "promtool flags $name for a reason docs/server.md does not give: $problem" ;;
  esac
  known=$((known + 1))
done <"$work/lint.txt"
# The legacy counters are flagged (so promtool did read the text) and
# nothing else is.
[ $rc -ne 0 ] && [ $known -gt 0 ] || fail "promtool found nothing to flag (rc $rc): $(cat "$work/lint.txt")"
grep -v -E '^(moda_http_request_duration_seconds|moda_inference_duration_seconds|moda_batch_size|moda_batch_queue_duration_seconds)' \
  "$work/metrics.txt" | grep -v '^#' | grep -v -E '^moda_(inference|compose|cache|registry)_' &&
  fail "series outside the known families"

kill -TERM "$pid"
wait "$pid" || fail "moda-server exited non-zero on SIGTERM"
pid=
echo "PASS: histograms present; promtool flags only the $known legacy findings"
