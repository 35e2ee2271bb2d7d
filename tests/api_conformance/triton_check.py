#!/usr/bin/env python3
"""v2 inference through the stock Triton client, checked against /v1/infer.

Runs the first Fashion-MNIST test image (examples/ankle-boot.u8) through a
composed model in every way the server accepts it: v2 JSON and binary
tensors, as UINT8 raw pixels and as FP32 normalised pixels (28x28, and
32x32 with the pad border made by hand), and /v1/infer with the JSON
example and the raw binary body. All must give the same probabilities.
The same image as a PNG body (examples/ankle-boot.png, lossless) must give
exactly the raw binary body's answer, and as a JPEG body
(examples/ankle-boot.jpg) the same top class.

    triton_check.py HOST:PORT REPO_ROOT
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

MODEL = "fmnist-lenet5"
CLASSES = ["Sneaker", "Bag", "Ankle boot"]  # parent indices 7, 8, 9
COMPOSED = MODEL + "~7-8-9~0.9"
OUTPUTS = ("probabilities", "logits", "class_index")
TOL = 1e-5  # float32 noise between equivalent input encodings


def fail(msg):
    raise SystemExit("FAIL: " + msg)


def check(cond, msg):
    if not cond:
        fail(msg)


def http(base, method, path, body=None, headers=None):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def v1_json(base, method, path, doc=None):
    body = None if doc is None else json.dumps(doc).encode()
    status, headers, data = http(base, method, path, body, {"Content-Type": "application/json"})
    check(headers.get_content_type() == "application/json", "%s %s: Content-Type %s"
          % (method, path, headers.get("Content-Type")))
    return status, json.loads(data)


def v1_probabilities(result):
    check(result["classes"] == CLASSES, "v1 classes %r" % result["classes"])
    check(len(result["outputs"]) == 1, "v1: %d outputs for one sample" % len(result["outputs"]))
    return np.array(result["outputs"][0]["probabilities"], dtype=np.float64)


def v2_infer(client, datatype, pixels, binary):
    shape = list(pixels.shape)
    inp = httpclient.InferInput("input", shape, datatype)
    inp.set_data_from_numpy(pixels, binary_data=binary)
    outs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in OUTPUTS]
    res = client.infer(COMPOSED, [inp], outputs=outs, request_id="conformance")
    resp = res.get_response()
    check(resp["model_name"] == COMPOSED, "v2 model_name %r" % resp["model_name"])
    check(resp.get("model_version") == "1", "v2 model_version %r" % resp.get("model_version"))
    check(resp.get("id") == "conformance", "v2 id not echoed: %r" % resp.get("id"))
    for o in resp["outputs"]:
        if binary:
            check("data" not in o and o["parameters"]["binary_data_size"] > 0,
                  "binary output %s: %r" % (o["name"], o))
        else:
            check("data" in o, "JSON output %s without data" % o["name"])
    got = {name: res.as_numpy(name) for name in OUTPUTS}
    check(got["probabilities"].shape == (1, 3) and got["probabilities"].dtype == np.float32,
          "probabilities %s %s" % (got["probabilities"].shape, got["probabilities"].dtype))
    check(got["logits"].shape == (1, 3) and got["logits"].dtype == np.float32,
          "logits %s %s" % (got["logits"].shape, got["logits"].dtype))
    check(got["class_index"].shape == (1,) and got["class_index"].dtype == np.int32,
          "class_index %s %s" % (got["class_index"].shape, got["class_index"].dtype))
    probs = got["probabilities"][0].astype(np.float64)
    logits = got["logits"][0].astype(np.float64)
    soft = np.exp(logits - logits.max())
    soft /= soft.sum()
    check(np.allclose(soft, probs, atol=TOL), "softmax(logits) %s != probabilities %s" % (soft, probs))
    check(int(got["class_index"][0]) == int(np.argmax(probs)), "class_index != argmax")
    return probs


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    hostport, root = sys.argv[1], sys.argv[2]
    base = "http://" + hostport
    raw = open(os.path.join(root, "examples", "ankle-boot.u8"), "rb").read()
    check(len(raw) == 784, "ankle-boot.u8 is %d bytes" % len(raw))
    image = np.frombuffer(raw, dtype=np.uint8).reshape(1, 1, 28, 28)

    client = httpclient.InferenceServerClient(url=hostport, network_timeout=60.0)
    check(client.is_server_live(), "is_server_live")
    check(client.is_server_ready(), "is_server_ready")
    meta = client.get_server_metadata()
    check("binary_tensor_data" in meta.get("extensions", []), "server extensions %r" % meta)

    # The normalisation the server applies to uint8 pixels.
    status, model = v1_json(base, "GET", "/v1/models/" + MODEL)
    check(status == 200, "GET /v1/models/%s: %d" % (MODEL, status))
    inp = model["input"]
    mean, std, pad = inp["mean"][0], inp["std"][0], inp["pad"]
    check(inp["channels"] == 1 and inp["height"] == 28 + 2 * pad, "input spec %r" % inp)

    # A composed id that was never composed is composed on first use.
    md = client.get_model_metadata(COMPOSED)
    check(md["name"] == COMPOSED, "metadata name %r" % md["name"])
    check(md["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, inp["height"], inp["width"]]}],
          "metadata inputs %r" % md["inputs"])
    check([(o["name"], o["datatype"], o["shape"]) for o in md["outputs"]]
          == [("probabilities", "FP32", [-1, 3]), ("logits", "FP32", [-1, 3]), ("class_index", "INT32", [-1])],
          "metadata outputs %r" % md["outputs"])
    md1 = client.get_model_metadata(COMPOSED, model_version="1")
    check(md1 == md, "versions/1 metadata differs")
    check(client.is_model_ready(COMPOSED), "is_model_ready")

    # The v2 error shape reaches the client as a message.
    try:
        client.get_model_metadata("no-such-model")
        fail("metadata of an unknown model succeeded")
    except InferenceServerException as e:
        check(e.status() == "404", "unknown model status %r" % e.status())
        check(isinstance(e.message(), str) and e.message(), "unknown model message %r" % e.message())

    normalised = ((image.astype(np.float32) / np.float32(255) - np.float32(mean)) / np.float32(std)).astype(np.float32)
    black = np.float32((0.0 - mean) / std)
    padded = np.full((1, 1, 28 + 2 * pad, 28 + 2 * pad), black, dtype=np.float32)
    padded[:, :, pad:pad + 28, pad:pad + 28] = normalised

    results = {}
    for binary in (False, True):
        mode = "binary" if binary else "json"
        results["v2 UINT8 " + mode] = v2_infer(client, "UINT8", image, binary)
        results["v2 FP32 " + mode] = v2_infer(client, "FP32", normalised, binary)
    results["v2 FP32 32x32 binary"] = v2_infer(client, "FP32", padded, True)

    # /v1/infer, JSON example file (composes Sneaker, Bag, Ankle boot on the fly).
    doc = json.load(open(os.path.join(root, "examples", "infer-ankle-boot.json")))
    status, res = v1_json(base, "POST", "/v1/infer", doc)
    check(status == 200, "v1 JSON infer: %d %r" % (status, res))
    check(res["id"] == COMPOSED, "v1 JSON infer id %r" % res["id"])
    results["v1 JSON uint8"] = v1_probabilities(res)
    check(res["outputs"][0]["class"] == "Ankle boot", "v1 predicts %r" % res["outputs"][0]["class"])
    check(res["outputs"][0]["index"] == 2 and res["outputs"][0]["parent_index"] == 9,
          "v1 output indices %r" % res["outputs"][0])

    # /v1/infer, raw binary body (query parameters carry model, classes, shape).
    query = urllib.parse.urlencode({"model": MODEL, "classes": ",".join(CLASSES), "dtype": "uint8",
                                    "shape": "1,1,28,28"})
    status, headers, data = http(base, "POST", "/v1/infer?" + query, raw,
                                 {"Content-Type": "application/octet-stream"})
    check(status == 200, "v1 binary infer: %d %r" % (status, data[:200]))
    results["v1 binary uint8"] = v1_probabilities(json.loads(data))
    # Same, as float32 with the shape and dtype in headers, by id.
    status, headers, data = http(base, "POST", "/v1/infer?id=" + urllib.parse.quote(COMPOSED),
                                 normalised.astype("<f4").tobytes(),
                                 {"Content-Type": "application/octet-stream", "X-Moda-Shape": "1,1,28,28",
                                  "X-Moda-Dtype": "float32"})
    check(status == 200, "v1 binary float32 infer: %d %r" % (status, data[:200]))
    results["v1 binary float32"] = v1_probabilities(json.loads(data))

    # /v1/infer, image bodies: the PNG is lossless, so exactly the raw answer;
    # the JPEG is not, so only the same class.
    for ext, ctype in (("png", "image/png"), ("jpg", "image/jpeg")):
        body = open(os.path.join(root, "examples", "ankle-boot." + ext), "rb").read()
        query = urllib.parse.urlencode({"model": MODEL, "classes": ",".join(CLASSES)})
        status, headers, data = http(base, "POST", "/v1/infer?" + query, body, {"Content-Type": ctype})
        check(status == 200, "v1 %s infer: %d %r" % (ctype, status, data[:200]))
        probs = v1_probabilities(json.loads(data))
        if ext == "png":
            check(np.array_equal(probs, results["v1 binary uint8"]),
                  "PNG body %s != raw binary body %s" % (probs, results["v1 binary uint8"]))
        check(int(np.argmax(probs)) == 2, "the %s ankle boot is classified as %s"
              % (ext.upper(), CLASSES[int(np.argmax(probs))]))
    status, headers, data = http(base, "POST", "/v1/infer?model=" + MODEL, b"\x89PNG\r\n\x1a\n broken",
                                 {"Content-Type": "image/png"})
    check(status == 400 and json.loads(data)["error"]["code"] == "invalid_image",
          "broken PNG: %d %r" % (status, data[:200]))

    ref_name = "v1 JSON uint8"
    ref = results[ref_name]
    check(int(np.argmax(ref)) == 2, "the ankle boot is classified as %s" % CLASSES[int(np.argmax(ref))])
    for name, probs in results.items():
        check(np.allclose(probs, ref, atol=TOL), "%s %s != %s %s" % (name, probs, ref_name, ref))
    print("triton_check: %d inference paths agree: %s" % (len(results), np.array2string(ref, precision=6)))
    check_extensions(client, inp)


def check_extensions(client, inp):
    """Triton's model_configuration, statistics and model_repository
    extensions through tritonclient's own calls."""
    ext = client.get_server_metadata()["extensions"]
    for name in ("model_configuration", "statistics", "model_repository"):
        check(name in ext, "extension %s not listed: %r" % (name, ext))

    cfg = client.get_model_config(COMPOSED)
    check(cfg["name"] == COMPOSED and cfg["max_batch_size"] > 0, "config %r" % cfg)
    check(cfg["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [1, inp["height"], inp["width"]]}],
          "config input %r" % cfg["input"])
    check([(o["name"], o["data_type"], o["dims"]) for o in cfg["output"]]
          == [("probabilities", "TYPE_FP32", [3]), ("logits", "TYPE_FP32", [3]), ("class_index", "TYPE_INT32", [1])],
          "config outputs %r" % cfg["output"])
    check(client.get_model_config(COMPOSED, model_version="1") == cfg, "versions/1 config differs")

    # The inferences above on COMPOSED show in its statistics.
    stats = client.get_inference_statistics(COMPOSED)["model_stats"]
    check(len(stats) == 1 and stats[0]["name"] == COMPOSED and stats[0]["version"] == "1", "stats %r" % stats)
    s = stats[0]
    check(s["inference_count"] >= 4 and s["execution_count"] >= 4, "stats counts %r" % s)
    check(s["inference_stats"]["success"]["count"] >= 4 and s["inference_stats"]["success"]["ns"] > 0,
          "stats success %r" % s["inference_stats"])
    check(s["inference_stats"]["compute_infer"]["ns"] > 0, "stats compute_infer %r" % s["inference_stats"])
    every = client.get_inference_statistics()["model_stats"]
    names = [m["name"] for m in every]
    check(MODEL in names and COMPOSED in names, "all stats list %r" % names)

    # Load composes and pins; the index lists it; unload drops it.
    loaded = MODEL + "~1-4~0.8"
    index = client.get_model_repository_index()
    check({"name": MODEL, "version": "1", "state": "READY"} in index, "index %r" % index)
    check(not any(m["name"] == loaded for m in index), "%s listed before load: %r" % (loaded, index))
    client.load_model(loaded)
    check(client.is_model_ready(loaded), "is_model_ready after load")
    index = client.get_model_repository_index()
    check({"name": loaded, "version": "1", "state": "READY"} in index, "index after load %r" % index)
    check(client.get_model_config(loaded)["output"][0]["dims"] == [2], "loaded model's config")
    client.unload_model(loaded)
    index = client.get_model_repository_index()
    check(not any(m["name"] == loaded for m in index), "%s listed after unload: %r" % (loaded, index))
    for call in (lambda: client.load_model("no-such-model"), lambda: client.unload_model(MODEL)):
        try:
            call()
            fail("a bad load or unload succeeded")
        except InferenceServerException:
            pass
    print("triton_check: model_configuration, statistics and model_repository pass")


if __name__ == "__main__":
    main()
