#!/usr/bin/env python3
"""Hostile bytes in every place a request can carry them.

Invalid UTF-8 and long multi-byte names in the path, the query, headers and
JSON strings must get a 4xx with the error shape of the route (v1
{"error":{"code","message"}}, v2 {"error": "..."}), never a 5xx: error
messages that quote the request must stay valid UTF-8 when cut short.

    edge_check.py HOST:PORT
"""
import http.client
import json
import sys

LONG = "a" + "\u00e9" * 100  # 201 bytes of UTF-8: any byte cut may split a character
U8 = bytes(784)


def request(hostport, method, path, body=None, headers=None):
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)  # bytes values go out as they are
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read()
    finally:
        conn.close()


def js(doc):
    return json.dumps(doc, ensure_ascii=False).encode()


JSON = {"Content-Type": "application/json"}
OCTET = {"Content-Type": "application/octet-stream"}
V2_INPUT = {"name": "input", "shape": [1, 1, 28, 28], "datatype": "UINT8", "data": [0] * 784}

CASES = [
    # (method, raw path, body, headers)
    ("GET", "/v1/models/%FF", None, {}),
    ("GET", "/v1/models/" + "%C3%A9" * 100, None, {}),
    ("DELETE", "/v1/compose/%FF~1~0.9", None, {}),
    ("GET", "/v2/models/%FF", None, {}),
    ("GET", "/v2/models/fmnist-lenet5/versions/%FF/ready", None, {}),
    ("GET", "/v2/models/fmnist-lenet5/versions/" + "%C3%A9" * 100, None, {}),
    ("POST", "/v1/compose", js({"model": LONG, "classes": [1]}), JSON),
    ("POST", "/v1/compose", js({"model": "fmnist-lenet5", "classes": [LONG]}), JSON),
    ("POST", "/v1/compose", b'{"model":"fmnist-lenet5","classes":["\xff"]}', JSON),
    ("POST", "/v1/infer", js({"model": LONG, "inputs": [0.0], "shape": [1, 1, 1, 1]}), JSON),
    ("POST", "/v1/infer", js({"id": LONG, "inputs": [0.0], "shape": [1, 1, 1, 1]}), JSON),
    ("POST", "/v1/infer?model=%FF&dtype=uint8&shape=1,1,28,28", U8, OCTET),
    ("POST", "/v1/infer?model=fmnist-lenet5&classes=%FF&dtype=uint8&shape=1,1,28,28", U8, OCTET),
    ("POST", "/v1/infer?model=fmnist-lenet5&dtype=uint8", U8, dict(OCTET, **{"X-Moda-Shape": b"\xff"})),
    ("POST", "/v1/infer?model=fmnist-lenet5&shape=1,1,28,28", U8, dict(OCTET, **{"X-Moda-Dtype": b"\xff"})),
    ("POST", "/v2/models/%FF/infer", js({"inputs": [V2_INPUT]}), JSON),
    ("POST", "/v2/models/fmnist-lenet5/infer", js({"inputs": [dict(V2_INPUT, name=LONG)]}), JSON),
    ("POST", "/v2/models/fmnist-lenet5/infer", js({"inputs": [dict(V2_INPUT, datatype=LONG)]}), JSON),
    ("POST", "/v2/models/fmnist-lenet5/infer", js({"inputs": [V2_INPUT], "outputs": [{"name": LONG}]}), JSON),
]


def main():
    hostport = sys.argv[1]
    bad = 0
    for method, path, body, headers in CASES:
        status, ctype, data = request(hostport, method, path, body, headers)
        what = "%s %s" % (method, path[:70])
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        v2 = path.startswith("/v2/")
        shape_ok = isinstance(doc, dict) and list(doc) == ["error"] and (
            isinstance(doc["error"], str) if v2 else
            isinstance(doc["error"], dict) and sorted(doc["error"]) == ["code", "message"])
        if not (400 <= status < 500) or not ctype.startswith("application/json") or not shape_ok:
            print("FAIL: %s -> %d %s %r" % (what, status, ctype, data[:160]))
            bad += 1
    if bad:
        raise SystemExit("edge_check: %d of %d requests answered wrongly" % (bad, len(CASES)))
    print("edge_check: %d hostile requests answered with 4xx and the route's error shape" % len(CASES))


if __name__ == "__main__":
    main()
