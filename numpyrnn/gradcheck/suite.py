r"""The checker's suite: layers, models and cells checked by :mod:`numpyrnn.gradcheck.core`.

``check(module, x, state=None, lengths=None)``
    a layer with ``forward(x, state, lengths)``, ``backward(dy, dstate)``, ``params``, ``grads``
    (a model too), randomness inside the forward (dropout, zoneout) replayed identically.
``check_model(model, batch)``
    a model on a batch of its task, its loss as the scalar.
``check_step(cell)``
    one step of a :class:`~numpyrnn.cells.Cell`, after the layer's probe of the protocol.
``check_cells(cells)``
    every cell, in each of its forms, through layers (lengths, directions, stacks) and models:
    what ``numpyrnn gradcheck`` runs.
"""

from __future__ import annotations

import numpy as np

from .. import backend, cells as _cells, layers
from ..layers import Module
from ..models import CharLM, SequenceClassifier, SequenceModel, SequenceRegressor
from ..validation import as_float_array, check_int
from .core import (
    _NOISE_FACTOR, _UNIT_ROUNDOFF, Report, _check_options, _check_tensors, _noise_floor, _promotion_warning,
    check_fn,
)


def check(module, x, state=None, lengths=None, *, eps=1e-6, tol=1e-7, mode="full", seed=0,
          n_directions=8):
    """Check a layer's backward: every parameter, the input x and each initial state.

    The check runs on a float64 copy of ``module`` (the module itself is untouched, gradients
    included).  A state of None is checked as explicit zeros, so the gradient of the initial
    state is always checked.  Randomness inside the forward (dropout) is replayed identically
    on every evaluation.
    """
    _check_options(mode, eps, tol, n_directions)

    if not isinstance(module, Module) or isinstance(module, SequenceModel) or not hasattr(module, "backward"):
        raise TypeError("module must be a numpyrnn layer (Recurrent, RNN, LSTM, GRU, Linear, Embedding), got "
                        + (f"a model ({type(module).__name__}): use gradcheck.check_model"
                           if isinstance(module, SequenceModel) else repr(module) if isinstance(module, str)
                           else type(module).__name__))
    if module.dtype != np.float64 or getattr(x, "dtype", np.float64) != np.float64:
        _promotion_warning(f"{type(module).__name__} ({module.dtype}) and its input")
    m = module.astype(np.float64)
    xp = m.xp
    x64 = as_float_array("x", x, np.float64, m.device).copy()
    rng_state = m.rng_state()

    def run(s):
        m.set_rng_state(rng_state)
        return m.forward(x64, s, lengths)

    y, state_n = run(state)
    multi = isinstance(state_n, tuple)
    finals = list(state_n) if multi else [state_n]
    if state is None:
        initial = [xp.zeros_like(s) for s in finals]
    else:
        initial = [as_float_array("state", s, np.float64, m.device).copy() for s in (state if multi else [state])]
    state64 = tuple(initial) if multi else initial[0]
    state_names = [f"{s}0" for s in m.cell.state_names] if hasattr(m, "cell") else \
        [f"state0[{i}]" for i in range(len(initial))]

    rng = np.random.default_rng(seed)
    outputs = [y] + finals
    projections = [xp.asarray(rng.standard_normal(o.shape)) for o in outputs]

    def evaluate():
        y, st = run(state64)
        outs = [y] + (list(st) if multi else [st])
        return sum(float((o * p).sum()) for o, p in zip(outs, projections))

    m.zero_grad()
    run(state64)
    dstate = tuple(projections[1:]) if multi else projections[1]
    dx, dstate0 = m.backward(projections[0], dstate)
    analytic = {name: g.copy() for name, g in m.grads.items()}
    analytic["x"] = dx
    for name, g in zip(state_names, dstate0 if multi else [dstate0]):
        analytic[name] = g
    tensors = {**m.params, "x": x64, **dict(zip(state_names, initial))}
    noise = _noise_floor(outputs, projections, eps)
    rows = _check_tensors(tensors, analytic, evaluate, mode=mode, eps=eps, tol=tol, noise=noise,
                          n_directions=n_directions, rng=np.random.default_rng(seed + 1))
    return Report(f"gradcheck {module!r}", mode, eps, tol, noise, rows)


def check_model(model, batch, *, eps=1e-6, tol=1e-7, mode="full", seed=0, n_directions=8):
    """Check a whole model's backward: every parameter (and float inputs) against the
    finite differences of the model's own loss.

    ``batch`` is ``(inputs, targets)``, ``(inputs, targets, lengths)`` or a dict with those
    keys.  The check runs on a float64 copy of the model; dropout is replayed identically on
    every evaluation.
    """
    _check_options(mode, eps, tol, n_directions)

    if not isinstance(model, SequenceModel):
        raise TypeError(f"model must be a numpyrnn model (SequenceClassifier, SequenceRegressor, CharLM, Seq2Seq), "
                        f"got {type(model).__name__}; for a layer use gradcheck.check")
    if isinstance(batch, dict) and {"inputs", "targets"} <= set(batch) <= {"inputs", "targets", "lengths"}:
        inputs, targets, lengths = batch["inputs"], batch["targets"], batch.get("lengths")
    elif isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
        inputs, targets, lengths = (*batch, None)[:3]
    else:
        raise TypeError("batch must be (inputs, targets), (inputs, targets, lengths) or a dict "
                        "with keys inputs, targets and optionally lengths")
    if model.dtype != np.float64:
        _promotion_warning(f"{type(model).__name__} ({model.dtype})")
    m = model.astype(np.float64)
    xp = m.xp
    inputs_array = xp.asarray(inputs)
    float_inputs = inputs_array.dtype.kind == "f"
    if float_inputs:
        inputs_array = xp.array(inputs_array, dtype=np.float64, copy=True)
    rng_state = m.rng_state()

    def evaluate():
        m.set_rng_state(rng_state)
        loss, _ = m.forward(inputs_array, targets, lengths)
        return loss

    m.zero_grad()
    loss = evaluate()
    dx = m.backward()
    analytic = {name: g.copy() for name, g in m.grads.items()}
    tensors = dict(m.params)
    if float_inputs:
        analytic["inputs"], tensors["inputs"] = dx, inputs_array
    # f is one mean over terms of about its own size: its rounding is a few u·max(|f|, 1).
    noise = max(_NOISE_FACTOR * _UNIT_ROUNDOFF * max(abs(loss), 1.0) / eps, np.finfo(np.float64).tiny)
    rows = _check_tensors(tensors, analytic, evaluate, mode=mode, eps=eps, tol=tol, noise=noise,
                          n_directions=n_directions, rng=np.random.default_rng(seed + 1))
    return Report(f"gradcheck {type(model).__name__} ({model.config().get('cell', '')})", mode, eps,
                  tol, noise, rows)


# --------------------------------------------------------------------------- a cell's step

def check_step(cell, *, batch=3, input_size=4, hidden=5, seed=0, eps=1e-6, tol=1e-7, mode="full",
               n_directions=8, device="cpu"):
    """Check one step of a :class:`~numpyrnn.cells.Cell` (or a registered cell's name): its
    ``step_backward`` against finite differences of its own ``step_forward``, for x_t, every
    state before the step (``h_prev``, ...) and every parameter by name, on random float64
    values (parameters drawn by the cell's ``initialize``, states ~ N(0, 0.5²)).

    First the cell gets the probe a layer gives it (``generic.check_cell``), in float32 and in
    float64: a cell the layer would refuse (a result of the wrong form, shape or dtype, a step
    that writes into what it is given or into its cache) raises the layer's
    :class:`~numpyrnn.cells.CellError`, naming the method, instead of a verdict."""

    cell = _cells.resolve(cell)
    rng = np.random.default_rng(seed)
    xp = backend.module_for(backend.resolve_device(device))
    shapes = _cells.generic.check_parameters(cell, input_size, hidden)
    params = {name: np.zeros(shape) for name, shape in shapes.items()}
    with _cells.generic.calling(cell, "initialize"):
        cell.initialize(params, hidden, rng)
    for dtype in (np.float32, np.float64):      # what a layer of either dtype checks when it is built
        _cells.generic.check_cell(cell, {n: xp.asarray(p.astype(dtype)) for n, p in params.items()}, input_size,
                                  hidden, xp, dtype, batch=batch, seed=seed)
    states = [f"{s}_prev" for s in cell.state_names]
    inputs = {"x_t": rng.standard_normal((batch, input_size)),
              **{name: 0.5 * rng.standard_normal((batch, hidden)) for name in states}, **params}
    inputs = {name: xp.asarray(value) for name, value in inputs.items()}
    n = len(states)

    def forward(x_t, *rest):
        new_state, cache = cell.step_forward(x_t, tuple(rest[:n]), dict(zip(shapes, rest[n:])))
        return (*new_state, cache)

    def backward(*args):
        dstate = tuple(args[:-1])
        dx_t, dstate_prev, grads = cell.step_backward(dstate, args[-1])
        return (dx_t, *_cells.protocol.zeros_for_none(dstate_prev, dstate), *(grads.get(name) for name in shapes))

    return check_fn(forward, backward, inputs, eps=eps, tol=tol, mode=mode, seed=seed,
                    n_directions=n_directions, title=f"gradcheck {_cells.label(cell)} step {cell!r}")


# --------------------------------------------------------------------------- every cell at once

def random_lengths(T, B, rng):
    """Random lengths in 1..T, always one full-length and (B > 1) one length-1 sequence."""
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0], lengths[-1] = T, (1 if B > 1 else T)
    return lengths


def _forms(cell):
    """The cells to check for what a user names: every form (``Cell.forms``) of a registered
    name, RNN tanh and relu, GRU both reset forms; a Cell instance as it is."""

    if isinstance(cell, str):
        cls = _cells.lookup(cell)
        return [cls(**options) for options in cls.forms]
    return [_cells.resolve(cell)]


def _step_label(cell):
    """"gru step (reset_after=False)": the cell's name and the options given away from their
    defaults."""
    changed = ", ".join(f"{k}={v!r}" for k, v in cell.changed_options().items())
    return f"{cell.name} step" + (f" ({changed})" if changed else "")


def _layer_for(cell, I, H, **kwargs):
    """The layer a user would build for ``cell`` (:meth:`~numpyrnn.Recurrent.over`): RNN, LSTM or
    GRU for the cells those classes make (their fast paths), Recurrent for any other."""
    return layers.Recurrent.over(cell, I, H, **kwargs)


def check_cells(cells=("rnn", "lstm", "gru"), *, seq_len=5, batch=3, input_size=4, hidden=5,
                num_layers=1, bidirectional=False, lengths=False, models=False, impl="fast",
                device="auto", eps=1e-6, tol=1e-7, mode="full", seed=0, n_directions=8, steps=True):
    """Check each cell, given by name (every form of it: RNN tanh and relu, GRU in both reset
    forms) or as a :class:`~numpyrnn.cells.Cell`: its step (with ``steps``, :func:`check_step`),
    and a layer of the given shape over a sequence, float64, on random data, every parameter by
    name; with ``models``, also the three models built on each cell.  ``lengths=True`` gives
    the sequences random lengths (one full, one 1).

    Returns ``(results, lengths)``: ``results`` a list of (label, report) in order.
    """

    if isinstance(cells, (str, _cells.Cell)) or not isinstance(cells, (list, tuple)):
        raise TypeError(f"cells must be a list of cells (names or Cells), got {cells!r}")
    T, B, I, H = (check_int(n, v, 1) for n, v in (("seq_len", seq_len), ("batch", batch), ("input_size", input_size),
                                                  ("hidden", hidden)))
    num_layers = check_int("num_layers", num_layers, 1)
    seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I))
    lengths = random_lengths(T, B, rng) if lengths else None
    options = dict(eps=eps, tol=tol, mode=mode, seed=seed, n_directions=n_directions)
    results = []
    for given in cells:
        for cell in _forms(given):
            if steps:
                results.append((_step_label(cell), check_step(cell, batch=B, input_size=I, hidden=H,
                                                             device=device, **options)))
            module = _layer_for(cell, I, H, num_layers=num_layers, bidirectional=bidirectional,
                                dtype=np.float64, seed=seed, device=device, impl=impl)
            results.append((repr(module).split(", dtype")[0] + ")", check(module, x, lengths=lengths, **options)))
        if models:
            cell = given if isinstance(given, str) else _cells.resolve(given)
            name = _cells.label(cell)
            common = dict(hidden_size=H, num_layers=num_layers, dtype=np.float64, seed=seed, device=device,
                          impl=impl)
            vocab = 7
            ids = rng.integers(0, vocab, (T + 1, B))
            built = [
                (f"SequenceClassifier({name}, pooling='mean')",
                 SequenceClassifier(cell, vocab_size=vocab, embedding_dim=I, num_classes=3,
                                    bidirectional=bidirectional, pooling="mean", **common),
                 (ids[:-1], rng.integers(0, 3, B), lengths)),
                (f"SequenceRegressor({name}, per_step=True)",
                 SequenceRegressor(cell, input_size=I, per_step=True, bidirectional=bidirectional, **common),
                 (rng.standard_normal((T, B, I)), rng.standard_normal((T, B, 1)), lengths)),
                (f"CharLM({name})", CharLM(cell, vocab_size=vocab, embedding_dim=I, **common),
                 (ids[:-1], ids[1:], lengths)),
            ]
            results += [(label, check_model(model, model_batch, **options)) for label, model, model_batch in built]
    return results, lengths


def summary(results, description):
    """The one-row-per-check table of :func:`check_cells`' results, and a last line: how many
    passed, and ``description`` (the shapes checked)."""
    rows = []
    for label, report in results:
        worst = max(report.rows, key=lambda r: r.max_rel_err)
        rows.append((label, len(report.rows), worst.max_rel_err, worst.name, report.passed))
    width = max(len("layer"), *(len(label) for label, *_ in rows))
    where_width = max(len("in"), *(len(where) for _, _, _, where, _ in rows))
    lines = [f"{'layer':<{width}}  {'tensors':>7}  {'worst rel err':>13}  {'in':<{where_width}}  result"]
    for label, count, err, where, ok in rows:
        lines.append(f"{label:<{width}}  {count:>7}  {err:>13.2e}  {where:<{where_width}}  {'ok' if ok else 'FAIL'}")
    failed = sum(not ok for *_, ok in rows)
    lines.append(f"\n{len(rows) - failed}/{len(rows)} passed ({description})")
    return "\n".join(lines)

