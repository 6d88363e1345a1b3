"""Per-step latency of a forecaster fed one value at a time (the seed's real-time use): each
cell's SequenceRegressor stream (``model.stream().step(x_t)``) beside torch.nn's RNN, LSTM and
GRU with a Linear head, stepped the same way (one value in, the state carried, one forecast out),
batch 1, taking turns in one process.

    python tools/latency.py [STEPS=10000] [HIDDEN=64] [ROUNDS=3] [DTYPE=float32] [--out latency.json]

Prints, per cell, the median and the 99th percentile of the per-step time (µs) over all rounds'
steps, for numpyrnn (its thread policy: the loops on one BLAS thread) and for torch with its
default intra-op threads and with one.  torch is needed (``pip install torch``).  ``--out``
also writes them to a JSON file, with the machine: what ``tools/claims_across.py --latency``
puts on the use-case table's real-time row.
"""
import json
import sys
import time

import numpy as np

import numpyrnn
from numpyrnn import machine

CELLS = ("rnn", "lstm", "gru")


def _numpyrnn_steps(cell, hidden, dtype, values):
    model = numpyrnn.SequenceRegressor(cell, input_size=1, hidden_size=hidden, per_step=True, seed=0,
                                       dtype=dtype, device="cpu")
    model.eval()
    times = np.empty(len(values))
    with model.stream() as stream:                   # the thread policy held once, for the whole stream
        for t, v in enumerate(values):
            start = time.perf_counter_ns()
            stream.step(v)
            times[t] = time.perf_counter_ns() - start
    return times / 1e3


def _torch_steps(torch, cell, hidden, dtype, values, threads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        layer = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](1, hidden)
        head = torch.nn.Linear(hidden, 1)
        layer, head = layer.to(getattr(torch, dtype)).eval(), head.to(getattr(torch, dtype)).eval()
        inputs = torch.tensor(values, dtype=getattr(torch, dtype)).reshape(-1, 1, 1, 1)
        times = np.empty(len(values))
        state = None
        with torch.no_grad():
            for t in range(len(values)):
                start = time.perf_counter_ns()
                y, state = layer(inputs[t], state)
                head(y)
                times[t] = time.perf_counter_ns() - start
        return times / 1e3
    finally:
        torch.set_num_threads(previous)


def main(argv):
    out = None
    if "--out" in argv:
        at = argv.index("--out")
        out, argv = argv[at + 1], argv[:at] + argv[at + 2:]
    steps = int(argv[1]) if len(argv) > 1 else 10_000
    hidden = int(argv[2]) if len(argv) > 2 else 64
    rounds = int(argv[3]) if len(argv) > 3 else 3
    dtype = argv[4] if len(argv) > 4 else "float32"
    import torch

    m = machine.describe()
    print(f"CPU {m['cpu']}, SIMD {m['simd']}; BLAS {m['blas']}; numpy {m['numpy']}; torch {torch.__version__} "
          f"(default threads {torch.get_num_threads()}); {dtype}, batch 1, hidden {hidden}, {steps} steps x {rounds} rounds")
    values = np.sin(np.arange(steps) / 7.0)
    record = {"machine": m, "torch": torch.__version__, "dtype": dtype, "batch": 1, "hidden": hidden, "steps": steps,
              "rounds": rounds, "cells": {}}
    print(f"{'cell':<5} {'numpyrnn median µs':>19} {'p99':>7} {'torch median µs':>16} {'p99':>7} "
          f"{'torch 1 thread median':>22} {'p99':>7} {'numpyrnn ÷ torch':>17}")
    for cell in CELLS:
        ours, theirs, theirs_one = [], [], []
        for _ in range(rounds):                      # taking turns: the machine's drift spreads over all three
            ours.append(_numpyrnn_steps(cell, hidden, dtype, values))
            theirs.append(_torch_steps(torch, cell, hidden, dtype, values, torch.get_num_threads()))
            theirs_one.append(_torch_steps(torch, cell, hidden, dtype, values, 1))
        stats = [(np.median(np.concatenate(r)), np.percentile(np.concatenate(r), 99)) for r in (ours, theirs, theirs_one)]
        record["cells"][cell] = {name: {"median": float(median), "p99": float(p99)}
                                 for name, (median, p99) in zip(("numpyrnn", "torch", "torch_1_thread"), stats)}
        print(f"{cell:<5} {stats[0][0]:19.1f} {stats[0][1]:7.1f} {stats[1][0]:16.1f} {stats[1][1]:7.1f} "
              f"{stats[2][0]:22.1f} {stats[2][1]:7.1f} {stats[0][0] / min(stats[1][0], stats[2][0]):17.2f}", flush=True)
    if out:
        with open(out, "w") as f:
            json.dump(record, f, indent=1)
        print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv)
