"""Behaviour kept: the same runs on two versions of numpyrnn give bit-identical numbers.

    git worktree add /tmp/before <commit>
    python tools/ab_behaviour.py /tmp/before              # record both, then compare
    python tools/ab_behaviour.py record OUT.json [CHECKOUT] # one version (default: this tree)
    python tools/ab_behaviour.py compare BEFORE.json AFTER.json

A fixed list of runs (RUNS: train on adding, sentiment and charlm, a resumed run, compare
--quick, sweep --quick, gradflow, export; then the grader on every realistic mistake of
tests/fixtures/exercises), each a command in a fresh process with the checkout on PYTHONPATH,
in a folder of its own.  What they wrote is read back as numbers: every array of every .npz
(weights, optimizer state; by SHA-256 of dtype, shape and bytes), every number and string of
every .json and .jsonl (histories, metrics, results), each at its path ("train_adding/
metrics.json:test_mse"), and each grade report's text.  Timings, the machine, the load and the
version are left out (VOLATILE), and so are the checkpoint's own records of the configuration
(a change of how settings are stored is not a change of behaviour; the weights it produced are
compared).

``compare`` prints every value that differs (exit 1 if any does) and, apart, the paths that
only one side has (a field added or removed: listed, not a failure).  Takes about 3 minutes a
version on 2 cores.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: (name, numpyrnn command line); each runs in its own folder, ``{out}`` that folder
RUNS = [
    ("train_adding", "train --task adding --cell lstm --steps 60 --eval-every 30 --seq-len 20 --out {out}"),
    ("train_adding_resumed", "train --task adding --cell gru --steps 30 --eval-every 15 --seq-len 20 --out {out} "
                             "&& numpyrnn train --task adding --cell gru --steps 60 --eval-every 15 --seq-len 20 "
                             "--out {out} --resume"),
    ("train_sentiment", "train --task sentiment --cell gru --steps 40 --eval-every 20 --recurrent-dropout 0.2 "
                        "--input-dropout 0.1 --embedding-dropout 0.1 --out {out}"),
    ("train_sentiment_rnn", "train --task sentiment --cell rnn --nonlinearity relu --layers 2 --dropout 0.2 "
                            "--bidirectional --steps 30 --eval-every 15 --out {out}"),
    ("train_charlm", "train --task charlm --cell rnn --steps 40 --eval-every 20 --out {out}"),
    ("train_variant", "train --task adding --cell lstm_cifg --steps 40 --eval-every 20 --seq-len 20 "
                      "--impl generic --out {out}"),
    ("compare_quick", "compare --task adding --quick --seeds 1 --out {out}"),
    ("sweep_quick", "sweep --quick --lengths 10,20 --out {out}"),
    ("gradflow", "gradflow --seq-len 30 --steps 20 --out {out}"),
    ("export", "train --task sentiment --cell lstm --steps 20 --eval-every 20 --out {out} "
               "&& numpyrnn export --to torch {out}/model.npz {out}/model.pt"),
]

#: keys whose values are timings or describe the machine, not the computation
VOLATILE = re.compile(r"seconds|time|load|machine|version|python|elapsed|date|wall|cpu|threads|device_name|command")
#: entries of a checkpoint that record the configuration (compared through what it produced)
CONFIG_ENTRIES = ("format", "format_version", "config", "meta", "trainer", "checksum", "array/plan")


def _flatten(value, path, out):
    if isinstance(value, dict) and "seconds" in str(value.get("measure", "")):
        return                                   # a claim about speed: a timing
    if isinstance(value, dict):
        for k, v in value.items():
            if not VOLATILE.search(str(k)):
                _flatten(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(v, f"{path}[{i}]", out)
    else:
        out[path] = value


def _digest(array):
    a = np.ascontiguousarray(array)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()[:16]


def read_folder(folder):
    """Every number a run wrote, by path."""
    found = {}
    for base, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(base, name)
            rel = os.path.relpath(path, folder)
            if name.endswith(".npz"):
                with np.load(path, allow_pickle=False) as z:
                    for key in z.files:
                        if key in CONFIG_ENTRIES or key.startswith("array/plan"):
                            continue
                        if z[key].dtype.kind == "U" and z[key].ndim == 0:   # JSON text (a history)
                            _flatten(json.loads(str(z[key])), f"{rel}:{key}", found)
                        else:
                            found[f"{rel}:{key}"] = _digest(z[key])
            elif name.endswith(".json"):
                with open(path) as f:
                    _flatten(json.load(f), f"{rel}:", found)
            elif name.endswith(".jsonl"):
                with open(path) as f:
                    for i, line in enumerate(f):
                        _flatten(json.loads(line), f"{rel}:[{i}]", found)
    return found


def record(checkout):
    """Run every run of RUNS (and the grader) with ``checkout`` on PYTHONPATH; returns {path: value}."""
    env = {**os.environ, "PYTHONPATH": checkout, "NUMPYRNN_DEVICE": "cpu"}
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in RUNS:
            out = os.path.join(tmp, name)
            line = "numpyrnn " + command.format(out=out)
            line = line.replace("numpyrnn ", f"{sys.executable} -m numpyrnn ")
            done = subprocess.run(line + " --quiet" * ("export" not in name and "&&" not in line),
                                  shell=True, env=env, cwd=tmp, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
            found.update({f"{name}/{k}": v for k, v in read_folder(out).items()})
            print(f"  {name}: done", file=sys.stderr)
        grades = subprocess.run([sys.executable, "-c", GRADE, os.path.join(ROOT, "tests", "fixtures", "exercises")],
                                env=env, cwd=tmp, capture_output=True, text=True)
        if grades.returncode != 0:
            raise SystemExit(f"grading failed:\n{grades.stderr[-3000:]}")
        found.update(json.loads(grades.stdout))
        print("  grade: done", file=sys.stderr)
    return found


#: the grader on every realistic mistake and every solution (in the checkout's numpyrnn)
GRADE = r"""
import importlib.util, json, os, re, sys, types
folder = sys.argv[1]
from numpyrnn import exercises
spec = importlib.util.spec_from_file_location("realistic", os.path.join(folder, "realistic_mistakes.py"))
realistic = importlib.util.module_from_spec(spec); spec.loader.exec_module(realistic)
def module_of(source, name):
    m = types.ModuleType(name); m.__file__ = name
    exec(compile(source, name, "exec"), m.__dict__); return m
out = {}
for mistake in realistic.MISTAKES:
    source = open(os.path.join(folder, mistake["file"])).read().replace(*mistake["edit"])
    report = exercises.grade(module_of(source, "mine.py"), mistake["cell"], mistake["part"])
    out["grade/" + mistake["id"]] = str(report)
for name in sorted(os.listdir(folder)):
    if name.endswith("_solution.py"):
        cell = name.split("_")[0]; part = "sequence" if "sequence" in name else "step"
        report = exercises.grade(module_of(open(os.path.join(folder, name)).read(), name), cell, part)
        out["grade/" + name] = str(report)
print(json.dumps(out))
"""


def compare(before, after):
    """Print what differs; returns the number of values that differ."""
    differ = [k for k in sorted(set(before) & set(after)) if before[k] != after[k]]
    only_before = sorted(set(before) - set(after))
    only_after = sorted(set(after) - set(before))
    for k in differ:
        print(f"DIFFERS {k}:\n    before {before[k]!r}\n    after  {after[k]!r}")
    for label, keys in (("only before", only_before), ("only after", only_after)):
        if keys:
            print(f"{label} ({len(keys)} paths, a field added or removed):")
            for k in keys[:40]:
                print(f"    {k}")
            if len(keys) > 40:
                print(f"    ... and {len(keys) - 40} more")
    same = len(set(before) & set(after)) - len(differ)
    print(f"{same} values identical, {len(differ)} differ; {len(only_before)} only before, "
          f"{len(only_after)} only after")
    return len(differ)


def main(argv):
    if argv[:1] == ["record"] and len(argv) in (2, 3):
        checkout = os.path.abspath(argv[2]) if len(argv) == 3 else ROOT
        with open(argv[1], "w") as f:
            json.dump(record(checkout), f, indent=0, sort_keys=True)
        return 0
    if argv[:1] == ["compare"] and len(argv) == 3:
        with open(argv[1]) as a, open(argv[2]) as b:
            return 1 if compare(json.load(a), json.load(b)) else 0
    if len(argv) == 1 and os.path.isdir(argv[0]):
        print(f"before: {argv[0]}", file=sys.stderr)
        before = record(os.path.abspath(argv[0]))
        print(f"after: {ROOT}", file=sys.stderr)
        after = record(ROOT)
        return 1 if compare(before, after) else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
