r"""Check backward passes against finite differences.

The checker differentiates one scalar, a fixed random projection of every output::

    f(θ) = Σ_j ⟨P_j, out_j(θ)⟩          P_j ~ N(0, 1), one per output (final states included)

so every output path is exercised, and compares the backward's gradient of f (the backward is
fed dout_j = P_j) with central differences::

    ∂f/∂θ_i ≈ (f(θ + ε e_i) − f(θ − ε e_i)) / 2ε        (full mode: every entry i)
    ⟨∇f, v⟩ ≈ (f(θ + ε v) − f(θ − ε v)) / 2ε            (fast mode: random unit directions v)

in float64 (float32 would drown the differences in rounding error: its unit roundoff, 6e-8,
divided by ε = 1e-6 is already 6 % of the answer).

For each tensor the report gives the largest absolute error |a − n|, the largest relative error
|a − n| / max(|a|, |n|, tiny), where it occurs, and pass/fail: an entry passes when its
relative error is at most ``tol``.

``tiny`` comes from the noise of the differences themselves.  f sums terms of total size
S = Σ_j ⟨|P_j|, |out_j|⟩, each carrying a few units u of float64 rounding, so a central
difference of f is uncertain by about ν = k·u·S/ε (k = 8 covers the rounding accumulated through
the forward pass; measured errors sit near ν/16).  No gradient entry can be checked to better
than ν, so ``tiny = ν / tol``: entries larger than that are held to relative error ``tol``,
smaller ones to absolute error ν.  With ε = 1e-6 and a small model, ν is around 1e-8.

Second look.  A central difference is also off by its truncation error, about ε² times the
third derivative over 6, and ν is an estimate of its noise, not a bound (a 4-step GRU with H = 1
was seen 1.2ν off).  An entry that fails is estimated again by Richardson's extrapolation,
(4·D(ε/2) − D(ε)) / 3, which cancels the ε² term and carries noise 3ν by the same model, and
passes if that agrees within 3ν (or to ``tol``).  The report counts such entries.

Kinks.  Where the function is not smooth within ±ε (a ReLU switching between θ − ε and θ + ε)
the central difference averages two slopes and is simply wrong.  An entry that still fails is
tried again at ε/10 and ε/100 and accepted only if the smaller step agrees with the backward
*and* the estimate moved with the step by more than the noise: a smooth function's estimate
moves with the step only by its truncation error, so a wrong gradient stays failed.  The report
counts these too.

Three ways in:

``check(module, x, state=None, lengths=None)``
    a layer with ``forward(x, state, lengths)``, ``backward(dy, dstate)``, ``params``, ``grads``.
``check_fn(forward, backward, inputs)``
    a function pair in the cells' convention: ``forward(*inputs) → (*outputs, cache)`` and
    ``backward(*doutputs, cache) → one gradient per input``.  A student's own cell fits.
``numerical_gradient(f, x, eps)``
    the bare finite difference of a scalar function of one array.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .backend import array_module, asnumpy
from .validation import as_float_array

MODES = ("full", "fast")
_UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2


# --------------------------------------------------------------------------- report

@dataclass
class Row:
    """The result for one tensor."""

    name: str
    shape: tuple
    checked: int            # entries (full mode) or directions (fast mode) compared
    max_abs_err: float
    max_rel_err: float
    worst: str              # the entry, or the direction, with the largest relative error
    analytic: float         # the two values compared there
    numeric: float
    passed: bool
    note: str = ""


@dataclass
class Report:
    """What a check found: one :class:`Row` per tensor; ``passed`` when every row passed."""

    title: str
    mode: str
    eps: float
    tol: float
    noise: float            # ν, the uncertainty of a central difference of f
    rows: list = field(default_factory=list)

    @property
    def tiny(self) -> float:
        """Magnitudes below this are judged on absolute error (≤ ν) instead of relative error."""
        return self.noise / self.tol

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def failed(self) -> list:
        """Names of the tensors that failed."""
        return [r.name for r in self.rows if not r.passed]

    def row(self, name) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no tensor named {name!r} in this report; have {[r.name for r in self.rows]}")

    def __str__(self):
        head = ("tensor", "shape", "checked", "max abs err", "max rel err", "worst at", "analytic",
                "numeric", "result")
        lines = [[r.name, "×".join(map(str, r.shape)) or "scalar", str(r.checked),
                  f"{r.max_abs_err:.2e}", f"{r.max_rel_err:.2e}", r.worst, f"{r.analytic:+.6e}",
                  f"{r.numeric:+.6e}", ("ok" if r.passed else "FAIL") + (f" ({r.note})" if r.note else "")]
                 for r in self.rows]
        widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
                  for i, h in enumerate(head)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        out = [f"{self.title}",
               f"{self.mode} mode, eps={self.eps:g}, tol={self.tol:g}; difference noise ν={self.noise:.1e}, "
               f"so entries below tiny=ν/tol={self.tiny:.1e} are held to |a−n| ≤ ν",
               fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*line) for line in lines]
        n, ok = len(self.rows), sum(r.passed for r in self.rows)
        out.append(f"PASSED ({ok} of {n} tensors)" if self.passed
                   else f"FAILED: {', '.join(self.failed)} ({ok} of {n} tensors passed)")
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {"title": self.title, "mode": self.mode, "eps": self.eps, "tol": self.tol,
                "noise": self.noise, "tiny": self.tiny, "passed": self.passed,
                "rows": [dict(r.__dict__, shape=list(r.shape)) for r in self.rows]}


# --------------------------------------------------------------------------- the differences

def numerical_gradient(f, x, eps=1e-6):
    """∂f/∂x by central differences, entry by entry.

    ``f`` takes an array shaped like ``x`` and returns a scalar.  ``x`` is not modified: ``f``
    is called on a float64 copy in which one entry at a time is moved by ±eps.
    """
    xp = array_module(x)
    work = xp.array(x, dtype=np.float64, copy=True)
    grad = xp.zeros_like(work)
    flat, gflat = work.reshape(-1), grad.reshape(-1)
    for i in range(work.size):
        gflat[i] = _central_difference(lambda: float(f(work)), flat, i, eps)
    return grad


def _central_difference(evaluate, flat, i, eps):
    """(f(θ + ε e_i) − f(θ − ε e_i)) / (θ_i⁺ − θ_i⁻) with the entry restored exactly afterwards.

    Dividing by the steps actually taken (after rounding), not by 2ε, removes one error source.
    """
    old = float(flat[i])
    up, down = old + eps, old - eps
    if up == down:
        raise ValueError(f"eps={eps!r} is too small for an entry of size {old!r}: θ ± eps rounds to θ "
                         "in float64 (the default, 1e-6, suits entries of size up to about 1e9)")
    flat[i] = up
    f_up = evaluate()
    flat[i] = down
    f_down = evaluate()
    flat[i] = old
    return (f_up - f_down) / (up - down)


def _directional_difference(evaluate, tensor, v, eps):
    """(f(θ + ε v) − f(θ − ε v)) / 2ε, the tensor restored exactly afterwards."""
    old = tensor.copy()
    tensor += eps * v
    f_up = evaluate()
    tensor[...] = old
    tensor -= eps * v
    f_down = evaluate()
    tensor[...] = old
    return (f_up - f_down) / (2 * eps)


def _relative_errors(analytic, numeric, tol, noise):
    """|a − n| / max(|a|, |n|, noise/tol), elementwise; NaN counts as an infinite error."""
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), noise / tol)
    rel = np.abs(analytic - numeric) / scale
    return np.where(np.isnan(rel), np.inf, rel)


#: how much smaller the steps are at which a failing entry is tried again (see _compare)
_RETRY_SHRINK = (10, 100)


def _compare(name, shape, analytic, probe, eps, tol, noise, label):
    """Compare analytic values with finite differences ``probe(k, step)``, k = 0..len-1.

    An entry that fails is first estimated again with Richardson's extrapolation,
    R = (4 D(ε/2) − D(ε)) / 3, which cancels the ε² term of the central difference's
    truncation error (the function's curvature within ±ε) and carries three times its noise
    (the noise at ε/2 is 2ν); it passes if R agrees with the analytic value within that.  An entry that still fails is tried
    at steps ε/10 and ε/100, and accepted there only if the smaller step agrees with the analytic
    value *and* the estimate moved with the step by more than the noise of both: that is the mark
    of a kink (a ReLU switching within ±ε), where the difference straddles two slopes.  A smooth
    function's estimate moves with the step only by its small truncation error, so a wrong
    gradient stays wrong at every step and still fails.
    """
    numeric = np.array([probe(k, eps) for k in range(analytic.size)], dtype=np.float64)
    noises = np.full(analytic.size, noise)
    passed = _relative_errors(analytic, numeric, tol, noises) <= tol
    curved = 0
    for k in np.flatnonzero(~passed):
        extrapolated = (4 * probe(k, eps / 2) - numeric[k]) / 3   # Richardson: O(ε⁴) truncation
        extrapolated_noise = 3 * noise                # (4 · 2ν + ν) / 3: the noise at ε/2 is 2ν
        if _relative_errors(analytic[k], extrapolated, tol, extrapolated_noise) <= tol:
            numeric[k], noises[k], passed[k] = extrapolated, extrapolated_noise, True
            curved += 1
    kinks = 0
    for shrink in _RETRY_SHRINK:
        for k in np.flatnonzero(~passed):
            step_noise = noise * shrink                  # ν grows as 1/ε
            smaller = probe(k, eps / shrink)
            agrees = _relative_errors(analytic[k], smaller, tol, step_noise) <= tol
            moved = abs(numeric[k] - smaller) > 2 * (noises[k] + step_noise)
            if agrees and moved:
                numeric[k], noises[k], passed[k] = smaller, step_noise, True
                kinks += 1
    rel = _relative_errors(analytic, numeric, tol, noises)
    worst = int(np.argmax(rel)) if rel.size else 0
    row = Row(name=name, shape=tuple(shape), checked=int(rel.size),
              max_abs_err=float(np.max(np.abs(analytic - numeric), initial=0.0)),
              max_rel_err=float(np.max(rel, initial=0.0)), worst=label(worst) if rel.size else "-",
              analytic=float(analytic[worst]) if rel.size else 0.0,
              numeric=float(numeric[worst]) if rel.size else 0.0, passed=bool(passed.all()))
    notes = []
    if curved:
        notes.append(f"{curved} on Richardson's extrapolation (4·D(eps/2) − D(eps))/3, held to its noise 3ν")
    if kinks:
        notes.append(f"{kinks} at a kink: the function is not smooth within ±eps there, "
                     "and the difference agreed at a smaller step")
    row.note = "; ".join(notes)
    return row


def _check_tensors(tensors, analytic, evaluate, *, mode, eps, tol, noise, n_directions, rng):
    """Compare analytic gradients with finite differences for each named tensor.

    tensors: name → float64 array that ``evaluate`` reads (perturbed in place, then restored);
    analytic: name → the backward's gradient (None when the backward gave none: it is then
    compared as zeros, and fails wherever the difference is not zero).
    """
    rows = []
    for name, tensor in tensors.items():
        grad = analytic.get(name)
        xp = array_module(tensor)
        given = xp.zeros(tensor.shape) if grad is None else xp.asarray(grad, dtype=np.float64)
        if mode == "full":
            flat = tensor.reshape(-1)
            values = asnumpy(given).astype(np.float64).reshape(-1)
            row = _compare(name, tensor.shape, values,
                           lambda k, step: _central_difference(evaluate, flat, k, step),
                           eps, tol, noise,
                           lambda k: str(tuple(int(i) for i in np.unravel_index(k, tensor.shape))))
        else:
            directions = []
            for _ in range(n_directions):
                v = rng.standard_normal(tensor.shape)
                directions.append(xp.asarray(v / max(np.linalg.norm(v), 1e-300)))
            values = np.array([float((given * v).sum()) for v in directions])
            row = _compare(name, tensor.shape, values,
                           lambda k, step: _directional_difference(evaluate, tensor, directions[k], step),
                           eps, tol, noise, lambda k: f"direction {k}")
        if grad is None:
            row.note = "backward gave no gradient"
        rows.append(row)
    return rows


_NOISE_FACTOR = 8


def _noise_floor(outputs, projections, eps):
    """ν = k·u·S/ε, S = Σ_j ⟨|P_j|, |out_j|⟩: how uncertain a central difference of f is."""
    total = sum(float(abs(asnumpy(o).astype(np.float64) * asnumpy(p)).sum())
                for o, p in zip(outputs, projections))
    return max(_NOISE_FACTOR * _UNIT_ROUNDOFF * total / eps, np.finfo(np.float64).tiny)


def _check_options(mode, eps, tol, n_directions):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if not (isinstance(n_directions, int) and n_directions >= 1):
        raise ValueError(f"n_directions must be a positive integer, got {n_directions!r}")


def _promotion_warning(what):
    warnings.warn(f"gradcheck: {what} promoted to float64 for the check. Central differences in "
                  "float32 are dominated by rounding: its unit roundoff (6e-8) over eps (1e-6) is "
                  "already a 6% error, so a float32 check could not tell a right gradient from a "
                  "wrong one.", UserWarning, stacklevel=3)


# --------------------------------------------------------------------------- the public checks

def check_fn(forward, backward, inputs, *, eps=1e-6, tol=1e-7, mode="full", seed=0,
             n_directions=8, title=None):
    """Check a function pair in the cells' convention.

    ``forward(*inputs)`` returns ``(*outputs, cache)``; ``backward(*doutputs, cache)`` returns
    one gradient per input, in order (None for an input it does not differentiate).  ``inputs``
    is a list of arrays, or a dict name → array (forward and backward then still take and give
    them positionally, in the dict's order).  Non-float inputs (integers, None) are passed
    through and not checked.  Float inputs are checked on float64 copies; the caller's arrays
    are never modified.

    Example, the LSTM step::

        from numpyrnn.cells import lstm
        report = check_fn(lstm.step_forward, lstm.step_backward,
                          {"x_t": x, "h_prev": h, "c_prev": c, "weight_ih": W, ...})
        print(report)
    """
    _check_options(mode, eps, tol, n_directions)
    for name, fn in (("forward", forward), ("backward", backward)):
        if not callable(fn):
            raise TypeError(f"{name} must be a function, got {type(fn).__name__}")
    if not isinstance(inputs, (dict, list, tuple)):
        raise TypeError("inputs must be a list of the forward's arguments, or a dict name → argument, "
                        f"got {type(inputs).__name__}")
    names = list(inputs) if isinstance(inputs, dict) else [f"input {i}" for i in range(len(inputs))]
    values = list(inputs.values()) if isinstance(inputs, dict) else list(inputs)
    is_float = [getattr(v, "dtype", None) is not None and v.dtype.kind == "f" for v in values]
    if not any(is_float):
        raise ValueError("inputs hold no floating-point array, so there is nothing to check: give the forward's "
                         "arguments as float arrays (integers and None are passed through unchecked)")
    if any(f and v.dtype != np.float64 for f, v in zip(is_float, values)):
        _promotion_warning("float32 inputs")
    work = [array_module(v).array(v, dtype=np.float64, copy=True) if f else v
            for f, v in zip(is_float, values)]

    def run():
        result = forward(*work)
        if not isinstance(result, tuple) or len(result) < 2:
            raise TypeError("forward must return (*outputs, cache): a tuple of at least two items, got "
                            + (f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__))
        outputs = result[:-1]
        for k, o in enumerate(outputs):
            if o is not None and not (hasattr(o, "shape") and hasattr(o, "dtype")):
                raise TypeError(f"forward must return arrays as its outputs (then the cache); output {k} is a "
                                f"{type(o).__name__}: {o!r}")
        return outputs, result[-1]

    outputs, cache = run()
    rng = np.random.default_rng(seed)
    projections = [None if o is None else array_module(o).asarray(rng.standard_normal(o.shape))
                   for o in outputs]

    def evaluate():
        outs, _ = run()
        return sum(float((o * p).sum()) for o, p in zip(outs, projections) if o is not None)

    # the backward gets copies: one that writes into its arguments must not change the loss's weights
    grads = backward(*[None if p is None else p.copy() for p in projections], cache)
    if isinstance(grads, dict):
        grads = [grads.get(n) for n in names]
    if not isinstance(grads, (tuple, list)) or len(grads) != len(values):
        raise TypeError(f"backward must return one gradient per input ({len(values)}), got "
                        f"{len(grads) if isinstance(grads, (tuple, list)) else type(grads).__name__}")
    tensors = {n: w for n, w, f in zip(names, work, is_float) if f}
    analytic = {n: g for n, g, f in zip(names, grads, is_float) if f}
    for n, g in analytic.items():
        kind = getattr(getattr(g, "dtype", None), "kind", None)
        if g is not None and kind not in ("f", "i", "u"):
            raise TypeError(f"backward's gradient for {n} must be an array of real numbers, got "
                            + (f"dtype {g.dtype}" if kind else type(g).__name__))
    for n, g in analytic.items():
        if g is not None and getattr(g, "shape", None) != tensors[n].shape:
            raise ValueError(f"backward's gradient for {n} must have the input's shape {tensors[n].shape}, "
                             f"got {getattr(g, 'shape', type(g).__name__)}")
    kept = [(o, p) for o, p in zip(outputs, projections) if o is not None]
    noise = _noise_floor([o for o, _ in kept], [p for _, p in kept], eps)
    rows = _check_tensors(tensors, analytic, evaluate, mode=mode, eps=eps, tol=tol, noise=noise,
                          n_directions=n_directions, rng=np.random.default_rng(seed + 1))
    return Report(title or f"gradcheck {_describe(forward)}", mode, eps, tol, noise, rows)


def check(module, x, state=None, lengths=None, *, eps=1e-6, tol=1e-7, mode="full", seed=0,
          n_directions=8):
    """Check a layer's backward: every parameter, the input x and each initial state.

    The check runs on a float64 copy of ``module`` (the module itself is untouched, gradients
    included).  A state of None is checked as explicit zeros, so the gradient of the initial
    state is always checked.  Randomness inside the forward (dropout) is replayed identically
    on every evaluation.
    """
    _check_options(mode, eps, tol, n_directions)
    from .layers import Module
    from .models import SequenceModel

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


def _describe(fn):
    """module.name of a function, seen through functools.partial."""
    inner = getattr(fn, "func", fn)
    return f"{getattr(inner, '__module__', '')}.{getattr(inner, '__qualname__', type(inner).__name__)}"


def check_model(model, batch, *, eps=1e-6, tol=1e-7, mode="full", seed=0, n_directions=8):
    """Check a whole model's backward: every parameter (and float inputs) against the
    finite differences of the model's own loss.

    ``batch`` is ``(inputs, targets)``, ``(inputs, targets, lengths)`` or a dict with those
    keys.  The check runs on a float64 copy of the model; dropout is replayed identically on
    every evaluation.
    """
    _check_options(mode, eps, tol, n_directions)
    from .models import SequenceModel

    if not isinstance(model, SequenceModel):
        raise TypeError(f"model must be a numpyrnn model (SequenceClassifier, SequenceRegressor, CharLM), "
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
    from . import backend, cells as _cells

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
    from . import cells as _cells

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
    """The layer a user would build for ``cell``: RNN, LSTM or GRU for a textbook cell with
    biases (their fast paths), Recurrent for any other."""
    from . import layers
    from .models import TEXTBOOK_LAYERS, legacy_cell

    if legacy_cell(cell):
        return TEXTBOOK_LAYERS[cell.name](I, H, **kwargs, **cell.function_options())
    return layers.Recurrent(cell, I, H, **kwargs)


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
    from . import cells as _cells
    from .models import CharLM, SequenceClassifier, SequenceRegressor
    from .validation import check_int

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

