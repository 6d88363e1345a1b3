r"""The checker's NumPy core: a backward pass against finite differences, for any function pair.

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

Two ways in here (the suite, :mod:`numpyrnn.gradcheck.suite`, adds layers, models and cells):

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

from ..backend import array_module, asnumpy

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

def _describe(fn):
    """module.name of a function, seen through functools.partial."""
    inner = getattr(fn, "func", fn)
    return f"{getattr(inner, '__module__', '')}.{getattr(inner, '__qualname__', type(inner).__name__)}"


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
