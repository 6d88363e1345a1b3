"""What the three cells share: activations, the GEMMs outside the time loop, time order,
length masks, caches, and the checks on their arguments.

Shapes: T time steps, B sequences in the batch, I input features, H hidden units, G gates
(1 for RNN, 4 for LSTM, 3 for GRU).  Time-major throughout: x is (T, B, I).
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.special

from ..backend import array_module, matmul
from ..validation import as_lengths, check_finite, check_shape


# --------------------------------------------------------------------------- activations

def sigmoid(a, out=None):
    """σ(a) = 1 / (1 + e^(−a)), computed without overflow for any a."""
    xp = array_module(a)
    if xp is np:
        return scipy.special.expit(a, out=out)
    # CuPy: σ(a) = (1 + tanh(a/2)) / 2 is the same function and never overflows.
    out = xp.multiply(a, 0.5, out=out)
    xp.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


# --------------------------------------------------------------------------- buffers

class Workspace:
    """Named arrays kept from one call to the next, so that repeated passes over batches of the
    same shape reuse their memory.

    Fresh large arrays are not free: the allocator hands big blocks back to the operating system
    when they are freed, and every page of a new one faults on first touch (thousands of faults
    per LSTM forward+backward, over 10 % of its time).  A layer gives each of its cells a
    workspace; the arrays a forward caches for its backward then live there, and the next
    forward through the same workspace overwrites them.  Without a workspace (the default) the
    cell functions allocate fresh arrays and keep nothing.
    """

    def __init__(self):
        self._arrays = {}

    def get(self, name, shape, dtype, xp):
        """An array of ``shape`` and ``dtype`` (contents undefined), reused when possible."""
        shape = tuple(shape)
        a = self._arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype or array_module(a) is not xp:
            a = self._arrays[name] = xp.empty(shape, dtype)
        return a

    def nbytes(self):
        return sum(a.nbytes for a in self._arrays.values())


def scratch(workspace, name, shape, dtype, xp):
    """An uninitialised array: from ``workspace`` when there is one, else a new one."""
    return xp.empty(shape, dtype) if workspace is None else workspace.get(name, shape, dtype, xp)


# --------------------------------------------------------------------------- the GEMMs outside the loop
#
# backend.matmul is the product itself; it only lets a big one (the bench's largest shapes) use
# every BLAS thread while the loops run on one (numpyrnn's thread policy, backend.py).

def input_terms(x, weight_ih, bias, out):
    """x_t W_ih^T + b for every step, into ``out`` (T, B, rows of W_ih): one product for all
    steps, (T·B, I) × (I, G·H), then the bias (None for none) added in place."""
    xp = array_module(x)
    T, B, I = x.shape
    matmul(x.reshape(T * B, I), xp.ascontiguousarray(weight_ih.T), out=out.reshape(T * B, -1))
    if bias is not None:
        out += bias
    return out


def step_major_input_terms(x, w_ih_t, bias, workspace, borrowed):
    """x_t W_ih^T + b for every step and gate, step-major: (T, G, B, H), each step's gates one
    contiguous block and each gate of it a contiguous (B, H) block.

    One product for all steps, (T·B, I) × (G, I, H), into ``borrowed`` (a contiguous array of at
    least T·B·G·H elements that the backward fills later, so free during the forward), then laid
    out step-major while the bias (G, 1, H), if any, is added: no more memory or passes than the
    product and the bias alone.
    """
    xp = array_module(x)
    T, B, I = x.shape
    G, _, H = w_ih_t.shape
    projection = borrowed.reshape(-1)[:G * T * B * H].reshape(G, T * B, H)
    matmul(x.reshape(T * B, I), w_ih_t, out=projection)              # x_t W_ih^T per gate
    projection = projection.reshape(G, T, B, H).transpose(1, 0, 2, 3)
    gates = scratch(workspace, "gates", (T, G, B, H), x.dtype, xp)
    if bias is not None:
        xp.add(projection, bias, out=gates)
    else:
        xp.copyto(gates, projection)
    return gates


def weight_gradients(da, inputs):
    """Σ_t da_t^T inputs_t as one (G·H, T·B) × (T·B, K) matrix product.

    ``da`` (T, B, G·H) holds the gradients of the pre-activations, ``inputs`` (T, B, K) what
    multiplied the weight at each step (x_t for W_ih, h_{t−1} for W_hh).
    """
    T, B, K = inputs.shape
    return matmul(da.reshape(T * B, -1).T, inputs.reshape(T * B, K))


def input_gradient(da, weight_ih):
    """dx_t = da_t W_ih for every step at once: one matrix product."""
    T, B, _ = da.shape
    return matmul(da.reshape(T * B, -1), weight_ih).reshape(T, B, -1)


def fold_biases(bias_ih, bias_hh):
    """b_ih + b_hh: two biases added at every step act as one (None where both are None)."""
    if bias_ih is None or bias_hh is None:
        return bias_ih if bias_hh is None else bias_hh
    return bias_ih + bias_hh


def bias_gradient(da):
    """Σ_{t,b} da: a bias is added at every step to every sequence."""
    return da.sum(axis=(0, 1))


# --------------------------------------------------------------------------- time order and lengths

def time_steps(T, reverse=False):
    """The order in which the forward pass visits the steps."""
    return range(T - 1, -1, -1) if reverse else range(T)


#: the backward precomputes per-step factors a block of steps at a time, about this many bytes
#: per array: small enough to stay in cache until the loop uses them, large enough that small
#: problems take few NumPy calls
CHUNK_BYTES = 1 << 19


def backward_chunks(T, reverse, step_bytes):
    """Blocks of steps in the order the backward visits them, each a slice of the steps in time
    order (the backward then visits a block's steps with ``step_views(not reverse, ...)``)."""
    size = max(1, min(T, CHUNK_BYTES // max(step_bytes, 1)))
    starts = range(0, T, size) if reverse else range((T - 1) // size * size, -1, -size)
    for lo in starts:
        yield slice(lo, min(lo + size, T))


def in_block(block, *arrays):
    """Each array's steps in ``block`` (a slice), None staying None."""
    return tuple(None if a is None else a[block] for a in arrays)


def step_views(reverse, *arrays):
    """Step by step, in the order ``reverse`` gives, a tuple of each array's slice at that step.

    Each array is indexed by step first, in time order; None stands for an absent array and
    gives None at every step.  The fast paths' loops take their per-step views this way: made
    by NumPy's iteration, which costs about half what indexing in the loop does (0.05 against
    0.1 µs a view), and with no index arithmetic in the loop.
    """
    return zip(*(itertools.repeat(None) if a is None else a[::-1] if reverse else a
                 for a in arrays))


def states_in_time_order(buffer, reverse=False):
    """(h_t: the state after each step t, h_{t−1}: the state before it), both (T, B, H) views of
    a (T+1, B, H) state buffer in time order, t = 0..T−1.

    h_{−1} is the initial state (``h0`` in code), h_t the state after step t.  Forward direction:
    buffer[0] = h_{−1}, buffer[t+1] = h_t.  Reverse direction (steps visited T−1, ..., 0):
    buffer[T] = h_{−1}, buffer[t] = h_t.  Either way the states in time order are one contiguous
    slice.
    """
    return (buffer[:-1], buffer[1:]) if reverse else (buffer[1:], buffer[:-1])


def length_mask(lengths, T, dtype, xp):
    """(T, B, 1) array: 1 where step t is a real step of sequence b (t < lengths[b]), else 0."""
    if lengths is None:
        return None
    lengths = xp.asarray(lengths)
    return (xp.arange(T)[:, None] < lengths[None, :]).astype(dtype)[:, :, None]


def real_steps(lengths, T, B, dtype, xp):
    """m_t for every step, (T, B, 1): 1 where step t is a real step of sequence b, else 0; all
    ones without lengths.  The reference loops use it as derivations §7 writes it."""
    if lengths is None:
        return xp.ones((T, B, 1), dtype)
    return length_mask(lengths, T, dtype, xp)


def new_share(m_t, delta, t):
    """k_t = m_t (1 − δ_t), the share of the new value in a state at step t (derivations §17):
    ``delta`` None (no zoneout: k_t = m_t, section 7), the rate p at evaluation (δ_t = p), or the
    masks δ of every step (T, B, H) in training."""
    if delta is None:
        return m_t
    return m_t * (1 - delta) if isinstance(delta, float) else m_t * (1 - delta[t])


def new_shares(zoneout, mask, T, dtype, xp):
    """For a fast loop, per state: (k, 1 − k) for every step at once, k_t = m_t (1 − δ_t)
    (:func:`new_share`), each broadcasting against (T, B, H) and indexed by step first; None for
    a state that keeps no old value (no zoneout and no lengths: k = 1).  None without zoneout."""
    if zoneout is None:
        return None
    shares = []
    for delta in zoneout:
        if delta is None:
            k = mask                                     # (T, B, 1), or None: k = 1
        elif isinstance(delta, float):
            k = xp.full((T, 1, 1), 1 - delta, dtype) if mask is None else mask * (1 - delta)
        else:
            k = 1 - delta if mask is None else mask * (1 - delta)
        shares.append(None if k is None else (k, 1 - k))
    return shares


def add_step(total, step):
    """total + step: one step's gradient of a parameter added to the sum over steps (None, where
    the step returns None, is a parameter the cell does not have, such as an absent bias)."""
    if step is None:
        return None
    return step if total is None else total + step


def padding(mask, carry=True):
    """What a fast loop needs to keep padded sequences' states: per step t, the (B, 1) booleans
    True where step t is padded (m_t = 0) for :func:`carry_over`, or None at a step that pads no
    sequence (nothing to carry).  Computed once before a loop, not once per step.  None without
    lengths, or when ``carry`` is False: a loop that need not carry (see :func:`must_carry`).
    """
    if mask is None or not carry:
        return None
    padded = mask == 0
    return [p if any_padded else None for p, any_padded in zip(padded, padded.any(axis=(1, 2)).tolist())]


def must_carry(reverse, bounded, *final_state_grads):
    """Whether a fast loop over sequences with lengths must carry each padded sequence's state
    (forward) or gradient (backward, when ``final_state_grads`` are given) through its padded
    steps, as derivations §7 writes it.

    Not in the forward direction, for a cell whose states stay bounded: there a sequence's padded
    steps all come after its real ones, so the forward may run on through them (their states are
    then nobody's: the outputs there are masked to 0, and the final state is read at the last
    real step, :func:`final_state`); and the backward, when no gradient comes in through the
    final state, meets those steps with dh = dc = 0 (m_t dy_t = 0 there), so their gate
    gradients come out 0 without a mask.  A sequence's padding comes first in the reversed
    direction, and a ReLU RNN's states could overflow on a long padding, so those carry.
    """
    return reverse or not bounded or any(g is not None for g in final_state_grads)


def carry_over(new, prev, padded):
    """In place: new ← prev where ``padded`` (a step's slice of :func:`padding`).  A padded step
    keeps the old state.

    The fast paths' form of h_t = m_t h̃_t + (1 − m_t) h_{t−1} (derivations §7): one masked copy
    instead of three array operations.  Both give the same bits, since m_t is exactly 0 or 1.
    """
    xp = array_module(new)
    xp.copyto(new, prev, where=padded)
    return new


def zone(new, new_value, prev, k_t, rest_t, tmp):
    """In place: new ← k_t new_value + (1 − k_t) prev, zoneout's mix at one step (derivations
    §17), the fast paths' form of the reference loops' line, after the step's body wrote the new
    value (``new`` may be ``new_value`` itself).  ``k_t`` None means 1: the new value whole.
    ``tmp``: a (B, H) scratch buffer."""
    xp = array_module(new)
    if k_t is None:
        if new is not new_value:
            xp.copyto(new, new_value)
        return new
    xp.multiply(new_value, k_t, out=new)         # k_t s̃_t
    xp.multiply(prev, rest_t, out=tmp)           # (1 − k_t) s_{t−1}
    new += tmp
    return new


def outputs(buffer, mask, reverse=False):
    """y_t = h_t at real steps and 0 at padded ones, (T, B, H) in time order.

    Without lengths this is a read-only view of the state buffer (no copy); writing into it
    would corrupt what backward reads, so NumPy is told to refuse.
    """
    states, _ = states_in_time_order(buffer, reverse)
    if mask is not None:
        return states * mask
    if array_module(states) is np:
        states = states.view()
        states.flags.writeable = False
    return states


def masked_output_grad(dy, mask, workspace=None):
    """m_t ⊙ dy_t for every step at once (None stays None; without lengths, dy itself).

    With lengths, y_t = m_t h̃_t, so only m_t dy_t reaches the cell (derivations §7): a padded
    step's output was the constant 0.  One product over the whole sequence, before the loop.
    """
    if dy is None or mask is None:
        return dy
    xp = array_module(dy)
    return xp.multiply(dy, mask, out=scratch(workspace, "dy", dy.shape, dy.dtype, xp))


def final_state(buffer, reverse=False, lengths=None):
    """The state after the last step the direction visits (a copy, not a view of the cache): in
    the forward direction with lengths, each sequence's state after its own last real step."""
    if reverse:
        return buffer[0].copy()
    if lengths is None:
        return buffer[-1].copy()
    xp = array_module(buffer)
    lengths = xp.asarray(lengths)
    return buffer[lengths, xp.arange(buffer.shape[1])]   # slot L = the state after step L − 1


def zeros_if_none(a, shape, dtype, xp):
    return xp.zeros(shape, dtype) if a is None else a


# --------------------------------------------------------------------------- argument checks

#: the RNN's two nonlinearities, as torch.nn.RNN names them
NONLINEARITIES = ("tanh", "relu")


def check_nonlinearity(nonlinearity):
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {', '.join(map(repr, NONLINEARITIES))}, "
                         f"got {nonlinearity!r}")

def check_cell_args(x, states, weight_ih, weight_hh, bias_ih, bias_hh, gates, *, step=False,
                    lengths=None, finite=True):
    """Check what a cell's forward receives; returns (T, B, I, H) (T is None for a step).

    ``states`` is a dict name → array; ``gates`` is G.  All float arrays must share one dtype;
    with ``finite``, none may hold NaN or Inf.
    """
    ndim = 2 if step else 3
    what = "(B, I)" if step else "(T, B, I)"
    if getattr(x, "ndim", None) != ndim:
        raise ValueError(f"x must be a {ndim}-d array {what}, got shape {getattr(x, 'shape', type(x).__name__)}")
    if getattr(weight_hh, "ndim", None) != 2 or weight_hh.shape[0] != gates * weight_hh.shape[1]:
        raise ValueError(f"weight_hh must have shape ({gates}·H, H), got {getattr(weight_hh, 'shape', None)}")
    H = weight_hh.shape[1]
    T, B, I = (None, *x.shape) if step else x.shape
    check_shape("weight_ih", weight_ih, (gates * H, I))
    for name, b in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
        if b is not None:
            check_shape(name, b, (gates * H,))
    for name, s in states.items():
        check_shape(name, s, (B, H))
    arrays = {"x": x, "weight_ih": weight_ih, "weight_hh": weight_hh, "bias_ih": bias_ih,
              "bias_hh": bias_hh, **states}
    dtypes = {name: a.dtype for name, a in arrays.items() if a is not None}
    for name, dt in dtypes.items():
        if dt.kind != "f":
            raise TypeError(f"{name} must be a floating-point array, got dtype {dt}")
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{n}={d}" for n, d in dtypes.items())
        raise TypeError(f"all arrays must share one floating dtype, got {listed}")
    if finite:
        for name, a in arrays.items():
            if a is not None:
                check_finite(name, a)
    if lengths is not None:
        as_lengths(lengths, T, B)
    return T, B, I, H


def check_grad_arg(name, a, shape, dtype, finite=True):
    """A gradient passed to backward: None (meaning zero) or an array of the output's shape (and,
    with ``finite``, without NaN or Inf)."""
    if a is None:
        return
    check_shape(name, a, shape)
    if a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} (that of the forward pass), got {a.dtype}")
    if finite:
        check_finite(name, a)


def check_zoneout(zoneout, states, shape, dtype, finite=True):
    """Zoneout's masks (derivations §17): None (no zoneout), or a tuple with an entry per state
    (``states``, their names): None (none for that state), the rate p in [0, 1) (evaluation:
    δ_t = p), or the masks δ of every step, a (T, B, H) array of the computation's dtype (1
    where a unit keeps its previous value).  Returns the tuple, or None."""
    if zoneout is None:
        return None
    if not isinstance(zoneout, tuple) or len(zoneout) != len(states):
        raise ValueError(f"zoneout must be None or a tuple with an entry per state ({', '.join(states)}), "
                         f"got {zoneout if not hasattr(zoneout, 'shape') else 'an array'!r}")
    for name, delta in zip(states, zoneout):
        what = f"zoneout's entry for {name}"
        if delta is None:
            continue
        if isinstance(delta, float):
            if not 0 <= delta < 1:
                raise ValueError(f"{what} must be a rate in [0, 1) or the masks of every step, got {delta}")
            continue
        check_shape(what, delta, shape)
        if delta.dtype != dtype:
            raise TypeError(f"{what} must have dtype {dtype} (that of the inputs), got {delta.dtype}")
        if finite:
            check_finite(what, delta)
    return zoneout


def check_h_mask(h_mask, shape, dtype, finite=True):
    """Recurrent dropout's mask (derivations §16): None (no dropout) or a (B, H) array of the
    computation's dtype, finite and ≥ 0 (kept units hold 1/(1−p), dropped ones 0)."""
    if h_mask is None:
        return
    check_shape("h_mask", h_mask, shape)
    if h_mask.dtype != dtype:
        raise TypeError(f"h_mask must have dtype {dtype} (that of the inputs), got {h_mask.dtype}")
    if finite:
        check_finite("h_mask", h_mask)
        if bool((h_mask < 0).any()):
            raise ValueError("h_mask must be ≥ 0: 0 where a unit is dropped, 1/(1−p) where it is kept")


def check_cache(cache, kind, function):
    """Refuse a cache that ``function`` cannot read: the fast and the reference path each keep
    their own kind of cache (``kind``, a NamedTuple class) and read no other."""
    if not isinstance(cache, kind):
        made_by = getattr(type(cache), "MADE_BY", None)
        got = (f"one made by {made_by}" if made_by else f"a {type(cache).__name__}")
        raise TypeError(f"{function} reads the cache of {kind.MADE_BY}, got {got}: pass each "
                        "cache to the backward of the forward that made it")
    return cache


class CellError(TypeError, ValueError):
    """A cell that breaks the protocol: the message names the method and what is wrong."""


def zeros_for_none(dstate_prev, dstate):
    """``dstate_prev`` with each None (a state the step does not read) replaced by zeros like the
    matching entry of ``dstate``: how the loops and the checks read a step's backward."""
    if not isinstance(dstate_prev, tuple) or all(d is not None for d in dstate_prev):
        return dstate_prev
    return tuple(array_module(like).zeros_like(like) if d is None else d for d, like in zip(dstate_prev, dstate))
