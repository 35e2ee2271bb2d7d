#!/usr/bin/env bash
# moda-server's command line and lifecycle: --help and usage errors, a bad
# registry fails with a reason, MODA_REGISTRY names the registry unless
# --registry does, and a real start (from MODA_REGISTRY) on an ephemeral
# port that reports the port, answers over HTTP, reloads the registry on
# SIGHUP (and from --registry-poll), and exits 0 on SIGTERM; an admin token
# file that is missing or empty is a usage error.
set -u
source "$(dirname "$0")/server_port.sh"
server=$1
registry=$2
fails=0
pass=0
check() { # description, condition result (0 = ok)
  if [ "$2" -ne 0 ]; then echo "FAIL: $1"; fails=$((fails + 1)); else pass=$((pass + 1)); fi
}

out=$("$server" --help 2>&1); rc=$?
check "--help exits 0" $((rc != 0))
[[ "$out" == *"usage: moda-server"* && "$out" == *"--cache-bytes"* && "$out" == *"--drain-seconds"* ]]
check "--help lists the options" $?
"$server" --bogus >/dev/null 2>&1; rc=$?
check "unknown flag exits 2" $((rc != 2))
"$server" --port notaport >/dev/null 2>&1; rc=$?
check "bad port exits 2" $((rc != 2))
out=$("$server" --device tpu 2>&1); rc=$?
check "unknown device exits 2" $((rc != 2))
[[ "$out" == *"unknown --device 'tpu'"* ]]
check "unknown device says why" $?
out=$("$server" --registry /nonexistent-registry --port 0 2>&1); rc=$?
check "bad registry exits 1" $((rc != 1))
[[ "$out" == *"moda-server:"* ]]
check "bad registry says why" $?
out=$(MODA_REGISTRY=/nonexistent-env-registry "$server" --port 0 2>&1); rc=$?
[[ $rc -eq 1 && "$out" == *"/nonexistent-env-registry"* ]]
check "MODA_REGISTRY names the registry (rc $rc): $out" $?
out=$(MODA_REGISTRY="$registry" "$server" --registry /nonexistent-registry --port 0 2>&1); rc=$?
[[ $rc -eq 1 && "$out" == *"/nonexistent-registry"* ]]
check "--registry wins over MODA_REGISTRY (rc $rc)" $?

out=$("$server" --registry "$registry" --admin-token-file /nonexistent-token 2>&1); rc=$?
[[ $rc -eq 2 && "$out" == *"/nonexistent-token"* ]]
check "a missing admin token file exits 2 naming it (rc $rc)" $?
empty=$(mktemp)
out=$("$server" --registry "$registry" --admin-token-file "$empty" 2>&1); rc=$?
rm -f "$empty"
[[ $rc -eq 2 && "$out" == *"first line must hold the token"* ]]
check "an empty admin token file exits 2 (rc $rc)" $?

log=$(mktemp)
trap 'rm -f "$log"' EXIT
MODA_REGISTRY="$registry" "$server" --port 0 --threads 2 --workers 2 --registry-poll 1 2>"$log" &
pid=$!
port=$(server_port "$log" "$pid")
[ -n "$port" ] && [ "$port" -gt 0 ] && grep -q "listening on http://127.0.0.1:$port " "$log"
check "start-up line reports the bound port" $?
grep -Eq 'listening on .*\(device (cpu|cuda),' "$log"
check "start-up line names the device" $?
if [ -n "$port" ]; then
  body=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$port/v2/health/live")
  [[ "$body" == *'"live"'*true*' 200' ]]
  check "/v2/health/live answers 200: $body" $?
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics")
  check "/metrics answers 200" $((code != 200))
fi
kill -HUP "$pid"
for _ in $(seq 50); do grep -q 'registry reloaded: 0 added, 0 replaced, 0 removed, 1 unchanged' "$log" && break; sleep 0.1; done
grep -q 'registry reloaded: 0 added, 0 replaced, 0 removed, 1 unchanged' "$log"
check "SIGHUP reloads the registry and keeps serving" $?
if [ -n "$port" ]; then
  for _ in $(seq 30); do
    polls=$(curl -s "http://127.0.0.1:$port/metrics" | sed -n 's/^moda_registry_reload_count{model=""} //p')
    [ "${polls:-0}" -ge 2 ] && break
    sleep 0.2
  done
  [ "${polls:-0}" -ge 2 ]
  check "--registry-poll reloads, counted in /metrics (${polls:-none})" $?
fi
kill -TERM "$pid"
wait "$pid"; rc=$?
check "exits 0 on SIGTERM (got $rc)" $((rc != 0))
grep -q 'GET /v2/health/live 200 ' "$log"
check "request logged" $?
grep -q 'moda-server stopped' "$log"
check "shutdown logged" $?

echo "server cli: $pass passed, $fails failed"
[ "$fails" -eq 0 ] || { cat "$log"; exit 1; }
