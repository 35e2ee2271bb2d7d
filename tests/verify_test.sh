#!/usr/bin/env bash
# `moda verify` on copies of the bundled registry: a good one passes, with
# one line per model; each kind of damage fails with exit 1 and a message
# that names the damaged file; usage errors exit 2. The bundled registry
# itself is never modified.
# Usage: verify_test.sh MODA REPO_ROOT
set -u
moda=$1
models=$2/models
model=fmnist-lenet5
work=$(mktemp -d)
http_pid=
cleanup() {
  if [ -n "$http_pid" ]; then kill "$http_pid" 2>/dev/null; wait "$http_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
fails=0
pass=0
expect() { # description, expected exit code, command...
  local what=$1 want=$2; shift 2
  local rc
  LAST=$("$@" 2>&1); rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: $what: exit $rc, expected $want"; echo "$LAST" | head -5; fails=$((fails + 1))
  else
    pass=$((pass + 1))
  fi
}
contains() { # description, needle
  if [[ "$LAST" != *"$2"* ]]; then echo "FAIL: $1: output lacks '$2'"; echo "$LAST" | head -5; fails=$((fails + 1))
  else pass=$((pass + 1)); fi
}
fresh() { # a pristine copy of the bundled registry at $work/$1
  rm -rf "${work:?}/$1" && cp -r "$models" "$work/$1"
}

expect "help" 0 "$moda" verify --help
contains "help" "usage: moda verify REGISTRY [MODEL]"
expect "no registry given" 2 "$moda" verify
expect "unknown flag" 2 "$moda" verify --bogus "$models"
expect "no registry there" 1 "$moda" verify "$work/nowhere"
contains "no registry there" "$work/nowhere"

fresh good
expect "good registry" 0 "$moda" verify "$work/good"
contains "good registry" "$model: ok"
[ "$(printf '%s\n' "$LAST" | grep -c ': ok')" -eq 1 ] && pass=$((pass + 1)) ||
  { echo "FAIL: good registry: not one line per model"; fails=$((fails + 1)); }
expect "good model" 0 "$moda" verify "$work/good" "$model"
contains "good model" "$model: ok"
expect "unknown model" 1 "$moda" verify "$work/good" no-such-model
contains "unknown model" "index.json: no model \"no-such-model\""

# One byte of the weights flipped: inspect reads only the manifest and
# passes; verify reads the file.
fresh flipped
f=$work/flipped/$model/weights.safetensors.zst
byte=$(od -An -tu1 -j1000 -N1 "$f" | tr -d ' ')
printf "$(printf '\\%03o' $(((byte + 1) % 256)))" | dd of="$f" bs=1 seek=1000 conv=notrunc status=none
expect "flipped byte: inspect does not read the weights" 0 "$moda" inspect "$work/flipped" "$model"
expect "flipped byte" 1 "$moda" verify "$work/flipped"
contains "flipped byte" "$model/weights.safetensors.zst"
contains "flipped byte" "sha256"
expect "flipped byte, one model" 1 "$moda" verify "$work/flipped" "$model"
contains "flipped byte, one model" "$model/weights.safetensors.zst"

fresh truncated
f=$work/truncated/$model/rates.safetensors.zst
truncate -s $(($(stat -c %s "$f") - 7)) "$f"
expect "truncated rates" 1 "$moda" verify "$work/truncated"
contains "truncated rates" "$model/rates.safetensors.zst"

fresh missing
rm "$work/missing/$model/rates.safetensors.zst"
expect "missing rates" 1 "$moda" verify "$work/missing"
contains "missing rates" "$model/rates.safetensors.zst"

fresh manifest
printf ' ' >>"$work/manifest/$model/manifest.json"
expect "manifest changed after the index" 1 "$moda" verify "$work/manifest"
contains "manifest changed after the index" "$model/manifest.json"
contains "manifest changed after the index" "sha256"

fresh index
printf '{"format":1,"models":[' >"$work/index/index.json"
expect "broken index" 1 "$moda" verify "$work/index"
contains "broken index" "index.json"

# A URL registry, through the mirror.
if command -v python3 >/dev/null; then
  fresh served
  python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work/served" >"$work/http.log" 2>&1 &
  http_pid=$!
  port=
  for _ in $(seq 100); do
    port=$(sed -n 's/.*port \([0-9][0-9]*\).*/\1/p' "$work/http.log" | head -n 1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  if [ -n "$port" ]; then
    export MODA_REGISTRY_CACHE=$work/cache
    expect "URL registry" 0 "$moda" verify "http://127.0.0.1:$port"
    contains "URL registry" "$model: ok"
    expect "URL registry, unknown model" 1 "$moda" verify "http://127.0.0.1:$port" no-such-model
    contains "URL registry, unknown model" "no model \"no-such-model\""
  else
    echo "FAIL: the test's HTTP server did not start"; fails=$((fails + 1))
  fi
fi

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
