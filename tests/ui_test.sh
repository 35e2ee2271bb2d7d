#!/usr/bin/env bash
# The module explorer in headless Chromium (tests/ui_test.py, Selenium).
# Usage: ui_test.sh MODA_SERVER REPO_ROOT OUT_DIR (the screenshot goes there)
# Exits 77 (skipped) without REPO_ROOT/.venv's Selenium or without Debian's
# chromium and chromium-driver (scripts/install-deps.sh --test installs them).
set -euo pipefail

server_bin=$1
root=$(cd "$2" && pwd)
out=$3
py=$root/.venv/bin/python
if [ ! -x "$py" ] || ! "$py" -c 'import selenium' 2>/dev/null; then
  echo "SKIP: Selenium missing from $root/.venv (scripts/install-deps.sh --test)"
  exit 77
fi
for tool in /usr/bin/chromium /usr/bin/chromedriver; do
  if [ ! -x "$tool" ]; then
    echo "SKIP: $tool missing (apt-get install chromium chromium-driver)"
    exit 77
  fi
done
mkdir -p "$out"
exec "$py" "$root/tests/ui_test.py" "$server_bin" "$root" "$out"
