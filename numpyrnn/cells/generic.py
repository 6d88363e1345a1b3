r"""The generic loop: any :class:`~numpyrnn.cells.Cell` over a sequence, forward and backward.

The textbook loop of derivations §3 and §7 written once, over the protocol's two step functions
instead of one cell's: the built-in cells' reference loops (rnn.py's, written once for a cell
whose one state is h and run by gru.py too, and lstm.py's) are this loop with the cell's step
written in (the tests hold them together to 1e-12, with zoneout and recurrent dropout).  A state tuple
s_t = (h_t, ...) takes the place of h_t (and c_t); its first entry is the output.

Forward, from the initial state s_{−1} = s0 (h_{−1}, the ``h0`` of the code, and so on)::

    s̃_t, cache_t = step_forward(x_t, s_{t−1})                      (§3)
    s_t = m_t s̃_t + (1 − m_t) s_{t−1}   for every state             (§7; m_t = 1 without lengths)
    y_t = m_t h̃_t                       (h the first state)         (§7)

Backward, from ds_{T−1} = ∂L/∂s_n (zero where not given)::

    ds̃_t = m_t (ds_t + [dy_t for h, 0 for the others])            (§3, §7)
    dx_t, ds_prev, dθ_t = step_backward(ds̃_t, cache_t)
    ds_{t−1} = ds_prev + (1 − m_t) ds_t                             (§7)
    dθ = Σ_t dθ_t                                                    (§3)

With recurrent dropout (``h_mask``, derivations §16), for a cell whose h_{t−1} reaches its new
state only through products with recurrent weights (``Cell.h_prev_only_in_products``), the
step reads h_{t−1} ⊙ mask in place of h_{t−1}, and ∂L/∂h_{t−1} takes the mask on the way back::

    s̃_t, cache_t = step_forward(x_t, (h_{t−1} ⊙ mask, other states))
    dh_{t−1} = dh_prev ⊙ mask + (1 − m_t) dh_t

With zoneout (``zoneout``, derivations §17; Krueger et al. 2017), each unit of a state keeps its
previous value where δ_t = 1 (training: a fresh 0/1 mask δ_t per step, unit and sequence; at
evaluation δ_t is the rate p, the expectation): with k_t = m_t (1 − δ_t), the share of the new
value, ::

    s_t = k_t s̃_t + (1 − k_t) s_{t−1},   y_t = m_t h_t                           (§17)
    g_t = ds_t + [m_t dy_t for h],   ds̃_t = k_t g_t,
    ds_{t−1} = ds_prev + (1 − k_t) g_t                                              (§17)

(with δ_t = 0, k_t = m_t: the §7 lines above).

The loop checks the first step's results against the protocol (how many states, their shapes
and dtype, a gradient for every parameter); :func:`check_cell` probes a cell once, when a layer
is built, for what only a second look finds (inputs or a cache changed in place).
"""

from __future__ import annotations

import contextlib
import types
from typing import Callable, NamedTuple

import numpy as np

from ..backend import array_module
from .common import CellError, new_share, real_steps, time_steps, zeros_for_none, zeros_if_none

__all__ = ["forward", "backward", "gate_activations", "Loop", "LOOP", "check_cell", "check_parameters",
           "recurrent_dropout_refusal"]


class Loop(NamedTuple):
    """How a layer runs a cell over a sequence: ``forward(cell, x, state0, params, *, lengths,
    reverse, workspace[, h_mask][, zoneout])`` → (y, state_n, cache) (``h_mask``, recurrent
    dropout's mask, and ``zoneout``, its masks or rates per state, each passed only when there is
    one); ``backward(cell, dy, dstate_n, cache, *, state_grads)`` → (dx, dstate0, grads);
    ``gate_activations(cell, cache)`` → {name: (T, B, H)}; ``kind``: "generic", "reference" or
    "fast" (what ``repr`` of a layer says); ``takes``: the per-step regularisers the loop
    applies, of "recurrent_dropout" and "zoneout" (a layer refuses the others on it)."""
    forward: Callable
    backward: Callable
    gate_activations: Callable
    kind: str
    takes: tuple = ()


class GenericCache(NamedTuple):
    """What :func:`forward` keeps for :func:`backward`."""
    steps: list               # each step's cache, in time order
    mask: object              # (T, B, 1) m_t: 1 at real steps, 0 at padded ones
    reverse: bool
    input_size: int
    state_shape: tuple        # (B, H)
    h_mask: object = None     # (B, H) recurrent dropout's mask, or None
    zoneout: tuple = None     # per state: None, δ_t's of every step (T, B, H), or the rate p (§17)

    MADE_BY = "numpyrnn.cells.generic.forward"


def forward(cell, x, state0, params, *, lengths=None, reverse=False, workspace=None, h_mask=None, zoneout=None):
    """``cell`` over x (T, B, I) from the state tuple ``state0`` (each (B, H)), with ``params``
    (name → array): one ``step_forward`` per step.  Returns (y (T, B, H), state_n tuple, cache);
    ``workspace`` is accepted and ignored.  ``h_mask`` (B, H): recurrent dropout's mask (above),
    for a cell that can take it.  ``zoneout``: a tuple with an entry per state, None (none), the
    masks δ of every step (T, B, H) in training, or the rate p at evaluation (above, §17)."""
    if h_mask is not None:
        refusal = recurrent_dropout_refusal(cell, "generic")
        if refusal:
            raise ValueError(refusal)
    T, B, I = x.shape
    xp = array_module(x)
    mask = real_steps(lengths, T, B, x.dtype, xp)   # m_t (§7)
    H = state0[0].shape[-1]
    y = xp.empty((T, B, H), x.dtype)
    steps = [None] * T                           # each step's cache, in time order
    state = state0 = tuple(state0)               # s_{−1} = s0 (§3)
    for t in time_steps(T, reverse):             # t = 0, ..., T−1; reversed: T−1, ..., 0 (§8)
        read = state if h_mask is None else (state[0] * h_mask, *state[1:])   # h_{t−1} ⊙ mask (§16)
        new_state, steps[t] = cell.step_forward(x[t], read, params)   # s̃_t (§3)
        if state is state0:                      # the first step: does it keep the protocol?
            _check_forward_result(cell, new_state, state, x.dtype)
        if zoneout is None:
            y[t] = mask[t] * new_state[0]        # y_t = m_t h̃_t (§7)
            state = tuple(mask[t] * s_tilde + (1 - mask[t]) * s       # s_t = m_t s̃_t + (1 − m_t) s_{t−1} (§7)
                          for s_tilde, s in zip(new_state, state))
        else:
            keep = _new_share(mask[t], zoneout, t)    # k_t = m_t (1 − δ_t) (§17)
            state = tuple(k * s_tilde + (1 - k) * s   # s_t = k_t s̃_t + (1 − k_t) s_{t−1} (§17)
                          for k, s_tilde, s in zip(keep, new_state, state))
            y[t] = mask[t] * state[0]            # y_t = m_t h_t, the state after zoneout (§17)
    return y, state, GenericCache(steps, mask, reverse, I, (B, H), h_mask, zoneout)


def _new_share(m_t, zoneout, t):
    """k_t = m_t (1 − δ_t) for each state: the share of the new value in s_t (§17); m_t where
    the state has no zoneout."""
    return [new_share(m_t, delta, t) for delta in zoneout]


def backward(cell, dy, dstate_n, cache, *, state_grads=None):
    """Backward of :func:`forward`: one ``step_backward`` per step, last step first.

    ``dy`` (T, B, H) and ``dstate_n`` (a tuple, entries (B, H)) may be None (meaning zero).
    Returns (dx (T, B, I), dstate0 tuple, grads name → array).  ``state_grads``, if given, is a
    dict state name → (T, B, H) array that receives ∂L/∂s_t for every step.
    """
    steps, mask, reverse, I, (B, H), h_mask, zoneout = cache
    T, dtype = len(steps), mask.dtype
    xp = array_module(mask)
    dy = zeros_if_none(dy, (T, B, H), dtype, xp)  # None: the outputs did not reach the loss
    dstate_n = (None,) * len(cell.state_names) if dstate_n is None else dstate_n
    ds = [zeros_if_none(d, (B, H), dtype, xp) for d in dstate_n]   # ds_{T−1} = ∂L/∂s_n (§3)
    dx = xp.empty((T, B, I), dtype)
    grads = {}                                   # Σ_t dθ_t (§3)
    for t in reversed(time_steps(T, reverse)):   # the forward's steps, last first (§3)
        if zoneout is not None:                  # the same, with zoneout's shares (§17)
            g = [ds[0] + mask[t] * dy[t], *ds[1:]]            # g_t = ds_t + [m_t dy_t] (§17)
            keep = _new_share(mask[t], zoneout, t)            # k_t = m_t (1 − δ_t)
            ds_tilde = tuple(k * g_s for k, g_s in zip(keep, g))   # ds̃_t = k_t g_t (§17)
            carried = [(1 - k) * g_s for k, g_s in zip(keep, g)]   # (1 − k_t) g_t, to ds_{t−1}
            if state_grads is not None:
                for name, d in zip(cell.state_names, g):
                    state_grads[name][t] = d
        else:
            arriving = [ds[0] + dy[t], *ds[1:]]  # ∂L/∂s_t: h_t also reaches the output y_t (§3)
            if state_grads is not None:          # kept if asked: ∂L/∂s_t = ds_t + [m_t dy_t] (§3, §7)
                for name, d in zip(cell.state_names, [ds[0] + mask[t] * dy[t], *ds[1:]]):
                    state_grads[name][t] = d
            ds_tilde = tuple(mask[t] * d for d in arriving)  # ds̃_t = m_t (ds_t + [dy_t]) (§7)
            carried = [(1 - mask[t]) * d for d in ds]         # (1 − m_t) ds_t (§7)
        dx[t], ds_prev, grads_t = cell.step_backward(ds_tilde, steps[t])   # through the step
        if not grads:                            # the first step back: does it keep the protocol?
            _check_backward_result(cell, dx[t], ds_prev, grads_t, steps[t], ds_tilde)
        ds_prev = zeros_for_none(ds_prev, ds_tilde)   # None: a state the step does not read (§13)
        if h_mask is not None:                   # h_{t−1} was read through the mask (§16)
            ds_prev = (ds_prev[0] * h_mask, *ds_prev[1:])
        ds = [d_prev + c for d_prev, c in zip(ds_prev, carried)]   # ds_{t−1} = ds_prev + carried (§7, §17)
        for name, g in grads_t.items():          # dθ += dθ_t (§3)
            grads[name] = g if name not in grads else grads[name] + g
    return dx, tuple(ds), grads                  # ds is now ∂L/∂s0


def gate_activations(cell, cache):
    """The cell's gates (its ``gate_activations`` hook) at every step, by name, each (T, B, H)
    in time order; 0 at padded steps."""
    per_step = [cell.gate_activations(c) for c in cache.steps]
    xp = array_module(cache.mask)
    return {name: xp.stack([gates[name] for gates in per_step]) * cache.mask for name in per_step[0]}


#: the generic loop, the one every cell can run on
LOOP = Loop(forward, backward, gate_activations, "generic", takes=("recurrent_dropout", "zoneout"))


def recurrent_dropout_refusal(cell, impl) -> str | None:
    """Why ``cell`` cannot take recurrent dropout on the loop ``impl``, or None if it can.
    The generic loop masks the h_{t−1} it hands the step, which is right only for a cell that
    reads h_{t−1} through its recurrent products alone; a cell's own loops (the textbook GRU's)
    take the mask themselves and apply it inside the step (its carry z ⊙ h_{t−1} stays whole)."""
    loop = cell.sequence(impl)
    own = loop.kind != "generic"
    if own and "recurrent_dropout" not in loop.takes:
        return f"recurrent_dropout: the {cell.name or type(cell).__name__} cell's {impl} loop does not take it"
    if cell.h_prev_only_in_products or own:
        return None
    name = cell.name or type(cell).__name__
    if cell.sequence("fast").kind != "generic":
        return (f"recurrent_dropout: the {name} cell takes it on its own loops (impl='fast' or "
                "'reference'), not on the generic loop, which cannot keep its carry z ⊙ h_{t−1} unmasked")
    return (f"recurrent_dropout: the cell {name!r} cannot take it: recurrent dropout masks h_{{t−1}} where "
            "it enters the recurrent products, and this cell does not declare that h_{t−1} enters its new "
            "state only there (a cell that also carries h_{t−1}, as the GRU's z ⊙ h_{t−1} or a leaky "
            "h = (1 − α) h_{t−1} + …, must not have it dropped); a cell that does sets "
            "h_prev_only_in_products = True")


# --------------------------------------------------------------------------- checking a cell

def _where(cell, method):
    return f"{type(cell).__name__}.{method}"


@contextlib.contextmanager
def calling(cell, method):
    """Run a cell's method while it is being checked: what it raises becomes a
    :class:`CellError` naming the method (the cause kept)."""
    try:
        yield
    except CellError:
        raise
    except Exception as exc:                     # the cell's code: anything can happen in it
        raise CellError(f"{_where(cell, method)} raised {type(exc).__name__}: {exc}") from exc


def _is_array(a):
    return hasattr(a, "shape") and hasattr(a, "dtype")


def check_parameters(cell, input_size, hidden_size):
    """``cell.parameters(input_size, hidden_size)``, checked: an ordered dict of identifier →
    tuple of positive ints."""
    with calling(cell, "parameters"):
        shapes = cell.parameters(input_size, hidden_size)
    where = _where(cell, "parameters")
    if not isinstance(shapes, dict) or not shapes:
        raise CellError(f"{where} must return a non-empty dict {{name: shape tuple}}, got "
                        f"{type(shapes).__name__}")
    for name, shape in shapes.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise CellError(f"{where}: parameter names must be identifiers (the layer names them "
                            f"name_l0, name_l0_reverse, ...), got {name!r}")
        if not isinstance(shape, tuple) or not shape or not all(
                isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 for n in shape):
            raise CellError(f"{where}: the shape of {name!r} must be a tuple of positive ints, got {shape!r}")
    return {name: tuple(int(n) for n in shape) for name, shape in shapes.items()}


def _check_state_tuple(cell, method, what, value, shape, dtype, none_allowed=False):
    n = len(cell.state_names)
    names = ", ".join(cell.state_names)
    if not isinstance(value, tuple) or len(value) != n:
        got = f"a tuple of {len(value)}" if isinstance(value, tuple) else f"a {type(value).__name__}"
        raise CellError(f"{_where(cell, method)} must return {what} as a tuple of {n} array{'s' * (n > 1)} "
                        f"({names}){' (None for a state the step does not read)' if none_allowed else ''}, "
                        f"got {got}")
    for name, s in zip(cell.state_names, value):
        if s is None and none_allowed:
            continue                             # a zero gradient: the step does not read this state
        if not _is_array(s) or tuple(s.shape) != tuple(shape):
            raise CellError(f"{_where(cell, method)}: {what} {name} must have shape {tuple(shape)}, got "
                            f"{getattr(s, 'shape', type(s).__name__)}")
        if s.dtype != dtype:
            raise CellError(f"{_where(cell, method)}: {what} {name} is {s.dtype}, but the layer computes in "
                            f"{np.dtype(dtype)} (a {s.dtype} constant or array promotes the result: make "
                            "constants Python numbers, or arrays of the inputs' dtype)")


def _check_forward_result(cell, new_state, state, dtype):
    _check_state_tuple(cell, "step_forward", "the new state", new_state, state[0].shape, dtype)


def _check_backward_result(cell, dx_t, dstate_prev, grads, cache, dstate):
    _check_state_tuple(cell, "step_backward", "dstate_prev", dstate_prev, dstate[0].shape, dstate[0].dtype,
                       none_allowed=True)
    if not isinstance(grads, dict):
        raise CellError(f"{_where(cell, 'step_backward')} must return the parameters' gradients as a dict "
                        f"{{name: array}}, got {type(grads).__name__}")


def _check_grads(cell, grads, params):
    where = _where(cell, "step_backward")
    missing = [n for n in params if n not in grads]
    unknown = [n for n in grads if n not in params]
    if missing or unknown:
        raise CellError(f"{where} must return a gradient for every parameter ({', '.join(params)}): "
                        + "; ".join(([f"missing {missing}"] if missing else [])
                                    + ([f"unknown {unknown}"] if unknown else [])))
    for name, p in params.items():
        g = grads[name]
        if not _is_array(g) or tuple(g.shape) != tuple(p.shape):
            raise CellError(f"{where}: the gradient of {name} must have its shape {tuple(p.shape)}, got "
                            f"{getattr(g, 'shape', type(g).__name__)}")
        if g.dtype != p.dtype:
            raise CellError(f"{where}: the gradient of {name} is {g.dtype}, but the layer computes in {p.dtype}")


def _arrays_in(obj, depth=0):
    """Every array inside a cache (tuples, lists, dicts, objects' attributes), for snapshots."""
    if _is_array(obj):
        return [obj]
    if depth > 4:
        return []
    if isinstance(obj, dict):
        items = obj.values()
    elif isinstance(obj, (tuple, list)):
        items = obj
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, types.ModuleType)) and not callable(obj):
        items = vars(obj).values()
    else:
        return []
    return [a for item in items for a in _arrays_in(item, depth + 1)]


def _unchanged(before, after):
    xp = array_module(after)
    return before.shape == after.shape and bool(xp.array_equal(before, after, equal_nan=True))


def check_cell(cell, params, input_size, hidden_size, xp, dtype, batch=2, seed=0):
    """Probe ``cell`` once on a small random batch with the layer's first parameters: the step
    forward and backward keep the protocol (states, shapes, dtype, a gradient for every
    parameter), change none of their inputs, and the backward leaves its cache as it found it
    (and gives the same result when called again on it).  Raises :class:`CellError` saying
    which method does what."""
    rng = np.random.default_rng(seed)
    H, dtype = hidden_size, np.dtype(dtype)
    x_t = xp.asarray(rng.standard_normal((batch, input_size)).astype(dtype))
    state = tuple(xp.asarray((0.5 * rng.standard_normal((batch, H))).astype(dtype)) for _ in cell.state_names)
    saved = {"x_t": x_t.copy(), **{f"state {n}": s.copy() for n, s in zip(cell.state_names, state)},
             **{f"params[{n!r}]": p.copy() for n, p in params.items()}}
    current = {"x_t": x_t, **dict(zip((f"state {n}" for n in cell.state_names), state)),
               **{f"params[{n!r}]": p for n, p in params.items()}}
    with calling(cell, "step_forward"):
        result = cell.step_forward(x_t, state, params)
    if not isinstance(result, tuple) or len(result) != 2:
        raise CellError(f"{_where(cell, 'step_forward')} must return (new_state, cache), got "
                        f"{type(result).__name__}" + (f" of {len(result)}" if isinstance(result, tuple) else ""))
    new_state, cache = result
    _check_forward_result(cell, new_state, state, dtype)
    changed = [name for name, a in current.items() if not _unchanged(saved[name], a)]
    if changed:
        raise CellError(f"{_where(cell, 'step_forward')} changed its input {', '.join(changed)} in place: "
                        "a step must leave what it is given as it was (the layer reuses it)")
    dstate = tuple(xp.asarray(rng.standard_normal((batch, H)).astype(dtype)) for _ in cell.state_names)
    cache_arrays = _arrays_in(cache)
    cache_saved = [a.copy() for a in cache_arrays]
    dstate_saved = [d.copy() for d in dstate]
    with calling(cell, "step_backward"):
        out = cell.step_backward(dstate, cache)
    if not isinstance(out, tuple) or len(out) != 3:
        raise CellError(f"{_where(cell, 'step_backward')} must return (dx_t, dstate_prev, grads), got "
                        f"{type(out).__name__}" + (f" of {len(out)}" if isinstance(out, tuple) else ""))
    dx_t, dstate_prev, grads = out
    if not _is_array(dx_t) or tuple(dx_t.shape) != (batch, input_size) or dx_t.dtype != dtype:
        raise CellError(f"{_where(cell, 'step_backward')}: dx_t must be a {dtype} array of shape "
                        f"{(batch, input_size)}, got {getattr(dx_t, 'dtype', '')} "
                        f"{getattr(dx_t, 'shape', type(dx_t).__name__)}")
    _check_backward_result(cell, dx_t, dstate_prev, grads, cache, dstate)
    dstate_prev = zeros_for_none(dstate_prev, dstate)
    _check_grads(cell, grads, params)
    if any(not _unchanged(s, d) for s, d in zip(dstate_saved, dstate)):
        raise CellError(f"{_where(cell, 'step_backward')} changed dstate in place: a step must leave what "
                        "it is given as it was")
    if any(not _unchanged(s, a) for s, a in zip(cache_saved, cache_arrays)):
        raise CellError(f"{_where(cell, 'step_backward')} changed its cache in place: it must leave the cache "
                        "as step_forward made it (it may be called more than once on it, e.g. by gradflow)")
    try:
        again = cell.step_backward(dstate, cache)
    except Exception as exc:                     # the cell's code: anything can happen in it
        raise CellError(f"{_where(cell, 'step_backward')} failed when called again on the same cache "
                        f"({type(exc).__name__}: {exc}): it must not change the cache (gradflow calls it more "
                        "than once)") from exc
    again_prev = zeros_for_none(again[1], dstate)
    same = (_unchanged(dx_t, again[0]) and all(_unchanged(a, b) for a, b in zip(dstate_prev, again_prev))
            and all(_unchanged(grads[n], again[2][n]) for n in grads))
    if not same:
        raise CellError(f"{_where(cell, 'step_backward')} gave a different result when called again on the "
                        "same cache: it must not change the cache (gradflow calls it more than once)")
