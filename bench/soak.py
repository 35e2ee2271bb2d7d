#!/usr/bin/env python3
"""Soak: many mixed requests at many connections against one moda-server,
every answer checked, and memory watched.

moda-server serves a copy of the bundled registry with a composed-model
cache small enough to evict and a small request queue. N client threads,
each on its own keep-alive connection, send a seeded mix of requests:
compose of random class subsets, inference in v1 JSON, v1 binary and v2
JSON on the full model and on composed ids, DELETE /v1/compose, /metrics
and health, and 10% malformed requests. Every answer is checked: known
test images give their known class on the full model, a composed model
answers one of its classes and the same class every time for the same
image, malformed requests get a 4xx with an error body, and nothing is 5xx
but 503 overloaded (the queue is small on purpose). The server's RSS after
the run must be at most 1.1x its RSS after the warm-up.

    /usr/bin/python3 bench/soak.py [--server build/moda-server] [--requests 100000] [--connections 64]

Exits 0 when every check passed, 1 otherwise, 77 without the Fashion-MNIST
test images (Debian's dataset-fashion-mnist).
"""
import argparse
import gzip
import http.client
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "fmnist-lenet5"
IDX = "/usr/share/datasets/fashion-mnist"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_images(n):
    try:
        raw = gzip.open(os.path.join(IDX, "t10k-images-idx3-ubyte.gz"), "rb").read()
        lab = gzip.open(os.path.join(IDX, "t10k-labels-idx1-ubyte.gz"), "rb").read()
    except OSError:
        sys.exit(77)
    return [(raw[16 + i * 784:16 + (i + 1) * 784], lab[8 + i]) for i in range(n)]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Overloaded(Exception):
    """503 overloaded: the request queue was full, an allowed answer."""


class Client:
    def __init__(self, port, rng, state, stats):
        self.port, self.rng, self.state, self.stats = port, rng, state, stats
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method, path, body=None, headers=None):
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                if r.status == 503 and json.loads(data)["error"]["code"] == "overloaded":
                    raise Overloaded()
                return r.status, data
            except (http.client.HTTPException, ConnectionError, socket.timeout):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise
        return None

    def fail(self, what):
        with self.state["lock"]:
            self.state["failures"].append(what)

    def expect_ok(self, what, status, data):
        if status != 200:
            self.fail(f"{what}: {status} {data[:120]!r}")
            return None
        return json.loads(data)

    def check_class(self, key, img_label, cls, allowed):
        if cls not in allowed:
            self.fail(f"{key}: answered {cls}, not one of its classes")
            return
        with self.state["lock"]:
            seen = self.state["answers"].setdefault(key, cls)
        if seen != cls:
            self.fail(f"{key}: answered {cls}, earlier {seen}")

    def one(self):
        rng, st = self.rng, self.state
        names = st["names"]
        img, label = rng.choice(st["known"])
        subset = sorted(rng.sample(range(10), rng.randint(1, 10)))
        cid = f"{MODEL}~{'-'.join(map(str, subset))}~0.9"
        use_full = rng.random() < 0.4
        target = MODEL if use_full else cid
        allowed = names if use_full else [names[c] for c in subset]
        r = rng.random()
        if r < 0.25:  # v1 binary
            s, d = self.call("POST", f"/v1/infer?id={target}&dtype=uint8&shape=1,1,28,28", img,
                             {"Content-Type": "application/octet-stream"})
            o = self.expect_ok("v1 binary", s, d)
            if o:
                self.check_class((target, img), label, o["outputs"][0]["class"], allowed)
                if use_full and o["outputs"][0]["class"] != names[label]:
                    self.fail(f"full model: {o['outputs'][0]['class']} for a {names[label]}")
        elif r < 0.45:  # v1 JSON
            body = {"model": MODEL, "classes": subset, "dtype": "uint8", "inputs": list(img), "shape": [1, 1, 28, 28]}
            if use_full:
                body = {"id": MODEL, "dtype": "uint8", "inputs": list(img), "shape": [1, 1, 28, 28]}
            s, d = self.call("POST", "/v1/infer", json.dumps(body), {"Content-Type": "application/json"})
            o = self.expect_ok("v1 JSON", s, d)
            if o:
                self.check_class((target, img), label, o["outputs"][0]["class"], allowed)
        elif r < 0.60:  # v2 JSON
            body = {"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "UINT8", "data": list(img)}]}
            s, d = self.call("POST", f"/v2/models/{target}/infer", json.dumps(body),
                             {"Content-Type": "application/json"})
            o = self.expect_ok("v2 JSON", s, d)
            if o:
                out = {x["name"]: x for x in o["outputs"]}
                idx = out["class_index"]["data"][0]
                self.check_class((target, img), label, allowed[idx], allowed)
        elif r < 0.72:  # compose
            s, d = self.call("POST", "/v1/compose", json.dumps({"model": MODEL, "classes": subset}),
                             {"Content-Type": "application/json"})
            o = self.expect_ok("compose", s, d)
            if o and o["id"] != cid:
                self.fail(f"compose: id {o['id']}, expected {cid}")
        elif r < 0.77:  # delete: 200, or 404 when not cached (evicted or never composed)
            s, d = self.call("DELETE", f"/v1/compose/{cid}")
            if s not in (200, 404):
                self.fail(f"delete: {s} {d[:120]!r}")
        elif r < 0.83:
            s, d = self.call("GET", "/metrics")
            if s != 200 or b"moda_inference_request_success" not in d:
                self.fail(f"metrics: {s}")
        elif r < 0.90:
            s, d = self.call("GET", "/v2/health/ready")
            if s != 200:
                self.fail(f"ready: {s}")
        else:  # malformed: 4xx with an error body
            kind = rng.randrange(4)
            if kind == 0:
                s, d = self.call("POST", "/v1/infer", b'{"inputs": [1, 2', {"Content-Type": "application/json"})
            elif kind == 1:
                s, d = self.call("POST", "/v1/compose", json.dumps({"model": MODEL, "classes": ["Unicorn"]}),
                                 {"Content-Type": "application/json"})
            elif kind == 2:
                s, d = self.call("POST", f"/v1/infer?id={MODEL}&dtype=uint8&shape=1,1,27,27", img[:729],
                                 {"Content-Type": "application/octet-stream"})
            else:
                s, d = self.call("POST", "/v2/models/nope~1~0.9/infer", b"{}", {"Content-Type": "application/json"})
            if not (400 <= s < 500) or b"error" not in d:
                self.fail(f"malformed request {kind}: {s} {d[:120]!r}")
            self.stats["malformed"] += 1
        self.stats["requests"] += 1


def run_clients(port, n_conn, count, seed, state):
    stats = [{"requests": 0, "overloaded": 0, "malformed": 0} for _ in range(n_conn)]
    per = [count // n_conn + (1 if i < count % n_conn else 0) for i in range(n_conn)]

    def worker(i):
        c = Client(port, random.Random(seed * 1000 + i), state, stats[i])
        try:
            for _ in range(per[i]):
                try:
                    c.one()
                except Overloaded:
                    c.stats["overloaded"] += 1
                    c.stats["requests"] += 1
        except Exception as e:  # a dropped connection or a bad answer the client could not parse
            c.fail(f"client {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_conn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {k: sum(s[k] for s in stats) for k in stats[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default=os.path.join(ROOT, "build", "moda-server"))
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-rss-growth", type=float, default=1.1,
                    help="RSS at the end over RSS after the warm-up; 0: not checked (AddressSanitizer keeps freed "
                         "memory in quarantine: its leak check at exit counts instead)")
    a = ap.parse_args()
    known = test_images(64)
    work = tempfile.mkdtemp(prefix="moda-soak-")
    reg = os.path.join(work, "models")
    shutil.copytree(os.path.join(ROOT, "models"), reg)
    port = free_port()
    log = open(os.path.join(work, "server.log"), "w")
    srv = subprocess.Popen([a.server, "--registry", reg, "--port", str(port), "--quiet", "--cache-bytes", "96K",
                            "--queue-max", "32", "--threads", "4", "--workers", "2"], stdout=log, stderr=log)
    rc = 1
    try:
        c = None
        for _ in range(300):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/v2/health/ready")
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        c.request("GET", f"/v1/models/{MODEL}")
        names = [x["name"] for x in json.loads(c.getresponse().read())["classes"]]
        # Known images: those the full model gets right.
        ok = []
        for img, label in known:
            c.request("POST", f"/v1/infer?id={MODEL}&dtype=uint8&shape=1,1,28,28", img,
                      {"Content-Type": "application/octet-stream"})
            if json.loads(c.getresponse().read())["outputs"][0]["class"] == names[label]:
                ok.append((img, label))
        state = {"lock": threading.Lock(), "failures": [], "answers": {}, "names": names, "known": ok}
        t0 = time.time()
        warm = run_clients(port, a.connections, max(a.requests // 20, a.connections), a.seed, state)
        rss_warm = rss_kb(srv.pid)
        main_run = run_clients(port, a.connections, a.requests, a.seed + 1, state)
        rss_end = rss_kb(srv.pid)
        secs = time.time() - t0
        total = {k: warm[k] + main_run[k] for k in warm}
        if a.max_rss_growth > 0 and rss_end > a.max_rss_growth * rss_warm:
            state["failures"].append(f"RSS grew from {rss_warm} kB after the warm-up to {rss_end} kB")
        if srv.poll() is not None:
            state["failures"].append(f"the server exited with {srv.returncode}")
        print(f"soak: {total['requests']} requests ({warm['requests']} warm-up) at {a.connections} connections in "
              f"{secs:.1f} s ({total['requests'] / secs:.0f} req/s); {total['malformed']} malformed, "
              f"{total['overloaded']} answered 503 overloaded; RSS {rss_warm} kB after the warm-up, {rss_end} kB at "
              f"the end ({rss_end / max(rss_warm, 1):.3f}x); {len(state['answers'])} (model, image) answers held "
              f"constant; {len(ok)} known images")
        for f in state["failures"][:20]:
            print("FAIL:", f)
        rc = 1 if state["failures"] else 0
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=120)
        except subprocess.TimeoutExpired:
            srv.kill()
        if srv.returncode != 0:  # a crash, or a sanitizer's report at exit
            print(f"FAIL: the server exited with {srv.returncode}; its log ends:")
            log.close()
            print("".join(open(os.path.join(work, "server.log")).readlines()[-30:]))
            rc = 1
        shutil.rmtree(work, ignore_errors=True)
    print("soak: " + ("FAILED" if rc else "passed"))
    sys.exit(rc)


if __name__ == "__main__":
    main()
