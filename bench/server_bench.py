#!/usr/bin/env python3
"""moda-server benchmarks: batch-1 inference throughput and p50/p99 latency
at concurrency 1, 4 and 16 (wrk on loopback), JSON and binary input, full
and composed model, side by side with a minimal PyTorch HTTP server
(bench/torch_http_baseline.py) on the same model and input; compose latency
on a cache miss and a hit; and the server's overhead over the engine's own
compute time.

    /usr/bin/python3 bench/server_bench.py [--build build] [--rounds 3] [--seconds 5]

Each (configuration, concurrency) is run --rounds times, interleaved with
the baseline, and the medians are reported. Needs wrk (Debian) and
python3-torch for the baseline.

    /usr/bin/python3 bench/server_bench.py --throughput [--before OLD/moda-server]

instead measures the server's throughput against the HTTP floor: a bare
libmicrohttpd server (bench_bare_server: thread pool, fixed 80-byte answer)
beside moda-server in the same run, on LeNet5 batch-1 bodies of 784 raw
bytes (binary) and the same sample as JSON, with and without dynamic
batching, at 1, 4 and 16 connections; and a composed 2-class VGG16 (width
0.5, from a registry the bench trains for one epoch on rendered shapes) at 16
connections with and without batching. --before adds an older moda-server
binary for a before/after table.
"""
import argparse
import gzip
import json
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "fmnist-lenet5"
COMPOSED = MODEL + "~0-3-7~0.9"
IDX = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, ctype="application/json"):
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": ctype})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req) as r:
            data = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        data, status = e.read(), e.code
    return status, data, (time.perf_counter() - t0) * 1e3


def wait_ready(url, proc, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    sys.exit(f"{url} not ready after {timeout} s")


def sample_image(man):
    """Test image 0, normalised and padded as the model was trained."""
    raw = gzip.open(IDX, "rb").read()
    _, h, w = struct.unpack(">III", raw[4:16])
    px = raw[16:16 + h * w]
    inp = man["input"]
    pad, mean, std = inp["pad"], inp["mean"][0], inp["std"][0]
    size = h + 2 * pad
    img = [[(-mean / std) for _ in range(size)] for _ in range(size)]
    for y in range(h):
        for x in range(w):
            img[y + pad][x + pad] = (px[y * w + x] / 255.0 - mean) / std
    return img


def to_us(v, unit):
    return float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def run_wrk(url, body_file, ctype, conns, seconds):
    env = dict(os.environ, BODY=body_file, CTYPE=ctype)
    out = subprocess.run(["wrk", "-t", str(min(conns, 2)), "-c", str(conns), "-d", f"{seconds}s", "--latency",
                          "-s", os.path.join(ROOT, "bench", "server", "post.lua"), url],
                         env=env, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: to_us(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk saw {errors.group(1)} error responses from {url}:\n{out}")
    return rps, lat["50"], lat["99"]


def start(cmd, ready_url):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    wait_ready(ready_url, proc, timeout=120)
    return proc


def vgg_registry(build, tmp):
    """A 3-class VGG16 (width 0.5) trained one epoch on rendered shapes, decomposed into a registry."""
    shapes, run, reg = (os.path.join(tmp, d) for d in ("shapes", "run", "registry"))
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "make_shapes.py"), shapes, "16", "8"], check=True,
                   stdout=subprocess.DEVNULL)
    moda = os.path.join(build, "moda")
    subprocess.run([moda, "train", "--arch", "vgg16", "--width", "0.5", "--dataset", "folder", "--data-dir", shapes,
                    "--epochs", "1", "--batch-size", "16", "--no-augment", "--seed", "1", "--out", run], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([moda, "decompose", "--checkpoint", os.path.join(run, "checkpoint.safetensors"), "--out", reg,
                    "--name", "shapes-vgg16"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return reg


def engine_stats(port):
    """{model: (samples, engine µs per sample, mean samples per engine call)} from /metrics."""
    _, text, _ = http("GET", f"http://127.0.0.1:{port}/metrics")
    series = {}
    for line in text.decode().splitlines():
        m = re.match(r'^(moda_inference_count|moda_inference_exec_count|moda_inference_compute_infer_duration_us)'
                     r'\{model="([^"]+)"\} ([0-9.e+-]+)$', line)
        if m:
            series.setdefault(m.group(2), {})[m.group(1)] = float(m.group(3))
    out = {}
    for model, v in series.items():
        n, execs = v.get("moda_inference_count", 0), v.get("moda_inference_exec_count", 0)
        if n and execs:
            out[model] = (n, v.get("moda_inference_compute_infer_duration_us", 0) / n, n / execs)
    return out


def throughput(a):
    registry = os.path.join(ROOT, "models")
    tmp = tempfile.mkdtemp(prefix="moda-bench-")
    raw = os.path.join(ROOT, "examples", "ankle-boot.u8")
    pixels = list(open(raw, "rb").read())
    man = json.load(open(os.path.join(registry, MODEL, "manifest.json")))
    img = sample_image(man)
    bodies = {"json uint8": os.path.join(tmp, "u8.json"), "json float32": os.path.join(tmp, "f32.json"),
              "vgg": os.path.join(tmp, "vgg.f32")}
    with open(bodies["json uint8"], "w") as f:
        json.dump({"model": MODEL, "dtype": "uint8", "inputs": [[[pixels[r * 28:(r + 1) * 28] for r in range(28)]]]},
                  f)
    with open(bodies["json float32"], "w") as f:
        json.dump({"model": MODEL, "inputs": [[img]]}, f)
    with open(bodies["vgg"], "wb") as f:
        f.write(struct.pack("<1024f", *[v for row in img for v in row]))
    vgg = vgg_registry(a.build, tmp)
    vgg_id = "shapes-vgg16~0-1~0.9"

    server = os.path.join(a.build, "moda-server")
    batching = ["--workers", "16", "--batch-max", "8", "--batch-instances", str(os.cpu_count())]
    servers = {  # name: command line, without the port
        "bare": [os.path.join(a.build, "bench", "bench_bare_server")],
        "moda": [server, "--registry", registry, "--quiet"],
        "moda batching": [server, "--registry", registry, "--quiet"] + batching,
        "vgg": [server, "--registry", vgg, "--quiet"],
        "vgg batching": [server, "--registry", vgg, "--quiet"] + batching,
        "vgg batching 20 ms": [server, "--registry", vgg, "--quiet"] + batching + ["--batch-delay-us", "20000"],
    }
    if a.before:
        servers["moda before"] = [a.before, "--registry", registry, "--quiet"]
    ports, procs = {}, {}
    try:
        for name, cmd in servers.items():
            ports[name] = free_port()
            port = str(ports[name])
            if name == "bare":
                procs[name] = subprocess.Popen(cmd + [port], stdout=subprocess.DEVNULL)
                time.sleep(0.5)
            else:
                procs[name] = start(cmd + ["--port", port], f"http://127.0.0.1:{port}/v2/health/ready")

        def url(name, query):
            return f"http://127.0.0.1:{ports[name]}/v1/infer{query}"

        binary_q = f"?model={MODEL}&dtype=uint8&shape=1,1,28,28"
        vgg_q = f"?id={vgg_id}&dtype=float32&shape=1,1,32,32"
        octet = "application/octet-stream"
        runs = []  # (row name, conns, url, body, content type)
        for conns in (1, 4, 16):
            for name in ["bare"] + (["moda before"] if a.before else []) + ["moda", "moda batching"]:
                runs.append((f"{name}, binary", conns, url(name, binary_q), raw, octet))
        for name in ["moda before"] if a.before else []:
            runs.append((f"{name}, JSON uint8", 16, url(name, ""), bodies["json uint8"], "application/json"))
            runs.append((f"{name}, JSON float32", 16, url(name, ""), bodies["json float32"], "application/json"))
        for name in ("moda", "moda batching"):
            runs.append((f"{name}, JSON uint8", 16, url(name, ""), bodies["json uint8"], "application/json"))
            runs.append((f"{name}, JSON float32", 16, url(name, ""), bodies["json float32"], "application/json"))
        for name in ("vgg", "vgg batching", "vgg batching 20 ms"):
            runs.append((f"{name} {vgg_id}, binary float32", 16, url(name, vgg_q), bodies["vgg"], octet))
        # Every answer is a 200 before anything is timed (the bare server's always is).
        for row, conns, u, body, ctype in runs:
            if not row.startswith("bare"):
                st, d, _ = http("POST", u, open(body, "rb").read(), ctype)
                assert st == 200, (row, st, d[:200])

        results = {}
        for r in range(a.rounds):
            for row, conns, u, body, ctype in runs:
                results.setdefault((row, conns), []).append(run_wrk(u, body, ctype, conns, a.seconds))
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
        engine = {name: engine_stats(ports[name]) for name in servers if name != "bare"}
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()

    def med(row, conns, i):
        return statistics.median(x[i] for x in results[(row, conns)])

    print(f"\nthroughput, {a.seconds} s per run, medians of {a.rounds} rounds, every configuration alternated in "
          f"each round; wrk -t2 on the same machine; batching: {' '.join(batching)}\n")
    print("| configuration | conns | req/s | p50 µs | p99 µs | vs bare |")
    print("|---|---:|---:|---:|---:|---:|")
    for row, conns, *_ in runs:
        rps, p50, p99 = (med(row, conns, i) for i in range(3))
        bare = med("bare, binary", conns, 0)
        print(f"| {row} | {conns} | {rps:.0f} | {p50:.0f} | {p99:.0f} | {rps / bare:.2f} |")
    for name in ("vgg batching", "vgg batching 20 ms"):
        ratio = med(f"{name} {vgg_id}, binary float32", 16, 0) / med(f"vgg {vgg_id}, binary float32", 16, 0)
        print(f"\nVGG16 w0.5 composed 2-class, 16 connections: {name} gives {ratio:.2f}x the req/s without")
    print("\nengine time per sample over the whole run (the servers' own metrics: compute time / samples; "
          "mean samples per engine call):\n")
    print("| server | model | samples | µs per sample | mean batch |")
    print("|---|---|---:|---:|---:|")
    for name, per_model in engine.items():
        for model, (samples, us, batch) in sorted(per_model.items()):
            print(f"| {name} | {model} | {samples:.0f} | {us:.1f} | {batch:.2f} |")
    for name in ("moda", "moda batching"):
        for kind in ("uint8", "float32"):
            print(f"{name}: JSON {kind} at 16 connections is {med(f'{name}, JSON {kind}', 16, 0) / med(f'{name}, binary', 16, 0):.2f}x "
                  f"its binary req/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--throughput", action="store_true", help="moda-server against a bare libmicrohttpd server")
    ap.add_argument("--before", help="with --throughput: an older moda-server binary to compare")
    a = ap.parse_args()
    if a.throughput:
        throughput(a)
        return

    registry = os.path.join(ROOT, "models")
    man = json.load(open(os.path.join(registry, MODEL, "manifest.json")))
    img = sample_image(man)
    tmp = tempfile.mkdtemp(prefix="moda-bench-")
    bodies = {}
    for name, ident in (("full", MODEL), ("composed", COMPOSED)):
        path = os.path.join(tmp, f"{name}.json")
        with open(path, "w") as f:
            json.dump({"id": ident, "inputs": [[img]]}, f)
        bodies[name] = path
    torch_json = os.path.join(tmp, "torch.json")
    with open(torch_json, "w") as f:
        json.dump({"inputs": [[img]]}, f)
    binary = os.path.join(tmp, "image.f32")
    with open(binary, "wb") as f:
        f.write(struct.pack(f"<{len(img) ** 2}f", *[v for row in img for v in row]))
    side = len(img)

    port, tport = free_port(), free_port()
    server = subprocess.Popen([os.path.join(a.build, "moda-server"), "--registry", registry, "--port", str(port),
                               "--quiet", "--workers", str(a.workers)], stdout=subprocess.DEVNULL)
    baseline = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "bench", "torch_http_baseline.py"),
                                 registry, MODEL, str(tport)], stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/v2/health/ready", server)
        # The baseline has no health route: poll its infer route.
        for _ in range(300):
            try:
                if http("POST", f"http://127.0.0.1:{tport}/v1/infer", open(torch_json, "rb").read())[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        # Answers must agree before anything is timed.
        s1, d1, _ = http("POST", base + "/v1/infer", open(bodies["full"], "rb").read())
        s2, d2, _ = http("POST", f"http://127.0.0.1:{tport}/v1/infer", open(torch_json, "rb").read())
        p1, p2 = json.loads(d1)["outputs"][0]["probabilities"], json.loads(d2)["outputs"][0]["probabilities"]
        assert s1 == s2 == 200 and max(abs(x - y) for x, y in zip(p1, p2)) < 1e-4, (d1, d2)
        http("POST", base + "/v1/infer", open(bodies["composed"], "rb").read())  # compose once, cached after

        configs = [
            ("moda JSON full", base + "/v1/infer", bodies["full"], "application/json"),
            ("moda binary full", base + f"/v1/infer?id={MODEL}&shape=1,1,{side},{side}", binary,
             "application/octet-stream"),
            ("moda JSON composed 3/10", base + "/v1/infer", bodies["composed"], "application/json"),
            ("moda binary composed 3/10", base + f"/v1/infer?id={COMPOSED}&shape=1,1,{side},{side}", binary,
             "application/octet-stream"),
            ("torch JSON full", f"http://127.0.0.1:{tport}/v1/infer", torch_json, "application/json"),
            ("torch binary full", f"http://127.0.0.1:{tport}/v1/infer?shape=1,1,{side},{side}", binary,
             "application/octet-stream"),
        ]
        results = {}
        for r in range(a.rounds):
            for conns in (1, 4, 16):
                for name, url, body, ctype in configs:
                    results.setdefault((name, conns), []).append(run_wrk(url, body, ctype, conns, a.seconds))
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)

        print(f"\nbatch-1 inference, {a.seconds} s per run, medians of {a.rounds} rounds "
              f"(moda-server --workers {a.workers}; wrk on the same machine)\n")
        print("| configuration | conns | req/s | p50 µs | p99 µs | req/s vs torch |")
        print("|---|---:|---:|---:|---:|---:|")
        for conns in (1, 4, 16):
            for name, *_ in configs:
                runs = results[(name, conns)]
                rps, p50, p99 = (statistics.median(x[i] for x in runs) for i in range(3))
                kind = "binary" if "binary" in name else "JSON"
                ratios = [x[0] / y[0] for x, y in zip(runs, results[(f"torch {kind} full", conns)])]
                print(f"| {name} | {conns} | {rps:.0f} | {p50:.0f} | {p99:.0f} | {statistics.median(ratios):.2f} |")

        # Compose latency: a miss composes (after DELETE), a hit returns the cached entry.
        miss, hit, compose_ms = [], [], []
        subsets = [[i, j, k] for i in range(10) for j in range(i + 1, 10) for k in range(j + 1, 10)][:40]
        for cls in subsets:
            ident = MODEL + "~" + "-".join(map(str, cls)) + "~0.9"
            http("DELETE", base + "/v1/compose/" + ident)
            body = json.dumps({"model": MODEL, "classes": cls}).encode()
            st, d, ms = http("POST", base + "/v1/compose", body)
            assert st == 200 and not json.loads(d)["cached"], d
            miss.append(ms)
            compose_ms.append(json.loads(d)["compose_ms"])
            st, d, ms = http("POST", base + "/v1/compose", body)
            assert st == 200 and json.loads(d)["cached"], d
            hit.append(ms)
        print(f"\nPOST /v1/compose, 3-class subsets of {MODEL}, {len(subsets)} each, medians: "
              f"miss {statistics.median(miss):.2f} ms end to end (compose_ms {statistics.median(compose_ms):.3f}), "
              f"hit {statistics.median(hit):.2f} ms end to end (urllib client, new connection per request)")

        # Overhead over the engine: end-to-end time against the server's own compute time.
        e2e, compute = [], []
        payload = open(bodies["full"], "rb").read()
        for _ in range(300):
            st, d, ms = http("POST", base + "/v1/infer", payload)
            e2e.append(ms)
            compute.append(json.loads(d)["compute_ms"])
        print(f"batch-1 JSON /v1/infer, 300 sequential requests, medians: end to end {statistics.median(e2e):.3f} ms, "
              f"engine compute {statistics.median(compute):.3f} ms")
    finally:
        for p in (server, baseline):
            p.send_signal(signal.SIGTERM)
        for p in (server, baseline):
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
        if server.returncode != 0:
            print(f"moda-server exited with {server.returncode}", file=sys.stderr)


if __name__ == "__main__":
    main()
