# Sourced by the shell tests that start moda-server with --port 0.
# shellcheck shell=bash

# server_port LOG PID [SECONDS]: prints the port moda-server bound, read
# from the start-up line in LOG, once it is there (the registry loads
# first). Fails when PID exits first or after SECONDS (60).
server_port() {
  local log=$1 pid=$2 i port
  for ((i = 0; i < ${3:-60} * 10; i++)); do
    # The log may not exist yet: the server's shell opens it after the fork.
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" 2>/dev/null | head -n 1)
    if [ -n "$port" ]; then
      echo "$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
