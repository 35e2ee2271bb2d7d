#!/usr/bin/env python3
"""Batch-1 inference latency while a replacement job runs, against the same
server idle: does a job yield to inference?

moda-server serves a copy of the bundled registry. One client sends batch-1
binary /v1/infer requests for the bundled LeNet5 back to back over one
keep-alive connection (the engine time is well under a millisecond, so the
latency is scheduling as much as compute). Each round measures the client
first with the server idle, then while a replacement job runs (weak and
strong both the bundled model, class Shirt, 3 calibration epochs over the
60,000 Fashion-MNIST training images); the phases alternate --rounds times
and the medians of each phase's p50 and p99 are reported.

    /usr/bin/python3 bench/job_latency.py [--build build] [--rounds 3] [--seconds 8]
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "fmnist-lenet5"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(conn, method, path, body=None, ctype="application/json"):
    conn.request(method, path, body=body, headers={"Content-Type": ctype} if body is not None else {})
    r = conn.getresponse()
    return r.status, r.read()


def latencies(conn, body, until):
    """Back-to-back batch-1 requests until until() is true; ms each."""
    out = []
    path = f"/v1/infer?id={MODEL}&shape=1,1,32,32"
    while not until():
        t0 = time.perf_counter()
        status, _ = request(conn, "POST", path, body, "application/octet-stream")
        out.append((time.perf_counter() - t0) * 1e3)
        assert status == 200, status
    return out


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each idle phase")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="moda-job-latency-")
    reg = os.path.join(work, "models")
    shutil.copytree(os.path.join(ROOT, "models"), reg)
    port = free_port()
    log = open(os.path.join(work, "server.log"), "w")
    srv = subprocess.Popen([os.path.join(a.build, "moda-server"), "--registry", reg, "--port", str(port), "--quiet",
                            "--jobs-max", "1", "--jobs-queue", "0"], stdout=log, stderr=log,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        conn = None
        for _ in range(100):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                if request(conn, "GET", "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        body = struct.pack("<1024f", *[(i % 17) / 17.0 for i in range(1024)])  # one 32x32 sample
        ctl = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        idle, busy, job_s = [], [], []
        for r in range(a.rounds):
            end = time.time() + a.seconds
            lat = latencies(conn, body, lambda: time.time() > end)
            idle.append((pct(lat, 0.5), pct(lat, 0.99), len(lat)))
            spec = {"weak": MODEL, "strong": MODEL, "class": "Shirt", "name": f"bench-patched-{r}"}
            status, data = request(ctl, "POST", "/v1/replace", json.dumps(spec).encode())
            assert status == 202, data
            job = json.loads(data)["id"]
            t0 = time.time()
            state = {"done": False, "last": 0.0}

            def finished():
                if time.time() - state["last"] > 0.5:
                    state["last"] = time.time()
                    s, d = request(ctl, "GET", f"/v1/jobs/{job}")
                    st = json.loads(d)["state"]
                    if st not in ("queued", "running"):
                        assert st == "succeeded", d
                        state["done"] = True
                return state["done"]

            lat = latencies(conn, body, finished)
            job_s.append(time.time() - t0)
            busy.append((pct(lat, 0.5), pct(lat, 0.99), len(lat)))
            print(f"round {r + 1}: idle p50 {idle[-1][0]:.3f} p99 {idle[-1][1]:.3f} ms ({idle[-1][2]} requests); "
                  f"job p50 {busy[-1][0]:.3f} p99 {busy[-1][1]:.3f} ms ({busy[-1][2]} requests, {job_s[-1]:.1f} s)",
                  file=sys.stderr)
        med = lambda rows, i: statistics.median(x[i] for x in rows)
        print(f"machine: {os.cpu_count()} cores; rounds {a.rounds}; medians over rounds")
        print("| phase | p50 ms | p99 ms | requests per phase |")
        print("|---|---:|---:|---:|")
        print(f"| idle | {med(idle, 0):.3f} | {med(idle, 1):.3f} | {med(idle, 2):.0f} |")
        print(f"| replacement job running ({statistics.median(job_s):.1f} s) | {med(busy, 0):.3f} | "
              f"{med(busy, 1):.3f} | {med(busy, 2):.0f} |")
        print(f"p99 under a job / idle p99: {med(busy, 1) / med(idle, 1):.2f}")
    finally:
        srv.terminate()
        srv.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
