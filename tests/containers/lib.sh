# Shared by the container checks (sourced): podman set up for these
# machines, a Debian 12 base image made locally, and small helpers.
# shellcheck shell=bash

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
base_image=localhost/debian:bookworm

# podman's settings go in a file of our own, never in /etc: runc (crun
# cannot run on hybrid cgroups) and ulimits within this root's hard limit
# (podman's default nofile is above it, and root here cannot raise it).
# Returns 0 when containers run, 77 when podman cannot run them here (the
# caller skips), 1 when the base image cannot be made.
containers_setup() {
  command -v podman >/dev/null ||
    { echo "podman is not installed (scripts/install-deps.sh --test installs it)"; return 77; }
  local conf=${TMPDIR:-/tmp}/moda-containers.conf nofile out
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=1048576
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=32768:32768"]\n[engine]\nruntime = "runc"\n' \
    "$nofile" "$nofile" > "$conf"
  export CONTAINERS_CONF=$conf
  out=$(podman info 2>&1) || { echo "podman does not work here: ${out##*$'\n'}"; return 77; }
  base_image_make || { echo "could not make the base image $base_image"; return 1; }
  out=$(podman run --rm --network none "$base_image" true 2>&1) ||
    { echo "podman cannot run containers here: ${out##*$'\n'}"; return 77; }
}

# A minbase Debian 12 root from the machine's own apt sources, imported as
# the base image, and tagged as the official slim one so that Dockerfiles
# keep their usual FROM line. Made once; `podman rmi` it to remake it.
base_image_make() {
  podman image exists "$base_image" && return 0
  local sources=/etc/apt/sources.list.d/debian.sources tar rc
  [ -f "$sources" ] || sources=/etc/apt/sources.list
  tar=$(mktemp --suffix=.tar)
  echo "making $base_image with mmdebstrap (minbase, bookworm)"
  mmdebstrap --quiet --variant=minbase bookworm "$tar" "$sources" &&
    podman import --change 'CMD ["/bin/bash"]' "$tar" "$base_image" >/dev/null &&
    podman tag "$base_image" docker.io/library/debian:bookworm-slim
  rc=$?
  rm -f "$tar"
  return $rc
}

# Hands the host's CA bundle to pip and curl inside a container (PyPI is
# reached through TLS that only the host trusts), at a path of its own.
ca_bundle=/etc/ssl/certs/ca-certificates.crt
ca_run_args=(-v "$ca_bundle:/run/host-ca.crt:ro" -e PIP_CERT=/run/host-ca.crt
  -e SSL_CERT_FILE=/run/host-ca.crt -e REQUESTS_CA_BUNDLE=/run/host-ca.crt)

# A TCP port that nothing listens on now.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http URL SECONDS: 0 once URL answers 200, 1 at the deadline.
wait_http() {
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

pass=0 fails=0
check() { # description, status (0 = ok)
  if [ "$2" -eq 0 ]; then
    echo "ok: $1"
    pass=$((pass + 1))
  else
    echo "FAIL: $1"
    fails=$((fails + 1))
  fi
  [ "$2" -eq 0 ]
}

# Seconds since an $EPOCHREALTIME reading, to a tenth.
since() {
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# The last line of a check script, read by tests/containers/run.sh.
report() { # name
  echo "$1: $pass passed, $fails failed"
  [ "$fails" -eq 0 ]
}
