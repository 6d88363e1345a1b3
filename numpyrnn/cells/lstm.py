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
from .fused import kernels_for
from .common import (
    add_output_gradient, backward_chunks, bias_gradient, carry_over, check_cell_args,
    check_grad_arg, final_state, fold_biases, input_gradient, length_mask, outputs, scratch,
    sigmoid, state_slots, states_in_time_order, time_steps, weight_gradients, zeros_if_none,
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
#
# The sequence functions compute exactly the equations above, arranged for speed (the step
# functions above are the reference the tests hold them to):
#
# * Gate-major storage: the gates of all steps live in one (4, T, B, H) array, so each gate of
#   each step is a contiguous (B, H) block (NumPy's elementwise loops run up to 4× slower on the
#   strided column blocks of a (B, 4H) row).  The gates are ordered [o, i, f, g]: the three
#   sigmoids side by side, and the three blocks the backward multiplies by dc side by side.
# * The recurrent term of a step is one (B, H) × (H, 4H) product into a row-layout scratch, added
#   to the gates through a gate-major view of it: one product is up to 20 % faster than four
#   (B, H) × (H, H) ones, far more than the strided addition costs.
# * The forward's copy of the weights has its sigmoid rows halved (exact in binary), so that one
#   tanh over all four gates gives tanh(a/2) for o, i, f — and σ(a) = (1 + tanh(a/2)) / 2 — and
#   tanh(a_g) for g.  (One tanh is over twice as fast as SciPy's expit.)
# * The backward first fills da, a block of steps at a time, with the factors that do not depend
#   on the recursion (each gate's slope times what it multiplies); the loop then multiplies them
#   by the two gradients that do, dh and dc.

_INTERNAL = (3, 0, 1, 2)         # internal gate k is public block _INTERNAL[k]: [o, i, f, g]
_PUBLIC = (1, 2, 3, 0)           # public block k is internal gate _PUBLIC[k]


def _gate_major(rows):
    """Public (4H, ...) rows as internal (4, H, ...) gate blocks, [o, i, f, g] (a copy)."""
    xp = array_module(rows)
    blocks = rows.reshape(4, rows.shape[0] // 4, *rows.shape[1:])
    return xp.stack([blocks[k] for k in _INTERNAL])


def _internal_rows(rows):
    """Public (4H, ...) rows [i, f, g, o] in the internal order [o, i, f, g] (a copy)."""
    return _gate_major(rows).reshape(rows.shape)


def _public_rows(rows):
    """Internal (4H, ...) rows [o, i, f, g] back in the public order [i, f, g, o] (a copy)."""
    xp = array_module(rows)
    blocks = rows.reshape(4, rows.shape[0] // 4, *rows.shape[1:])
    return xp.concatenate([blocks[k] for k in _PUBLIC])


def _forward_weights(weight_ih, weight_hh, bias):
    """W_ih^T per gate (4, I, H), W_hh^T as one (H, 4H) matrix (gate k in columns kH..(k+1)H)
    and the bias per gate (4, 1, H): internal order, contiguous, sigmoid gates (o, i, f) halved."""
    xp, H = array_module(weight_hh), weight_hh.shape[1]
    w_ih_t = _gate_major(weight_ih).transpose(0, 2, 1).copy()      # copies: halved below
    w_hh_t = xp.ascontiguousarray(_internal_rows(weight_hh).T)     # a new array: _internal_rows copies
    b = None if bias is None else _gate_major(bias)[:, None, :]
    for w in (w_ih_t, b):
        if w is not None:
            w[:3] *= 0.5
    w_hh_t[:, :3 * H] *= 0.5
    return w_ih_t, w_hh_t, b


def _factors(gates, tanh_c, c_prev, mask, da, to_c, forget):
    """For a block of steps, what the backward multiplies by dh and dc (they do not depend on
    the recursion, so a whole block is done at once).  gates, da: (4, K, B, H); the rest (K, B, H).
    Writes:

        da   = [tanh(c) σ'(o), g σ'(i), c_prev σ'(f), i (1 − g²)]   (then ⊙ dh, ⊙ dc in the loop)
        to_c = o ⊙ (1 − tanh²(c))                                  (dc ← dc + dh ⊙ to_c)

    where σ' = s (1 − s) of the gate's output s.  At padded steps (mask 0) all of them are zero
    and ``forget`` is 1, so dc passes through unchanged.
    """
    xp = array_module(gates)
    o, i, f, g = gates
    xp.subtract(1, gates[:3], out=da[:3])
    da[:3] *= gates[:3]                          # σ'(s) = s (1 − s) for o, i, f at once
    da[0] *= tanh_c
    da[1] *= g
    da[2] *= c_prev
    xp.multiply(g, g, out=da[3])
    xp.subtract(1, da[3], out=da[3])
    da[3] *= i                                   # i (1 − g²)
    xp.multiply(tanh_c, tanh_c, out=to_c)
    xp.subtract(1, to_c, out=to_c)
    to_c *= o                                    # o (1 − tanh²(c))
    if mask is not None:
        da *= mask
        to_c *= mask
        xp.copyto(forget, f)
        xp.copyto(forget, 1, where=(mask == 0))


def forward(x, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, lengths=None,
            reverse=False, workspace=None):
    """LSTM over a sequence x (T, B, I) from the initial state h0, c0 (B, H).

    ``lengths`` (B,) gives each sequence's true length: later steps leave the state unchanged
    and output zeros.  ``reverse`` runs from each sequence's last real step to its first.
    ``workspace`` (a :class:`~numpyrnn.cells.common.Workspace`) lends the buffers; the next
    forward through the same workspace overwrites what this one cached.

    Returns (y, h_n, c_n, cache): y (T, B, H) the hidden state at each step (a read-only view
    into the cache when there are no lengths), h_n and c_n (B, H) the final state.
    """
    T, B, I, H = check_cell_args(x, {"h0": h0, "c0": c0}, weight_ih, weight_hh, bias_ih,
                                 bias_hh, GATES, lengths=lengths)
    xp = array_module(x)
    w_ih_t, w_hh_t, bias = _forward_weights(weight_ih, weight_hh, fold_biases(bias_ih, bias_hh))
    # One batched product for the input term of every step and gate; the loop adds h_{t−1} W_hh^T.
    gates = scratch(workspace, "gates", (4, T * B, H), x.dtype, xp)
    xp.matmul(x.reshape(T * B, I), w_ih_t, out=gates)   # (4, T·B, H): x_t W_ih^T per gate
    if bias is not None:
        gates += bias
    gates = gates.reshape(4, T, B, H)            # [o, i, f, g] at each step
    hs = scratch(workspace, "h", (T + 1, B, H), x.dtype, xp)      # states h, in the slots of state_slots()
    cs = scratch(workspace, "c", (T + 1, B, H), x.dtype, xp)      # cell states c, likewise
    tanh_cs = scratch(workspace, "tanh_c", (T, B, H), x.dtype, xp)
    start = T if reverse else 0
    hs[start], cs[start] = h0, c0
    recurrent = scratch(workspace, "recurrent", (B, 4 * H), x.dtype, xp)  # h_{t−1} W_hh^T, a row per sequence
    recurrent_gates = recurrent.reshape(B, 4, H).transpose(1, 0, 2)       # the same, (4, B, H) per gate
    ig = scratch(workspace, "ig", (B, H), x.dtype, xp)                    # i ⊙ g
    mask = length_mask(lengths, T, x.dtype, xp)
    fused = kernels_for(xp)                      # on a GPU with NUMPYRNN_FUSED=1: one kernel per step
    for t in time_steps(T, reverse):
        prev, new = state_slots(t, reverse)
        xp.matmul(hs[prev], w_hh_t, out=recurrent)
        if fused is not None:                    # the lines below, in one GPU kernel
            fused.lstm_forward(recurrent_gates, cs[prev], gates[:, t], cs[new], tanh_cs[t], hs[new])
        else:
            a = gates[:, t]
            a += recurrent_gates                 # a_t = x_t W_ih^T + b + h_{t−1} W_hh^T
            xp.tanh(a, out=a)                    # tanh(a/2) for o, i, f; g = tanh(a_g)
            sigmoids = gates[:3, t]
            sigmoids *= 0.5                      # o, i, f = σ(a) = (1 + tanh(a/2)) / 2
            sigmoids += 0.5
            o, i, f, g = a
            xp.multiply(f, cs[prev], out=cs[new])    # c = f ⊙ c_prev + i ⊙ g
            xp.multiply(i, g, out=ig)
            cs[new] += ig
            xp.tanh(cs[new], out=tanh_cs[t])     # h = o ⊙ tanh(c)
            xp.multiply(o, tanh_cs[t], out=hs[new])
        if mask is not None:                     # past a sequence's end its state carries over
            carry_over(hs[new], hs[prev], mask[t])
            carry_over(cs[new], cs[prev], mask[t])
    y = outputs(hs, mask, reverse)
    cache = (x, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None,
             gates, hs, cs, tanh_cs, mask, reverse, workspace)
    return y, final_state(hs, reverse), final_state(cs, reverse), cache


def gate_activations(cache):
    """The gates a :func:`forward` computed, by name, each (T, B, H) in time order:
    i, f, g, o, and the cell state c."""
    gates, cs, reverse = cache[5], cache[7], cache[10]
    names = ("o", "i", "f", "g")                 # the internal order
    out = {name: gates[k] for k, name in enumerate(names)}
    out = {name: out[name] for name in ("i", "f", "g", "o")}
    out["c"] = states_in_time_order(cs, reverse)[0]
    return out


def backward(dy, dh_n, dc_n, cache):
    """Backward of :func:`forward` through time.

    dy (T, B, H), dh_n, dc_n (B, H): gradients of the outputs and final states (None means
    zero).  Returns (dx, dh0, dc0, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    (x, weight_ih, weight_hh, has_bias_ih, has_bias_hh, gates, hs, cs, tanh_cs, mask, reverse,
     workspace) = cache
    xp = array_module(x)
    T, B, H = tanh_cs.shape
    I = x.shape[2]
    check_grad_arg("dy", dy, (T, B, H), x.dtype)
    check_grad_arg("dh_n", dh_n, (B, H), x.dtype)
    check_grad_arg("dc_n", dc_n, (B, H), x.dtype)
    _, c_prevs = states_in_time_order(cs, reverse)
    w_hh = _internal_rows(weight_hh)             # (4H, H): true (not halved) weights, [o, i, f, g]
    # ∂L/∂a for every step, row layout (T, B, 4H) = [o | i | f | g], for the products.
    da = scratch(workspace, "da", (T, B, 4 * H), x.dtype, xp)
    chunks = list(backward_chunks(T, reverse, gates[:, 0].nbytes))
    K = max(len(steps) for steps, _ in chunks)
    factors = scratch(workspace, "factors", (4, K, B, H), x.dtype, xp)
    to_c = scratch(workspace, "to_c", (K, B, H), x.dtype, xp)
    forget = None if mask is None else scratch(workspace, "forget", (K, B, H), x.dtype, xp)
    dh = zeros_if_none(dh_n, (B, H), x.dtype, xp).copy()
    dc = zeros_if_none(dc_n, (B, H), x.dtype, xp).copy()
    dh_prev, tmp = xp.empty_like(dh), xp.empty_like(dh)
    fused = kernels_for(xp)
    for steps, block in chunks:
        n = block.stop - block.start
        _factors(gates[:, block], tanh_cs[block], c_prevs[block],
                 None if mask is None else mask[block], factors[:, :n], to_c[:n],
                 None if mask is None else forget[:n])
        for t in steps:                          # the forward's order, backwards
            j = t - block.start                  # the step's place in the block
            if fused is not None:                # the lines in the else branch, in one GPU kernel
                fused.lstm_backward(0 if dy is None else dy[t], 1 if mask is None else mask[t], to_c[j],
                                    gates[2, t] if mask is None else forget[j], factors[:, j], dh, dc,
                                    da[t].reshape(B, 4, H).transpose(1, 0, 2))
            else:
                add_output_gradient(dh, dy, mask, t, tmp)  # h_t went to the output and to the next step
                xp.multiply(dh, to_c[j], out=tmp)
                dc += tmp                            # dc ← dc + dh ⊙ o ⊙ (1 − tanh²(c))
                da_t = factors[:, j]                 # (4, B, H): the gates' factors, now ⊙ dh, dc
                da_t[0] *= dh                        # da_o = dh ⊙ tanh(c) σ'(o)
                da_t[1:] *= dc                       # [da_i, da_f, da_g] = dc ⊙ [g σ'(i), c_prev σ'(f), i (1 − g²)]
                dc *= gates[2, t] if mask is None else forget[j]   # dc_{t−1} = dc ⊙ f
                xp.copyto(da[t].reshape(B, 4, H).transpose(1, 0, 2), da_t)
            xp.matmul(da[t], w_hh, out=dh_prev)  # dh_{t−1} = da_t W_hh
            if mask is not None:                 # a padded step passes dh through unchanged
                carry_over(dh_prev, dh, mask[t])
            dh, dh_prev = dh_prev, dh
    _, h_prevs = states_in_time_order(hs, reverse)
    dx = input_gradient(da, _internal_rows(weight_ih))               # dx_t = da_t W_ih, all steps at once
    dweight_ih = _public_rows(weight_gradients(da, x))              # dW_ih = Σ_t da_t^T x_t
    dweight_hh = _public_rows(weight_gradients(da, h_prevs))        # dW_hh = Σ_t da_t^T h_{t−1}
    db = _public_rows(bias_gradient(da))                            # db = Σ_t Σ_batch da_t
    return (dx, dh, dc, dweight_ih, dweight_hh,
            db if has_bias_ih else None, db.copy() if has_bias_hh else None)
