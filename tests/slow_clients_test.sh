#!/usr/bin/env bash
# Slow clients and deadlines against a live moda-server with one connection
# thread and one worker:
#   - a client that sends half its headers and stalls holds no thread: other
#     requests are answered meanwhile, and the server closes the stalled
#     connection after --timeout seconds of silence;
#   - X-Moda-Timeout-Ms: a request still waiting for the worker past its
#     deadline answers 504 deadline_exceeded (v1 and v2 error shapes), so
#     does a small (inline) one whose body trickles in past it, one with
#     time to spare answers 200, and a malformed value is a 400.
# Usage: slow_clients_test.sh MODA_SERVER REGISTRY
set -euo pipefail
source "$(dirname "$0")/server_port.sh"
server=$1
registry=$2
log=$(mktemp)
pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT
"$server" --registry "$registry" --port 0 --threads 1 --workers 1 --timeout 2 --max-batch 1024 --quiet 2>"$log" &
pid=$!
port=$(server_port "$log" "$pid")
[ -n "$port" ] || { echo "FAIL: no port"; cat "$log"; exit 1; }

python3 - "$port" <<'PY'
import http.client, json, socket, struct, sys, threading, time
port = int(sys.argv[1])
fails = []

def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        fails.append(what)

# 1. Half a request, then silence.
slow = socket.create_connection(("127.0.0.1", port))
slow.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
t0 = time.time()
worst = 0.0
for _ in range(20):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    t = time.time()
    c.request("GET", "/v2/health/live")
    r = c.getresponse()
    r.read()
    worst = max(worst, time.time() - t)
    if r.status != 200:
        check(False, f"answered while a client stalls: {r.status}")
    c.close()
check(worst < 1.0, f"20 requests answered during the stall, slowest {worst * 1e3:.0f} ms")
slow.settimeout(10)
try:
    data = slow.recv(4096)
except (ConnectionResetError, socket.timeout) as e:
    data = None if isinstance(e, socket.timeout) else b""
closed_after = time.time() - t0
check(data is not None and closed_after < 6, f"stalled connection closed by the server after {closed_after:.1f} s "
      f"(--timeout 2; got {data[:40] if data else data!r})")

# 2. Deadlines: three large batches keep the one worker busy.
n = 1024
body = struct.pack(f"<{n * 1024}f", *([0.1] * (n * 1024)))
path = f"/v1/infer?id=fmnist-lenet5&shape={n},1,32,32"

def post(headers, results, key, p=path, b=body, ctype="application/octet-stream"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", p, body=b, headers=dict(headers, **{"Content-Type": ctype}))
    r = c.getresponse()
    results[key] = (r.status, r.read())

results = {}
# Twenty-four large batches keep the one worker busy; the late requests
# (v1 and v2) arrive among them.
busy = [threading.Thread(target=post, args=({}, results, i)) for i in range(24)]
for t in busy:
    t.start()
time.sleep(0.02)
# Large bodies too: each is complete (and dispatched) more than 1 ms after
# its headers arrived, whatever the worker is doing at that moment.
v2 = json.dumps({"inputs": [{"name": "input", "shape": [n, 1, 32, 32], "datatype": "FP32",
                              "data": [0.0] * (n * 1024)}]})
# The v1 one has time for its body to arrive (a few ms) but not for the
# queue (about 20 ms a batch, more under the sanitizers); the v2 one's body
# arrives past its 1 ms.
late = [threading.Thread(target=post, args=({"X-Moda-Timeout-Ms": "300"}, results, "late")),
        threading.Thread(target=post, args=({"X-Moda-Timeout-Ms": "1"}, results, "late_v2",
                                            "/v2/models/fmnist-lenet5/infer", v2.encode(), "application/json"))]
for t in late:
    t.start()
for t in busy + late:
    t.join()
status, data = results["late"]
check(status == 504 and json.loads(data)["error"]["code"] == "deadline_exceeded"
      and "waited for a worker" in json.loads(data)["error"]["message"],
      f"past its deadline in the queue: {status} {data[:100]!r}")
status, data = results["late_v2"]
check(status == 504 and "X-Moda-Timeout-Ms" in json.loads(data)["error"],
      f"v2 past its deadline: {status} {data[:80]!r}")
check(all(results[i][0] == 200 for i in range(24)), "the requests without a deadline all answered 200")
# A light request (one raw LeNet5 sample, run on the connection thread)
# whose body arrives in two parts 300 ms apart, with 100 ms to spare.
small = bytes(784)
trickle = socket.create_connection(("127.0.0.1", port))
trickle.sendall(b"POST /v1/infer?model=fmnist-lenet5&dtype=uint8&shape=1,1,28,28 HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/octet-stream\r\nX-Moda-Timeout-Ms: 100\r\nConnection: close\r\n"
                + f"Content-Length: {len(small)}\r\n\r\n".encode() + small[:100])
time.sleep(0.3)
trickle.sendall(small[100:])
trickle.settimeout(10)
answer = b""
while True:
    chunk = trickle.recv(65536)
    if not chunk:
        break
    answer += chunk
trickle.close()
head, _, payload = answer.partition(b"\r\n\r\n")
check(head.startswith(b"HTTP/1.1 504") and json.loads(payload)["error"]["code"] == "deadline_exceeded",
      f"a small body that arrived past its deadline: {head[:40]!r} {payload[:80]!r}")
post({"X-Moda-Timeout-Ms": "60000"}, results, "spare")
check(results["spare"][0] == 200, f"a deadline with time to spare: {results['spare'][0]}")
post({"X-Moda-Timeout-Ms": "soon"}, results, "bad")
check(results["bad"][0] == 400, f"a malformed deadline: {results['bad'][0]}")
sys.exit(1 if fails else 0)
PY
rc=$?
kill -TERM "$pid"
wait "$pid" || true
pid=
exit $rc
