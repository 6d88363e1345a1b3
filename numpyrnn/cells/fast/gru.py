r"""The GRU's fast sequence path, both forms: :func:`numpyrnn.cells.gru.forward_reference` and
:func:`~numpyrnn.cells.gru.backward_reference`, arranged for speed.

The same equations (docs/derivations.md §6, §7), rearranged so:

1. **The input term of every step is one product before the loop** (§3): x_t W_ih^T plus the
   biases that add like it — b_ir + b_hr, b_iz + b_hz, and b_in (+ b_hn with the reset before;
   with the reset after, b_hn stays inside r ⊙ m) — for every t and gate.
2. **The weight and input gradients are one product each after the loop** (§3), from the
   gradients of every step's input term dax = [da_r | da_z | da_n] and (reset after) recurrent
   term dah = [da_r | da_z | dm], kept in row layout, as the products want them.  With the
   reset after both live in one (T, B, 4H) array d with columns [n | r | z | m]: dax is its
   first 3H columns (the input weights' rows taken in the order [n, r, z]) and dah its last 3H
   (the recurrent weights' own order), so da_r and da_z are written once.
3. **Step-major, gate-major storage**: the gates of all steps live in one (T, 3, B, H) array
   [r, z, n], so each step's gates are one contiguous block and each gate of it a contiguous
   (B, H) block (NumPy's elementwise loops run up to 4× slower on the strided column blocks of
   a (B, 3H) row, and a call on an array that is not one block pays for a general iterator).
4. **One recurrent product per step** for the gates that multiply h_{t−1} (all three with the
   reset after, r and z with the reset before): one NumPy call, (B, H) × (G, H, H) (W_hh^T per
   gate), into a contiguous (G, B, H) block, so that its sums with the gates are same-shape adds
   (NumPy's cheap ones; a strided or broadcast operand costs a general iterator, about 1 µs a
   call); b_hn is kept as a full (B, H) array for the same reason.
5. **One tanh gives the sigmoids**: σ(a) = (1 + tanh(a/2)) / 2, with the r and z rows of the
   forward's copy of the weights and bias halved (exact in binary); then r, z ← 0.5 · t + 0.5.
6. **Factors before the recursion**: §6's gate gradients are dh (or da_n, or d(r ⊙ h)) times
   factors that do not depend on them — da_z = dh ⊙ [(h_{t−1} − n) σ'(z)],
   da_n = dh ⊙ [(1 − z)(1 − n²)], da_r = da_n ⊙ [m σ'(r)] (after) or d(r ⊙ h) ⊙ [h_{t−1} σ'(r)]
   (before).  The backward computes the bracketed factors a block of steps at a time
   (:func:`_factors_after`, :func:`_factors_before`); the loop only multiplies.  With the reset
   after, everything a step hands on is dh times a factor — da_r = dh ⊙ [F_n m σ'(r)],
   dm = dh ⊙ [F_n r] and dh ⊙ z, the direct part of dh_{t−1} — so a step's five factors sit
   side by side and one operation multiplies them all by dh.
7. **Masks outside the loop** (§7): m_t dy_t is one product before the loop.  In the forward
   direction no mask enters the loop (``common.must_carry``): the forward runs on through each
   sequence's padding (its outputs there are masked to 0 and its final state read at its last
   real step), and the backward meets the padding with dh = 0, so its gate gradients come out
   0.  Reversed, or given ∂L/∂h_n, at a padded step the factors are 0 and the update gate's
   stand-in 1, so dh_{t−1} = dh ⊙ 1 passes unchanged and the step's gate gradients are 0; the
   forward's state passes by a masked copy at the steps that pad some sequence.
8. **Buffers** come from the layer's workspace and are reused from call to call; h lives in a
   (T+1, B, H) buffer, whose slice in time order is the output
   (``common.states_in_time_order``).
9. **The per-step body** (the gate math, with the products that sit between the gates) is
   chosen once before the loop, for the GRU's form: the NumPy ``_forward_after`` /
   ``_forward_before`` / ``_backward_after`` / ``_backward_before``, or the fused CuPy function
   of the same name and signature in ``fused`` on a GPU with fusion on.
10. **Recurrent dropout** (``h_mask``, derivations §16): the products read h_in = h_{t−1} ⊙ mask
   (one (B, H) product per step, passed to the NumPy bodies as ``h_in``), the carry
   z ⊙ h_{t−1} and (h_{t−1} − n) read h_{t−1}; backward, what reaches h_{t−1} through the
   products is multiplied by the mask (``h_mask`` of the backward bodies).  Nothing more is
   kept: the weight gradients (and, reset before, the r factors) multiply the kept states by the
   mask after the loop or per block.  The NumPy bodies run then, on CuPy too: the fused kernels
   do not take a mask.
11. **Zoneout** (``zoneout``, derivations §17) mixes outside the body, so the fused kernels
   serve too: the body writes h̃_t into the state's slot, then h_t = k_t h̃_t + (1 − k_t) h_{t−1},
   k_t = m_t (1 − δ_t), in place (the backward reads h_{t−1}, the gates and m or r ⊙ h, never
   h̃_t), which also carries each sequence's padding.  Backward, the factors that multiply dh
   (all but the reset before's F_r, which multiplies d(r ⊙ h)) are multiplied by k_t with their
   block, z among them (trick 7's way with m_t), and dh_{t−1} gains (1 − k_t) g_t after the
   body: two (B, H) products a step each way.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from ...backend import array_module
from ..common import (
    backward_chunks, bias_gradient, carry_over, check_cache, check_cell_args, check_grad_arg, check_h_mask,
    check_zoneout, final_state, in_block, input_gradient, length_mask, masked_output_grad, must_carry, new_shares,
    outputs, padding, scratch, states_in_time_order, step_major_input_terms, step_views, weight_gradients,
    zeros_if_none, zone,
)
from . import fused

GATES = 3


class FastCache(NamedTuple):
    """What :func:`forward` keeps for :func:`backward`."""
    x: object                 # (T, B, I)
    weight_ih: object
    weight_hh: object
    has_bias_ih: bool
    has_bias_hh: bool
    gates: object             # (T, 3, B, H) activations [r, z, n]
    ms: object                # reset after: (T, B, H) m_t = h_{t−1} W_hn^T + b_hn; else None
    rhs: object               # reset before: (T, B, H) r_t ⊙ h_{t−1}; else None
    hs: object                # (T+1, B, H) h, in the slots of common.states_in_time_order
    mask: object              # (T, B, 1) m_t, or None without lengths
    reverse: bool
    reset_after: bool
    workspace: object
    h_mask: object            # (B, H) recurrent dropout's mask, or None
    shares: list              # with zoneout: [(k, 1 − k)] for h (common.new_shares); else None

    MADE_BY = "numpyrnn.cells.gru.forward (the fast path)"


def _input_bias(bias_ih, bias_hh, reset_after):
    """The biases that fold into the input projection (trick 1), (3H,), or None."""
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


def _forward_weights(weight_ih, weight_hh, bias_ih, bias_hh, reset_after):
    """W_ih^T and W_hh^T per gate, (3, I, H) and (3, H, H); the bias that folds into the input
    projection (3, 1, H); all contiguous, r and z halved
    (trick 5); and b_hn (reset after; 0 without biases) or None."""
    H = weight_hh.shape[1]
    # .copy(): a contiguous copy always (ascontiguousarray would return the caller's weight
    # itself when the transpose is already contiguous, H = 1, and the halving would write into it)
    w_ih_t = weight_ih.reshape(3, H, -1).transpose(0, 2, 1).copy()
    w_hh_t = weight_hh.reshape(3, H, H).transpose(0, 2, 1).copy()    # (3, H, H): W_hh^T per gate
    bias = _input_bias(bias_ih, bias_hh, reset_after)
    bias = None if bias is None else bias.reshape(3, 1, H).copy()
    for w in (w_ih_t, bias):
        if w is not None:
            w[:2] *= 0.5
    w_hh_t[:2] *= 0.5
    bias_hn = None if not reset_after else (0 if bias_hh is None else bias_hh[2 * H:])
    return w_ih_t, w_hh_t, bias, bias_hn


def _sigmoids_rz(a, recurrent_rz):
    """r, z = σ(input term + recurrent term), in place in a[:2], from halved terms (trick 5)."""
    xp = array_module(a)
    rz = a[:2]
    rz += recurrent_rz
    xp.tanh(rz, out=rz)                          # tanh(a/2) for r and z
    rz *= 0.5                                    # r, z = σ(a) = (1 + tanh(a/2)) / 2
    rz += 0.5


def _forward_after(w_hh_t, bias_hn, recurrent, tmp, m, h_prev, a, h, h_in=None):
    """One step, reset after.  a (3, B, H): the step's input terms [r, z, n] → the gates, in
    place; writes m (the step's slot of the cache's ms) and h.  ``h_in``: what the products read
    under recurrent dropout (trick 10), h_prev ⊙ mask."""
    xp = array_module(a)
    xp.matmul(h_prev if h_in is None else h_in, w_hh_t, out=recurrent)   # h_{t−1} W_hh^T, all three gates
    _sigmoids_rz(a, recurrent[:2])
    r, z, n = a
    xp.add(recurrent[2], bias_hn, out=m)         # m = h_{t−1} W_hn^T + b_hn
    xp.multiply(r, m, out=tmp)
    n += tmp                                     # n = tanh(x W_in^T + b_in + r ⊙ m)
    xp.tanh(n, out=n)
    xp.subtract(h_prev, n, out=h)                # h = (1 − z) ⊙ n + z ⊙ h_prev = n + z ⊙ (h_prev − n)
    h *= z
    h += n


def _forward_before(w_hh_t, w_hn_t, recurrent, tmp, rh, h_prev, a, h, h_in=None):
    """One step, reset before.  a (3, B, H): the step's input terms [r, z, n] → the gates, in
    place; writes rh = r ⊙ h_prev (the step's slot of the cache's rhs) and h.  ``h_in``: what
    the products read under recurrent dropout (trick 10), h_prev ⊙ mask."""
    xp = array_module(a)
    h_in = h_prev if h_in is None else h_in
    xp.matmul(h_in, w_hh_t, out=recurrent)       # h_{t−1} W_h{r,z}^T
    _sigmoids_rz(a, recurrent)
    r, z, n = a
    xp.multiply(r, h_in, out=rh)                 # r ⊙ h_prev
    xp.matmul(rh, w_hn_t, out=tmp)
    n += tmp                                     # n = tanh(x W_in^T + b_in + (r ⊙ h) W_hn^T + b_hn)
    xp.tanh(n, out=n)
    xp.subtract(h_prev, n, out=h)                # h = n + z ⊙ (h_prev − n)
    h *= z
    h += n


def forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, reset_after=True,
            lengths=None, reverse=False, workspace=None, h_mask=None, zoneout=None, check=True):
    """GRU over a sequence x (T, B, I) from the initial state h0 (B, H).

    ``lengths`` (B,) gives each sequence's true length: later steps leave the state unchanged
    and output zeros.  ``reverse`` runs from each sequence's last real step to its first.
    ``workspace`` (a :class:`~numpyrnn.cells.common.Workspace`) lends the buffers; the next
    forward through the same workspace overwrites what this one cached.  ``h_mask`` (B, H):
    recurrent dropout's mask on the h that the r, z and n products read, never on the carry
    z ⊙ h_{t−1} (derivations §16), None for none.  ``zoneout``: (δ of h,), the masks of every
    step (T, B, H) or the rate p (derivations §17), or None for none.  ``check=False`` skips the
    NaN/Inf check of the arrays, for a caller that computed or checked them itself (a layer).

    Returns (y, h_n, cache): y (T, B, H) the hidden state at each step (a read-only view into
    the cache when there are no lengths), h_n (B, H) the final state.
    """
    T, B, I, H = check_cell_args(x, {"h0": h0}, weight_ih, weight_hh, bias_ih, bias_hh, GATES,
                                 lengths=lengths, finite=check)
    check_h_mask(h_mask, (B, H), x.dtype, check)
    zoneout = check_zoneout(zoneout, ("h",), (T, B, H), x.dtype, check)
    xp = array_module(x)
    # with recurrent dropout the NumPy bodies, which take the masked h (trick 10)
    choose = fused.choose if h_mask is None else (lambda xp, body, name: body)
    w_ih_t, w_hh_t, bias, bias_hn = _forward_weights(weight_ih, weight_hh, bias_ih, bias_hh, reset_after)
    borrowed = (scratch(workspace, "d", (T, B, 4 * H), x.dtype, xp) if reset_after else
                scratch(workspace, "dax", (T, B, 3 * H), x.dtype, xp))    # what the backward fills
    gates = step_major_input_terms(x, w_ih_t, bias, workspace, borrowed)  # tricks 1, 3: (T, 3, B, H)
    hs = scratch(workspace, "h", (T + 1, B, H), x.dtype, xp)                 # trick 8
    hs[T if reverse else 0] = h0
    G = 3 if reset_after else 2                  # the gates whose recurrent term is one product (trick 4)
    recurrent = scratch(workspace, "recurrent", (G, B, H), x.dtype, xp)  # h_{t−1} W_hh^T per gate
    tmp = scratch(workspace, "tmp", (B, H), x.dtype, xp)
    ms = rhs = None                              # what the backward needs of n's recurrent term
    if reset_after:
        ms = scratch(workspace, "m", (T, B, H), x.dtype, xp)
        body = choose(xp, _forward_after, "gru_forward_after")               # trick 9
        # b_hn the shape of the term it is added to: NumPy's same-shape add is the fast one
        bias_hn = xp.broadcast_to(xp.asarray(bias_hn, dtype=x.dtype), (B, H)).copy()
        step = functools.partial(body, w_hh_t, bias_hn, recurrent, tmp)
    else:
        rhs = scratch(workspace, "rh", (T, B, H), x.dtype, xp)
        body = choose(xp, _forward_before, "gru_forward_before")
        step = functools.partial(body, w_hh_t[:2], w_hh_t[2], recurrent, tmp)
    mask = length_mask(lengths, T, x.dtype, xp)
    shares = new_shares(zoneout, mask, T, x.dtype, xp)                         # trick 11
    padded = padding(mask, shares is None and must_carry(reverse, True))  # trick 7
    k, rest = (None, None) if shares is None else shares[0] or (None, None)
    mixed = None if k is None else scratch(workspace, "zone", (B, H), x.dtype, xp)
    h_news, h_prevs = states_in_time_order(hs, reverse)
    dropped = None if h_mask is None else scratch(workspace, "dropped", (B, H), x.dtype, xp)
    for kept, h_prev, a_t, h, padded_t, k_t, rest_t in step_views(reverse, ms if reset_after else rhs, h_prevs,
                                                                   gates, h_news, padded, k, rest):
        if dropped is None:
            step(kept, h_prev, a_t, h)
        else:                                    # the products read h_{t−1} ⊙ mask (trick 10)
            step(kept, h_prev, a_t, h, h_in=xp.multiply(h_prev, h_mask, out=dropped))
        if padded_t is not None:                 # past a sequence's end its state carries over
            carry_over(h, h_prev, padded_t)
        if k_t is not None:                      # zoneout: h_t = k_t h̃_t + (1 − k_t) h_{t−1} (trick 11)
            zone(h, h, h_prev, k_t, rest_t, mixed)
    y = outputs(hs, mask, reverse)
    cache = FastCache(x, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None, gates, ms,
                      rhs, hs, mask, reverse, reset_after, workspace, h_mask, shares)
    return y, final_state(hs, reverse, lengths), cache


def gate_activations(cache):
    """The gates :func:`forward` computed, by name, each (T, B, H) in time order: r, z, n; 0 at
    padded steps."""
    r, z, n = cache.gates.transpose(1, 0, 2, 3)
    out = {"r": r, "z": z, "n": n}
    return out if cache.mask is None else {k: v * cache.mask for k, v in out.items()}


def _factors_after(gates, ms, h_prevs, mask, f, share=None):
    """Reset after: for a block of steps, what the backward multiplies by dh (trick 6).  gates
    (K, 3, B, H); ms, h_prevs (K, B, H); writes f (K, 5, B, H), per step
    [F_n, F_r, F_z, F_m, z]:

        F_n = (1 − z)(1 − n²)             da_n = dh ⊙ F_n
        F_r = F_n m σ'(r)                 da_r = da_n ⊙ m σ'(r) = dh ⊙ F_r
        F_z = (h_prev − n) σ'(z)          da_z = dh ⊙ F_z
        F_m = F_n r                       dm = da_n ⊙ r = dh ⊙ F_m
        z                                 dh_prev = dh ⊙ z + [da_r | da_z | dm] W_hh

    where σ' = s (1 − s).  All five multiply dh alone, so the loop does it in one operation; the
    first four are the step's row of ``d`` (its columns [n | r | z | m]).  At padded steps (mask
    0) the first four are zero and the last is 1, so dh passes through (trick 7).  ``share``
    (zoneout's k_t, trick 11; the mask is None then): all five times k_t, since the step
    receives dh̃_t = k_t g_t.
    """
    xp = array_module(gates)
    r, z, n = gates.transpose(1, 0, 2, 3)
    f_n, f_r, f_z, f_m, update = f.transpose(1, 0, 2, 3)
    xp.subtract(1, gates[:, :2], out=f[:, 1:3])  # 1 − r, 1 − z
    xp.multiply(n, n, out=f_n)
    xp.subtract(1, f_n, out=f_n)
    f_n *= f_z                                   # (1 − z)(1 − n²)
    f[:, 1:3] *= gates[:, :2]                    # σ'(r) = r (1 − r), σ'(z) = z (1 − z)
    xp.subtract(h_prevs, n, out=f_m)             # (f_m as scratch)
    f_z *= f_m                                   # (h_prev − n) σ'(z)
    f_r *= ms
    f_r *= f_n                                   # (1 − z)(1 − n²) m σ'(r)
    xp.multiply(f_n, r, out=f_m)                 # (1 − z)(1 − n²) r
    xp.copyto(update, z)
    if mask is not None:
        f[:, :4] *= mask[:, None]
        xp.copyto(update, 1, where=(mask == 0))
    if share is not None:
        f *= share[:, None]


def _factors_before(gates, h_prevs, mask, f, update, h_ins, share=None):
    """Reset before: for a block of steps, what the backward multiplies by dh, or by d(r ⊙ h)
    for r (trick 6).  gates, f: (K, 3, B, H); the rest (K, B, H).  Writes f = [F_r, F_z, F_n]:

        F_r = h_in σ'(r)                  da_r = d(r⊙h) ⊙ F_r   (h_in = h_prev, or h_prev ⊙ mask)
        F_z = (h_prev − n) σ'(z)          da_z = dh ⊙ F_z
        F_n = (1 − z)(1 − n²)             da_n = dh ⊙ F_n

    where σ' = s (1 − s).  At padded steps (mask 0) they are zero and ``update`` is 1, so dh
    passes through (dh_prev ← dh ⊙ z) (trick 7).  ``share`` (zoneout's k_t, trick 11; the mask
    is None then): F_z, F_n and ``update`` = z k_t, the factors of dh, times k_t, since the step
    receives dh̃_t = k_t g_t (F_r multiplies d(r ⊙ h), which da_n already scaled).
    """
    xp = array_module(gates)
    r, z, n = gates.transpose(1, 0, 2, 3)
    f_r, f_z, f_n = f.transpose(1, 0, 2, 3)
    xp.subtract(1, gates[:, :2], out=f[:, :2])   # 1 − r, 1 − z
    xp.multiply(n, n, out=f_n)
    xp.subtract(1, f_n, out=f_n)
    f_n *= f_z                                   # (1 − z)(1 − n²)
    f[:, :2] *= gates[:, :2]                     # σ'(r) = r (1 − r), σ'(z) = z (1 − z)
    f_r *= h_ins                                 # h_in σ'(r): h_prev, or h_prev ⊙ mask (trick 10)
    f_z *= xp.subtract(h_prevs, n)               # (h_prev − n) σ'(z)
    if mask is not None:
        f *= mask[:, None]
        xp.copyto(update, z)
        xp.copyto(update, 1, where=(mask == 0))
    if share is not None:
        f[:, 1:] *= share[:, None]
        xp.multiply(z, share, out=update)


def _backward_after(weight_hh, tmp, rows, dah_t, dy_t, factors, dh, dh_prev, h_mask=None):
    """One step backward, reset after: dh (B, H) gains dy_t; factors (5, B, H), the step's block
    of :func:`_factors_after`, become [da_n, da_r, da_z, dm, dh ⊙ z]; the first four go into
    ``rows`` (4, B, H), a gate-major view of the step's row of d, whose columns [r | z | m] are
    dah_t; writes dh_prev.  ``h_mask``: recurrent dropout's mask (trick 10)."""
    xp = array_module(dh)
    if dy_t is not None:
        dh += dy_t                               # h_t went to the output and to the next step
    factors *= dh                                # [da_n, da_r, da_z, dm, dh ⊙ z]
    xp.copyto(rows, factors[:4])                 # d_t = [da_n | da_r | da_z | dm]
    xp.matmul(dah_t, weight_hh, out=tmp)
    if h_mask is not None:
        tmp *= h_mask                            # through the products only (trick 10)
    xp.add(factors[4], tmp, out=dh_prev)         # dh_prev = dh ⊙ z + [da_r | da_z | dm] W_hh


def _nrz_rows(rows):
    """Public (3H, ...) rows [r, z, n] in the order [n, r, z] (a copy)."""
    H = rows.shape[0] // 3
    return array_module(rows).concatenate([rows[2 * H:], rows[:2 * H]])


def _rzn_rows(rows):
    """(3H, ...) rows [n, r, z] back in the public order [r, z, n] (a copy)."""
    H = rows.shape[0] // 3
    return array_module(rows).concatenate([rows[H:], rows[:H]])


def _backward_before(w_hn, w_hh_rz, tmp, d_rh, rows, dax_rz_t, dy_t, r, z, factors, dh, dh_prev,
                     h_mask=None):
    """One step backward, reset before: dh (B, H) gains dy_t; writes the step's row of dax
    (rows: a gate-major view (3, B, H) of it; dax_rz_t: its [da_r | da_z] columns) and dh_prev.
    factors (3, B, H) = [F_r, F_z, F_n] become [da_r, da_z, da_n].  ``h_mask``: recurrent
    dropout's mask (trick 10)."""
    xp = array_module(dh)
    if dy_t is not None:
        dh += dy_t                               # h_t went to the output and to the next step
    factors[1:] *= dh                            # da_z = dh ⊙ (h_prev − n) σ'(z);  da_n = dh ⊙ (1 − z)(1 − n²)
    xp.matmul(factors[2], w_hn, out=d_rh)        # d(r ⊙ h) = da_n W_hn
    factors[0] *= d_rh                           # da_r = d(r ⊙ h) ⊙ h_prev σ'(r)
    xp.multiply(d_rh, r, out=dh_prev)            # dh_prev ← d(r ⊙ h) ⊙ r
    xp.copyto(rows, factors)                     # dax_t = [da_r | da_z | da_n]
    xp.matmul(dax_rz_t, w_hh_rz, out=tmp)
    dh_prev += tmp                               # dh_prev += [da_r | da_z] W_h{r,z}
    if h_mask is not None:
        dh_prev *= h_mask                        # what came through the products (trick 10)
    xp.multiply(dh, z, out=tmp)
    dh_prev += tmp                               # dh_prev += dh ⊙ z


def backward(dy, dh_n, cache, *, check=True, dh_steps=None):
    """Backward of :func:`forward` through time.

    dy (T, B, H), dh_n (B, H): gradients of the outputs and of the final state (None means
    zero; ``check`` as for :func:`forward`).  ``dh_steps`` (T, B, H), if given, receives ∂L/∂h_t
    for every step: the gradient of the loss with respect to the state after step t, from its
    output and from the later steps.  Returns (dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    (x, weight_ih, weight_hh, has_bias_ih, has_bias_hh, gates, ms, rhs, hs, mask, reverse,
     reset_after, workspace, h_mask, shares) = check_cache(cache, FastCache, "numpyrnn.cells.gru.backward")
    # with recurrent dropout the NumPy bodies, which take the mask (trick 10)
    choose = fused.choose if h_mask is None else (lambda xp, body, name: functools.partial(body, h_mask=h_mask))
    xp = array_module(x)
    T, _, B, H = gates.shape
    check_grad_arg("dy", dy, (T, B, H), x.dtype, check)
    check_grad_arg("dh_n", dh_n, (B, H), x.dtype, check)
    dy = masked_output_grad(dy, mask, workspace)                              # trick 7
    # the mask for the factors, where the padding must be carried through (common.must_carry)
    masks = mask if mask is not None and shares is None and must_carry(reverse, True, dh_n) else None
    k, rest = (None, None) if shares is None else shares[0] or (None, None)   # zoneout's k_t, 1 − k_t (trick 11)
    _, h_prevs = states_in_time_order(hs, reverse)
    h_read = h_prevs if h_mask is None else h_prevs * h_mask     # what the products read (trick 10)
    slots = 5 if reset_after else 3              # (B, H) factors per step
    chunks = list(backward_chunks(T, reverse, slots * hs[0].nbytes))     # a block of factors ≈ CHUNK_BYTES
    K = max(block.stop - block.start for block in chunks)
    factors = scratch(workspace, "factors", (K, slots, B, H), x.dtype, xp)
    tmp = xp.empty((B, H), x.dtype)
    if reset_after:
        # The gradients of each step's input term [da_r | da_z | da_n] and recurrent term
        # [da_r | da_z | dm] in one array, row layout (T, B, 4H) for the products (trick 2),
        # columns [n | r | z | m]: dax = [n | r | z] (the input weights' rows in the order
        # [n, r, z]) and dah = [r | z | m] (the recurrent weights' own order) share r and z.
        # The same memory gate-major, (T, 4, B, H), for the per-step writes.
        d = scratch(workspace, "d", (T, B, 4 * H), x.dtype, xp)
        dax, dah = d[..., :3 * H], d[..., H:]
        step = functools.partial(choose(xp, _backward_after, "gru_backward_after"),
                                 weight_hh, tmp)                                 # trick 9
        per_step = (d.reshape(T, B, 4, H).transpose(0, 2, 1, 3), dah, dy)

        def block_factors(block, n):
            _factors_after(gates[block], ms[block], h_prevs[block],
                           None if masks is None else masks[block], factors[:n], *in_block(block, k))
            return (factors[:n],)
    else:
        # The gradients of each step's input term [da_r | da_z | da_n], row layout (T, B, 3H)
        # for the products (trick 2), and the same memory gate-major, (T, 3, B, H), for the
        # per-step writes.
        dax = scratch(workspace, "dax", (T, B, 3 * H), x.dtype, xp)
        step = functools.partial(choose(xp, _backward_before, "gru_backward_before"),
                                 weight_hh[2 * H:], weight_hh[:2 * H], tmp, xp.empty((B, H), x.dtype))
        per_step = (dax.reshape(T, B, 3, H).transpose(0, 2, 1, 3), dax[..., :2 * H], dy, gates[:, 0])
        own_update = masks is not None or k is not None       # z, 1 where padded; or z k_t
        update = scratch(workspace, "update", (K, B, H), x.dtype, xp) if own_update else None

        def block_factors(block, n):
            _factors_before(gates[block], h_prevs[block], None if masks is None else masks[block],
                            factors[:n], update[:n] if own_update else None, h_read[block], *in_block(block, k))
            return (update[:n] if own_update else gates[block, 1], factors[:n])
    dh = zeros_if_none(dh_n, (B, H), x.dtype, xp).copy()
    dh_prev, carried = xp.empty_like(dh), xp.empty_like(dh)
    for block in chunks:
        in_this_block = block_factors(block, block.stop - block.start)
        for *views, dh_t, rest_t in step_views(not reverse, *in_block(block, *per_step), *in_this_block,
                                               *in_block(block, dh_steps, rest)):
            step(*views, dh, dh_prev)
            if dh_t is not None:
                xp.copyto(dh_t, dh)              # ∂L/∂h_t = g_t = dh_t + m_t dy_t
            if rest_t is not None:               # zoneout: dh_{t−1} += (1 − k_t) g_t (trick 11)
                dh_prev += xp.multiply(rest_t, dh, out=carried)
            dh, dh_prev = dh_prev, dh            # (a padded step passed dh through: z = 1, da = 0)
    if reset_after:
        # d's first 3H columns are the input term's, rows [n, r, z]: back to [r, z, n]
        dx = input_gradient(dax, _nrz_rows(weight_ih))         # dx_t = dax_t W_ih, all steps at once
        dweight_ih = _rzn_rows(weight_gradients(dax, x))       # dW_ih = Σ_t dax_t^T x_t
        dbias_ih = _rzn_rows(bias_gradient(dax)) if has_bias_ih else None
        dweight_hh = weight_gradients(dah, h_read)             # dW_hh = Σ_t dah_t^T h_{t−1}
        dbias_hh = bias_gradient(dah) if has_bias_hh else None # db_hh = Σ dah
    else:
        dx = input_gradient(dax, weight_ih)
        dweight_ih = weight_gradients(dax, x)
        dbias_ih = bias_gradient(dax) if has_bias_ih else None
        dweight_hh = xp.concatenate([
            weight_gradients(dax[..., :2 * H], h_read),        # dW_h{r,z} = Σ_t [da_r|da_z]^T h_{t−1}
            weight_gradients(dax[..., 2 * H:], rhs),           # dW_hn = Σ_t da_n^T (r_t ⊙ h_{t−1})
        ])
        dbias_hh = bias_gradient(dax) if has_bias_hh else None # db_hh = Σ dax
    return dx, dh, dweight_ih, dweight_hh, dbias_ih, dbias_hh
