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
reset after m = h_prev W_hn^T + b_hn (H), with reset before r ⊙ h_prev (H): 5H numbers either way.
"""

from __future__ import annotations

from ..backend import array_module
from .fused import kernels_for
from .common import (
    add_output_gradient, backward_chunks, bias_gradient, carry_over, check_cell_args,
    check_grad_arg, final_state, input_gradient, length_mask, outputs, scratch, sigmoid,
    state_slots, states_in_time_order, time_steps, weight_gradients, zeros_if_none,
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
#
# The sequence functions compute exactly the equations above, arranged for speed (the step
# functions above are the reference the tests hold them to):
#
# * Gate-major storage: the gates of all steps live in one (3, T, B, H) array [r, z, n], so each
#   gate of each step is a contiguous (B, H) block (NumPy's elementwise loops run up to 4×
#   slower on the strided column blocks of a (B, 3H) row).
# * The recurrent term of a step is one (B, H) × (H, 3H) product (reset after; (H, 2H) for r and
#   z, reset before) into a row-layout scratch, read through a gate-major view of it: one
#   product is up to 20 % faster than one per gate, far more than the strided reads cost.
# * The forward's copy of the weights has its sigmoid rows (r, z) halved (exact in binary), so
#   one tanh gives tanh(a/2), and σ(a) = (1 + tanh(a/2)) / 2.
# * The backward first fills, a block of steps at a time, the factors that do not depend on the
#   recursion; the loop multiplies them by dh.  It writes the gradients of each step into two
#   row-layout buffers, the input side dax = [da_r | da_z | da_n] and the recurrent side
#   dah = [da_r | da_z | dm] (reset after), for one product per weight after the loop.


def _forward_weights(weight_ih, weight_hh, bias_ih, bias_hh, reset_after):
    """W_ih^T per gate (3, I, H); W_hh^T as one (H, 3H) matrix (gate k in columns kH..(k+1)H);
    the bias that folds into the input projection (3, 1, H); all contiguous, r and z halved;
    and b_hn (reset after) or None."""
    H = weight_hh.shape[1]
    # .copy(): a contiguous copy always (ascontiguousarray would return the caller's weight
    # itself when the transpose is already contiguous, H = 1, and the halving would write into it)
    w_ih_t = weight_ih.reshape(3, H, -1).transpose(0, 2, 1).copy()
    w_hh_t = weight_hh.T.copy()
    bias = _input_bias(bias_ih, bias_hh, reset_after)
    bias = None if bias is None else bias.reshape(3, 1, H).copy()
    for w in (w_ih_t, bias):
        if w is not None:
            w[:2] *= 0.5
    w_hh_t[:, :2 * H] *= 0.5
    bias_hn = bias_hh[2 * H:] if (bias_hh is not None and reset_after) else None
    return w_ih_t, w_hh_t, bias, bias_hn


def forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, reset_after=True,
            lengths=None, reverse=False, workspace=None):
    """GRU over a sequence x (T, B, I) from the initial state h0 (B, H).

    ``lengths`` (B,) gives each sequence's true length: later steps leave the state unchanged
    and output zeros.  ``reverse`` runs from each sequence's last real step to its first.
    ``workspace`` (a :class:`~numpyrnn.cells.common.Workspace`) lends the buffers; the next
    forward through the same workspace overwrites what this one cached.

    Returns (y, h_n, cache): y (T, B, H) the hidden state at each step (a read-only view into
    the cache when there are no lengths), h_n (B, H) the final state.
    """
    T, B, I, H = check_cell_args(x, {"h0": h0}, weight_ih, weight_hh, bias_ih, bias_hh, GATES,
                                 lengths=lengths)
    xp = array_module(x)
    w_ih_t, w_hh_t, bias, bias_hn = _forward_weights(weight_ih, weight_hh, bias_ih, bias_hh, reset_after)
    # One batched product for the input term of every step and gate, with the folded biases.
    gates = scratch(workspace, "gates", (3, T * B, H), x.dtype, xp)
    xp.matmul(x.reshape(T * B, I), w_ih_t, out=gates)
    if bias is not None:
        gates += bias
    gates = gates.reshape(3, T, B, H)            # [r, z, n] at each step
    hs = scratch(workspace, "h", (T + 1, B, H), x.dtype, xp)   # states h, in the slots of state_slots()
    hs[T if reverse else 0] = h0
    # With the reset after, m = h W_hn^T + b_hn; before, r ⊙ h: what the backward needs of n.
    ms = scratch(workspace, "m", (T, B, H), x.dtype, xp)
    G = 3 if reset_after else 2                  # the gates whose recurrent term is one product
    if not reset_after:                          # W_h{r,z}^T (H, 2H) and W_hn^T (H, H), apart
        w_hh_t, w_hn_t = w_hh_t[:, :2 * H], w_hh_t[:, 2 * H:]
    recurrent = scratch(workspace, "recurrent", (B, G * H), x.dtype, xp)  # h_{t−1} W_hh^T, a row per sequence
    recurrent_gates = recurrent.reshape(B, G, H).transpose(1, 0, 2)       # the same, (G, B, H) per gate
    tmp = scratch(workspace, "tmp", (B, H), x.dtype, xp)
    mask = length_mask(lengths, T, x.dtype, xp)
    fused = kernels_for(xp)                      # on a GPU with NUMPYRNN_FUSED=1: one kernel per step
    for t in time_steps(T, reverse):
        prev, new = state_slots(t, reverse)
        h_prev = hs[prev]
        r, z, n = gates[:, t]
        if fused is not None:                    # the same math, in one GPU kernel (two, reset before)
            xp.matmul(h_prev, w_hh_t, out=recurrent)
            if reset_after:
                fused.gru_forward_after(recurrent_gates, 0 if bias_hn is None else bias_hn, h_prev,
                                        gates[:, t], ms[t], hs[new])
            else:
                fused.gru_forward_before_gates(recurrent_gates, h_prev, gates[:, t], ms[t])
                xp.matmul(ms[t], w_hn_t, out=tmp)
                fused.gru_forward_before_state(tmp, z, h_prev, n, hs[new])
            if mask is not None:
                carry_over(hs[new], hs[prev], mask[t])
            continue
        xp.matmul(h_prev, w_hh_t, out=recurrent)  # h W_hh^T, all three gates (reset before: r, z)
        rz = gates[:2, t]
        rz += recurrent_gates[:2]
        xp.tanh(rz, out=rz)                      # tanh(a/2) for r and z
        rz *= 0.5                                # r, z = σ(a) = (1 + tanh(a/2)) / 2
        rz += 0.5
        if reset_after:
            if bias_hn is None:                  # m = h W_hn^T + b_hn
                xp.copyto(ms[t], recurrent_gates[2])
            else:
                xp.add(recurrent_gates[2], bias_hn, out=ms[t])
            xp.multiply(r, ms[t], out=tmp)
            n += tmp                             # n = tanh(x W_in^T + b_in + r ⊙ m)
        else:
            xp.multiply(r, h_prev, out=ms[t])    # r ⊙ h_prev
            xp.matmul(ms[t], w_hn_t, out=tmp)
            n += tmp                             # n = tanh(x W_in^T + b_in + (r ⊙ h) W_hn^T + b_hn)
        xp.tanh(n, out=n)
        xp.subtract(h_prev, n, out=hs[new])      # h = (1 − z) ⊙ n + z ⊙ h_prev = n + z ⊙ (h_prev − n)
        hs[new] *= z
        hs[new] += n
        if mask is not None:                     # past a sequence's end its state carries over
            carry_over(hs[new], hs[prev], mask[t])
    y = outputs(hs, mask, reverse)
    cache = (x, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None, gates, ms, hs,
             mask, reverse, reset_after, workspace)
    return y, final_state(hs, reverse), cache


def _factors(gates, ms, h_prevs, mask, f, update, reset_after):
    """For a block of steps, what the backward multiplies by dh (and by da_n, for r).  gates,
    f: (3, K, B, H); the rest (K, B, H).  Writes f = [F_r, F_z, F_n]:

        F_z = (h_prev − n) σ'(z)          da_z = dh ⊙ F_z
        F_n = (1 − z)(1 − n²)             da_n = dh ⊙ F_n
        F_r = m σ'(r)   (reset after)     da_r = da_n ⊙ F_r
        F_r = h_prev σ'(r)  (before)      da_r = d(r⊙h) ⊙ F_r

    where σ' = s (1 − s).  At padded steps (mask 0) they are zero and ``update`` is 1, so dh
    passes through (dh_prev ← dh ⊙ z).
    """
    xp = array_module(gates)
    r, z, n = gates
    xp.subtract(1, gates[:2], out=f[:2])
    f[:2] *= gates[:2]                           # σ'(r), σ'(z)
    f[0] *= ms if reset_after else h_prevs
    xp.subtract(h_prevs, n, out=f[2])
    f[1] *= f[2]                                 # (h_prev − n) σ'(z)
    xp.multiply(n, n, out=f[2])
    xp.subtract(1, f[2], out=f[2])               # 1 − n²
    f[2] -= z * f[2]                             # (1 − z)(1 − n²)
    if mask is not None:
        f *= mask
        xp.copyto(update, z)
        xp.copyto(update, 1, where=(mask == 0))


def gate_activations(cache):
    """The gates a :func:`forward` computed, by name, each (T, B, H) in time order: r, z, n."""
    gates = cache[5]
    return {"r": gates[0], "z": gates[1], "n": gates[2]}


def backward(dy, dh_n, cache):
    """Backward of :func:`forward` through time.

    dy (T, B, H), dh_n (B, H): gradients of the outputs and of the final state (None means
    zero).  Returns (dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    (x, weight_ih, weight_hh, has_bias_ih, has_bias_hh, gates, ms, hs, mask, reverse,
     reset_after, workspace) = cache
    xp = array_module(x)
    T, B, H = ms.shape
    check_grad_arg("dy", dy, (T, B, H), x.dtype)
    check_grad_arg("dh_n", dh_n, (B, H), x.dtype)
    _, h_prevs = states_in_time_order(hs, reverse)
    # The gradients of each step's input term [da_r | da_z | da_n] and (reset after) of its
    # recurrent term [da_r | da_z | dm], row layout (T, B, 3H), for the products.
    dax = scratch(workspace, "dax", (T, B, 3 * H), x.dtype, xp)
    dah = scratch(workspace, "dah", (T, B, 3 * H), x.dtype, xp) if reset_after else None
    chunks = list(backward_chunks(T, reverse, gates[:, 0].nbytes))
    K = max(len(steps) for steps, _ in chunks)
    factors = scratch(workspace, "factors", (3, K, B, H), x.dtype, xp)
    update = None if mask is None else scratch(workspace, "update", (K, B, H), x.dtype, xp)
    w_hn = weight_hh[2 * H:]                     # (H, H)
    dh = zeros_if_none(dh_n, (B, H), x.dtype, xp).copy()
    dh_prev, tmp, d_rh = xp.empty_like(dh), xp.empty_like(dh), xp.empty_like(dh)
    fused = kernels_for(xp)
    for steps, block in chunks:
        k = block.stop - block.start
        _factors(gates[:, block], ms[block], h_prevs[block], None if mask is None else mask[block],
                 factors[:, :k], None if mask is None else update[:k], reset_after)
        for t in steps:                          # the forward's order, backwards
            j = t - block.start                  # the step's place in the block
            r, z = gates[0, t], gates[1, t] if mask is None else update[j]
            if fused is not None:                # the same math, in GPU kernels around the products
                dy_t, m_t = 0 if dy is None else dy[t], 1 if mask is None else mask[t]
                x_rows = dax[t].reshape(B, 3, H).transpose(1, 0, 2)
                if reset_after:
                    fused.gru_backward_after(dy_t, m_t, z, r, factors[:, j], dh, dh_prev, x_rows,
                                             dah[t].reshape(B, 3, H).transpose(1, 0, 2))
                    xp.matmul(dah[t], weight_hh, out=tmp)
                else:
                    fused.gru_backward_before_first(dy_t, m_t, z, factors[:, j], dh, dh_prev, x_rows)
                    xp.matmul(x_rows[2], w_hn, out=d_rh)              # d(r ⊙ h) = da_n W_hn
                    fused.gru_backward_before_second(d_rh, r, factors[:, j], dh_prev, x_rows[0])
                    xp.matmul(dax[t, :, :2 * H], weight_hh[:2 * H], out=tmp)
                dh_prev += tmp
                dh, dh_prev = dh_prev, dh
                continue
            add_output_gradient(dh, dy, mask, t, tmp)  # h_t went to the output and to the next step
            da_t = factors[:, j]                 # (3, B, H): the gates' factors, now ⊙ dh
            da_t[1:] *= dh                       # da_z = dh ⊙ (h_prev − n) σ'(z);  da_n = dh ⊙ (1 − z)(1 − n²)
            xp.multiply(dh, z, out=dh_prev)      # dh_prev ← dh ⊙ z
            if reset_after:
                da_t[0] *= da_t[2]               # da_r = da_n ⊙ m σ'(r)
                rows = dah[t].reshape(B, 3, H).transpose(1, 0, 2)
                xp.copyto(rows[:2], da_t[:2])
                xp.multiply(da_t[2], r, out=rows[2])                 # dm = da_n ⊙ r
                xp.matmul(dah[t], weight_hh, out=tmp)
                dh_prev += tmp                   # dh_prev += [da_r | da_z | dm] W_hh
            else:
                xp.matmul(da_t[2], w_hn, out=d_rh)                   # d(r ⊙ h) = da_n W_hn
                da_t[0] *= d_rh                  # da_r = d(r ⊙ h) ⊙ h_prev σ'(r)
                xp.multiply(d_rh, r, out=tmp)
                dh_prev += tmp                   # dh_prev += d(r ⊙ h) ⊙ r
            xp.copyto(dax[t].reshape(B, 3, H).transpose(1, 0, 2), da_t)
            if not reset_after:
                xp.matmul(dax[t, :, :2 * H], weight_hh[:2 * H], out=tmp)
                dh_prev += tmp                   # dh_prev += [da_r | da_z] W_h{r,z}
            dh, dh_prev = dh_prev, dh            # (a padded step passed dh through: z = 1, da = 0)
    dx = input_gradient(dax, weight_ih)          # dx_t = dax_t W_ih, all steps at once
    dweight_ih = weight_gradients(dax, x)        # dW_ih = Σ_t dax_t^T x_t
    dbias_ih = bias_gradient(dax) if has_bias_ih else None
    if reset_after:
        dweight_hh = weight_gradients(dah, h_prevs)                  # dW_hh = Σ_t dah_t^T h_{t−1}
        dbias_hh = bias_gradient(dah) if has_bias_hh else None
    else:
        rh = ms.reshape(T, B, H)
        dweight_hh = xp.concatenate([
            weight_gradients(dax[..., :2 * H], h_prevs),             # dW_h{r,z} = Σ_t [da_r|da_z]^T h_{t−1}
            weight_gradients(dax[..., 2 * H:], rh),                  # dW_hn = Σ_t da_n^T (r_t ⊙ h_{t−1})
        ])
        dbias_hh = bias_gradient(dax) if has_bias_hh else None
    return dx, dh, dweight_ih, dweight_hh, dbias_ih, dbias_hh
