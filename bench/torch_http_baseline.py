#!/usr/bin/env python3
"""A minimal PyTorch HTTP inference server, the peer for bench/server_bench.sh.

Serves one registry model (full, all classes) on POST /v1/infer with the same
request and response shapes as moda-server's full-model path: a JSON body
{"inputs": [N][C][H][W] floats} or an application/octet-stream body of
float32 samples with ?shape=N,C,H,W, answered with the predicted class and
the probabilities. Python's ThreadingHTTPServer, torch from Debian
(python3-torch), one intra-op thread per request as moda-server's workers.

    /usr/bin/python3 bench/torch_http_baseline.py REGISTRY MODEL PORT
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from registry_torch_check import forward, parse_safetensors, read_file  # noqa: E402


def load(registry, name):
    index = json.load(open(os.path.join(registry, "index.json")))
    entry = next(m for m in index["models"] if m["name"] == name)
    man = json.load(open(os.path.join(registry, entry["manifest"])))
    raw, path = read_file(os.path.join(registry, name), man["files"]["weights"])
    weights, _ = parse_safetensors(raw, path)
    return man, weights


def main():
    registry, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    man, weights = load(registry, name)
    graph, classes = man["architecture"]["graph"], man["classes"]
    inp = man["input"]
    sample = (inp["channels"], inp["height"], inp["width"])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's
        # algorithm and the client's delayed ACK add 40 ms to every answer.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def reply(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            url = urlparse(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if url.path != "/v1/infer":
                return self.reply(404, {"error": {"code": "not_found", "message": url.path}})
            try:
                if self.headers.get("Content-Type", "").startswith("application/octet-stream"):
                    shape = [int(v) for v in parse_qs(url.query)["shape"][0].split(",")]
                    x = torch.frombuffer(bytearray(body), dtype=torch.float32).reshape(shape)
                else:
                    x = torch.tensor(json.loads(body)["inputs"], dtype=torch.float32)
                if tuple(x.shape[1:]) != sample:
                    raise ValueError(f"shape {list(x.shape)}")
            except (KeyError, ValueError, RuntimeError, TypeError) as e:
                return self.reply(400, {"error": {"code": "bad_request", "message": str(e)}})
            with torch.no_grad():
                probs = torch.softmax(forward(graph, weights, x), dim=1)
            outputs = [{"class": classes[int(p.argmax())], "index": int(p.argmax()), "probabilities": p.tolist()}
                       for p in probs]
            self.reply(200, {"id": name, "classes": classes, "outputs": outputs})

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            if not isinstance(sys.exc_info()[1], ConnectionError):  # wrk resets its connections at the end
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", port), Handler)
    print(f"torch baseline: {name} on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
