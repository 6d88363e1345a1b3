r"""Gated recurrent unit: one step and a whole sequence, forward and backward, in both forms.

Parameters in PyTorch's layout, gate rows in the order r, z, n::

    weight_ih (3H, I)    weight_hh (3H, H)    bias_ih (3H,)    bias_hh (3H,)

Write W_ir, W_iz, W_in for the three row blocks of weight_ih, W_hr, W_hz, W_hn for those of
weight_hh, and likewise for the biases.

Forward, one step, ``reset_after=True`` (PyTorch and cuDNN; Cho et al. 2014 v1)::

    r  = σ(x_t W_ir^T + b_ir + h_prev W_hr^T + b_hr)          reset gate
    z  = σ(x_t W_iz^T + b_iz + h_prev W_hz^T + b_hz)          update gate
    m  = h_prev W_hn^T + b_hn                                 recurrent part of n, before the reset
    n  = tanh(x_t W_in^T + b_in + r ⊙ m)                      candidate state
    h  = (1 − z) ⊙ n + z ⊙ h_prev

Forward, one step, ``reset_after=False`` (Cho et al. 2014 v3, the textbook form)::

    r, z as above
    n  = tanh(x_t W_in^T + b_in + (r ⊙ h_prev) W_hn^T + b_hn)
    h  = (1 − z) ⊙ n + z ⊙ h_prev

Backward, one step, given dh = ∂L/∂h::

    dn = dh ⊙ (1 − z)          dz = dh ⊙ (h_prev − n)          dh_prev ← dh ⊙ z
    da_n = dn ⊙ (1 − n²)                                       ∂L/∂(pre-activation of n)
    reset after:   dm = da_n ⊙ r             dr = da_n ⊙ m
    reset before:  d(r⊙h) = da_n W_hn        dr = d(r⊙h) ⊙ h_prev      dh_prev += d(r⊙h) ⊙ r
    da_r = dr ⊙ r(1 − r)       da_z = dz ⊙ z(1 − z)
    input side:     dax = [da_r | da_z | da_n]       dx_t = dax W_ih    dW_ih = dax^T x_t
    reset after:    dah = [da_r | da_z | dm]         dh_prev += dah W_hh
                    dW_hh = dah^T h_prev             db_hh = Σ_batch dah
    reset before:   dh_prev += [da_r | da_z] W_h{r,z}
                    dW_h{r,z} = [da_r | da_z]^T h_prev      dW_hn = da_n^T (r ⊙ h_prev)
                    db_hh = Σ_batch dax
    db_ih = Σ_batch dax

What the backward keeps per step and sequence: r, z, n (3H), h_t (H, also the output), and with
reset after m = h_prev W_hn^T + b_hn (H): 5H numbers (4H with reset before).
"""

from __future__ import annotations

from ..backend import array_module
from .common import (
    bias_gradient, carry_over, check_cell_args, check_grad_arg, final_state, input_gradient,
    input_projection, length_mask, outputs, sigmoid, skipping, state_slots,
    states_in_time_order, time_steps, weight_gradients, zeros_if_none,
)

GATES = 3
STATE_NAMES = ("h",)


def _split(a):
    """[r | z | n] blocks of a (..., 3H) array, as views."""
    H = a.shape[-1] // 3
    return a[..., :H], a[..., H:2 * H], a[..., 2 * H:]


def _input_bias(bias_ih, bias_hh, reset_after):
    """The biases that fold into the input projection.

    r and z add b_i and b_h alike.  With the reset after the product, b_hn sits inside
    r ⊙ (h W_hn^T + b_hn) and must stay in the recurrent term; with the reset before, it is
    added like the rest.
    """
    xp = array_module(bias_ih if bias_ih is not None else bias_hh)
    if bias_ih is None and bias_hh is None:
        return None
    folded = xp.zeros_like(bias_ih if bias_ih is not None else bias_hh)
    if bias_ih is not None:
        folded += bias_ih
    if bias_hh is not None:
        H = folded.shape[0] // 3
        folded[:2 * H] += bias_hh[:2 * H]
        if not reset_after:
            folded[2 * H:] += bias_hh[2 * H:]
    return folded


def _recurrent_forward(xw, h_prev, weight_hh, bias_hn, reset_after, gates, m):
    """The recurrent products and gate math of one step, up to n.

    xw (B, 3H): the input term with the folded biases.  Writes gates (B, 3H) = [r | z | n] and,
    with the reset after, m (B, H) = h_prev W_hn^T + b_hn.
    """
    xp = array_module(xw)
    H = h_prev.shape[-1]
    r, z, n = _split(gates)
    if reset_after:
        ah = h_prev @ weight_hh.T                         # one GEMM: h_prev [W_hr | W_hz | W_hn]^T
        xp.add(xw[:, :2 * H], ah[:, :2 * H], out=gates[:, :2 * H])
        sigmoid(gates[:, :2 * H], out=gates[:, :2 * H])    # r, z = σ(·)
        m[...] = ah[:, 2 * H:]                            # m = h_prev W_hn^T + b_hn
        if bias_hn is not None:
            m += bias_hn
        xp.multiply(r, m, out=n)                          # n = tanh(xw_n + r ⊙ m)
        n += xw[:, 2 * H:]
    else:
        xp.add(xw[:, :2 * H], h_prev @ weight_hh[:2 * H].T, out=gates[:, :2 * H])
        sigmoid(gates[:, :2 * H], out=gates[:, :2 * H])    # r, z = σ(·)
        xp.add(xw[:, 2 * H:], (r * h_prev) @ weight_hh[2 * H:].T, out=n)   # n = tanh(xw_n + (r ⊙ h) W_hn^T)
    xp.tanh(n, out=n)


def _update(gates, h_prev, h):
    """h = (1 − z) ⊙ n + z ⊙ h_prev = n + z ⊙ (h_prev − n), written into h."""
    _, z, n = _split(gates)
    xp = array_module(h)
    xp.subtract(h_prev, n, out=h)
    h *= z
    h += n


def _gates_backward(dh, gates, h_prev, m, weight_hh, reset_after, dax, dah):
    """Backward through one step's gate math.  Writes dax (B, 3H), the gradient of the input
    term, and (reset after) dah (B, 3H), that of the recurrent term; returns dh_prev.
    dh is read, never written."""
    xp = array_module(dh)
    H = h_prev.shape[-1]
    r, z, n = _split(gates)
    da_r, da_z, da_n = _split(dax)
    dh_prev = dh * z                                      # dh_prev ← dh ⊙ z
    xp.multiply(dh, h_prev - n, out=da_z)                 # dz = dh ⊙ (h_prev − n)
    xp.multiply(dh, 1 - z, out=da_n)                      # dn = dh ⊙ (1 − z)
    da_n *= 1 - n * n                                     # da_n = dn ⊙ (1 − n²)
    if reset_after:
        xp.multiply(da_n, m, out=da_r)                    # dr = da_n ⊙ m
    else:
        d_rh = da_n @ weight_hh[2 * H:]                   # d(r ⊙ h) = da_n W_hn
        xp.multiply(d_rh, h_prev, out=da_r)               # dr = d(r ⊙ h) ⊙ h_prev
        dh_prev += d_rh * r                               # dh_prev += d(r ⊙ h) ⊙ r
    da_r *= r * (1 - r)                                   # da_r = dr ⊙ r(1 − r)
    da_z *= z * (1 - z)                                   # da_z = dz ⊙ z(1 − z)
    if reset_after:
        dah[:, :2 * H] = dax[:, :2 * H]
        xp.multiply(da_n, r, out=dah[:, 2 * H:])          # dm = da_n ⊙ r
        dh_prev += dah @ weight_hh                        # dh_prev += [da_r | da_z | dm] W_hh
    else:
        dh_prev += dax[:, :2 * H] @ weight_hh[:2 * H]     # dh_prev += [da_r | da_z] W_h{r,z}
    return dh_prev


def _hh_gradients(dax, dah, h_prevs, gates, reset_after, has_bias_hh):
    """dW_hh and db_hh from the stored per-step gradients, one GEMM per weight block."""
    xp = array_module(dax)
    H = h_prevs.shape[-1]
    if reset_after:
        dweight_hh = weight_gradients(dah, h_prevs)                    # dW_hh = Σ_t dah_t^T h_{t−1}
        dbias_hh = bias_gradient(dah) if has_bias_hh else None         # db_hh = Σ dah
    else:
        r = gates[..., :H]
        dweight_hh = xp.concatenate([
            weight_gradients(dax[..., :2 * H], h_prevs),               # dW_h{r,z} = Σ_t [da_r|da_z]^T h_{t−1}
            weight_gradients(dax[..., 2 * H:], r * h_prevs),           # dW_hn = Σ_t da_n^T (r_t ⊙ h_{t−1})
        ])
        dbias_hh = bias_gradient(dax) if has_bias_hh else None         # db_hh = Σ dax
    return dweight_hh, dbias_hh


# --------------------------------------------------------------------------- one step

def step_forward(x_t, h_prev, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *,
                 reset_after=True):
    """One GRU step.  Returns (h, cache)."""
    check_cell_args(x_t, {"h_prev": h_prev}, weight_ih, weight_hh, bias_ih, bias_hh, GATES,
                    step=True)
    xp = array_module(x_t)
    H = h_prev.shape[-1]
    xw = x_t @ weight_ih.T                                # the input term, with folded biases
    bias = _input_bias(bias_ih, bias_hh, reset_after)
    if bias is not None:
        xw += bias
    bias_hn = bias_hh[2 * H:] if (bias_hh is not None and reset_after) else None
    gates = xp.empty_like(xw)
    m = xp.empty_like(h_prev) if reset_after else None
    _recurrent_forward(xw, h_prev, weight_hh, bias_hn, reset_after, gates, m)
    h = xp.empty_like(h_prev)
    _update(gates, h_prev, h)
    cache = (x_t, h_prev, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None,
             gates, m, reset_after)
    return h, cache


def step_backward(dh, cache):
    """Backward of :func:`step_forward`.  dh: ∂L/∂h (None means zero).

    Returns (dx_t, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    x_t, h_prev, weight_ih, weight_hh, has_bias_ih, has_bias_hh, gates, m, reset_after = cache
    xp = array_module(x_t)
    check_grad_arg("dh", dh, h_prev.shape, h_prev.dtype)
    dh = zeros_if_none(dh, h_prev.shape, h_prev.dtype, xp)
    dax = xp.empty_like(gates)
    dah = xp.empty_like(gates) if reset_after else None
    dh_prev = _gates_backward(dh, gates, h_prev, m, weight_hh, reset_after, dax, dah)
    dx_t = dax @ weight_ih                                # dx_t = dax W_ih
    dweight_ih = dax.T @ x_t                              # dW_ih = dax^T x_t
    dweight_hh, dbias_hh = _hh_gradients(dax[None], None if dah is None else dah[None],
                                         h_prev[None], gates[None], reset_after, has_bias_hh)
    dbias_ih = dax.sum(axis=0) if has_bias_ih else None   # db_ih = Σ_batch dax
    return dx_t, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh


# --------------------------------------------------------------------------- a sequence

def forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, reset_after=True,
            lengths=None, reverse=False):
    """GRU over a sequence x (T, B, I) from the initial state h0 (B, H).

    ``lengths`` (B,) gives each sequence's true length: later steps leave the state unchanged
    and output zeros.  ``reverse`` runs from each sequence's last real step to its first.

    Returns (y, h_n, cache): y (T, B, H) the hidden state at each step (a read-only view into
    the cache when there are no lengths), h_n (B, H) the final state.
    """
    T, B, I, H = check_cell_args(x, {"h0": h0}, weight_ih, weight_hh, bias_ih, bias_hh, GATES,
                                 lengths=lengths)
    xp = array_module(x)
    # One GEMM for the input term of every step, with every bias that can be folded into it.
    xw = input_projection(x, weight_ih, _input_bias(bias_ih, bias_hh, reset_after))   # (T, B, 3H)
    bias_hn = bias_hh[2 * H:] if (bias_hh is not None and reset_after) else None
    gates = xp.empty((T, B, 3 * H), x.dtype)     # [r | z | n] at each step
    ms = xp.empty((T, B, H), x.dtype) if reset_after else None
    hs = xp.empty((T + 1, B, H), x.dtype)        # states h, in the slots of state_slots()
    hs[T if reverse else 0] = h0
    mask = length_mask(lengths, T, x.dtype, xp)
    for t in time_steps(T, reverse):
        prev, new = state_slots(t, reverse)
        _recurrent_forward(xw[t], hs[prev], weight_hh, bias_hn, reset_after, gates[t],
                           None if ms is None else ms[t])
        _update(gates[t], hs[prev], hs[new])     # h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
        if mask is not None:                     # past a sequence's end its state carries over
            carry_over(hs[new], hs[prev], mask[t])
    del xw                                       # the backward needs only the activations
    y = outputs(hs, mask, reverse)
    cache = (x, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None, gates, ms, hs,
             mask, reverse, reset_after)
    return y, final_state(hs, reverse), cache


def backward(dy, dh_n, cache):
    """Backward of :func:`forward` through time.

    dy (T, B, H), dh_n (B, H): gradients of the outputs and of the final state (None means
    zero).  Returns (dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    (x, weight_ih, weight_hh, has_bias_ih, has_bias_hh, gates, ms, hs, mask, reverse,
     reset_after) = cache
    xp = array_module(x)
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    check_grad_arg("dy", dy, (T, B, H), x.dtype)
    check_grad_arg("dh_n", dh_n, (B, H), x.dtype)
    dax = xp.empty_like(gates)                   # ∂L/∂(input term) at every step
    dah = xp.empty_like(gates) if reset_after else None   # ∂L/∂(recurrent term)
    dh = zeros_if_none(dh_n, (B, H), x.dtype, xp).copy()
    for t in time_steps(T, not reverse):         # the forward's order, backwards
        prev, _ = state_slots(t, reverse)
        dh_t = dh if dy is None else dh + dy[t]  # h_t went to the output and to the next step
        if mask is not None:
            # A padded step passed the state through unchanged and output a constant zero:
            # the gradient of the carried state skips it, dy[t] goes nowhere.
            dh_skip = skipping(dh, mask[t])
            dh_t = dh_t * mask[t]
        dh = _gates_backward(dh_t, gates[t], hs[prev], None if ms is None else ms[t], weight_hh,
                             reset_after, dax[t], None if dah is None else dah[t])
        if mask is not None:
            dh += dh_skip
    _, h_prevs = states_in_time_order(hs, reverse)
    dx = input_gradient(dax, weight_ih)          # dx_t = dax_t W_ih, all steps at once
    dweight_ih = weight_gradients(dax, x)        # dW_ih = Σ_t dax_t^T x_t
    dbias_ih = bias_gradient(dax) if has_bias_ih else None
    dweight_hh, dbias_hh = _hh_gradients(dax, dah, h_prevs, gates, reset_after, has_bias_hh)
    return dx, dh, dweight_ih, dweight_hh, dbias_ih, dbias_hh
