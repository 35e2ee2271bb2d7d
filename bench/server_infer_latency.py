#!/usr/bin/env python3
"""/v1/infer batch-1 latency end to end at one connection, for two moda-server
binaries side by side (e.g. before and after a change), on one model.

Each round starts each server in turn on the registry, checks that both give
the same probabilities, and runs wrk (1 thread, 1 connection) for --seconds
against it with a float32 binary body (one random normalised sample); the
table shows medians over rounds of wrk's p50 and p99 latency and requests
per second, and the median of the server's own compute_ms over 200
sequential requests (keep-alive http.client) per round.

    /usr/bin/python3 bench/server_infer_latency.py --registry REG --model NAME \\
        --server NEW [--baseline OLD] [--rounds 3] [--seconds 5] [--workers 1] [--intra-threads 1]
"""
import argparse
import http.client
import json
import os
import random
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def to_us(v, unit):
    return float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def run_wrk(url, body_file, seconds):
    env = dict(os.environ, BODY=body_file, CTYPE="application/octet-stream")
    out = subprocess.run(["wrk", "-t", "1", "-c", "1", "-d", f"{seconds}s", "--latency", "-s",
                          os.path.join(ROOT, "bench", "server", "post.lua"), url],
                         env=env, check=True, capture_output=True, text=True).stdout
    if re.search(r"Non-2xx or 3xx responses", out):
        sys.exit(f"wrk saw error responses from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: to_us(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    return rps, lat["50"], lat["99"]


def start(binary, a, port):
    proc = subprocess.Popen([binary, "--registry", a.registry, "--port", str(port), "--quiet", "--workers",
                             str(a.workers), "--intra-threads", str(a.intra_threads)], stdout=subprocess.DEVNULL)
    end = time.time() + 60
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"{binary} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"{binary} not ready")


def compute_ms(port, path, body, n):
    c = http.client.HTTPConnection("127.0.0.1", port)
    ms, probs = [], None
    for _ in range(n):
        c.request("POST", path, body, {"Content-Type": "application/octet-stream"})
        r = c.getresponse()
        d = json.loads(r.read())
        assert r.status == 200, d
        ms.append(d["compute_ms"])
        probs = d["outputs"][0]["probabilities"]
    c.close()
    return statistics.median(ms), probs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registry", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--server", required=True, help="moda-server under test")
    ap.add_argument("--baseline", help="moda-server to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--intra-threads", type=int, default=1)
    a = ap.parse_args()

    man = json.load(open(os.path.join(a.registry, a.model, "manifest.json")))
    c, h, w = man["input"]["channels"], man["input"]["height"], man["input"]["width"]
    rng = random.Random(1)
    tmp = tempfile.mkdtemp(prefix="moda-latency-")
    body_file = os.path.join(tmp, "sample.f32")
    body = struct.pack(f"<{c * h * w}f", *[rng.gauss(0, 1) for _ in range(c * h * w)])
    open(body_file, "wb").write(body)
    path = f"/v1/infer?id={a.model}&shape=1,{c},{h},{w}"
    servers = [("after", a.server)] + ([("before", a.baseline)] if a.baseline else [])
    results = {name: [] for name, _ in servers}
    answers = {}
    for r in range(a.rounds):
        for name, binary in servers:
            port = free_port()
            proc = start(binary, a, port)
            try:
                cms, answers[name] = compute_ms(port, path, body, 20)  # warms up, and the answer to compare
                rps, p50, p99 = run_wrk(f"http://127.0.0.1:{port}{path}", body_file, a.seconds)
                cms, _ = compute_ms(port, path, body, 200)
                results[name].append((rps, p50, p99, cms))
            finally:
                proc.terminate()
                proc.wait()
        if len(answers) == 2:
            d = max(abs(x - y) for x, y in zip(answers["after"], answers["before"]))
            assert d < 1e-4, f"the servers' probabilities differ by {d}"
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    print(f"/v1/infer, {a.model}, batch 1, binary body, 1 connection (wrk -t1 -c1, {a.seconds} s per run), "
          f"moda-server --workers {a.workers} --intra-threads {a.intra_threads}; medians of {a.rounds} "
          f"alternating rounds (ranges)\n")
    print("| server | req/s | p50 ms | p99 ms | compute_ms |")
    print("|---|---:|---:|---:|---:|")
    for name, _ in servers:
        rows = results[name]
        cols = []
        for i, scale in ((0, 1), (1, 1e-3), (2, 1e-3), (3, 1)):
            v = [x[i] * scale for x in rows]
            fmt = "{:.0f}" if i == 0 else "{:.3f}"
            cols.append(f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}–{fmt.format(max(v))})")
        print(f"| {name} | " + " | ".join(cols) + " |")


if __name__ == "__main__":
    main()
