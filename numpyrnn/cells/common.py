"""What the three cells share: activations, the two GEMMs outside the time loop, time order,
length masks, and the checks on their arguments.

Shapes: T time steps, B sequences in the batch, I input features, H hidden units, G gates
(1 for RNN, 4 for LSTM, 3 for GRU).  Time-major throughout: x is (T, B, I).
"""

from __future__ import annotations

import numpy as np
import scipy.special

from ..backend import array_module
from ..validation import as_lengths, check_shape


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


# --------------------------------------------------------------------------- matrix products

def matmul_into(out, a, b, *, transpose_b=False, accumulate=None):
    """out = a @ op(b), with op(b) = b.T when ``transpose_b``; no new array.

    ``accumulate``, a scratch array shaped like ``out``, makes it out += a @ op(b): the product
    goes to the scratch, then adds in.  (SciPy's BLAS gemm could accumulate in one call, but it
    is a second OpenBLAS with its own thread pool, and alternating between the two made every
    product over twice as slow on two cores: NumPy's alone is faster.)
    """
    xp = array_module(out)
    rhs = b.T if transpose_b else b
    if accumulate is None:
        return xp.matmul(a, rhs, out=out)
    xp.matmul(a, rhs, out=accumulate)
    out += accumulate
    return out


# --------------------------------------------------------------------------- the two big GEMMs

def input_projection(x, weight_ih, bias=None, *, transposed=False):
    """x_t W_ih^T + b for every step at once: one (T·B, I) × (I, G·H) matrix product.

    ``transposed``: ``weight_ih`` is given as W_ih^T, (I, G·H).  Returns a new (T, B, G·H)
    array; the loop adds the recurrent term to it in place.
    """
    T, B, I = x.shape
    xw = (x.reshape(T * B, I) @ (weight_ih if transposed else weight_ih.T)).reshape(T, B, -1)
    if bias is not None:
        xw += bias
    return xw


def weight_gradients(da, inputs):
    """Σ_t da_t^T inputs_t as one (G·H, T·B) × (T·B, K) matrix product.

    ``da`` (T, B, G·H) holds the gradients of the pre-activations, ``inputs`` (T, B, K) what
    multiplied the weight at each step (x_t for W_ih, h_{t−1} for W_hh).
    """
    T, B, K = inputs.shape
    return da.reshape(T * B, -1).T @ inputs.reshape(T * B, K)


def input_gradient(da, weight_ih):
    """dx_t = da_t W_ih for every step at once: one matrix product."""
    T, B, _ = da.shape
    return (da.reshape(T * B, -1) @ weight_ih).reshape(T, B, -1)


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
    """Blocks of steps in the order the backward visits them, each as (range of the block's
    steps in that order, slice of them in time order)."""
    size = max(1, min(T, CHUNK_BYTES // max(step_bytes, 1)))
    starts = range(0, T, size) if reverse else range((T - 1) // size * size, -1, -size)
    for lo in starts:
        hi = min(lo + size, T)
        yield (range(lo, hi) if reverse else range(hi - 1, lo - 1, -1)), slice(lo, hi)


def state_slots(t, reverse=False):
    """Where the state before and after step t live in a (T+1, B, H) state buffer.

    Forward direction: buffer[0] = h0, buffer[t+1] = h_t.  Reverse direction: buffer[T] = h0,
    buffer[t] = h_t.  Either way the states in time order are one contiguous slice.
    """
    return (t + 1, t) if reverse else (t, t + 1)


def states_in_time_order(buffer, reverse=False):
    """(h_0..h_{T−1} after each step, h before each step), both (T, B, H) views of the buffer."""
    return (buffer[:-1], buffer[1:]) if reverse else (buffer[1:], buffer[:-1])


def length_mask(lengths, T, dtype, xp):
    """(T, B, 1) array: 1 where step t is a real step of sequence b (t < lengths[b]), else 0."""
    if lengths is None:
        return None
    lengths = xp.asarray(lengths)
    return (xp.arange(T)[:, None] < lengths[None, :]).astype(dtype)[:, :, None]


def carry_over(new, prev, m):
    """In place: new ← prev where m = 0.  A padded step keeps the old state.

    A masked copy, not m·new + (1 − m)·prev: the arithmetic form rounds real steps' states.
    """
    xp = array_module(new)
    xp.copyto(new, prev, where=(m == 0))
    return new


def skipping(d, m):
    """(1 − m)·d: the part of a state gradient that skips a padded step (m = 0) unchanged."""
    return d * (1 - m)


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


def add_output_gradient(dh, dy, mask, t, tmp):
    """In place: dh ← dh + dy_t, the loss's gradient through step t's output (y_t = h_t).

    With lengths, y_t was m_t·h_t, so only m_t·dy_t reaches h_t (a padded step's output was a
    constant zero).  ``tmp`` is a (B, H) scratch buffer; nothing is allocated.
    """
    if dy is None:                               # the outputs did not reach the loss
        return
    if mask is None:
        dh += dy[t]
    else:
        array_module(dh).multiply(dy[t], mask[t], out=tmp)
        dh += tmp


def final_state(buffer, reverse=False):
    """The state after the last step the direction visits (a copy, not a view of the cache)."""
    return buffer[0].copy() if reverse else buffer[-1].copy()


def zeros_if_none(a, shape, dtype, xp):
    return xp.zeros(shape, dtype) if a is None else a


# --------------------------------------------------------------------------- argument checks

def check_cell_args(x, states, weight_ih, weight_hh, bias_ih, bias_hh, gates, *, step=False,
                    lengths=None):
    """Check what a cell's forward receives; returns (T, B, I, H) (T is None for a step).

    ``states`` is a dict name → array; ``gates`` is G.  All float arrays must share one dtype.
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
    if lengths is not None:
        as_lengths(lengths, T, B)
    return T, B, I, H


def check_grad_arg(name, a, shape, dtype):
    """A gradient passed to backward: None (meaning zero) or an array of the output's shape."""
    if a is None:
        return
    check_shape(name, a, shape)
    if a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} (that of the forward pass), got {a.dtype}")
