"""How much gradient reaches each step: ‖∂L/∂h_t‖ against t, for RNN, LSTM and GRU.

On the adding problem the loss L depends on the last step only, so ∂L/∂h_t measures how much of
the training signal travels back t steps.  It is read off the layers' own backward: run the
sequence up to step t to get h_t, run the rest of it from h_t, and the rest's backward returns
∂L/∂h_t as the gradient of its initial state (the identity that also makes truncated
backpropagation exact).  The measurement uses a float64 copy of the model, since a vanishing
gradient can fall far below float32's range.

It is measured at initialisation and after training every cell with the same budget, on the
same sequences; for the LSTM the forget gate f_t is recorded too, the factor by which dc is
carried back: its mean and 10th and 90th percentiles over sequences and units at each step, and
the gate of the few units that keep it highest (after training on the adding problem a couple
of the 64 units hold f ≈ 1 while the rest stay near 0.5: the memory lives in a few units).
"""

from __future__ import annotations

import numpy as np

from .. import losses, optim, tasks
from ..backend import asnumpy
from ..train import Trainer
from .progress import Progress


def gradient_norms(model, inputs, targets):
    """‖∂L/∂h_t‖ for t = 0..T−1 (mean over sequences of the per-sequence norm), for a
    SequenceRegressor with last-step output on time-major ``inputs`` (T, B, I)."""
    m = model.astype(np.float64).eval()
    rnn, head = m.rnn, m.head
    x = np.asarray(inputs, dtype=np.float64)
    y_true = np.asarray(targets, dtype=np.float64).reshape(x.shape[1], -1)
    T = x.shape[0]
    norms = np.empty(T)
    for t in range(T):
        _, state = rnn.forward(x[:t + 1])                   # the state after step t, h_t
        if t == T - 1:
            rest = None
            last = state[0] if isinstance(state, tuple) else state
            last = last[-1]
        else:
            rest, _ = rnn.forward(x[t + 1:], state)         # the rest of the sequence, from h_t
            last = rest[-1]
        prediction = head.forward(last)
        _, cache = losses.mse(prediction, y_true)
        dlast = head.backward(losses.mse_backward(1.0, cache))
        if rest is None:
            dh = dlast                                      # h_{T−1} is what the head read
        else:
            dy = np.zeros_like(rest)
            dy[-1] = dlast
            _, dstate0 = rnn.backward(dy)                   # ∂L/∂(initial state of the rest) = ∂L/∂h_t
            dh = (dstate0[0] if isinstance(dstate0, tuple) else dstate0)[-1]
        norms[t] = float(np.linalg.norm(asnumpy(dh), axis=-1).mean())
    return norms


def forget_gate(model, inputs, top=3):
    """The LSTM's forget gate over time: at each step its mean and 10th / 90th percentiles over
    sequences and units, and (mean over sequences) the gate of the ``top`` units whose gate is
    highest on average — the units that keep their memory, which the mean hides."""
    model.eval()
    model.rnn.forward(np.asarray(inputs, dtype=model.dtype))
    f = asnumpy(model.rnn.gate_activations()["f"])             # (T, B, H)
    per_unit = f.mean(axis=1)                                    # (T, H)
    keepers = np.argsort(per_unit.mean(axis=0))[::-1][:top]
    flat = f.reshape(len(f), -1)
    return {"mean": flat.mean(axis=1).tolist(), "p10": np.percentile(flat, 10, axis=1).tolist(),
            "p90": np.percentile(flat, 90, axis=1).tolist(), "top_units": [int(u) for u in keepers],
            "top": per_unit[:, keepers].T.tolist()}


def gradflow(cells=("rnn", "lstm", "gru"), seq_len=100, steps=2000, hidden=64, batch=64, seed=0, log=None,
             device="auto", impl="fast", progress=None):
    """The measurements for each cell, before and after training; a dict ready for JSON.
    ``device``: where the models train and are measured ("auto", "cpu" or "gpu"); ``impl``: the
    layers' path ("fast" or "reference"); ``progress``: one bar over every cell's training steps
    (None: on a terminal only)."""
    task = tasks.make("adding", seq_len=seq_len, seed=seed)
    probe = task.examples("test", np.arange(batch))
    data = {"task": task.config(), "steps": steps, "hidden": hidden, "batch": batch, "cells": {}}
    with Progress(len(cells) * steps, enabled=progress, log=log) as bar:
        for cell in cells:
            bar.run(cell)
            data["cells"][cell] = _measure_cell(task, cell, probe, steps, hidden, seed, device, impl, bar)
    return data


def _measure_cell(task, cell, probe, steps, hidden, seed, device, impl, bar):
    """One cell's measurements at initialisation and after ``steps`` steps of training."""
    d = task.defaults
    model = task.make_model(cell, hidden_size=hidden, seed=seed, device=device, impl=impl)
    entry = {"initial": {"grad_norms": gradient_norms(model, probe.inputs, probe.targets).tolist()}}
    if cell == "lstm":
        entry["initial"]["forget_gate"] = forget_gate(model, probe.inputs)
    trainer = Trainer(model, task, optim.make(d["optimizer"], model, lr=d["lr"]), batch_size=d["batch_size"],
                      clip=d["clip"], eval_every=steps, seed=seed, progress=False, on_step=bar.step)
    final = trainer.fit(steps=steps)
    entry["trained"] = {"grad_norms": gradient_norms(model, probe.inputs, probe.targets).tolist(),
                        "test_mse": final["test_mse"], "train_seconds": final["train_seconds"]}
    if cell == "lstm":
        entry["trained"]["forget_gate"] = forget_gate(model, probe.inputs)
    g0, g1 = entry["initial"]["grad_norms"], entry["trained"]["grad_norms"]
    bar.log(f"{cell}: ‖∂L/∂h_0‖ / ‖∂L/∂h_T−1‖ = {g0[0] / g0[-1]:.2e} at initialisation, {g1[0] / g1[-1]:.2e} "
            f"after {steps} steps (test MSE {final['test_mse']:.4f})")
    return entry
