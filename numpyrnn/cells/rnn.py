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

Over a sequence the weight gradients are sums over the steps, taken after the loop as one matrix
product each.  Each step multiplies the gradient by W_hh^T and by the activation's slope, which
is why it vanishes (or explodes) over long sequences: the gated cells exist to fix that.

What the backward keeps per step and sequence: h_t (H), which is also the output.
"""

from __future__ import annotations

from ..backend import array_module
from .common import (
    bias_gradient, carry_over, check_cell_args, check_grad_arg, final_state, fold_biases,
    input_gradient, input_projection, length_mask, outputs, skipping, state_slots,
    states_in_time_order, time_steps, weight_gradients, zeros_if_none,
)

GATES = 1
STATE_NAMES = ("h",)
NONLINEARITIES = ("tanh", "relu")


def _check_nonlinearity(nonlinearity):
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {', '.join(map(repr, NONLINEARITIES))}, "
                         f"got {nonlinearity!r}")


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

def step_forward(x_t, h_prev, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *,
                 nonlinearity="tanh"):
    """One RNN step.  Returns (h, cache)."""
    _check_nonlinearity(nonlinearity)
    check_cell_args(x_t, {"h_prev": h_prev}, weight_ih, weight_hh, bias_ih, bias_hh, GATES,
                    step=True)
    xp = array_module(x_t)
    a = x_t @ weight_ih.T + h_prev @ weight_hh.T         # a = x_t W_ih^T + h_prev W_hh^T (+ biases)
    bias = fold_biases(bias_ih, bias_hh)
    if bias is not None:
        a += bias
    h = xp.empty_like(h_prev)
    _activate(a, nonlinearity, h)
    cache = (x_t, h_prev, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None, h,
             nonlinearity)
    return h, cache


def step_backward(dh, cache):
    """Backward of :func:`step_forward`.  dh: ∂L/∂h (None means zero).

    Returns (dx_t, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    x_t, h_prev, weight_ih, weight_hh, has_bias_ih, has_bias_hh, h, nonlinearity = cache
    xp = array_module(x_t)
    check_grad_arg("dh", dh, h.shape, h.dtype)
    dh = zeros_if_none(dh, h.shape, h.dtype, xp)
    da = xp.empty_like(h)
    _activation_backward(dh, h, nonlinearity, da)
    dx_t = da @ weight_ih                                # dx_t = da W_ih
    dh_prev = da @ weight_hh                             # dh_prev = da W_hh
    dweight_ih = da.T @ x_t                              # dW_ih = da^T x_t
    dweight_hh = da.T @ h_prev                           # dW_hh = da^T h_prev
    db = da.sum(axis=0)                                  # db = Σ_batch da
    return (dx_t, dh_prev, dweight_ih, dweight_hh,
            db if has_bias_ih else None, db.copy() if has_bias_hh else None)


# --------------------------------------------------------------------------- a sequence

def forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, nonlinearity="tanh",
            lengths=None, reverse=False):
    """RNN over a sequence x (T, B, I) from the initial state h0 (B, H).

    ``lengths`` (B,) gives each sequence's true length: later steps leave the state unchanged
    and output zeros.  ``reverse`` runs from each sequence's last real step to its first.

    Returns (y, h_n, cache): y (T, B, H) the hidden state at each step (a read-only view into
    the cache when there are no lengths), h_n (B, H) the final state.
    """
    _check_nonlinearity(nonlinearity)
    T, B, I, H = check_cell_args(x, {"h0": h0}, weight_ih, weight_hh, bias_ih, bias_hh, GATES,
                                 lengths=lengths)
    xp = array_module(x)
    # One GEMM for the input term of every step; the loop adds h_{t−1} W_hh^T to it in place.
    a = input_projection(x, weight_ih, fold_biases(bias_ih, bias_hh))    # (T, B, H)
    hs = xp.empty((T + 1, B, H), x.dtype)        # states h, in the slots of state_slots()
    hs[T if reverse else 0] = h0
    mask = length_mask(lengths, T, x.dtype, xp)
    for t in time_steps(T, reverse):
        prev, new = state_slots(t, reverse)
        a[t] += hs[prev] @ weight_hh.T           # a_t = x_t W_ih^T + b + h_{t−1} W_hh^T
        _activate(a[t], nonlinearity, hs[new])   # h_t = tanh(a_t) or relu(a_t)
        if mask is not None:                     # past a sequence's end its state carries over
            carry_over(hs[new], hs[prev], mask[t])
    del a                                        # the backward reads the slope off h alone
    y = outputs(hs, mask, reverse)
    cache = (x, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None, hs, mask,
             reverse, nonlinearity)
    return y, final_state(hs, reverse), cache


def backward(dy, dh_n, cache):
    """Backward of :func:`forward` through time.

    dy (T, B, H), dh_n (B, H): gradients of the outputs and of the final state (None means
    zero).  Returns (dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    x, weight_ih, weight_hh, has_bias_ih, has_bias_hh, hs, mask, reverse, nonlinearity = cache
    xp = array_module(x)
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    check_grad_arg("dy", dy, (T, B, H), x.dtype)
    check_grad_arg("dh_n", dh_n, (B, H), x.dtype)
    da = xp.empty((T, B, H), x.dtype)            # ∂L/∂a_t for every step
    dh = zeros_if_none(dh_n, (B, H), x.dtype, xp).copy()
    for t in time_steps(T, not reverse):         # the forward's order, backwards
        _, new = state_slots(t, reverse)
        dh_t = dh if dy is None else dh + dy[t]  # h_t went to the output and to the next step
        if mask is not None:
            # A padded step passed the state through unchanged and output a constant zero:
            # the gradient of the carried state skips it, dy[t] goes nowhere.
            dh_skip = skipping(dh, mask[t])
            dh_t = dh_t * mask[t]
        _activation_backward(dh_t, hs[new], nonlinearity, da[t])
        dh = da[t] @ weight_hh                   # dh_{t−1} = da_t W_hh
        if mask is not None:
            dh += dh_skip
    _, h_prevs = states_in_time_order(hs, reverse)
    dx = input_gradient(da, weight_ih)           # dx_t = da_t W_ih, all steps at once
    dweight_ih = weight_gradients(da, x)         # dW_ih = Σ_t da_t^T x_t
    dweight_hh = weight_gradients(da, h_prevs)   # dW_hh = Σ_t da_t^T h_{t−1}
    db = bias_gradient(da)                       # db = Σ_t Σ_batch da_t
    return (dx, dh, dweight_ih, dweight_hh,
            db if has_bias_ih else None, db.copy() if has_bias_hh else None)
