"""Asks two moda-servers the same questions and checks that they answer alike.

    compare_servers.py URL_UNDER_TEST URL_REFERENCE EXAMPLES_DIR

Compose, binary /v1/infer, PNG and JPEG /v1/infer, JSON /v1/infer, and v2 inference through the
stock Triton client (binary UINT8 and JSON FP32), on the bundled model and
the example ankle boot. Probabilities must agree within 1e-6 and the
predicted class exactly. Prints one line per check; exits 1 on a failure.
"""

import json
import sys
import urllib.request

import numpy as np
import tritonclient.http as httpclient

MODEL = "fmnist-lenet5"
CLASSES = ["Sneaker", "Bag", "Ankle boot"]
COMPOSED = "fmnist-lenet5~7-8-9~0.9"
TOL = 1e-6

failures = 0


def check(what, ok, detail=""):
    global failures
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok else f" ({detail})"))
    failures += not ok


def post(url, body, content_type):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def same_outputs(a, b):
    """Per-sample class and probabilities of two /v1/infer answers."""
    if len(a["outputs"]) != len(b["outputs"]):
        return False
    for x, y in zip(a["outputs"], b["outputs"]):
        if x["class"] != y["class"]:
            return False
        if not np.allclose(x["probabilities"], y["probabilities"], rtol=0, atol=TOL):
            return False
    return True


def triton_infer(url, image, binary):
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    data = image if binary else image.astype(np.float32) / 255  # any FP32 tensor will do: both get the same
    inp = httpclient.InferInput("input", list(data.shape), "UINT8" if binary else "FP32")
    inp.set_data_from_numpy(data, binary_data=binary)
    outs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("probabilities", "class_index")]
    result = client.infer(COMPOSED, [inp], outputs=outs)
    return result.as_numpy("probabilities"), result.as_numpy("class_index")


def main():
    test, ref, examples = sys.argv[1], sys.argv[2], sys.argv[3]

    body = json.dumps({"model": MODEL, "classes": CLASSES}).encode()
    a, b = (post(u + "/v1/compose", body, "application/json") for u in (test, ref))
    keys = ("id", "classes", "params", "size_ratio", "flops_ratio")
    check("compose: the same composed model", all(a[k] == b[k] for k in keys) and a["id"] == COMPOSED,
          f"{ {k: a[k] for k in keys} } vs { {k: b[k] for k in keys} }")

    raw = open(f"{examples}/ankle-boot.u8", "rb").read()
    query = f"/v1/infer?model={MODEL}&classes=7,8,9&dtype=uint8&shape=1,1,28,28"
    a, b = (post(u + query, raw, "application/octet-stream") for u in (test, ref))
    check("binary /v1/infer: the same answer", same_outputs(a, b) and a["outputs"][0]["class"] == "Ankle boot",
          f"{a['outputs']} vs {b['outputs']}")

    for ext, ctype in (("png", "image/png"), ("jpg", "image/jpeg")):
        img = open(f"{examples}/ankle-boot.{ext}", "rb").read()
        a, b = (post(u + f"/v1/infer?model={MODEL}&classes=7,8,9", img, ctype) for u in (test, ref))
        check(f"{ctype} /v1/infer: the same answer", same_outputs(a, b) and a["outputs"][0]["class"] == "Ankle boot",
              f"{a['outputs']} vs {b['outputs']}")

    body = open(f"{examples}/infer-ankle-boot.json", "rb").read()
    a, b = (post(u + "/v1/infer", body, "application/json") for u in (test, ref))
    check("JSON /v1/infer: the same answer", same_outputs(a, b), f"{a['outputs']} vs {b['outputs']}")

    image = np.frombuffer(raw, dtype=np.uint8).reshape(1, 1, 28, 28)
    for binary in (True, False):
        mode = "binary UINT8" if binary else "JSON FP32"
        try:
            (pa, ia), (pb, ib) = (triton_infer(u, image, binary) for u in (test, ref))
        except Exception as e:  # a client error is a failed check, with its reason
            check(f"v2 {mode} through tritonclient", False, repr(e))
            continue
        check(f"v2 {mode} through tritonclient: the same answer",
              np.allclose(pa, pb, rtol=0, atol=TOL) and (ia == ib).all() and (not binary or int(ia[0]) == 2),
              f"{pa} {ia} vs {pb} {ib}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
