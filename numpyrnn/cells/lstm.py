r"""Long short-term memory: one step and a whole sequence, forward and backward.

Parameters in PyTorch's layout, gate rows in the order i, f, g, o::

    weight_ih (4H, I)    weight_hh (4H, H)    bias_ih (4H,)    bias_hh (4H,)

Forward, one step (x_t: (B, I); h_prev, c_prev: (B, H))::

    a  = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh      (B, 4H) = [a_i | a_f | a_g | a_o]
    i  = σ(a_i)                                         input gate
    f  = σ(a_f)                                         forget gate
    g  = tanh(a_g)                                      candidate cell
    o  = σ(a_o)                                         output gate
    c  = f ⊙ c_prev + i ⊙ g
    h  = o ⊙ tanh(c)

Backward, one step, given dh = ∂L/∂h (from the output at t and from step t+1) and
dc = ∂L/∂c (from step t+1)::

    do      = dh ⊙ tanh(c)
    dc     ← dc + dh ⊙ o ⊙ (1 − tanh²(c))       every path into c
    di      = dc ⊙ g
    df      = dc ⊙ c_prev
    dg      = dc ⊙ i
    dc_prev = dc ⊙ f
    da      = [di ⊙ i(1−i) | df ⊙ f(1−f) | dg ⊙ (1−g²) | do ⊙ o(1−o)]
    dx_t    = da W_ih          dh_prev = da W_hh
    dW_ih   = da^T x_t         dW_hh   = da^T h_prev       db_ih = db_hh = Σ_batch da

Over a sequence the weight gradients are sums over the steps, taken after the loop as one matrix
product each.  The derivation is in docs/derivations.md, with the same names.

What the backward keeps per step and sequence: the four gate activations (4H), c_t (H),
tanh(c_t) (H) and h_t (H, which is also the output): 7H numbers.
"""

from __future__ import annotations

from ..backend import array_module
from .common import (
    bias_gradient, carry_over, check_cell_args, check_grad_arg, final_state, fold_biases,
    input_gradient, input_projection, length_mask, outputs, sigmoid, skipping, state_slots,
    states_in_time_order, time_steps, weight_gradients, zeros_if_none,
)

GATES = 4
STATE_NAMES = ("h", "c")


def _split(a):
    """[i | f | g | o] blocks of a (B, 4H) array, as views."""
    H = a.shape[-1] // 4
    return a[..., :H], a[..., H:2 * H], a[..., 2 * H:3 * H], a[..., 3 * H:]


def _gates_forward(a, c_prev, c, tanh_c, h):
    """The gate math of one step.  In place: a (B, 4H) goes from pre-activations to [i|f|g|o];
    c, tanh_c and h (B, H) are written."""
    xp = array_module(a)
    H = c_prev.shape[-1]
    sigmoid(a[:, :2 * H], out=a[:, :2 * H])             # i = σ(a_i), f = σ(a_f)
    xp.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])   # g = tanh(a_g)
    sigmoid(a[:, 3 * H:], out=a[:, 3 * H:])             # o = σ(a_o)
    i, f, g, o = _split(a)
    xp.multiply(f, c_prev, out=c)                       # c = f ⊙ c_prev + i ⊙ g
    c += i * g
    xp.tanh(c, out=tanh_c)
    xp.multiply(o, tanh_c, out=h)                       # h = o ⊙ tanh(c)


def _gates_backward(dh, dc, gates, c_prev, tanh_c, da):
    """Backward through the gate math of one step: writes da (B, 4H), returns dc_prev.
    dh and dc are read, never written."""
    xp = array_module(dh)
    i, f, g, o = _split(gates)
    da_i, da_f, da_g, da_o = _split(da)
    xp.multiply(dh, tanh_c, out=da_o)                   # do = dh ⊙ tanh(c)
    dc = dc + dh * o * (1 - tanh_c * tanh_c)            # dc ← dc + dh ⊙ o ⊙ (1 − tanh²(c))
    xp.multiply(dc, g, out=da_i)                        # di = dc ⊙ g
    xp.multiply(dc, c_prev, out=da_f)                   # df = dc ⊙ c_prev
    xp.multiply(dc, i, out=da_g)                        # dg = dc ⊙ i
    da_i *= i * (1 - i)                                 # da_i = di ⊙ i(1 − i)
    da_f *= f * (1 - f)                                 # da_f = df ⊙ f(1 − f)
    da_g *= 1 - g * g                                   # da_g = dg ⊙ (1 − g²)
    da_o *= o * (1 - o)                                 # da_o = do ⊙ o(1 − o)
    return dc * f                                       # dc_prev = dc ⊙ f


# --------------------------------------------------------------------------- one step

def step_forward(x_t, h_prev, c_prev, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One LSTM step.  Returns (h, c, cache)."""
    check_cell_args(x_t, {"h_prev": h_prev, "c_prev": c_prev}, weight_ih, weight_hh, bias_ih,
                    bias_hh, GATES, step=True)
    xp = array_module(x_t)
    a = x_t @ weight_ih.T + h_prev @ weight_hh.T       # a = x_t W_ih^T + h_prev W_hh^T (+ biases)
    bias = fold_biases(bias_ih, bias_hh)
    if bias is not None:
        a += bias
    c, tanh_c, h = (xp.empty_like(c_prev) for _ in range(3))
    _gates_forward(a, c_prev, c, tanh_c, h)
    cache = (x_t, h_prev, c_prev, weight_ih, weight_hh, bias_ih is not None,
             bias_hh is not None, a, tanh_c)
    return h, c, cache


def step_backward(dh, dc, cache):
    """Backward of :func:`step_forward`.  dh, dc: ∂L/∂h, ∂L/∂c (None means zero).

    Returns (dx_t, dh_prev, dc_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh); a bias
    gradient is None when that bias was None.
    """
    x_t, h_prev, c_prev, weight_ih, weight_hh, has_bias_ih, has_bias_hh, gates, tanh_c = cache
    xp = array_module(x_t)
    for name, d in (("dh", dh), ("dc", dc)):
        check_grad_arg(name, d, c_prev.shape, c_prev.dtype)
    dh = zeros_if_none(dh, c_prev.shape, c_prev.dtype, xp)
    dc = zeros_if_none(dc, c_prev.shape, c_prev.dtype, xp)
    da = xp.empty_like(gates)
    dc_prev = _gates_backward(dh, dc, gates, c_prev, tanh_c, da)
    dx_t = da @ weight_ih                               # dx_t = da W_ih
    dh_prev = da @ weight_hh                            # dh_prev = da W_hh
    dweight_ih = da.T @ x_t                             # dW_ih = da^T x_t
    dweight_hh = da.T @ h_prev                          # dW_hh = da^T h_prev
    db = da.sum(axis=0)                                 # db = Σ_batch da
    return (dx_t, dh_prev, dc_prev, dweight_ih, dweight_hh,
            db if has_bias_ih else None, db.copy() if has_bias_hh else None)


# --------------------------------------------------------------------------- a sequence

def forward(x, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, lengths=None,
            reverse=False):
    """LSTM over a sequence x (T, B, I) from the initial state h0, c0 (B, H).

    ``lengths`` (B,) gives each sequence's true length: later steps leave the state unchanged
    and output zeros.  ``reverse`` runs from each sequence's last real step to its first.

    Returns (y, h_n, c_n, cache): y (T, B, H) the hidden state at each step (a read-only view
    into the cache when there are no lengths), h_n and c_n (B, H) the final state.
    """
    T, B, I, H = check_cell_args(x, {"h0": h0, "c0": c0}, weight_ih, weight_hh, bias_ih,
                                 bias_hh, GATES, lengths=lengths)
    xp = array_module(x)
    # One GEMM for the input term of every step; the loop adds h_{t−1} W_hh^T to it in place.
    gates = input_projection(x, weight_ih, fold_biases(bias_ih, bias_hh))       # (T, B, 4H)
    hs = xp.empty((T + 1, B, H), x.dtype)        # states h, in the slots of state_slots()
    cs = xp.empty((T + 1, B, H), x.dtype)        # cell states c, likewise
    tanh_cs = xp.empty((T, B, H), x.dtype)
    start = T if reverse else 0
    hs[start], cs[start] = h0, c0
    mask = length_mask(lengths, T, x.dtype, xp)
    for t in time_steps(T, reverse):
        prev, new = state_slots(t, reverse)
        gates[t] += hs[prev] @ weight_hh.T       # a_t = x_t W_ih^T + b + h_{t−1} W_hh^T
        _gates_forward(gates[t], cs[prev], cs[new], tanh_cs[t], hs[new])
        if mask is not None:                     # past a sequence's end its state carries over
            carry_over(hs[new], hs[prev], mask[t])
            carry_over(cs[new], cs[prev], mask[t])
    y = outputs(hs, mask, reverse)
    cache = (x, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None,
             gates, hs, cs, tanh_cs, mask, reverse)
    return y, final_state(hs, reverse), final_state(cs, reverse), cache


def backward(dy, dh_n, dc_n, cache):
    """Backward of :func:`forward` through time.

    dy (T, B, H), dh_n, dc_n (B, H): gradients of the outputs and final states (None means
    zero).  Returns (dx, dh0, dc0, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    x, weight_ih, weight_hh, has_bias_ih, has_bias_hh, gates, hs, cs, tanh_cs, mask, reverse = cache
    xp = array_module(x)
    T, B, H = tanh_cs.shape
    check_grad_arg("dy", dy, (T, B, H), x.dtype)
    check_grad_arg("dh_n", dh_n, (B, H), x.dtype)
    check_grad_arg("dc_n", dc_n, (B, H), x.dtype)
    da = xp.empty_like(gates)                    # ∂L/∂a_t for every step
    dh = zeros_if_none(dh_n, (B, H), x.dtype, xp).copy()
    dc = zeros_if_none(dc_n, (B, H), x.dtype, xp).copy()
    for t in time_steps(T, not reverse):         # the forward's order, backwards
        prev, _ = state_slots(t, reverse)
        dh_t = dh if dy is None else dh + dy[t]  # h_t went to the output and to the next step
        if mask is not None:
            # A padded step passed the state through unchanged and output a constant zero:
            # the gradient of the carried state skips it, dy[t] goes nowhere.
            dh_skip, dc_skip = skipping(dh, mask[t]), skipping(dc, mask[t])
            dh_t, dc = dh_t * mask[t], dc * mask[t]
        dc = _gates_backward(dh_t, dc, gates[t], cs[prev], tanh_cs[t], da[t])   # dc_{t−1}
        dh = da[t] @ weight_hh                   # dh_{t−1} = da_t W_hh
        if mask is not None:
            dh += dh_skip
            dc += dc_skip
    _, h_prevs = states_in_time_order(hs, reverse)
    dx = input_gradient(da, weight_ih)           # dx_t = da_t W_ih, all steps at once
    dweight_ih = weight_gradients(da, x)         # dW_ih = Σ_t da_t^T x_t
    dweight_hh = weight_gradients(da, h_prevs)   # dW_hh = Σ_t da_t^T h_{t−1}
    db = bias_gradient(da)                       # db = Σ_t Σ_batch da_t
    return (dx, dh, dc, dweight_ih, dweight_hh,
            db if has_bias_ih else None, db.copy() if has_bias_hh else None)

