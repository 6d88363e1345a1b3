r"""Vanilla (Elman) RNN with tanh or ReLU: one step and a whole sequence, forward and backward.

Parameters in PyTorch's layout::

    weight_ih (H, I)    weight_hh (H, H)    bias_ih (H,)    bias_hh (H,)

Forward, one step (x_t: (B, I); h_prev: (B, H))::

    a  = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh       (B, H)
    h  = tanh(a)        or        h = relu(a) = max(a, 0)

Backward, one step, given dh = ∂L/∂h::

    da      = dh ⊙ (1 − h²)          (tanh: tanh'(a) = 1 − tanh²(a), read off h)
    da      = dh ⊙ [h > 0]           (relu: 1 where a > 0, else 0, read off h)
    dx_t    = da W_ih          dh_prev = da W_hh
    dW_ih   = da^T x_t         dW_hh   = da^T h_prev        db_ih = db_hh = Σ_batch da

Over a sequence, :func:`forward_reference` and :func:`backward_reference` are the textbook loop
over these two step functions (derivations §3, §7); the weight gradients are sums over the
steps.  Each step multiplies the gradient by W_hh^T and by the activation's slope, which is why
it vanishes (or explodes) over long sequences: the gated cells exist to fix that.

Read this file top to bottom beside derivations §4: the step forward, the step backward, then
the reference loops.  :func:`forward` and :func:`backward` are the fast path
(:mod:`numpyrnn.cells.fast.rnn`): the same functions arranged for speed, held to the reference
by the tests.  What the fast backward keeps per step and sequence: h_t (H), which is also the
output.

Recurrent dropout (derivations §16; ``h_mask``, one (B, H) mask per sequence): W_hh reads
h_prev ⊙ mask, written h_in; backward, dh_prev = (da W_hh) ⊙ mask and dW_hh = da^T h_in.

Zoneout (derivations §17; ``zoneout``, per step and unit): the loop, not the step, mixes h_t =
k_t h̃_t + (1 − k_t) h_{t−1} with k_t = m_t (1 − δ_t); the step is untouched.  The loop is
written once, here (:func:`loop_forward`, :func:`loop_backward`), and the GRU's reference runs
it with its own step.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module
from .builtin import BuiltInCell, module_loops
from .common import (
    NONLINEARITIES, add_step, check_cache, check_cell_args, check_grad_arg, check_h_mask, check_nonlinearity,
    check_zoneout, fold_biases, new_share, real_steps, time_steps, zeros_if_none,
)
from .fast import rnn as fast

GATES = 1
STATE_NAMES = ("h",)
__all__ = ["step_forward", "step_backward", "forward_reference", "backward_reference",
           "forward", "backward", "gate_activations", "NONLINEARITIES", "CELL"]


def _activate(a, nonlinearity, h):
    """h = tanh(a) or relu(a), written into h."""
    xp = array_module(a)
    if nonlinearity == "tanh":
        xp.tanh(a, out=h)
    else:
        xp.maximum(a, 0, out=h)


def _activation_backward(dh, h, nonlinearity, da):
    """da = ∂L/∂a from dh and the activation's output h, written into da."""
    xp = array_module(dh)
    if nonlinearity == "tanh":
        xp.multiply(dh, 1 - h * h, out=da)               # da = dh ⊙ (1 − h²)
    else:
        xp.multiply(dh, h > 0, out=da)                   # da = dh ⊙ [h > 0]


# --------------------------------------------------------------------------- one step

class StepCache(NamedTuple):
    """What :func:`step_forward` keeps for :func:`step_backward`."""
    x_t: object               # (B, I)
    h_prev: object            # (B, H) h_{t−1}
    weight_ih: object
    weight_hh: object
    has_bias_ih: bool
    has_bias_hh: bool
    h: object                 # (B, H) h_t, whose slope the backward reads
    nonlinearity: str
    h_in: object              # (B, H) the h that W_hh reads: h_prev, or h_prev ⊙ mask
    h_mask: object            # (B, H) recurrent dropout's mask, or None

    MADE_BY = "numpyrnn.cells.rnn.step_forward"


def step_forward(x_t, h_prev, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *,
                 nonlinearity="tanh", h_mask=None, check=True):
    """One RNN step.  Returns (h, cache).  ``h_mask`` (B, H): recurrent dropout's mask on the
    h that W_hh reads (derivations §16); None: no dropout.  ``check=False`` skips the NaN/Inf
    check of the arrays, for a caller that computed or checked them itself."""
    check_nonlinearity(nonlinearity)
    check_cell_args(x_t, {"h_prev": h_prev}, weight_ih, weight_hh, bias_ih, bias_hh, GATES,
                    step=True, finite=check)
    check_h_mask(h_mask, h_prev.shape, x_t.dtype, check)
    xp = array_module(x_t)
    h_in = h_prev if h_mask is None else h_prev * h_mask   # what W_hh reads: §16's h̃_{t−1}
    a = x_t @ weight_ih.T + h_in @ weight_hh.T           # a = x_t W_ih^T + h_in W_hh^T (+ biases)
    bias = fold_biases(bias_ih, bias_hh)
    if bias is not None:
        a += bias
    h = xp.empty_like(h_prev)
    _activate(a, nonlinearity, h)
    cache = StepCache(x_t, h_prev, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None,
                      h, nonlinearity, h_in, h_mask)
    return h, cache


def step_backward(dh, cache, *, check=True):
    """Backward of :func:`step_forward`.  dh: ∂L/∂h (None means zero; ``check`` as for
    :func:`step_forward`).

    Returns (dx_t, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    (x_t, h_prev, weight_ih, weight_hh, has_bias_ih, has_bias_hh, h, nonlinearity, h_in,
     h_mask) = check_cache(cache, StepCache, "numpyrnn.cells.rnn.step_backward")
    xp = array_module(x_t)
    check_grad_arg("dh", dh, h.shape, h.dtype, check)
    dh = zeros_if_none(dh, h.shape, h.dtype, xp)
    da = xp.empty_like(h)
    _activation_backward(dh, h, nonlinearity, da)
    dx_t = da @ weight_ih                                # dx_t = da W_ih
    dh_prev = da @ weight_hh                             # dh_prev = da W_hh
    if h_mask is not None:
        dh_prev *= h_mask                                # with recurrent dropout, ⊙ mask (§16)
    dweight_ih = da.T @ x_t                              # dW_ih = da^T x_t
    dweight_hh = da.T @ h_in                             # dW_hh = da^T h_in
    db = da.sum(axis=0)                                  # db = Σ_batch da
    return (dx_t, dh_prev, dweight_ih, dweight_hh,
            db if has_bias_ih else None, db.copy() if has_bias_hh else None)


# --------------------------------------------------------------------------- a sequence: the reference
#
# The textbook loop over the two step functions above (derivations §3, §7 and §17).  It is the
# reference: forward and backward below are the definition that the fast path
# (numpyrnn.cells.fast.rnn, exported here as forward and backward) is held to.  The loop itself,
# loop_forward and loop_backward, is written once, here, for every cell whose one state is h:
# the GRU's reference loop (gru.py) is the same loop over the GRU's step.

class ReferenceCache(NamedTuple):
    """What :func:`forward_reference` keeps for :func:`backward_reference`."""
    steps: list               # each step's StepCache, in time order
    mask: object              # (T, B, 1) m_t: 1 at real steps, 0 at padded ones
    reverse: bool
    zoneout: tuple            # (δ of h,): None, the masks of every step (T, B, H), or the rate p; or None

    MADE_BY = "numpyrnn.cells.rnn.forward_reference"


def forward_reference(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *,
                      nonlinearity="tanh", lengths=None, reverse=False, workspace=None, h_mask=None,
                      zoneout=None, check=True):
    """RNN over a sequence x (T, B, I) from the initial state h0 (B, H): one
    :func:`step_forward` per step, by :func:`loop_forward`.  Arguments and returns as
    :func:`forward` (``workspace`` is accepted and ignored; ``check`` checks the arguments, not
    the steps again).  Returns (y, h_n, cache), y (T, B, H), h_n (B, H)."""
    check_nonlinearity(nonlinearity)
    T, B, I, H = check_cell_args(x, {"h0": h0}, weight_ih, weight_hh, bias_ih, bias_hh, GATES,
                                 lengths=lengths, finite=check)
    check_h_mask(h_mask, (B, H), x.dtype, check)
    zoneout = check_zoneout(zoneout, STATE_NAMES, (T, B, H), x.dtype, check)

    def step(x_t, h_prev):                       # h̃_t = φ(x_t W_ih^T + b_ih + h_{t−1} W_hh^T + b_hh) (§4)
        return step_forward(x_t, h_prev, weight_ih, weight_hh, bias_ih, bias_hh,
                            nonlinearity=nonlinearity, h_mask=h_mask, check=False)

    return loop_forward(step, x, h0, lengths, reverse, zoneout, ReferenceCache)


def backward_reference(dy, dh_n, cache, *, check=True, dh_steps=None):
    """Backward of :func:`forward_reference`: one :func:`step_backward` per step, last step
    first, by :func:`loop_backward`.  Arguments and returns as :func:`backward`: (dx, dh0,
    dweight_ih, dweight_hh, dbias_ih, dbias_hh).  ``dh_steps`` (T, B, H), if given, receives
    ∂L/∂h_t for every step."""
    check_cache(cache, ReferenceCache, "numpyrnn.cells.rnn.backward_reference")
    return loop_backward(step_backward, dy, dh_n, cache, check, dh_steps)


def loop_forward(step, x, h0, lengths, reverse, zoneout, cache_type):
    """The loop over time of a cell whose state is h alone, from h_{−1} = h0, with
    ``step(x_t, h_{t−1})`` → (h̃_t, cache_t).  Returns (y, h_n, cache_type(steps, mask, reverse,
    zoneout))::

        h̃_t = step(x_t, h_{t−1})                                    (§3)
        k_t = m_t (1 − δ_t)         the share of the new value: m_t without zoneout (§7, §17)
        h_t = k_t h̃_t + (1 − k_t) h_{t−1},   y_t = m_t h_t          (§7, §17)

    m_t is 1 at a sequence's real steps and 0 past its length (1 without lengths); δ_t is 1 where
    zoneout keeps a unit's previous value (in training; the rate p at evaluation).
    """
    T, B, _ = x.shape
    xp = array_module(x)
    mask = real_steps(lengths, T, B, x.dtype, xp)   # m_t (§7)
    delta = None if zoneout is None else zoneout[0]   # δ_t of h (§17)
    y = xp.empty((T, B, h0.shape[1]), x.dtype)
    steps = [None] * T                           # each step's cache, in time order
    h = h0                                       # h_{−1} = h0 (§3)
    for t in time_steps(T, reverse):             # t = 0, ..., T−1; reversed: T−1, ..., 0 (§8)
        h_tilde, steps[t] = step(x[t], h)        # h̃_t: the cell's step (§3)
        k = new_share(mask[t], delta, t)         # k_t = m_t (1 − δ_t) (§7, §17)
        h = k * h_tilde + (1 - k) * h            # h_t = k_t h̃_t + (1 − k_t) h_{t−1} (§7, §17)
        y[t] = mask[t] * h                       # y_t = m_t h_t (§7)
    return y, h, cache_type(steps, mask, reverse, zoneout)


def loop_backward(step_backward, dy, dh_n, cache, check, dh_steps):
    """Backward of :func:`loop_forward`, last step first, with the cell's ``step_backward``
    (dh̃_t, step cache) → (dx_t, dh_prev, dW_ih, dW_hh, db_ih, db_hh)::

        g_t      = dh_t + m_t dy_t      ∂L/∂h_t: from step t+1 and the output (§3, §7; dh_{T−1} = dh_n)
        dh̃_t     = k_t g_t                                               (§7, §17)
        dh_{t−1} = (step t's dh_prev from dh̃_t) + (1 − k_t) g_t         (§7, §17)
        dW       = Σ_t (step t's dW)                                     (§3)
    """
    steps, mask, reverse, zoneout = cache
    T, (B, H), dtype = len(steps), steps[0].h_prev.shape, steps[0].h_prev.dtype
    xp = array_module(steps[0].h_prev)
    check_grad_arg("dy", dy, (T, B, H), dtype, check)
    check_grad_arg("dh_n", dh_n, (B, H), dtype, check)
    dy = zeros_if_none(dy, (T, B, H), dtype, xp)   # None: the outputs did not reach the loss
    dh = zeros_if_none(dh_n, (B, H), dtype, xp)    # dh_{T−1} = dh_n (§3)
    delta = None if zoneout is None else zoneout[0]
    dx = xp.empty((T, B, steps[0].x_t.shape[1]), dtype)
    dparams = [None] * 4                         # Σ_t of dW_ih, dW_hh, db_ih, db_hh (§3)
    for t in reversed(time_steps(T, reverse)):   # the forward's steps, last first (§3)
        g = dh + mask[t] * dy[t]                 # g_t = ∂L/∂h_t = dh_t + m_t dy_t (§3, §7)
        if dh_steps is not None:                 # kept if asked
            dh_steps[t] = g
        k = new_share(mask[t], delta, t)         # k_t = m_t (1 − δ_t) (§7, §17)
        dx[t], dh_prev, *dparams_t = step_backward(k * g, steps[t],
                                                   check=False)   # through the step, from dh̃_t = k_t g_t
        dh = dh_prev + (1 - k) * g               # dh_{t−1} = dh_prev + (1 − k_t) g_t (§7, §17)
        dparams = [add_step(total, d) for total, d in zip(dparams, dparams_t)]   # dW += dW_t (§3)
    return (dx, dh, *dparams)                    # dh is now dh_{−1} = ∂L/∂h0


# --------------------------------------------------------------------------- a sequence: fast

#: The fast path (numpyrnn.cells.fast.rnn): the same signatures and results as the reference,
#: arranged for speed.  ``RNN(impl="fast")``, the default, runs it.
forward, backward = fast.forward, fast.backward


def gate_activations(cache):
    """What a sequence forward (either path) computed, (T, B, H) in time order: h̃_t = φ(a_t), the
    states (an RNN has no gates; with zoneout, the new values before it mixes them); 0 at padded
    steps."""
    if isinstance(cache, ReferenceCache):
        return {"h": array_module(cache.mask).stack([s.h for s in cache.steps]) * cache.mask}
    return fast.gate_activations(cache)


# --------------------------------------------------------------------------- as a Cell

class CELL(BuiltInCell):
    """The RNN as a :class:`~numpyrnn.cells.Cell` (``numpyrnn.cells.get("rnn", nonlinearity=...)``):
    the step functions above behind the protocol, and this module's reference loop and fast path
    for the layer's loop over time.  ``nonlinearity``: "tanh" or "relu"; ``bias``: whether it has
    ``bias_ih``, ``bias_hh``."""

    name = "rnn"
    state_names = STATE_NAMES
    h_prev_only_in_products = True   # h_{t−1} enters only h_{t−1} W_hh^T: recurrent dropout may mask it
    forms = ({"nonlinearity": "tanh"}, {"nonlinearity": "relu"})
    # what the rest of the house reads (cells.Cell): the functions above, and the facts
    steps = (step_forward, step_backward)
    by_name = True                   # a model's config names it (BuiltInCell.record)
    loops = module_loops(forward_reference, backward_reference, forward, backward, gate_activations)
    blocks, gates = ("a",), ()        # one block of rows, a = x W_ih^T + h W_hh^T + b; no gates
    section, colour, torch_module = "§4", "#7f7f7f", "RNN"

    @property
    def title(self):
        return f"RNN ({self.nonlinearity})"

    def __init__(self, nonlinearity="tanh", bias=True):
        check_nonlinearity(nonlinearity)
        super().__init__(bias)
        self.nonlinearity = nonlinearity

    def function_options(self):
        return {"nonlinearity": self.nonlinearity}

    def gate_activations(self, cache):
        return {"h": cache.h}
