"""How much gradient reaches each step: ‖∂L/∂h_t‖ against t, for RNN, LSTM, GRU or any cell.

On the adding problem the loss L depends on the last step only, so ∂L/∂h_t measures how much of
the training signal travels back t steps.  It is read off one backward pass: the layers' backward
computes ∂L/∂h_t at every step anyway, and ``backward(..., keep_state_grads=True)`` keeps it
(and the gradient of every other state of the cell: ∂L/∂c_t for the LSTM, whose long path runs
through the cell state).  One forward and one
backward, O(T); the measurement uses a float64 copy of the model, since a vanishing gradient
can fall far below float32's range.

The spectral view explains the curves: at each step the gradient is multiplied by the one-step
Jacobian ∂h_t/∂h_{t−1} (∂(h_t, c_t)/∂(h_{t−1}, c_{t−1}) for the LSTM; derivations §4), and a
product of matrices whose largest singular values stay below 1 must vanish.  It is built from
the cell's own step functions (derivations §13), so any cell gets it.  Per step, the mean
and the max of that largest singular value over the first sequences of the probe batch.

All of it is measured at initialisation and after training every cell with the same budget, on
the same sequences; for the LSTM (any cell with a gate named f) the forget gate f_t is recorded too, the factor by which dc is
carried back: its mean and 10th and 90th percentiles over sequences and units at each step, and
the gate of the few units that keep it highest (after training on the adding problem a couple
of the 64 units hold f ≈ 1 while the rest stay near 0.5: the memory lives in a few units).
"""

from __future__ import annotations

import numpy as np

from .. import losses, optim, tasks
from ..cells import label
from ..cells.protocol import zeros_for_none
from ..backend import array_module, asnumpy, thread_policy
from ..settings import settings_of
from ..train import Trainer
from .progress import Progress


def state_gradients(model, inputs, targets):
    """∂L/∂s_t of every state s of the cell (h, and c for the LSTM) at every step t, from one
    forward and one backward, for a SequenceRegressor with last-step output on time-major
    ``inputs`` (T, B, I): a dict state name → (T, B, H) NumPy array, computed on a float64
    copy of the model."""
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
    """‖∂L/∂s_t‖ for t = 0..T−1 (mean over sequences of the per-sequence norm) for every state
    s of the cell: a dict "h" (and "c" for the LSTM, ...) of (T,) arrays.  One backward: O(T)."""
    return {name: np.linalg.norm(g, axis=-1).mean(axis=1)
            for name, g in state_gradients(model, inputs, targets).items()}


def flow_ratios(norms, state_names):
    """How much gradient reaches the first step against the last, for every state of the cell:
    ‖∂L/∂s_0‖ / ‖∂L/∂s_{T−1}‖ from :func:`gradient_norms`' dict, taken for any state but the
    output h to ‖∂L/∂s_{T−2}‖ (‖∂L/∂c_{T−1}‖ is 0: c reaches the loss only through later
    steps); None where that last norm is 0.  A ratio of exactly 0 says that nothing flows back
    through that state (a step that never reads it, such as an SRU's h)."""
    out = {}
    for name in state_names:
        series = norms[name]
        last = series[-1] if name == state_names[0] else series[-2]
        out[name] = float(series[0] / last) if last > 0 else None
    return out


def describe_ratios(ratios):
    """"h 1.7e-37, c 2.3e-05": :func:`flow_ratios` in words."""
    def word(name, r):
        if r is None:
            return f"{name} -"
        return f"{name} 0 (nothing flows back through {name})" if r == 0 else f"{name} {r:.2e}"
    return ", ".join(word(name, r) for name, r in ratios.items())


def step_jacobians(cell, x_t, state_prev, params):
    """The one-step Jacobian of each sequence, from the cell's own step functions: (B, S, S)
    with S = (number of states)·H, ∂s_t/∂s_{t−1} of the state tuple laid end to end (for the
    LSTM ∂(h_t, c_t)/∂(h_{t−1}, c_{t−1})); entry [b, i, j] is ∂(s_t)_i / ∂(s_{t−1})_j.

    Row i is the backward of the step for ds_t = e_i (derivations §13): the step is taken once
    on S copies of each sequence, and one ``step_backward`` with a different unit vector for
    each copy gives all S rows at once.  ``x_t`` (B, I), ``state_prev`` a tuple of (B, H),
    ``params`` the cell's parameters (one layer and direction)."""
    xp = array_module(x_t)
    B, H = state_prev[0].shape
    n = len(state_prev)
    S = n * H
    copies = lambda a: xp.repeat(a, S, axis=0)                   # row b·S + i: copy i of sequence b
    _, cache = cell.step_forward(copies(x_t), tuple(copies(s) for s in state_prev), params)
    units = xp.tile(xp.eye(S, dtype=x_t.dtype), (B, 1))          # copy i asks for row i: ds_t = e_i
    dstate = tuple(xp.ascontiguousarray(units[:, k * H:(k + 1) * H]) for k in range(n))
    _, dstate_prev, _ = cell.step_backward(dstate, cache)
    dstate_prev = zeros_for_none(dstate_prev, dstate)            # None: a state the step does not read
    rows = xp.concatenate(dstate_prev, axis=1)                   # (B·S, S): e_i^T ∂s_t/∂s_{t−1}
    return rows.reshape(B, S, S)


@thread_policy()
def jacobian_norms(model, inputs, batch=16):
    """The spectral view: per step t, the mean and the max over the first ``batch`` sequences of
    the largest singular value of the one-step Jacobian (see :func:`step_jacobians`).  Where it
    stays below 1 the product over many steps, and the gradient with it, must vanish; above 1
    it may grow."""
    m = model.astype(np.float64).eval()
    x = m.xp.asarray(np.asarray(inputs, dtype=np.float64)[:, :batch])
    cell, params = m.rnn.cell, m.rnn.cell_params(0, 0)
    T, B, _ = x.shape
    state = tuple(m.xp.zeros((B, m.rnn.hidden_size)) for _ in cell.state_names)   # s_{−1} = 0
    means, maxes = [], []
    for t in range(T):
        J = asnumpy(step_jacobians(cell, x[t], state, params))
        # σ_max(J)² is the largest eigenvalue of J Jᵀ: a symmetric eigensolver's values alone
        # cost less than an SVD (23 → 17 ms a step at B 16, S 128, one thread)
        sigma = np.sqrt(np.maximum(np.linalg.eigvalsh(J @ J.transpose(0, 2, 1))[:, -1], 0.0))
        means.append(float(sigma.mean()))
        maxes.append(float(sigma.max()))
        state, _ = cell.step_forward(x[t], state, params)        # on to s_t
    return {"mean": means, "max": maxes}


def forget_gate(model, inputs, top=3):
    """The forget gate f over time (the LSTM's, or any cell's whose ``gate_activations`` has an
    "f"): at each step its mean and 10th / 90th percentiles over sequences and units, and (mean
    over sequences) the gate of the ``top`` units whose gate is highest on average — the units
    that keep their memory, which the mean hides.  None for a cell without a forget gate."""
    model.eval()
    model.rnn.forward(np.asarray(inputs, dtype=model.dtype))
    gates = model.rnn.gate_activations()
    if "f" not in gates:
        return None
    f = asnumpy(gates["f"])                                      # (T, B, H)
    per_unit = f.mean(axis=1)                                    # (T, H)
    keepers = np.argsort(per_unit.mean(axis=0))[::-1][:top]
    flat = f.reshape(len(f), -1)
    return {"mean": flat.mean(axis=1).tolist(), "p10": np.percentile(flat, 10, axis=1).tolist(),
            "p90": np.percentile(flat, 90, axis=1).tolist(), "top_units": [int(u) for u in keepers],
            "top": per_unit[:, keepers].T.tolist()}


@thread_policy()
def gradflow(cells=("rnn", "lstm", "gru"), seq_len=100, settings=None, *, batch=64, log=None, progress=None,
             **fields):
    """The measurements for each cell, before and after training; a dict ready for JSON.
    ``settings`` (a :class:`~numpyrnn.settings.Settings`, or its fields by name: ``steps=200,
    hidden=32``), resolved against the adding task at ``seq_len``: every cell trains with them
    (its budget in steps; the cell is gradflow's), evaluated once at the end.  ``batch``: the
    test sequences measured; ``progress``: one bar over every cell's training steps (None: on a
    terminal only)."""
    task, s = _resolved(seq_len, settings, fields)
    probe = task.examples("test", np.arange(batch))
    data = {"task": task.config(), "steps": s.steps, "hidden": s.hidden, "batch": batch,
            "plan": _plan(task, cells, s, batch), "cells": {}}
    with Progress(len(cells) * s.steps, enabled=progress, log=log) as bar:
        for cell in cells:
            bar.run(label(cell))
            data["cells"][label(cell)] = _measure_cell(task, cell, probe, s, bar)
    return data


def plan(cells=("rnn", "lstm", "gru"), seq_len=100, settings=None, *, batch=64, **fields):
    """What :func:`gradflow` would run with these arguments, without training: the task's config
    and the settings (the training ones are the adding task's defaults), as gradflow.json and
    gradflow.png record them (where it runs, ``device``, is not among them)."""
    task, s = _resolved(seq_len, settings, fields)
    return _plan(task, cells, s, batch)


def _resolved(seq_len, settings, fields):
    """The task (adding, at ``seq_len``, its data from the settings' seed) and the settings
    resolved against it, in steps."""
    settings = settings_of(settings, fields)
    task = tasks.make("adding", seq_len=seq_len, seed=settings.seed)
    s = settings.resolved(task)
    if s.steps is None:
        raise ValueError("gradflow trains for a number of steps: give steps, not epochs")
    return task, s


def _plan(task, cells, s, batch):
    return {"task": task.config(), "settings": {
        "cells": [label(cell) for cell in cells], "steps": s.steps, "hidden": s.hidden, "probe_batch": batch,
        "seed": s.seed, "impl": s.impl, "optimizer": s.optimizer, "lr": s.lr, "batch_size": s.batch_size,
        "clip": s.clip}}


def _measurements(model, probe):
    """What gradflow records of ``model`` on the probe batch: the gradient norms (h, and every
    other state of the cell: c for the LSTM), the one-step Jacobians' largest singular values,
    and the forget gate of a cell that has one."""
    norms = gradient_norms(model, probe.inputs, probe.targets)
    first, *others = model.rnn.cell.state_names
    out = {"grad_norms": norms[first].tolist(), "jacobian": jacobian_norms(model, probe.inputs)}
    if others:
        out["state_grad_norms"] = {name: norms[name].tolist() for name in others}
    gate = forget_gate(model, probe.inputs)
    if gate is not None:
        out["forget_gate"] = gate
    return out


def _measure_cell(task, cell, probe, s, bar):
    """One cell's measurements at initialisation and after ``s.steps`` steps of training."""
    steps = s.steps
    model = task.make_model(cell, **s.model_options())
    entry = {"initial": _measurements(model, probe)}
    trainer = Trainer(model, task, optim.make(s.optimizer, model, **s.optimizer_options()), batch_size=s.batch_size,
                      clip=s.clip, eval_every=steps, seed=s.seed, progress=False, on_step=bar.step)
    final = trainer.fit(steps=steps)
    entry["trained"] = {**_measurements(model, probe), "test_mse": final["test_mse"],
                        "train_seconds": final["train_seconds"]}
    names = model.rnn.cell.state_names
    ratios = {stage: flow_ratios(_norms_by_state(entry[stage], names), names) for stage in ("initial", "trained")}
    entry["ratios"] = ratios
    bar.log(f"{label(cell)}: ‖∂L/∂s_0‖ / ‖∂L/∂s_last‖ of each state: {describe_ratios(ratios['initial'])} at "
            f"initialisation; {describe_ratios(ratios['trained'])} after {steps} steps (test MSE "
            f"{final['test_mse']:.4f})")
    return entry


def _norms_by_state(measured, names):
    """The recorded gradient norms of every state, by name."""
    return {names[0]: measured["grad_norms"], **measured.get("state_grad_norms", {})}
