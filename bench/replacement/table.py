#!/usr/bin/env python3
"""The replacement experiment's table, in Markdown, from the JSON results
of `moda replace --json` (bench/replacement/run.sh writes them).

    table.py RESULTS_DIR [TRAIN_DIR]

Each result file is <strong>-t<t>-<state>.json. Changes are in percentage
points against the weak model: on the target class t and on the test
samples of the other classes. MODA is the patched, calibrated model;
the control is the weak model calibrated alone; CNNSplitter is the
untrained baseline. With TRAIN_DIR, the models' test accuracies (the
last row of each run's metrics.csv) are listed first.
"""
import csv
import json
import os
import re
import sys
from statistics import mean

NAME = re.compile(r"^(?P<strong>[a-z0-9]+)-t(?P<t>\d+)-(?P<state>early|late)\.json$")
STATES = {"early": "under-fitted (epoch 1)", "late": "over-fitted (last epoch)"}


def load(results):
    rows = []
    for f in sorted(os.listdir(results)):
        m = NAME.match(f)
        if not m:
            continue
        with open(os.path.join(results, f)) as fh:
            r = json.load(fh)
        a = r["accuracy"]
        w = a["weak"]
        rows.append({
            "strong": m["strong"], "t": int(m["t"]), "state": m["state"], "class": r["class"]["name"],
            "module": 100 * r["module_params"],
            "weak_t": w["class_accuracy"], "weak_o": w["other_accuracy"],
            "moda_t": a["patched_calibrated"]["class_accuracy"] - w["class_accuracy"],
            "moda_o": a["patched_calibrated"]["other_accuracy"] - w["other_accuracy"],
            "ctrl_t": a["weak_calibrated"]["class_accuracy"] - w["class_accuracy"],
            "ctrl_o": a["weak_calibrated"]["other_accuracy"] - w["other_accuracy"],
            "base_t": a["baseline"]["class_accuracy"] - w["class_accuracy"],
            "base_o": a["baseline"]["other_accuracy"] - w["other_accuracy"],
        })
    return rows


def last_metrics(run):
    path = os.path.join(run, "metrics.csv")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return rows[-1] if rows else None


def models(train):
    print("| model | epochs | train accuracy | test accuracy |")
    print("| --- | ---: | ---: | ---: |")
    for d in sorted(os.listdir(train)):
        m = last_metrics(os.path.join(train, d))
        if m:
            print(f"| {d} | {m['epoch']} | {float(m['train_acc']):.2f}% | {float(m['test_acc']):.2f}% |")
    print()


def signed(x):
    return f"{x:+.2f}"


KEYS = ["moda_t", "moda_o", "base_t", "base_o", "ctrl_t", "ctrl_o"]


def table(rows):
    print("| strong | weak state | t | class | module | weak on t | weak on others | MODA Δt | MODA Δothers "
          "| CNNSplitter Δt | CNNSplitter Δothers | control Δt | control Δothers |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in sorted(rows, key=lambda r: (r["strong"], r["state"], r["t"])):
        print(f"| {r['strong']} | {r['state']} | {r['t']} | {r['class']} | {r['module']:.1f}% | {r['weak_t']:.2f}% "
              f"| {r['weak_o']:.2f}% | " + " | ".join(signed(r[k]) for k in KEYS) + " |")
    print()
    print("Means (pp):\n")
    print("| group | runs | MODA Δt | MODA Δothers | CNNSplitter Δt | CNNSplitter Δothers | control Δt "
          "| control Δothers |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    groups = {}
    for r in rows:
        groups.setdefault(f"{r['strong']}, {STATES[r['state']]}", []).append(r)
        groups.setdefault(f"{r['strong']}, both states", []).append(r)
        groups.setdefault(f"all, {STATES[r['state']]}", []).append(r)
    groups["all"] = rows
    for g in sorted(groups, key=lambda g: (g == "all", g)):
        rs = groups[g]
        print(f"| {g} | {len(rs)} | " + " | ".join(signed(mean(r[k] for r in rs)) for k in KEYS) + " |")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: table.py RESULTS_DIR [TRAIN_DIR]")
    if len(sys.argv) == 3:
        models(sys.argv[2])
    rows = load(sys.argv[1])
    if not rows:
        sys.exit(f"table.py: no results in {sys.argv[1]}")
    table(rows)


if __name__ == "__main__":
    main()
