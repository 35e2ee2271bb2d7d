"""Checks the deployment files against each other and against moda-server.

    check_deploy.py REPO_ROOT MODA_SERVER

The Dockerfile, the Kubernetes Deployment, Service and HPA, and the KServe
ServingRuntime and InferenceService must agree on the port, the protocol,
the health paths, the user and the drain time; every argument they give
must be one moda-server knows; and moda-server, started with each
manifest's arguments (only the registry, host and port changed to run
here), must answer 200 on each probe path and on the metrics path.
Prints one line per check; exits 1 on a failure.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import yaml

failures = 0


def check(what, ok, detail=""):
    global failures
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok else f" ({detail})"))
    failures += not ok


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def dockerfile(path):
    """The runtime stage's EXPOSE, USER, HEALTHCHECK URL and ENTRYPOINT."""
    text = re.sub(r"\\\n", " ", open(path).read())
    stage = text.split("\nFROM ")[-1]
    out = {"expose": int(re.search(r"^EXPOSE (\d+)", stage, re.M).group(1)),
           "user": int(re.search(r"^USER (\d+)", stage, re.M).group(1)),
           "health": re.search(r"^HEALTHCHECK .*?(http://\S+?)\"", stage, re.M).group(1),
           "entrypoint": json.loads(re.search(r"^ENTRYPOINT (\[.*\])", stage, re.M).group(1))}
    return out


def arg_value(args, flag, default=None):
    """The last value given for --flag, as moda-server reads it."""
    value = default
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
    return value


def server_options(server):
    """Options and defaults from moda-server --help."""
    text = subprocess.run([server, "--help"], capture_output=True, text=True, check=True).stdout
    opts = {}
    for m in re.finditer(r"^  (--[a-z-]+)(?: \S+)?\s+(.*)$", text, re.M):
        default = re.search(r"\(([^()]*)\)$", m.group(2))
        opts[m.group(1)] = default.group(1) if default else None
    return opts


def run_server(server, args, env_extra, paths, what):
    """Starts moda-server with a manifest's args, overridden to run here,
    and GETs each path."""
    here = list(args) + ["--host", "127.0.0.1", "--port", "0", "--quiet"]
    env = dict(os.environ, **env_extra)
    env.pop("MODA_REGISTRY_CACHE", None)
    proc = subprocess.Popen([server] + here, stderr=subprocess.PIPE, text=True, env=env)
    port = None
    deadline = time.time() + 60
    while time.time() < deadline and port is None:
        line = proc.stderr.readline()
        if not line:
            break
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        port = m and int(m.group(1))
    check(f"{what}: moda-server starts with its arguments", port is not None, " ".join(here))
    if port:
        for path in paths:
            try:
                code = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).status
            except Exception as e:
                code = repr(e)
            check(f"{what}: GET {path} answers 200", code == 200, code)
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "hung"
    check(f"{what}: SIGTERM exits 0", rc == 0, rc)


def main():
    root, server = sys.argv[1], sys.argv[2]
    registry = os.path.join(root, "models")
    opts = server_options(server)
    drain_default = int(opts["--drain-seconds"])

    df = dockerfile(f"{root}/docker/Dockerfile")
    port = df["expose"]
    check("Dockerfile: ENTRYPOINT serves on the EXPOSEd port, on all addresses",
          arg_value(df["entrypoint"], "--port") == str(port) and arg_value(df["entrypoint"], "--host") == "0.0.0.0",
          df["entrypoint"])
    check("Dockerfile: HEALTHCHECK asks /v2/health/ready on that port",
          df["health"] == f"http://127.0.0.1:{port}/v2/health/ready", df["health"])
    check("Dockerfile: the user is not root", df["user"] != 0, df["user"])
    cuda = dockerfile(f"{root}/docker/Dockerfile.cuda")
    check("Dockerfile.cuda: the same port, user, health check and entrypoint as the CPU image",
          cuda == df, f"{cuda} vs {df}")

    # Kubernetes
    dep = load(f"{root}/docker/k8s/deployment.yaml")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    args = c.get("args", [])
    check("Deployment: every argument is a moda-server option",
          all(a in opts for a in args if a.startswith("--")), args)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check("Deployment: the container port is the image's", list(ports.values()) == [port], ports)
    ready, live = c["readinessProbe"]["httpGet"], c["livenessProbe"]["httpGet"]
    check("Deployment: readiness on /v2/health/ready, liveness on /v2/health/live, on that port",
          ready["path"] == "/v2/health/ready" and live["path"] == "/v2/health/live"
          and ports.get(ready["port"], ready["port"]) == port and ports.get(live["port"], live["port"]) == port,
          (ready, live))
    drain = int(arg_value(args, "--drain-seconds", drain_default))
    check(f"Deployment: terminationGracePeriodSeconds is above the drain ({drain} s)",
          pod["terminationGracePeriodSeconds"] > drain, pod["terminationGracePeriodSeconds"])
    sc = {**pod.get("securityContext", {}), **c.get("securityContext", {})}
    check("Deployment: non-root, the image's uid, read-only root file system",
          sc.get("runAsNonRoot") is True and sc.get("runAsUser") == df["user"]
          and sc.get("readOnlyRootFilesystem") is True, sc)
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
    check("Deployment: the registry mirror cache is a writable volume",
          env.get("MODA_REGISTRY_CACHE") in mounts, (env, mounts))
    check("Deployment: resource requests", bool(c.get("resources", {}).get("requests")), c.get("resources"))

    svc = load(f"{root}/docker/k8s/service.yaml")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    check("Service: selects the Deployment's pods, on its named port",
          all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
          and all(p["targetPort"] in ports for p in svc["spec"]["ports"]), svc["spec"])
    hpa = load(f"{root}/docker/k8s/hpa.yaml")
    ref = hpa["spec"]["scaleTargetRef"]
    check("HorizontalPodAutoscaler: scales the Deployment",
          ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"], ref)

    # KServe
    rt = load(f"{root}/docker/k8s/kserve/servingruntime.yaml")
    isvc = load(f"{root}/docker/k8s/kserve/inferenceservice.yaml")
    rc = rt["spec"]["containers"][0]
    rargs = rc["command"][1:] + rc["args"] if rc.get("command") else rc["args"]
    check("ServingRuntime: runs moda-server", rc.get("command", df["entrypoint"])[0] == "moda-server", rc.get("command"))
    check("ServingRuntime: speaks protocol v2", "v2" in rt["spec"]["protocolVersions"], rt["spec"]["protocolVersions"])
    check("ServingRuntime: every argument is a moda-server option",
          all(a in opts for a in rargs if a.startswith("--")), rargs)
    rport = int(arg_value(rargs, "--port", opts["--port"]))
    check("ServingRuntime: moda-server's --port is the container port, on all addresses",
          [p["containerPort"] for p in rc["ports"]] == [rport] and arg_value(rargs, "--host") == "0.0.0.0",
          (rargs, rc["ports"]))
    check("ServingRuntime: the registry is KServe's model mount, /mnt/models",
          arg_value(rargs, "--registry") == "/mnt/models", rargs)
    rready, rlive = rc["readinessProbe"]["httpGet"], rc["livenessProbe"]["httpGet"]
    check("ServingRuntime: readiness and liveness on the v2 health paths and that port",
          (rready["path"], rlive["path"]) == ("/v2/health/ready", "/v2/health/live")
          and rready["port"] == rport and rlive["port"] == rport, (rready, rlive))
    ann = rt["metadata"].get("annotations", {})
    check("ServingRuntime: Prometheus scrapes /metrics on that port",
          ann.get("prometheus.kserve.io/port") == str(rport) and ann.get("prometheus.kserve.io/path") == "/metrics", ann)
    model = isvc["spec"]["predictor"]["model"]
    formats = {f["name"] for f in rt["spec"]["supportedModelFormats"]}
    check("InferenceService: uses the runtime, a format it supports, and protocol v2",
          model["runtime"] == rt["metadata"]["name"] and model["modelFormat"]["name"] in formats
          and model["protocolVersion"] in rt["spec"]["protocolVersions"], model)
    rdrain = int(arg_value(rargs, "--drain-seconds", drain_default))
    grace = isvc["spec"]["predictor"].get("terminationGracePeriodSeconds", 30)
    check(f"InferenceService: terminationGracePeriodSeconds is above the drain ({rdrain} s)", grace > rdrain, grace)

    # The server itself, with each manifest's arguments.
    run_server(server, args, {"MODA_REGISTRY": registry},
               [ready["path"], live["path"], "/metrics"], "Deployment")
    run_server(server, rargs + ["--registry", registry], {},
               [rready["path"], rlive["path"], ann.get("prometheus.kserve.io/path", "/metrics"), "/v2"],
               "ServingRuntime")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
