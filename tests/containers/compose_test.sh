#!/usr/bin/env bash
# docker/compose.yaml under podman-compose: two moda-server replicas read
# one registry over HTTP from a static file server, behind nginx. Both
# replicas answer through the balancer (its X-Moda-Upstream header and each
# replica's request log say which); a model written into the registry
# reaches both after a restart; with one replica stopped, the next 200
# requests through the balancer all succeed.
#
#   tests/containers/compose_test.sh [BUILD_DIR]     (default: build)
#
# Runs after image_test.sh, which builds localhost/moda-server.
# Exit 0 when it passes, 77 when podman cannot run containers here.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
build=$(cd "${1:-$root/build}" && pwd)
compose=$root/.venv/bin/podman-compose
[ -x "$compose" ] || { echo "compose: no podman-compose in .venv (scripts/install-deps.sh --test)"; exit 77; }

containers_setup; rc=$?
[ $rc -eq 0 ] || exit $rc

project=moda-test-$$
work=$(mktemp -d)
port=$(free_port)
export MODA_REGISTRY_DIR=$work/registry MODA_PORT=$port
pc() { "$compose" --project-name "$project" -f "$root/docker/compose.yaml" "$@"; }
cleanup() {
  pc down -t 5 >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
cp -r "$root/models" "$MODA_REGISTRY_DIR"
url=http://127.0.0.1:$port

podman image exists localhost/moda-server || { echo "compose: build localhost/moda-server first (image_test.sh)"; exit 1; }
podman build --pull=never --format docker -q -t localhost/moda-nginx "$root/docker/nginx" >/dev/null
check "docker/nginx/Dockerfile builds" $? || exit 1
start=$SECONDS
timeout 300 "$compose" --project-name "$project" -f "$root/docker/compose.yaml" up -d > "$work/up.log" 2>&1
check "podman-compose up ($((SECONDS - start)) s)" $? || { cat "$work/up.log"; exit 1; }
wait_http "$url/v2/health/ready" 60
check "the balancer answers ready" $?

# upstreams N PATH: the replica addresses that answered N GETs of PATH, one
# per line, sorted and counted; every answer must be a 200.
upstreams() {
  local i
  for i in $(seq 1 "$1"); do
    curl -s -o /dev/null -D - "$url$2" | tr -d '\r' |
      awk 'NR == 1 { if ($2 != 200) print "status " $2 } tolower($1) == "x-moda-upstream:" { print $2 }'
  done | sort | uniq -c
}
seen=$(upstreams 20 /v1/models)
echo "$seen"
[ "$(grep -c . <<<"$seen")" -eq 2 ] && ! grep -q status <<<"$seen"
check "both replicas answer through the balancer" $?
for r in moda-1 moda-2; do
  n=$(pc logs "$r" 2>&1 | grep -c 'GET /v1/models 200')
  check "$r's request log shows its share of the requests ($n)" $((n == 0))
done

# A new model in the served registry, then both replicas restarted: each
# start brings its mirror up to date.
"$build/moda" compose --registry "$MODA_REGISTRY_DIR" --model fmnist-lenet5 --classes Sneaker,Bag,'Ankle boot' \
  --save fmnist-shoes > "$work/save.log" 2>&1
check "a new model written into the served registry" $? || cat "$work/save.log"
pc restart moda-1 moda-2 > "$work/restart.log" 2>&1
check "both replicas restart" $? || cat "$work/restart.log"
wait_http "$url/v1/models/fmnist-shoes" 60
seen=$(upstreams 20 /v1/models/fmnist-shoes)
echo "$seen"
[ "$(grep -c . <<<"$seen")" -eq 2 ] && ! grep -q status <<<"$seen"
check "the new model is served by both replicas" $?

# One replica stopped: nginx takes it out, and no request fails.
pc stop -t 40 moda-1 > "$work/stop.log" 2>&1
check "moda-1 stops" $? || cat "$work/stop.log"
ok=0
for _ in $(seq 1 200); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST --data-binary @"$root/examples/ankle-boot.u8" \
    -H 'Content-Type: application/octet-stream' \
    "$url/v1/infer?model=fmnist-lenet5&classes=7,8,9&dtype=uint8&shape=1,1,28,28")
  [ "$code" = 200 ] && ok=$((ok + 1))
done
check "with moda-1 stopped, $ok of the next 200 requests succeed" $((ok != 200))

report "compose"
