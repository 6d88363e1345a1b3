"""How much gradient reaches each step: ‖∂L/∂h_t‖ against t, for RNN, LSTM and GRU.

On the adding problem the loss L depends on the last step only, so ∂L/∂h_t measures how much of
the training signal travels back t steps.  It is read off one backward pass: the layers' backward
computes ∂L/∂h_t at every step anyway, and ``backward(..., keep_state_grads=True)`` keeps it
(and ∂L/∂c_t for the LSTM, whose long path runs through the cell state).  One forward and one
backward, O(T); the measurement uses a float64 copy of the model, since a vanishing gradient
can fall far below float32's range.

The spectral view explains the curves: at each step the gradient is multiplied by the one-step
Jacobian ∂h_t/∂h_{t−1} (∂(h_t, c_t)/∂(h_{t−1}, c_{t−1}) for the LSTM; derivations §4), and a
product of matrices whose largest singular values stay below 1 must vanish.  Per step, the mean
and the max of that largest singular value over the first sequences of the probe batch.

All of it is measured at initialisation and after training every cell with the same budget, on
the same sequences; for the LSTM the forget gate f_t is recorded too, the factor by which dc is
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


def state_gradients(model, inputs, targets):
    """∂L/∂h_t (and ∂L/∂c_t for the LSTM) of every step t, from one forward and one backward,
    for a SequenceRegressor with last-step output on time-major ``inputs`` (T, B, I): a dict
    "h" (and "c") of (T, B, H) NumPy arrays, computed on a float64 copy of the model."""
    m = model.astype(np.float64).eval()
    x = np.asarray(inputs, dtype=np.float64)
    y_true = np.asarray(targets, dtype=np.float64).reshape(x.shape[1], -1)
    y, _ = m.rnn.forward(x)
    _, cache = losses.mse(m.head.forward(y[-1]), y_true)    # the loss reads the last step only
    dy = m.xp.zeros_like(y)
    dy[-1] = m.head.backward(losses.mse_backward(1.0, cache))
    m.rnn.backward(dy, keep_state_grads=True)
    return {name: asnumpy(g) for name, g in m.rnn.state_grads().items()}


def gradient_norms(model, inputs, targets):
    """‖∂L/∂h_t‖ for t = 0..T−1 (mean over sequences of the per-sequence norm), and for the LSTM
    ‖∂L/∂c_t‖ too: a dict "h" (and "c") of (T,) arrays.  One backward: O(T)."""
    return {name: np.linalg.norm(g, axis=-1).mean(axis=1)
            for name, g in state_gradients(model, inputs, targets).items()}


def step_jacobians(layer, t, gates, h_prev, c_prev=None):
    """The one-step Jacobian of each sequence at step t of a single-layer ``layer``: (B, S, S)
    with S = H, ∂h_t/∂h_{t−1}, or for the LSTM S = 2H, ∂(h_t, c_t)/∂(h_{t−1}, c_{t−1}); entry
    [b, i, j] is ∂(state_t)_i / ∂(state_{t−1})_j.  ``gates``: ``layer.gate_activations()`` of
    the forward (NumPy arrays), ``h_prev``, ``c_prev`` (B, H) the state before step t."""
    w_hh = np.asarray(asnumpy(layer.params["weight_hh_l0"]), np.float64)
    H = layer.hidden_size
    rows = [w_hh[k * H:(k + 1) * H] for k in range(w_hh.shape[0] // H)]       # W_h{gate}, (H, H) each

    def diag_times(d, w):                        # diag(d_b) W for every sequence b: (B, H, H)
        return d[:, :, None] * w[None]

    cell = type(layer).__name__
    if cell == "RNN":
        h = gates["h"][t]
        slope = 1 - h * h if layer.config()["nonlinearity"] == "tanh" else (h > 0).astype(np.float64)
        return diag_times(slope, w_hh)                                        # diag(φ'(a)) W_hh
    if cell == "GRU":
        r, z, n = gates["r"][t], gates["z"][t], gates["n"][t]
        w_hr, w_hz, w_hn = rows
        dr = diag_times(r * (1 - r), w_hr)                                    # ∂r/∂h_prev
        dz = diag_times(z * (1 - z), w_hz)                                    # ∂z/∂h_prev
        if layer.config()["reset_after"]:                                      # n = tanh(... + r ⊙ m)
            b_hn = np.asarray(asnumpy(layer.params["bias_hh_l0"]), np.float64)[2 * H:] if layer.bias else 0
            m = h_prev @ w_hn.T + b_hn
            d_pre = diag_times(r, w_hn) + m[:, :, None] * dr
        else:                                                                   # n = tanh(... + (r ⊙ h) W_hn^T)
            d_pre = w_hn[None] @ (np.eye(H)[None] * r[:, None, :] + h_prev[:, :, None] * dr)
        dn = (1 - n * n)[:, :, None] * d_pre                                   # ∂n/∂h_prev
        # h = (1 − z) ⊙ n + z ⊙ h_prev
        return (np.eye(H)[None] * z[:, None, :] + (1 - z)[:, :, None] * dn + (h_prev - n)[:, :, None] * dz)
    i, f, g, o, c = (gates[k][t] for k in ("i", "f", "g", "o", "c"))
    w_hi, w_hf, w_hg, w_ho = rows
    tanh_c = np.tanh(c)
    dc_dh = diag_times(c_prev * f * (1 - f), w_hf) + diag_times(g * i * (1 - i), w_hi) \
        + diag_times(i * (1 - g * g), w_hg)                                    # ∂c_t/∂h_prev
    dc_dc = np.eye(H)[None] * f[:, None, :]                                    # ∂c_t/∂c_prev = diag(f)
    through_c = (o * (1 - tanh_c * tanh_c))[:, :, None]
    dh_dh = diag_times(tanh_c * o * (1 - o), w_ho) + through_c * dc_dh          # ∂h_t/∂h_prev
    dh_dc = through_c * dc_dc                                                  # ∂h_t/∂c_prev
    return np.concatenate([np.concatenate([dh_dh, dh_dc], axis=2), np.concatenate([dc_dh, dc_dc], axis=2)],
                          axis=1)


def jacobian_norms(model, inputs, batch=16):
    """The spectral view: per step t, the mean and the max over the first ``batch`` sequences of
    the largest singular value of the one-step Jacobian (see :func:`step_jacobians`).  Where it
    stays below 1 the product over many steps, and the gradient with it, must vanish; above 1
    it may grow."""
    m = model.astype(np.float64).eval()
    x = np.asarray(inputs, dtype=np.float64)[:, :batch]
    y, _ = m.rnn.forward(x)
    gates = {k: np.asarray(asnumpy(v)) for k, v in m.rnn.gate_activations().items()}
    states = np.asarray(asnumpy(y))
    T, B, H = states.shape
    means, maxes = [], []
    for t in range(T):
        h_prev = states[t - 1] if t else np.zeros((B, H))
        c_prev = (gates["c"][t - 1] if t else np.zeros((B, H))) if "c" in gates else None
        sigma = np.linalg.svd(step_jacobians(m.rnn, t, gates, h_prev, c_prev), compute_uv=False)[:, 0]
        means.append(float(sigma.mean()))
        maxes.append(float(sigma.max()))
    return {"mean": means, "max": maxes}


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


def _measurements(model, cell, probe):
    """What gradflow records of ``model`` on the probe batch: the gradient norms (h, and c for the
    LSTM), the one-step Jacobians' largest singular values, and the LSTM's forget gate."""
    norms = gradient_norms(model, probe.inputs, probe.targets)
    out = {"grad_norms": norms["h"].tolist(), "jacobian": jacobian_norms(model, probe.inputs)}
    if cell == "lstm":
        out["cell_grad_norms"] = norms["c"].tolist()
        out["forget_gate"] = forget_gate(model, probe.inputs)
    return out


def _measure_cell(task, cell, probe, steps, hidden, seed, device, impl, bar):
    """One cell's measurements at initialisation and after ``steps`` steps of training."""
    d = task.defaults
    model = task.make_model(cell, hidden_size=hidden, seed=seed, device=device, impl=impl)
    entry = {"initial": _measurements(model, cell, probe)}
    trainer = Trainer(model, task, optim.make(d["optimizer"], model, lr=d["lr"]), batch_size=d["batch_size"],
                      clip=d["clip"], eval_every=steps, seed=seed, progress=False, on_step=bar.step)
    final = trainer.fit(steps=steps)
    entry["trained"] = {**_measurements(model, cell, probe), "test_mse": final["test_mse"],
                        "train_seconds": final["train_seconds"]}
    g0, g1 = entry["initial"]["grad_norms"], entry["trained"]["grad_norms"]
    bar.log(f"{cell}: ‖∂L/∂h_0‖ / ‖∂L/∂h_T−1‖ = {g0[0] / g0[-1]:.2e} at initialisation, {g1[0] / g1[-1]:.2e} "
            f"after {steps} steps (test MSE {final['test_mse']:.4f})")
    return entry
