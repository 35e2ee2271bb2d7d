#!/usr/bin/env bash
# The CPU image (docker/Dockerfile), built and run as a user would, with
# the read-only root file system of docker/k8s/: it is ready within 10 s,
# runs as a non-root uid, answers compose, binary /v1/infer and v2 inference
# (the stock Triton client, from the host) as the local binary does, passes
# its own HEALTHCHECK, and drains and exits 0 on a stop.
#
#   tests/containers/image_test.sh [BUILD_DIR]     (default: build)
#
# Leaves the image tagged localhost/moda-server for compose_test.sh.
# Exit 0 when it passes, 77 when podman cannot run containers here.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../server_port.sh"
build=$(cd "${1:-$root/build}" && pwd)
image=localhost/moda-server

containers_setup; rc=$?
[ $rc -eq 0 ] || exit $rc

name=moda-image-test-$$
log=$(mktemp)
local_pid=
cleanup() {
  [ -n "$local_pid" ] && kill "$local_pid" 2>/dev/null
  podman rm -f "$name" >/dev/null 2>&1
  rm -f "$log"
}
trap cleanup EXIT

# --format docker keeps the HEALTHCHECK (OCI images have no such field).
start=$SECONDS
podman build --pull=never --format docker -q -t "$image" -f "$root/docker/Dockerfile" "$root" >/dev/null
check "docker/Dockerfile builds ($((SECONDS - start)) s)" $? || exit 1
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image $image: $((size / 1000000)) MB"

port=$(free_port)
t0=$EPOCHREALTIME
podman run -d --name "$name" --read-only -p "127.0.0.1:$port:8080" "$image" >/dev/null 2>"$log"
wait_http "http://127.0.0.1:$port/v2/health/ready" 10
check "ready within 10 s of podman run ($(since "$t0") s)" $?

pid=$(podman inspect --format '{{.State.Pid}}' "$name")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
[ -n "$uid" ] && [ "$uid" -ne 0 ]
check "moda-server runs as a non-root uid ($uid)" $?

podman healthcheck run "$name" >/dev/null 2>&1
check "the image's HEALTHCHECK passes" $?

# The local binary on the same registry is the reference.
"$build/moda-server" --registry "$root/models" --port 0 --quiet 2>"$log.local" &
local_pid=$!
local_port=$(server_port "$log.local" "$local_pid")
check "the local binary starts" $?
"$root/.venv/bin/python" "$(dirname "$0")/compare_servers.py" \
  "http://127.0.0.1:$port" "http://127.0.0.1:$local_port" "$root/examples"
check "the image answers as the local binary does" $?
kill "$local_pid"; wait "$local_pid" 2>/dev/null; local_pid=
rm -f "$log.local"

podman stop -t 40 "$name" >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
check "a stop exits 0 (got $code)" $((code != 0))
podman logs "$name" > "$log" 2>&1
grep -q 'shutting down: draining' "$log" && grep -q 'moda-server stopped' "$log"
check "the log shows the drain" $? || cat "$log"

report "image"
