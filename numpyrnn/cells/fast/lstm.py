r"""The LSTM's fast sequence path: :func:`numpyrnn.cells.lstm.forward_reference` and
:func:`~numpyrnn.cells.lstm.backward_reference`, arranged for speed.

The same equations (docs/derivations.md §5, §7), rearranged so:

1. **The input term of every step is one product before the loop** (§3): x_t W_ih^T + b for
   every t and gate, b = b_ih + b_hh folded; the loop adds h_{t−1} W_hh^T.
2. **The weight and input gradients are one product each after the loop** (§3), from da kept
   for every step (row layout (T, B, 4H), as the products want it).
3. **Step-major, gate-major storage, internal order [o, i, f, g]**: the gates of all steps
   live in one (T, 4, B, H) array, so each step's gates are one contiguous block and each gate
   of it a contiguous (B, H) block.  NumPy's elementwise loops run up to 4× slower on the
   strided column blocks of a (B, 4H) row, and a call on an array that is not one contiguous
   block pays for a general iterator (about 1 µs a call, most of the call at the toy shapes).
   The three sigmoid gates sit side by side, and so do the three blocks the backward
   multiplies by dc.  Public rows [i, f, g, o] are reordered on the way in (weights) and out
   (gradients).
4. **One recurrent product per step**: h_{t−1} W_hh^T for all four gates is one NumPy call,
   (B, H) × (4, H, H) (W_hh^T per gate), into a contiguous (4, B, H) block: the same cost as
   one (B, H) × (H, 4H) product at the toy shapes, and its sum with the gates is a same-shape
   add instead of one through a strided gate-major view of a row (NumPy's same-shape
   elementwise calls are the cheap ones; a strided or broadcast operand costs a general
   iterator, about 1 µs a call).
5. **One tanh gives the sigmoids**: σ(a) = (1 + tanh(a/2)) / 2.  The forward's copy of the
   weights and bias has its o, i, f rows halved (exact in binary), so one tanh over all four
   gates gives tanh(a/2) for o, i, f and g = tanh(a_g) for g; then o, i, f ← 0.5 · t + 0.5.
   (One tanh is over twice as fast as SciPy's expit.)
6. **Factors before the recursion**: in §5's backward, every gate gradient is a product of dh or
   dc with factors that do not depend on them — da_o = dh ⊙ [tanh(c) σ'(o)],
   [da_i, da_f, da_g] = dc ⊙ [g σ'(i), c_prev σ'(f), i (1 − g²)], and dc gains dh ⊙ [o (1 −
   tanh²(c))].  The backward computes the bracketed factors a block of steps at a time
   (:func:`_factors`); the loop only multiplies.
7. **Masks outside the loop** (§7): m_t dy_t is one product before the loop.  In the forward
   direction no mask enters the loop (``common.must_carry``): the forward runs on through each
   sequence's padding (its outputs there are masked to 0 and its final state read at its last
   real step), and the backward meets the padding with dh = dc = 0, so its gate gradients come
   out 0.  Reversed, or given ∂L/∂h_n or ∂L/∂c_n, at a padded step the factors are 0 and the
   forget factor 1, so dc passes unchanged and da_t = 0; dh passes by a masked copy, and so does
   the forward's state — at the steps that pad some sequence only.
8. **Buffers** come from the layer's workspace and are reused from call to call; h and c live in
   (T+1, B, H) buffers, whose slice in time order is the output
   (``common.states_in_time_order``).
9. **The per-step body** is chosen once before the loop: :func:`_forward_body` /
   :func:`_backward_body` on NumPy, or the fused CuPy kernel of the same signature
   (``fused.lstm_forward`` / ``fused.lstm_backward``) on a GPU with fusion on.
10. **Recurrent dropout** (``h_mask``, derivations §16) costs one (B, H) product per step each
   way, outside the body: h_{t−1} ⊙ mask into a scratch buffer before the recurrent product,
   and dh_{t−1} ⊙ mask after it.  Nothing more is kept: dW_hh = Σ_t da_t^T (h_{t−1} ⊙ mask)
   multiplies the kept states by the mask once after the loop, a (T, B, H) temporary.
11. **Zoneout** (``zoneout``, derivations §17; a rate for h and one for c) mixes outside the
   body, so the fused kernels serve too: the body writes c̃_t and h̃_t into the states' slots,
   then each is mixed in place, s_t = k_t s̃_t + (1 − k_t) s_{t−1}, k_t = m_t (1 − δ_t) (the
   backward reads c_{t−1}, the gates and tanh(c̃_t), never c̃_t or h̃_t), which also carries
   each sequence's padding.  Backward, the step receives dh̃_t = k^h_t g_t and dc̃_t = k^c_t dc_t:
   the factors of dh (da_o's and ``to_c``) are multiplied by k^h_t with their block, dc by k^c_t
   before the body, and after it dc_{t−1} gains (1 − k^c_t) dc_t and dh_{t−1} (1 − k^h_t) g_t.
"""

from __future__ import annotations

from typing import NamedTuple

from ...backend import array_module
from ..common import (
    backward_chunks, bias_gradient, carry_over, check_cache, check_cell_args, check_grad_arg, check_h_mask,
    check_zoneout, final_state, fold_biases, in_block, input_gradient, length_mask, masked_output_grad, must_carry,
    new_shares, outputs, padding, scratch, states_in_time_order, step_major_input_terms, step_views,
    weight_gradients, zeros_if_none, zone,
)
from . import fused

GATES = 4

_INTERNAL = (3, 0, 1, 2)         # internal gate k is public block _INTERNAL[k]: [o, i, f, g]
_PUBLIC = (1, 2, 3, 0)           # public block k is internal gate _PUBLIC[k]


class FastCache(NamedTuple):
    """What :func:`forward` keeps for :func:`backward`."""
    x: object                 # (T, B, I)
    weight_ih: object
    weight_hh: object
    has_bias_ih: bool
    has_bias_hh: bool
    gates: object             # (T, 4, B, H) activations, internal order [o, i, f, g]
    hs: object                # (T+1, B, H) h, in the slots of common.states_in_time_order
    cs: object                # (T+1, B, H) c, likewise
    tanh_cs: object           # (T, B, H) tanh(c_t)
    mask: object              # (T, B, 1) m_t, or None without lengths
    reverse: bool
    workspace: object
    h_mask: object            # (B, H) recurrent dropout's mask, or None
    shares: list              # with zoneout: [(k, 1 − k) for h, for c] (common.new_shares); else None

    MADE_BY = "numpyrnn.cells.lstm.forward (the fast path)"


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
    """W_ih^T and W_hh^T per gate, (4, I, H) and (4, H, H), and the bias per gate (4, 1, H):
    internal order, contiguous, sigmoid gates (o, i, f) halved (trick 5)."""
    w_ih_t = _gate_major(weight_ih).transpose(0, 2, 1).copy()      # copies: halved below
    w_hh_t = _gate_major(weight_hh).transpose(0, 2, 1).copy()     # (4, H, H): W_hh^T per gate
    b = None if bias is None else _gate_major(bias)[:, None, :]
    for w in (w_ih_t, b):
        if w is not None:
            w[:3] *= 0.5
    w_hh_t[:3] *= 0.5
    return w_ih_t, w_hh_t, b


def _forward_body(recurrent, c_prev, a, c, tanh_c, h):
    """One step's gate math.  a (4, B, H): the step's input terms [o, i, f, g] (o, i, f halved),
    turned into the gates in place; recurrent (4, B, H): h_{t−1} W_hh^T, likewise halved.
    Writes c, tanh(c) and h (which serves as scratch first)."""
    xp = array_module(a)
    a += recurrent                               # a_t = x_t W_ih^T + b + h_{t−1} W_hh^T
    xp.tanh(a, out=a)                            # tanh(a/2) for o, i, f; g = tanh(a_g)
    sigmoids = a[:3]
    sigmoids *= 0.5                              # o, i, f = σ(a) = (1 + tanh(a/2)) / 2
    sigmoids += 0.5
    o, i, f, g = a
    xp.multiply(f, c_prev, out=c)                # c = f ⊙ c_prev + i ⊙ g
    xp.multiply(i, g, out=h)
    c += h
    xp.tanh(c, out=tanh_c)                       # h = o ⊙ tanh(c)
    xp.multiply(o, tanh_c, out=h)


def forward(x, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, lengths=None,
            reverse=False, workspace=None, h_mask=None, zoneout=None, check=True):
    """LSTM over a sequence x (T, B, I) from the initial state h0, c0 (B, H).

    ``lengths`` (B,) gives each sequence's true length: later steps leave the state unchanged
    and output zeros.  ``reverse`` runs from each sequence's last real step to its first.
    ``workspace`` (a :class:`~numpyrnn.cells.common.Workspace`) lends the buffers; the next
    forward through the same workspace overwrites what this one cached.  ``h_mask`` (B, H):
    recurrent dropout's mask on the h that W_hh reads (derivations §16), None for none.
    ``zoneout``: (δ of h, δ of c), each None, the masks of every step (T, B, H) or the rate p
    (derivations §17), or None for none.  ``check=False`` skips the NaN/Inf check of the arrays,
    for a caller that computed or checked them itself (a layer).

    Returns (y, h_n, c_n, cache): y (T, B, H) the hidden state at each step (a read-only view
    into the cache when there are no lengths), h_n and c_n (B, H) the final state.
    """
    T, B, I, H = check_cell_args(x, {"h0": h0, "c0": c0}, weight_ih, weight_hh, bias_ih,
                                 bias_hh, GATES, lengths=lengths, finite=check)
    check_h_mask(h_mask, (B, H), x.dtype, check)
    zoneout = check_zoneout(zoneout, ("h", "c"), (T, B, H), x.dtype, check)
    xp = array_module(x)
    w_ih_t, w_hh_t, bias = _forward_weights(weight_ih, weight_hh, fold_biases(bias_ih, bias_hh))
    gates = step_major_input_terms(x, w_ih_t, bias, workspace,            # tricks 1, 3: (T, 4, B, H)
                                   scratch(workspace, "da", (T, B, 4 * H), x.dtype, xp))
    hs = scratch(workspace, "h", (T + 1, B, H), x.dtype, xp)                 # trick 8
    cs = scratch(workspace, "c", (T + 1, B, H), x.dtype, xp)
    tanh_cs = scratch(workspace, "tanh_c", (T, B, H), x.dtype, xp)
    start = T if reverse else 0
    hs[start], cs[start] = h0, c0
    recurrent = scratch(workspace, "recurrent", (4, B, H), x.dtype, xp)  # trick 4
    mask = length_mask(lengths, T, x.dtype, xp)
    shares = new_shares(zoneout, mask, T, x.dtype, xp)                         # trick 11
    padded = padding(mask, shares is None and must_carry(reverse, True))  # trick 7
    (k_h, rest_h), (k_c, rest_c) = [(None, None)] * 2 if shares is None else [s or (None, None) for s in shares]
    mixed = None if shares is None else scratch(workspace, "zone", (B, H), x.dtype, xp)
    step = fused.choose(xp, _forward_body, "lstm_forward")                 # trick 9
    h_news, h_prevs = states_in_time_order(hs, reverse)
    c_news, c_prevs = states_in_time_order(cs, reverse)
    dropped = None if h_mask is None else scratch(workspace, "dropped", (B, H), x.dtype, xp)
    for a_t, h_prev, c_prev, h, c, tanh_c, padded_t, k_h_t, rest_h_t, k_c_t, rest_c_t in step_views(
            reverse, gates, h_prevs, c_prevs, h_news, c_news, tanh_cs, padded, k_h, rest_h, k_c, rest_c):
        xp.matmul(h_prev if dropped is None else xp.multiply(h_prev, h_mask, out=dropped),
                  w_hh_t, out=recurrent)         # h_{t−1} W_hh^T (h_{t−1} ⊙ mask: trick 10), all four gates
        step(recurrent, c_prev, a_t, c, tanh_c, h)
        if padded_t is not None:                 # past a sequence's end its state carries over
            carry_over(h, h_prev, padded_t)
            carry_over(c, c_prev, padded_t)
        if shares is not None:                   # zoneout: s_t = k_t s̃_t + (1 − k_t) s_{t−1} (trick 11)
            zone(h, h, h_prev, k_h_t, rest_h_t, mixed)
            zone(c, c, c_prev, k_c_t, rest_c_t, mixed)
    y = outputs(hs, mask, reverse)
    cache = FastCache(x, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None,
                      gates, hs, cs, tanh_cs, mask, reverse, workspace, h_mask, shares)
    return y, final_state(hs, reverse, lengths), final_state(cs, reverse, lengths), cache


def gate_activations(cache):
    """The gates :func:`forward` computed, by name, each (T, B, H) in time order: i, f, g, o, and
    the cell state c (with zoneout, the new value c̃_t before it mixes it in); 0 at padded steps."""
    o, i, f, g = cache.gates.transpose(1, 0, 2, 3)
    c_prev, c = states_in_time_order(cache.cs, cache.reverse)[::-1]
    if cache.shares is not None:                 # the new value c̃_t = f ⊙ c_{t−1} + i ⊙ g, before zoneout
        c = f * c_prev + i * g
    out = {"i": i, "f": f, "g": g, "o": o, "c": c}
    return out if cache.mask is None else {k: v * cache.mask for k, v in out.items()}


def _factors(gates, tanh_c, c_prev, mask, da, to_c, forget, share_h=None):
    """For a block of steps, what the backward multiplies by dh and dc (trick 6).  gates, da:
    (K, 4, B, H); the rest (K, B, H).  Writes:

        da   = [tanh(c) σ'(o), g σ'(i), c_prev σ'(f), i (1 − g²)]   (then ⊙ dh, ⊙ dc in the loop)
        to_c = o ⊙ (1 − tanh²(c))                                  (dc ← dc + dh ⊙ to_c)

    where σ' = s (1 − s) of the gate's output s.  At padded steps (mask 0) all of them are zero
    and ``forget`` is 1, so dc passes through unchanged (trick 7).  ``share_h`` (zoneout's k_t of
    h, trick 11; the mask is None then): da_o's factor and to_c, the factors of dh, times k_t.
    """
    xp = array_module(gates)
    o, i, f, g = gates.transpose(1, 0, 2, 3)
    sigmoids, d_sigmoids = gates[:, :3], da[:, :3]
    xp.subtract(1, sigmoids, out=d_sigmoids)
    d_sigmoids *= sigmoids                       # σ'(s) = s (1 − s) for o, i, f at once
    da_o, da_i, da_f, da_g = da.transpose(1, 0, 2, 3)
    da_o *= tanh_c
    da_i *= g
    da_f *= c_prev
    xp.multiply(g, g, out=da_g)
    xp.subtract(1, da_g, out=da_g)
    da_g *= i                                    # i (1 − g²)
    xp.multiply(tanh_c, tanh_c, out=to_c)
    xp.subtract(1, to_c, out=to_c)
    to_c *= o                                    # o (1 − tanh²(c))
    if mask is not None:
        da *= mask[:, None]
        to_c *= mask
        xp.copyto(forget, f)
        xp.copyto(forget, 1, where=(mask == 0))
    if share_h is not None:
        da_o *= share_h
        to_c *= share_h


def _backward_body(dy_t, to_c, forget, factors, dh, dc, rows, tmp):
    """One step's gate math backward: dh and dc (B, H) are updated in place; the step's gate
    gradients go into ``rows`` (4, B, H), a gate-major view of the step's row of da."""
    xp = array_module(dh)
    if dy_t is not None:
        dh += dy_t                               # h_t went to the output and to the next step
    xp.multiply(dh, to_c, out=tmp)
    dc += tmp                                    # dc ← dc + dh ⊙ o ⊙ (1 − tanh²(c))
    factors[0] *= dh                             # da_o = dh ⊙ tanh(c) σ'(o)
    factors[1:] *= dc                            # [da_i, da_f, da_g] = dc ⊙ [g σ'(i), c_prev σ'(f), i (1 − g²)]
    dc *= forget                                 # dc_{t−1} = dc ⊙ f
    xp.copyto(rows, factors)


def backward(dy, dh_n, dc_n, cache, *, check=True, dh_steps=None, dc_steps=None):
    """Backward of :func:`forward` through time.

    dy (T, B, H), dh_n, dc_n (B, H): gradients of the outputs and final states (None means
    zero; ``check`` as for :func:`forward`).  ``dh_steps`` and ``dc_steps`` (T, B, H), if given,
    receive ∂L/∂h_t and ∂L/∂c_t for every step: the gradients of the loss with respect to the
    state after step t, (h_t, c_t) taken as the two inputs of step t+1; h_t's from its output
    and the later steps, c_t's from the later steps.  Returns (dx, dh0, dc0, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    (x, weight_ih, weight_hh, has_bias_ih, has_bias_hh, gates, hs, cs, tanh_cs, mask, reverse,
     workspace, h_mask, shares) = check_cache(cache, FastCache, "numpyrnn.cells.lstm.backward")
    xp = array_module(x)
    T, B, H = tanh_cs.shape
    check_grad_arg("dy", dy, (T, B, H), x.dtype, check)
    check_grad_arg("dh_n", dh_n, (B, H), x.dtype, check)
    check_grad_arg("dc_n", dc_n, (B, H), x.dtype, check)
    dy = masked_output_grad(dy, mask, workspace)                              # trick 7
    carry = mask is not None and shares is None and must_carry(reverse, True, dh_n, dc_n)
    (k_h, rest_h), (k_c, rest_c) = [(None, None)] * 2 if shares is None else [s or (None, None) for s in shares]
    padded = padding(mask, carry)
    _, c_prevs = states_in_time_order(cs, reverse)
    w_hh = _internal_rows(weight_hh)             # (4H, H): true (not halved) weights, [o, i, f, g]
    # ∂L/∂a for every step, row layout (T, B, 4H) = [o | i | f | g], for the products (trick 2),
    # and the same memory gate-major, (T, 4, B, H), for the per-step writes.
    da = scratch(workspace, "da", (T, B, 4 * H), x.dtype, xp)
    da_rows = da.reshape(T, B, 4, H).transpose(0, 2, 1, 3)
    chunks = list(backward_chunks(T, reverse, gates[0].nbytes))
    K = max(block.stop - block.start for block in chunks)
    factors = scratch(workspace, "factors", (K, 4, B, H), x.dtype, xp)
    to_c = scratch(workspace, "to_c", (K, B, H), x.dtype, xp)
    forget = scratch(workspace, "forget", (K, B, H), x.dtype, xp) if carry else None
    dh = zeros_if_none(dh_n, (B, H), x.dtype, xp).copy()
    dc = zeros_if_none(dc_n, (B, H), x.dtype, xp).copy()
    dh_prev, tmp = xp.empty_like(dh), xp.empty_like(dh)
    carried_h, carried_c = xp.empty_like(dh), xp.empty_like(dh)
    step = fused.choose(xp, _backward_body, "lstm_backward")               # trick 9
    for block in chunks:
        n = block.stop - block.start
        _factors(gates[block], tanh_cs[block], c_prevs[block],
                 mask[block] if carry else None, factors[:n], to_c[:n], forget[:n] if carry else None,
                 *in_block(block, k_h))
        forgets = forget[:n] if carry else gates[block, 2]          # f, or 1 at padded steps
        for (dy_t, da_t, rows, padded_t, dh_t, dc_t, rest_h_t, k_c_t, rest_c_t, to_c_t, forget_t,
             factors_t) in step_views(not reverse, *in_block(block, dy, da, da_rows, padded, dh_steps, dc_steps,
                                                              rest_h, k_c, rest_c), to_c[:n], forgets, factors[:n]):
            if dc_t is not None:
                xp.copyto(dc_t, dc)              # ∂L/∂c_t: what step t+1 handed back
            if k_c_t is not None:                # zoneout: the step receives dc̃_t = k_t dc_t (trick 11)
                xp.multiply(rest_c_t, dc, out=carried_c)
                dc *= k_c_t
            step(dy_t, to_c_t, forget_t, factors_t, dh, dc, rows, tmp)
            if k_c_t is not None:
                dc += carried_c                  # dc_{t−1} = dc̃_t ⊙ f + (1 − k_t) dc_t
            if dh_t is not None:
                xp.copyto(dh_t, dh)              # ∂L/∂h_t = g_t = dh_t + m_t dy_t
            xp.matmul(da_t, w_hh, out=dh_prev)   # dh_{t−1} = da_t W_hh
            if h_mask is not None:
                dh_prev *= h_mask                # ⊙ mask: recurrent dropout (trick 10)
            if padded_t is not None:             # a padded step passes dh through unchanged
                carry_over(dh_prev, dh, padded_t)
            if rest_h_t is not None:             # zoneout: dh_{t−1} += (1 − k_t) g_t (trick 11)
                dh_prev += xp.multiply(rest_h_t, dh, out=carried_h)
            dh, dh_prev = dh_prev, dh
    _, h_prevs = states_in_time_order(hs, reverse)
    dx = input_gradient(da, _internal_rows(weight_ih))               # dx_t = da_t W_ih, all steps at once
    dweight_ih = _public_rows(weight_gradients(da, x))              # dW_ih = Σ_t da_t^T x_t
    h_read = h_prevs if h_mask is None else h_prevs * h_mask      # what W_hh read (trick 10)
    dweight_hh = _public_rows(weight_gradients(da, h_read))         # dW_hh = Σ_t da_t^T h_{t−1}
    db = _public_rows(bias_gradient(da))                            # db = Σ_t Σ_batch da_t
    return (dx, dh, dc, dweight_ih, dweight_hh,
            db if has_bias_ih else None, db.copy() if has_bias_hh else None)
