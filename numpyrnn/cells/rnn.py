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
from .fused import kernels_for
from .common import (
    add_output_gradient, backward_chunks, bias_gradient, carry_over, check_cell_args,
    check_grad_arg, final_state, fold_biases, input_gradient, length_mask, outputs, scratch,
    state_slots, states_in_time_order, time_steps, weight_gradients, zeros_if_none,
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
#
# The sequence functions compute exactly the equations above, arranged for speed (the step
# functions above are the reference the tests hold them to): the weights are transposed into
# contiguous copies for the products, buffers come from the workspace, and the backward first
# fills da, a block of steps at a time, with the activation's slopes, which the loop then
# multiplies by dh.


def forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, nonlinearity="tanh",
            lengths=None, reverse=False, workspace=None):
    """RNN over a sequence x (T, B, I) from the initial state h0 (B, H).

    ``lengths`` (B,) gives each sequence's true length: later steps leave the state unchanged
    and output zeros.  ``reverse`` runs from each sequence's last real step to its first.
    ``workspace`` (a :class:`~numpyrnn.cells.common.Workspace`) lends the buffers; the next
    forward through the same workspace overwrites what this one cached.

    Returns (y, h_n, cache): y (T, B, H) the hidden state at each step (a read-only view into
    the cache when there are no lengths), h_n (B, H) the final state.
    """
    _check_nonlinearity(nonlinearity)
    T, B, I, H = check_cell_args(x, {"h0": h0}, weight_ih, weight_hh, bias_ih, bias_hh, GATES,
                                 lengths=lengths)
    xp = array_module(x)
    # One GEMM for the input term of every step (both biases folded in).
    a = scratch(workspace, "a", (T * B, H), x.dtype, xp)
    xp.matmul(x.reshape(T * B, I), xp.ascontiguousarray(weight_ih.T), out=a)
    bias = fold_biases(bias_ih, bias_hh)
    if bias is not None:
        a += bias
    a = a.reshape(T, B, H)
    w_hh_t = xp.ascontiguousarray(weight_hh.T)   # (H, H), as the product wants it
    hs = scratch(workspace, "h", (T + 1, B, H), x.dtype, xp)   # states h, in the slots of state_slots()
    hs[T if reverse else 0] = h0
    recurrent = scratch(workspace, "recurrent", (B, H), x.dtype, xp)
    mask = length_mask(lengths, T, x.dtype, xp)
    fused = kernels_for(xp)                      # on a GPU with NUMPYRNN_FUSED=1: one kernel per step
    for t in time_steps(T, reverse):
        prev, new = state_slots(t, reverse)
        xp.matmul(hs[prev], w_hh_t, out=recurrent)
        if fused is not None:                    # the next two lines in one GPU kernel
            fused.rnn_forward(a[t], recurrent, hs[new], nonlinearity == "relu")
        else:
            a[t] += recurrent                    # a_t = x_t W_ih^T + b + h_{t−1} W_hh^T
            _activate(a[t], nonlinearity, hs[new])   # h_t = tanh(a_t) or relu(a_t)
        if mask is not None:                     # past a sequence's end its state carries over
            carry_over(hs[new], hs[prev], mask[t])
    y = outputs(hs, mask, reverse)
    cache = (x, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None, hs, mask,
             reverse, nonlinearity, workspace)
    return y, final_state(hs, reverse), cache


def gate_activations(cache):
    """What a :func:`forward` computed, (T, B, H) in time order: the states h (an RNN has no
    gates)."""
    return {"h": states_in_time_order(cache[5], cache[7])[0]}


def _slopes(h, nonlinearity, mask, da):
    """For a block of steps, the activation's slope read off its output: 1 − h² or [h > 0]
    (0 at padded steps), into da (the loop multiplies it by dh)."""
    xp = array_module(h)
    if nonlinearity == "tanh":
        xp.multiply(h, h, out=da)
        xp.subtract(1, da, out=da)
    else:
        xp.greater(h, 0, out=da)                 # (NumPy casts the booleans to 0 and 1)
    if mask is not None:
        da *= mask


def backward(dy, dh_n, cache):
    """Backward of :func:`forward` through time.

    dy (T, B, H), dh_n (B, H): gradients of the outputs and of the final state (None means
    zero).  Returns (dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    x, weight_ih, weight_hh, has_bias_ih, has_bias_hh, hs, mask, reverse, nonlinearity, workspace = cache
    xp = array_module(x)
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    check_grad_arg("dy", dy, (T, B, H), x.dtype)
    check_grad_arg("dh_n", dh_n, (B, H), x.dtype)
    h_all, h_prevs = states_in_time_order(hs, reverse)
    da = scratch(workspace, "da", (T, B, H), x.dtype, xp)   # ∂L/∂a_t for every step
    dh = zeros_if_none(dh_n, (B, H), x.dtype, xp).copy()
    dh_prev, tmp = xp.empty_like(dh), xp.empty_like(dh)
    fused = kernels_for(xp)
    for steps, block in backward_chunks(T, reverse, hs[0].nbytes):
        _slopes(h_all[block], nonlinearity, None if mask is None else mask[block], da[block])
        for t in steps:                          # the forward's order, backwards
            if fused is not None:                # the lines in the else branch, in one GPU kernel
                fused.rnn_backward(0 if dy is None else dy[t], 1 if mask is None else mask[t], dh, da[t])
            else:
                add_output_gradient(dh, dy, mask, t, tmp)  # h_t went to the output and to the next step
                da[t] *= dh                      # da = dh ⊙ (1 − h²)  or  dh ⊙ [h > 0]
            xp.matmul(da[t], weight_hh, out=dh_prev)   # dh_{t−1} = da_t W_hh
            if mask is not None:                 # a padded step passes dh through unchanged
                carry_over(dh_prev, dh, mask[t])
            dh, dh_prev = dh_prev, dh
    dx = input_gradient(da, weight_ih)           # dx_t = da_t W_ih, all steps at once
    dweight_ih = weight_gradients(da, x)         # dW_ih = Σ_t da_t^T x_t
    dweight_hh = weight_gradients(da, h_prevs)   # dW_hh = Σ_t da_t^T h_{t−1}
    db = bias_gradient(da)                       # db = Σ_t Σ_batch da_t
    return (dx, dh, dweight_ih, dweight_hh,
            db if has_bias_ih else None, db.copy() if has_bias_hh else None)
