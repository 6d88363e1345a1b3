r"""The RNN's fast sequence path: :func:`numpyrnn.cells.rnn.forward_reference` and
:func:`~numpyrnn.cells.rnn.backward_reference`, arranged for speed.

The same equations (docs/derivations.md §4, §7), rearranged so:

1. **The input term of every step is one product before the loop** (§3): x_t W_ih^T + b for
   t = 0..T−1 is one (T·B, I) × (I, H) GEMM, both biases folded into b = b_ih + b_hh; the loop
   adds h_{t−1} W_hh^T to it, step by step.
2. **The weight and input gradients are one product each after the loop** (§3):
   dW_ih = Σ_t da_t^T x_t, dW_hh = Σ_t da_t^T h_{t−1} and dx_t = da_t W_ih, with da kept for
   every step.
3. **The slopes are computed before the recursion needs them**: 1 − h_t² (or [h_t > 0]) does
   not depend on dh, so the backward fills da with it a block of steps at a time, and the loop
   only multiplies: da_t = dh_t ⊙ slope_t (§4).
4. **Masks outside the loop** (§7): m_t dy_t for every step is one product before the loop.
   With tanh in the forward direction no mask enters the loop (``common.must_carry``): the
   forward runs on through each sequence's padding (outputs there masked to 0, the final state
   read at its last real step), and the backward meets the padding with dh = 0.  Reversed, with
   ReLU (whose state could overflow on a long padding), or given ∂L/∂h_n: a padded step's slope
   is 0 (so da_t = 0), and the state and dh pass by a masked copy at the steps that pad some
   sequence.
5. **Buffers** come from the layer's workspace and are reused from call to call; the states live
   in one (T+1, B, H) buffer, whose slice in time order is the output
   (``common.states_in_time_order``).
6. **The per-step body** (the gate math between two recurrent products) is chosen once before
   the loop: :func:`_forward_body` / :func:`_backward_body` on NumPy, or the fused CuPy kernel of
   the same signature (``fused.rnn_forward`` / ``fused.rnn_backward``) on a GPU with fusion on.
7. **Recurrent dropout** (``h_mask``, derivations §16) costs one (B, H) product per step each
   way, outside the body: h_{t−1} ⊙ mask into a scratch buffer before the recurrent product,
   and dh_{t−1} ⊙ mask after it.  Nothing more is kept: dW_hh = Σ_t da_t^T (h_{t−1} ⊙ mask)
   multiplies the kept states by the mask once after the loop, a (T, B, H) temporary.
8. **Zoneout** (``zoneout``, derivations §17) mixes outside the body, so the fused kernel serves
   too: the body writes h̃_t into a (T, B, H) buffer of its own (the slope is read off h̃_t,
   not off the mixed h_t), then h_t = k_t h̃_t + (1 − k_t) h_{t−1}, k_t = m_t (1 − δ_t), which
   also carries each sequence's padding (no masked copy then).  Backward, the slopes of a block
   are multiplied by k_t with the block (da_t = k_t g_t ⊙ slope_t, trick 3), and dh_{t−1} gains
   (1 − k_t) g_t after the recurrent product: two (B, H) products a step each way.
"""

from __future__ import annotations

from typing import NamedTuple

from ...backend import array_module
from ..common import (
    backward_chunks, bias_gradient, carry_over, check_cache, check_cell_args, check_grad_arg,
    check_h_mask, check_nonlinearity, check_zoneout, final_state, fold_biases, in_block, input_gradient, input_terms,
    length_mask, masked_output_grad, must_carry, new_shares, outputs, padding, scratch, states_in_time_order,
    step_views, weight_gradients, zeros_if_none, zone,
)
from . import fused

GATES = 1


class FastCache(NamedTuple):
    """What :func:`forward` keeps for :func:`backward`."""
    x: object                 # (T, B, I) the input
    weight_ih: object
    weight_hh: object
    has_bias_ih: bool
    has_bias_hh: bool
    hs: object                # (T+1, B, H) the states, in the slots of common.states_in_time_order
    mask: object              # (T, B, 1) m_t, or None without lengths
    reverse: bool
    nonlinearity: str
    workspace: object
    h_mask: object            # (B, H) recurrent dropout's mask, or None
    h_tildes: object          # with zoneout: (T, B, H) h̃_t in time order; else None
    shares: list              # with zoneout: [(k, 1 − k)] for h (common.new_shares); else None

    MADE_BY = "numpyrnn.cells.rnn.forward (the fast path)"


def _forward_body(a_t, recurrent, h, nonlinearity):
    """h = φ(a_t + h_{t−1} W_hh^T), φ = tanh or relu; ``recurrent`` holds h_{t−1} W_hh^T."""
    xp = array_module(a_t)
    a_t += recurrent                             # a_t = x_t W_ih^T + b + h_{t−1} W_hh^T
    if nonlinearity == "tanh":
        xp.tanh(a_t, out=h)                      # h_t = tanh(a_t)
    else:
        xp.maximum(a_t, 0, out=h)                # h_t = relu(a_t)


def _backward_body(dy_t, dh, da_t):
    """dh_t ← dh_t + dy_t, then da_t = dh_t ⊙ slope_t (da_t holds the slope)."""
    if dy_t is not None:
        dh += dy_t                               # h_t went to the output and to the next step
    da_t *= dh                                   # da = dh ⊙ (1 − h²)  or  dh ⊙ [h > 0]


def forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, nonlinearity="tanh",
            lengths=None, reverse=False, workspace=None, h_mask=None, zoneout=None, check=True):
    """RNN over a sequence x (T, B, I) from the initial state h0 (B, H).

    ``lengths`` (B,) gives each sequence's true length: later steps leave the state unchanged
    and output zeros.  ``reverse`` runs from each sequence's last real step to its first.
    ``workspace`` (a :class:`~numpyrnn.cells.common.Workspace`) lends the buffers; the next
    forward through the same workspace overwrites what this one cached.  ``h_mask`` (B, H):
    recurrent dropout's mask on the h that W_hh reads (derivations §16), None for none.
    ``zoneout``: (δ of h,), the masks of every step (T, B, H) or the rate p (derivations §17),
    or None for none.  ``check=False`` skips the NaN/Inf check of the arrays, for a caller that
    computed or checked them itself (a layer).

    Returns (y, h_n, cache): y (T, B, H) the hidden state at each step (a read-only view into
    the cache when there are no lengths), h_n (B, H) the final state.
    """
    check_nonlinearity(nonlinearity)
    T, B, I, H = check_cell_args(x, {"h0": h0}, weight_ih, weight_hh, bias_ih, bias_hh, GATES,
                                 lengths=lengths, finite=check)
    check_h_mask(h_mask, (B, H), x.dtype, check)
    zoneout = check_zoneout(zoneout, ("h",), (T, B, H), x.dtype, check)
    xp = array_module(x)
    a = input_terms(x, weight_ih, fold_biases(bias_ih, bias_hh),                # trick 1: (T, B, H)
                    scratch(workspace, "a", (T, B, H), x.dtype, xp))
    w_hh_t = xp.ascontiguousarray(weight_hh.T)   # (H, H), as the product wants it
    hs = scratch(workspace, "h", (T + 1, B, H), x.dtype, xp)                 # trick 5
    hs[T if reverse else 0] = h0
    recurrent = scratch(workspace, "recurrent", (B, H), x.dtype, xp)
    mask = length_mask(lengths, T, x.dtype, xp)
    shares = new_shares(zoneout, mask, T, x.dtype, xp)                         # trick 8
    padded = padding(mask, shares is None and must_carry(reverse, nonlinearity == "tanh"))   # trick 4
    step = fused.choose(xp, _forward_body, "rnn_forward")                    # trick 6
    h_news, h_prevs = states_in_time_order(hs, reverse)
    dropped = None if h_mask is None else scratch(workspace, "dropped", (B, H), x.dtype, xp)
    h_tildes, (k, rest) = (None, (None, None)) if shares is None else (   # trick 8: h̃_t, k_t, 1 − k_t
        scratch(workspace, "h_tilde", (T, B, H), x.dtype, xp), shares[0] or (None, None))
    mixed = None if shares is None else scratch(workspace, "zone", (B, H), x.dtype, xp)
    for a_t, h_prev, h, padded_t, h_tilde, k_t, rest_t in step_views(reverse, a, h_prevs, h_news, padded,
                                                                     h_tildes, k, rest):
        xp.matmul(h_prev if dropped is None else xp.multiply(h_prev, h_mask, out=dropped),
                  w_hh_t, out=recurrent)         # h_{t−1} W_hh^T (h_{t−1} ⊙ mask: trick 7)
        if h_tilde is None:
            step(a_t, recurrent, h, nonlinearity)    # h_t = φ(a_t)
        else:
            step(a_t, recurrent, h_tilde, nonlinearity)   # h̃_t = φ(a_t), then zoneout (trick 8)
            zone(h, h_tilde, h_prev, k_t, rest_t, mixed)   # h_t = k_t h̃_t + (1 − k_t) h_{t−1}
        if padded_t is not None:                 # past a sequence's end its state carries over
            carry_over(h, h_prev, padded_t)
    y = outputs(hs, mask, reverse)
    cache = FastCache(x, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None, hs, mask,
                      reverse, nonlinearity, workspace, h_mask, h_tildes, shares)
    return y, final_state(hs, reverse, lengths), cache


def gate_activations(cache):
    """What :func:`forward` computed, (T, B, H) in time order: h̃_t = φ(a_t), the states (an RNN
    has no gates; with zoneout, the new values before it mixes them); 0 at padded steps."""
    h = states_in_time_order(cache.hs, cache.reverse)[0] if cache.h_tildes is None else cache.h_tildes
    return {"h": h if cache.mask is None else h * cache.mask}


def _slopes(h, nonlinearity, mask, da):
    """For a block of steps, the activation's slope read off its output: 1 − h² or [h > 0],
    times ``mask`` (m_t: 0 at padded steps; with zoneout k_t, trick 8), into da (the loop
    multiplies it by dh)."""
    xp = array_module(h)
    if nonlinearity == "tanh":
        xp.multiply(h, h, out=da)
        xp.subtract(1, da, out=da)
    else:
        xp.greater(h, 0, out=da)                 # (NumPy casts the booleans to 0 and 1)
    if mask is not None:
        da *= mask


def backward(dy, dh_n, cache, *, check=True, dh_steps=None):
    """Backward of :func:`forward` through time.

    dy (T, B, H), dh_n (B, H): gradients of the outputs and of the final state (None means
    zero; ``check`` as for :func:`forward`).  ``dh_steps`` (T, B, H), if given, receives ∂L/∂h_t
    for every step: the gradient of the loss with respect to the state after step t, from its
    output and from the later steps.  Returns (dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    (x, weight_ih, weight_hh, has_bias_ih, has_bias_hh, hs, mask, reverse, nonlinearity,
     workspace, h_mask, h_tildes, shares) = check_cache(cache, FastCache, "numpyrnn.cells.rnn.backward")
    xp = array_module(x)
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    check_grad_arg("dy", dy, (T, B, H), x.dtype, check)
    check_grad_arg("dh_n", dh_n, (B, H), x.dtype, check)
    dy = masked_output_grad(dy, mask, workspace)                              # trick 4
    carry = mask is not None and shares is None and must_carry(reverse, nonlinearity == "tanh", dh_n)
    padded = padding(mask, carry)
    h_all, h_prevs = states_in_time_order(hs, reverse)
    k, rest = (mask if carry else None, None) if shares is None else shares[0] or (None, None)   # trick 8
    da = scratch(workspace, "da", (T, B, H), x.dtype, xp)   # ∂L/∂a_t for every step
    dh = zeros_if_none(dh_n, (B, H), x.dtype, xp).copy()
    dh_prev, carried = xp.empty_like(dh), xp.empty_like(dh)
    step = fused.choose(xp, _backward_body, "rnn_backward")                  # trick 6
    for block in backward_chunks(T, reverse, hs[0].nbytes):
        _slopes((h_all if h_tildes is None else h_tildes)[block], nonlinearity,
                None if k is None else k[block], da[block])               # trick 3 (⊙ m_t or k_t)
        for dy_t, da_t, padded_t, dh_t, rest_t in step_views(not reverse, *in_block(block, dy, da, padded,
                                                                                    dh_steps, rest)):
            step(dy_t, dh, da_t)                 # da_t = (dh_t + dy_t) ⊙ slope_t  (dh now g_t)
            if dh_t is not None:
                xp.copyto(dh_t, dh)              # ∂L/∂h_t = g_t = dh_t + m_t dy_t
            xp.matmul(da_t, weight_hh, out=dh_prev)   # dh_{t−1} = da_t W_hh
            if h_mask is not None:
                dh_prev *= h_mask                # ⊙ mask: recurrent dropout (trick 7)
            if padded_t is not None:             # a padded step passes dh through unchanged
                carry_over(dh_prev, dh, padded_t)
            if rest_t is not None:               # zoneout: dh_{t−1} += (1 − k_t) g_t (trick 8)
                dh_prev += xp.multiply(rest_t, dh, out=carried)
            dh, dh_prev = dh_prev, dh
    dx = input_gradient(da, weight_ih)           # dx_t = da_t W_ih, all steps at once (trick 2)
    dweight_ih = weight_gradients(da, x)         # dW_ih = Σ_t da_t^T x_t
    dweight_hh = weight_gradients(da, h_prevs if h_mask is None else h_prevs * h_mask)   # dW_hh = Σ_t da_t^T h_{t−1}
    db = bias_gradient(da)                       # db = Σ_t Σ_batch da_t
    return (dx, dh, dweight_ih, dweight_hh,
            db if has_bias_ih else None, db.copy() if has_bias_hh else None)
