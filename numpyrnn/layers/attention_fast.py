r"""Attention's fast path: every decoder step of :class:`~numpyrnn.layers.Attention` at once.

The reference (:mod:`numpyrnn.layers.attention`) runs :func:`~numpyrnn.layers.attention.step_forward`
once per decoder step t, as a student reads it.  Here the same equations (§18) for all T steps
together, the tricks stated once:

* the batch goes first, so that each of the sums over s, t and h is one batched matrix product
  (``np.matmul`` over B): scores (B, T, S) = U (B, T, Hk) @ K^T (B, Hk, S); contexts = α @ K;
* "general" projects every query at once, U = Q W_a (one GEMM over T·B rows), and its gradient
  dW_a = Σ_{t,b} q^T du is one GEMM after the backward;
* "additive" forms z (B, T, S, A) = W_q q_t + W_k k_s by broadcasting the two projections, each
  one GEMM.

Held to the reference to 1e-12 in float64 (tests/test_attention.py), for each form, with and
without lengths.
"""

from __future__ import annotations

from ..backend import array_module


def forward(queries, keys, params, form, lengths=None):
    """queries (T, B, Hq), keys (S, B, Hk), the form's parameters (as the reference takes them),
    lengths (B,) or None.  Returns (contexts (T, B, Hk), weights (T, S, B), cache)."""
    xp = array_module(queries)
    S = keys.shape[0]
    q = queries.transpose(1, 0, 2)                        # (B, T, Hq): the batch first
    k = keys.transpose(1, 0, 2)                           # (B, S, Hk)
    u = z = None
    if form == "additive":
        weight_query, weight_key, v = params
        z = (q @ weight_query.T)[:, :, None, :] + (k @ weight_key.T)[:, None, :, :]   # (B, T, S, A): W_q q_t + W_k k_s
        xp.tanh(z, out=z)                                 # t_{ts} = tanh(z_{ts})
        scores = z @ v                                    # e_{ts} = v · t_{ts}: (B, T, S)
    else:
        u = q if form == "dot" else q @ params[0]         # u_t = q_t W_a (dot: q_t)
        scores = u @ k.transpose(0, 2, 1)                 # e_{ts} = u_t · k_s: (B, T, S)
    if lengths is not None:                               # padding takes no weight
        real = xp.arange(S)[None, :] < xp.asarray(lengths)[:, None]          # (B, S)
        scores = xp.where(real[:, None, :], scores, -xp.inf)
    scores -= scores.max(axis=2, keepdims=True)
    alpha = xp.exp(scores)
    alpha /= alpha.sum(axis=2, keepdims=True)             # α_{ts}: softmax over s
    contexts = alpha @ k                                  # c_t = Σ_s α_{ts} k_s: (B, T, Hk)
    cache = (form, q, k, alpha, tuple(params), u, z)
    return contexts.transpose(1, 0, 2), alpha.transpose(1, 2, 0), cache


def backward(dcontexts, cache):
    """dcontexts (T, B, Hk) → (dqueries (T, B, Hq), dkeys (S, B, Hk) summed over the steps, the
    parameters' gradients in the reference's order)."""
    form, q, k, alpha, params, u, z = cache
    dc = dcontexts.transpose(1, 0, 2)                     # (B, T, Hk)
    dalpha = dc @ k.transpose(0, 2, 1)                    # dα_{ts} = dc_t · k_s
    de = alpha * (dalpha - (alpha * dalpha).sum(axis=2, keepdims=True))   # the softmax's backward, per t
    dk = alpha.transpose(0, 2, 1) @ dc                    # Σ_t α_{ts} dc_t: (B, S, Hk)
    if form == "additive":
        weight_query, weight_key, v = params
        dz = de[..., None] * v * (1 - z * z)              # dz_{ts} = de_{ts} v ⊙ (1 − t²)
        dv = (de[..., None] * z).sum(axis=(0, 1, 2))
        dz_query, dz_key = dz.sum(axis=2), dz.sum(axis=1)  # (B, T, A), (B, S, A)
        dq = dz_query @ weight_query
        dk += dz_key @ weight_key
        dweight_query = dz_query.reshape(-1, dz.shape[3]).T @ q.reshape(-1, q.shape[2])
        dweight_key = dz_key.reshape(-1, dz.shape[3]).T @ k.reshape(-1, k.shape[2])
        grads = (dweight_query, dweight_key, dv)
    else:
        du = de @ k                                       # du_t = Σ_s de_{ts} k_s: (B, T, Hk)
        dk += de.transpose(0, 2, 1) @ u                   # Σ_t de_{ts} u_t
        if form == "dot":
            dq, grads = du, ()
        else:
            dq = du @ params[0].T                         # dq_t = du_t W_a^T
            grads = (q.reshape(-1, q.shape[2]).T @ du.reshape(-1, du.shape[2]),)   # dW_a = Σ_{t,b} q^T du
    return dq.transpose(1, 0, 2), dk.transpose(1, 0, 2), grads
