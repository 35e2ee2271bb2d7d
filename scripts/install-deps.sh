#!/usr/bin/env bash
# Installs what the project needs on Debian 12, and nothing when it is all
# there already: Debian packages, then pinned Python test tools in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  libdnnl-dev libcmocka-dev zlib1g-dev libjansson-dev libzstd-dev
  libmicrohttpd-dev libcurl4-openssl-dev
  dataset-fashion-mnist
  python3 python3-venv curl
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python test tools, pinned, in a virtualenv of their own.
req=scripts/requirements-test.txt
if grep -qv '^\s*\(#\|$\)' "$req"; then
  stamp=.venv/.requirements
  if [ ! -x .venv/bin/python ] || ! cmp -s "$req" "$stamp"; then
    # Debian's interpreter (python3-venv above), whatever else is on PATH.
    py=/usr/bin/python3
    [ -x "$py" ] || py=python3
    rm -rf .venv
    "$py" -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
  fi
fi
