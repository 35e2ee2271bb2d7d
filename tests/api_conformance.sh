#!/usr/bin/env bash
# API conformance of a live moda-server on the bundled registry:
#   1. openapi-spec-validator validates openapi.yaml;
#   2. schemathesis sends generated requests (bounded) with every check:
#      no 5xx, every status, Content-Type and body as openapi.yaml declares,
#      schema-valid data accepted and invalid data refused, and the links
#      followed statefully (compose -> infer -> delete);
#   3. the stock Triton client (tritonclient.http) runs v2 inference in JSON
#      and binary mode and agrees with /v1/infer (api_conformance/triton_check.py),
#      and hostile bytes get 4xx errors of the right shape (edge_check.py);
#   4. SIGTERM stops the server with exit status 0.
# Usage: api_conformance.sh MODA_SERVER REPO_ROOT
# Exits 77 (skipped) when REPO_ROOT/.venv (scripts/install-deps.sh) is missing.
set -euo pipefail

server_bin=$1
root=$(cd "$2" && pwd)
venv=$root/.venv
if [ ! -x "$venv/bin/python" ]; then
  echo "SKIP: $venv missing (scripts/install-deps.sh creates it)"
  exit 77
fi
py=$venv/bin/python

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- server log (tail) ---"
  tail -n 40 "$work/server.log" || true
  exit 1
}

# 1. The spec itself.
"$venv/bin/openapi-spec-validator" "$root/openapi.yaml" || fail "openapi.yaml is not a valid OpenAPI document"

# Start the server on an ephemeral loopback port; it logs the bound port.
# The log exists before the server's shell opens it: a first read that
# raced that open would end the script (set -e, pipefail).
: >"$work/server.log"
# A copy of the bundled registry: replacement jobs write patched models into
# it. One job at a time and none waiting, so generated requests mostly meet
# a busy queue (429) instead of running for seconds each.
cp -r "$root/models" "$work/models"
OMP_NUM_THREADS=1 "$server_bin" --registry "$work/models" --host 127.0.0.1 --port 0 \
  --threads 2 --workers 2 --drain-seconds 10 --jobs-max 1 --jobs-queue 0 >"$work/server.log" 2>&1 &
server_pid=$!
port=
for _ in $(seq 300); do
  port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$work/server.log" | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || fail "moda-server exited during start-up"
  sleep 0.1
done
[ -n "$port" ] || fail "no 'listening on' line in the server log"
base=http://127.0.0.1:$port

"$py" - "$base" <<'EOF' || fail "/v2/health/ready never answered 200"
import sys, time, urllib.request
for _ in range(300):
    try:
        with urllib.request.urlopen(sys.argv[1] + "/v2/health/ready", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
EOF
echo "moda-server ready at $base"

# 2. Generated requests against the spec, every check, and the stateful
#    phase that follows the spec's links (compose -> infer -> delete).
#    Bounded: at most 50 generated cases per operation plus the coverage
#    phase's boundary cases; fixed seed. schemathesis.toml lists the
#    refusals no schema can state (a model's classes and input size).
#    use_after_free is left out: DELETE /v1/jobs/{job} cancels a job, which
#    stays readable (state "cancelled") by design.
(cd "$work" && "$venv/bin/schemathesis" --config-file "$root/tests/api_conformance/schemathesis.toml" \
  run "$root/openapi.yaml" --url "$base" --checks all --exclude-checks use_after_free \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples 50 --seed 1 --workers 1 \
  --generation-database none --request-timeout 30 --no-color) || fail "schemathesis found non-conforming responses"

# 3. The stock Triton client, and agreement with /v1/infer.
"$py" "$root/tests/api_conformance/triton_check.py" "127.0.0.1:$port" "$root" || fail "triton_check.py"

# Invalid UTF-8 and long multi-byte names in paths, queries, headers, bodies.
"$py" "$root/tests/api_conformance/edge_check.py" "127.0.0.1:$port" || fail "edge_check.py"

# 4. Graceful shutdown: SIGTERM, exit 0.
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=
[ "$status" -eq 0 ] || fail "moda-server exited $status after SIGTERM"
echo "api_conformance: all checks passed"
