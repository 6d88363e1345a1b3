r"""Attention over an encoder's outputs: one decoder step, forward and backward (derivations §18).

A decoder step asks a question, the *query* q (B, Hq) (its state), of the encoder's outputs, the
*keys* k_s (S, B, Hk) (time-major, as every layer here gives them), of which the first
``lengths[b]`` are real for sequence b:

    score     e_s = q · k_s                          "dot"       (Luong; needs Hq = Hk)
              e_s = q · (W_a k_s) = (q W_a) · k_s     "general"   (Luong; W_a (Hq, Hk))
              e_s = v · tanh(W_q q + W_k k_s)         "additive"  (Bahdanau; W_q (A, Hq), W_k (A, Hk), v (A,))
    weights   α_s = exp(e_s) / Σ_{r real} exp(e_r)   for the real positions; α_s = 0 on padding
    context   c = Σ_s α_s k_s                        (B, Hk)

and the backward, given ∂L/∂c (and ∂L/∂α when the loss reads the weights too):

    ∂L/∂α_s = ∂L/∂c · k_s  (+ the given ∂L/∂α_s)
    ∂L/∂e_s = α_s (∂L/∂α_s − Σ_r α_r ∂L/∂α_r)       (the softmax; 0 on padding, where α_s = 0)
    ∂L/∂k_s = α_s ∂L/∂c  +  the score's part:
      dot, general   u = q W_a (u = q for dot):  ∂L/∂u = Σ_s ∂L/∂e_s k_s,   ∂L/∂k_s += ∂L/∂e_s u,
                     ∂L/∂q = ∂L/∂u W_a^T,  ∂L/∂W_a = Σ_b q_b^T ∂L/∂u_b
      additive       t_s = tanh(z_s), z_s = W_q q + W_k k_s:  ∂L/∂z_s = ∂L/∂e_s v ⊙ (1 − t_s²),
                     ∂L/∂v = Σ_{s,b} ∂L/∂e_s t_s,  ∂L/∂q = (Σ_s ∂L/∂z_s) W_q,
                     ∂L/∂W_q = Σ_b (Σ_s ∂L/∂z_s)_b^T q_b,  ∂L/∂k_s += ∂L/∂z_s W_k,
                     ∂L/∂W_k = Σ_{s,b} ∂L/∂z_{s,b}^T k_{s,b}

What the query is, is the decoder's choice, not this step's: Luong's decoder asks with its new
state h_t, Bahdanau's with its previous one s_{t−1}.  The functions follow the cells'
convention: :func:`step_forward` returns its outputs and a cache, :func:`step_backward` takes
the outputs' gradients and the cache, so ``gradcheck.check_fn`` checks them as it checks a cell.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import array_module
from ..validation import as_float_array, as_lengths, check_finite, check_int
from . import attention_fast
from .module import Module

FORMS = ("dot", "general", "additive")
#: each form's parameters, in the order the functions take and return them
PARAMETERS = {"dot": (), "general": ("weight",), "additive": ("weight_query", "weight_key", "v")}


def parameter_shapes(form, query_size, key_size, attention_size=None) -> dict:
    """The shapes of ``form``'s parameters: general W_a (Hq, Hk); additive W_q (A, Hq), W_k (A, Hk),
    v (A,) with A = ``attention_size`` (default: the key size); dot none (Hq must equal Hk)."""
    check_form(form)
    if form == "dot":
        check_dot_sizes(query_size, key_size)
        return {}
    if form == "general":
        return {"weight": (query_size, key_size)}
    A = key_size if attention_size is None else attention_size
    return {"weight_query": (A, query_size), "weight_key": (A, key_size), "v": (A,)}


def check_form(form):
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")


def check_dot_sizes(query_size, key_size):
    if query_size != key_size:
        raise ValueError(f"dot attention scores q · k_s, so the query's size must equal the keys': got {query_size} "
                         f"and {key_size}; form='general' (q · W_a k_s) or 'additive' take different sizes")


class AttentionCache(NamedTuple):
    """What :func:`step_forward` keeps for :func:`step_backward`."""
    form: str
    query: object             # (B, Hq)
    keys: object              # (S, B, Hk)
    weights: object           # (S, B) α, 0 on padding
    params: tuple             # the form's parameters, in PARAMETERS' order
    u: object                 # dot, general: (B, Hk) u = q W_a (q for dot); additive: None
    t: object                 # additive: (S, B, A) t_s = tanh(W_q q + W_k k_s); else None

    MADE_BY = "numpyrnn.layers.attention.step_forward"


def _checked(query, keys, lengths, form, params, check):
    """The arguments checked before any work: shapes, sizes, the form's parameters, lengths."""
    check_form(form)
    for name, a in (("query", query), ("keys", keys)):
        if getattr(a, "dtype", None) is None or a.dtype.kind != "f":
            raise TypeError(f"{name} must be a floating-point array, got {type(a).__name__}")
    if query.ndim != 2 or keys.ndim != 3 or keys.shape[1] != query.shape[0]:
        raise ValueError(f"query must be (B, Hq) and keys (S, B, Hk) with the same B, got query {query.shape} and "
                         f"keys {keys.shape}")
    S, B, Hk = keys.shape
    if S == 0:
        raise ValueError("keys hold no source position (S = 0): there is nothing to attend to")
    names = PARAMETERS[form]
    if len(params) != len(names):
        raise TypeError(f"{form} attention takes {len(names)} parameter{'s' * (len(names) != 1)} "
                        f"({', '.join(names) or 'none'}), got {len(params)}")
    attention_size = getattr(params[0], "shape", (None,))[0] if form == "additive" else None
    expected = parameter_shapes(form, query.shape[1], Hk, attention_size)
    for name, p in zip(names, params):
        if p is None or getattr(p, "shape", None) != expected[name]:
            raise ValueError(f"{form} attention's {name} must have shape {expected[name]}, got "
                             f"{getattr(p, 'shape', None)}")
        if p.dtype != query.dtype:
            raise TypeError(f"{name} has dtype {p.dtype}, the query {query.dtype}: give them one dtype")
    if keys.dtype != query.dtype:
        raise TypeError(f"keys have dtype {keys.dtype}, the query {query.dtype}: give them one dtype")
    if check:
        for name, a in (("query", query), ("keys", keys), *zip(PARAMETERS[form], params)):
            check_finite(name, a)
    return None if lengths is None else as_lengths(lengths, S, B)


def step_forward(query, keys, *params, form="general", lengths=None, check=True):
    """Attention of one decoder step: ``query`` (B, Hq), ``keys`` (S, B, Hk), then ``form``'s
    parameters in :data:`PARAMETERS` order (general: W_a; additive: W_q, W_k, v; dot: none);
    ``lengths`` (B,): the real source positions of each sequence (None: all S).  Returns
    (context (B, Hk), weights (S, B), cache).  ``check=False`` skips the NaN/Inf check."""
    lengths = _checked(query, keys, lengths, form, params, check)
    xp = array_module(query)
    S, B, _ = keys.shape
    u = t = None
    if form == "additive":
        weight_query, weight_key, v = params
        t = keys @ weight_key.T                          # W_k k_s, every s at once: (S, B, A)
        t += query @ weight_query.T                      # z_s = W_q q + W_k k_s
        xp.tanh(t, out=t)                                # t_s = tanh(z_s)
        scores = t @ v                                   # e_s = v · t_s: (S, B)
    else:
        u = query if form == "dot" else query @ params[0]   # u = q W_a (dot: u = q)
        scores = xp.einsum("sbh,bh->sb", keys, u)        # e_s = u · k_s
    if lengths is not None:                              # padding takes no weight: e_s = −∞ there
        real = xp.arange(S)[:, None] < xp.asarray(lengths)[None, :]
        scores = xp.where(real, scores, -xp.inf)
    scores -= scores.max(axis=0, keepdims=True)          # softmax over s, shifted for exp's range
    weights = xp.exp(scores)
    weights /= weights.sum(axis=0, keepdims=True)        # α_s = exp(e_s) / Σ_r exp(e_r)
    context = xp.einsum("sb,sbh->bh", weights, keys)     # c = Σ_s α_s k_s
    return context, weights, AttentionCache(form, query, keys, weights, tuple(params), u, t)


def step_backward(dcontext, dweights, cache):
    """Backward of :func:`step_forward`: ``dcontext`` ∂L/∂c (B, Hk), ``dweights`` ∂L/∂α (S, B) or
    None (a loss that does not read the weights).  Returns (∂L/∂query, ∂L/∂keys, then the
    gradient of each of the form's parameters in :data:`PARAMETERS` order)."""
    if not isinstance(cache, AttentionCache):
        raise TypeError(f"cache must be what step_forward returned, got {type(cache).__name__}")
    form, query, keys, alpha, params, u, t = cache
    xp = array_module(query)
    B, Hk = query.shape[0], keys.shape[2]
    if dcontext is None:
        dcontext = xp.zeros((B, Hk), dtype=query.dtype)
    if getattr(dcontext, "shape", None) != (B, Hk):
        raise ValueError(f"dcontext must have shape {(B, Hk)}, got {getattr(dcontext, 'shape', None)}")
    if dweights is not None and getattr(dweights, "shape", None) != alpha.shape:
        raise ValueError(f"dweights must have shape {alpha.shape}, got {getattr(dweights, 'shape', None)}")
    dalpha = xp.einsum("bh,sbh->sb", dcontext, keys)                 # ∂L/∂α_s = ∂L/∂c · k_s
    if dweights is not None:
        dalpha += dweights                                           #   + the loss's own ∂L/∂α_s
    dscores = alpha * (dalpha - (alpha * dalpha).sum(axis=0, keepdims=True))   # ∂L/∂e_s = α_s (∂L/∂α_s − Σ_r α_r ∂L/∂α_r)
    dkeys = alpha[:, :, None] * dcontext[None]                       # ∂L/∂k_s = α_s ∂L/∂c  (+ the score's part)
    if form == "additive":
        weight_query, weight_key, v = params
        dz = dscores[:, :, None] * v * (1 - t * t)                   # ∂L/∂z_s = ∂L/∂e_s v ⊙ (1 − t_s²)
        dv = xp.einsum("sb,sba->a", dscores, t)                      # ∂L/∂v = Σ_{s,b} ∂L/∂e_s t_s
        dz_query = dz.sum(axis=0)                                    # z_s's query term is the same for every s
        dquery = dz_query @ weight_query                             # ∂L/∂q = (Σ_s ∂L/∂z_s) W_q
        dweight_query = dz_query.T @ query                           # ∂L/∂W_q = Σ_b (Σ_s ∂L/∂z_s)_b^T q_b
        dkeys += dz @ weight_key                                     # ∂L/∂k_s += ∂L/∂z_s W_k
        dweight_key = dz.reshape(-1, dz.shape[2]).T @ keys.reshape(-1, Hk)   # ∂L/∂W_k = Σ_{s,b} ∂L/∂z^T k
        return dquery, dkeys, dweight_query, dweight_key, dv
    du = xp.einsum("sb,sbh->bh", dscores, keys)                      # ∂L/∂u = Σ_s ∂L/∂e_s k_s
    dkeys += dscores[:, :, None] * u[None]                           # ∂L/∂k_s += ∂L/∂e_s u
    if form == "dot":
        return du, dkeys                                             # u = q: ∂L/∂q = ∂L/∂u
    return du @ params[0].T, dkeys, query.T @ du                     # ∂L/∂q = ∂L/∂u W_a^T, ∂L/∂W_a = q^T ∂L/∂u


def init_parameters(form, query_size, key_size, attention_size=None, *, dtype=np.float64, seed=None) -> dict:
    """The form's parameters drawn as torch.nn.Linear draws a weight of the same shape: uniform in
    ±1/√(fan in) (W_a: fan in Hk, as a Linear from the keys; W_q: Hq; W_k: Hk; v: A)."""
    rng = np.random.default_rng(seed)
    shapes = parameter_shapes(form, query_size, key_size, attention_size)
    return {name: rng.uniform(-1, 1, shape).astype(dtype) / np.sqrt(shape[-1]) for name, shape in shapes.items()}


class Attention(Module):
    """Attention as a layer: the form's parameters, their gradients, and every decoder step of a
    target sequence at once, the step above (:func:`step_forward`) run for each.

    ``forward(queries, keys, lengths=None)``: queries (T, B, Hq) (one per decoder step; or
    (B, Hq) for one step), keys (S, B, Hk), lengths (B,) the real source positions.  Returns
    (contexts (T, B, Hk), weights (T, S, B)), without T for one step.  ``backward(dcontexts,
    dweights=None)`` returns (∂L/∂queries, ∂L/∂keys), ∂L/∂keys summed over the decoder's steps
    (every step reads every key: fact 3), and adds the parameters' gradients into ``grads``.

    Parameters as ``torch.nn.Linear`` draws weights of their shapes: general ``weight`` W_a
    (Hq, Hk); additive ``weight_query`` W_q (A, Hq), ``weight_key`` W_k (A, Hk), ``v`` (A,),
    A = ``attention_size`` (default Hk); dot none (Hq must equal Hk)."""

    def __init__(self, query_size, key_size, form="general", attention_size=None, *, impl="fast", dtype=np.float32,
                 seed=None, device="auto"):
        super().__init__(dtype=dtype, device=device)
        if impl not in ("fast", "reference"):
            raise ValueError(f"impl must be 'fast' (every step at once: attention_fast.py) or 'reference' (the "
                             f"step above, once per decoder step), got {impl!r}")
        self.impl = impl
        self.query_size = check_int("query_size", query_size, 1)
        self.key_size = check_int("key_size", key_size, 1)
        check_form(form)
        self.form = form
        self.attention_size = None if form != "additive" else (
            self.key_size if attention_size is None else check_int("attention_size", attention_size, 1))
        for name, value in init_parameters(form, self.query_size, self.key_size, self.attention_size,
                                           seed=seed).items():
            self._add_param(name, value)

    def forward(self, queries, keys, lengths=None, *, check=True):
        queries = as_float_array("queries", queries, self.dtype, self.device)
        keys = as_float_array("keys", keys, self.dtype, self.device)
        one_step = queries.ndim == 2
        steps = queries[None] if one_step else queries
        if steps.ndim != 3 or steps.shape[2] != self.query_size or keys.ndim != 3 or keys.shape[2] != self.key_size:
            raise ValueError(f"queries must be (T, B, {self.query_size}) or (B, {self.query_size}) and keys "
                             f"(S, B, {self.key_size}), got {queries.shape} and {keys.shape}")
        params = [self._params[name] for name in PARAMETERS[self.form]]
        if check:
            check_finite("queries", steps)
            check_finite("keys", keys)
        if self.impl == "fast":                    # the same steps at once (attention_fast.py)
            lengths = _checked(steps[0], keys, lengths, self.form, params, check=False)   # checked, as (B,) ints
            contexts, weights, cache = attention_fast.forward(steps, keys, params, self.form, lengths)
            self._cache = (cache, one_step, True)
            return (contexts[0], weights[0]) if one_step else (contexts, weights)
        contexts, weights, caches = [], [], []
        for query in steps:                        # the step above, once per decoder step
            context, alpha, cache = step_forward(query, keys, *params, form=self.form, lengths=lengths, check=False)
            contexts.append(context)
            weights.append(alpha)
            caches.append(cache)
        self._cache = (caches, one_step, False)
        xp = self.xp
        contexts, weights = xp.stack(contexts), xp.stack(weights)
        return (contexts[0], weights[0]) if one_step else (contexts, weights)

    def backward(self, dcontexts, dweights=None):
        if self._cache is None:
            raise RuntimeError("Attention.backward() needs a forward() first")
        caches, one_step, fast = self._cache
        dcontexts = as_float_array("dcontexts", dcontexts, self.dtype, self.device)
        dcontexts = dcontexts[None] if one_step else dcontexts
        if fast:
            if dweights is not None:
                raise ValueError("the fast path takes dcontexts only; a loss that reads the weights needs "
                                 "impl='reference'")
            B, T = caches[1].shape[:2]                     # the cache's queries, (B, T, Hq)
            if dcontexts.shape != (T, B, self.key_size):
                raise ValueError(f"dcontexts must have shape {(T, B, self.key_size)}, got {dcontexts.shape}")
            dqueries, dkeys, dparams = attention_fast.backward(dcontexts, caches)
            for name, g in zip(PARAMETERS[self.form], dparams):
                self._grads[name] += g
            return (dqueries[0] if one_step else dqueries), dkeys
        if dweights is not None:
            dweights = as_float_array("dweights", dweights, self.dtype, self.device)
            dweights = dweights[None] if one_step else dweights
        T = len(caches)
        if dcontexts.shape[0] != T or (dweights is not None and dweights.shape[0] != T):
            raise ValueError(f"dcontexts (and dweights) must have the forward's {T} step{'s' * (T != 1)} first, "
                             f"got {dcontexts.shape}")
        dqueries, dkeys = [], None
        for t in range(T):
            dquery, dkeys_t, *dparams = step_backward(dcontexts[t], None if dweights is None else dweights[t],
                                                      caches[t])
            dqueries.append(dquery)
            dkeys = dkeys_t if dkeys is None else dkeys + dkeys_t          # every step reads every key
            for name, g in zip(PARAMETERS[self.form], dparams):
                self._grads[name] += g
        dqueries = self.xp.stack(dqueries)
        return (dqueries[0] if one_step else dqueries), dkeys

    def config(self):
        return {"type": "Attention", "query_size": self.query_size, "key_size": self.key_size, "form": self.form,
                "attention_size": self.attention_size, "impl": self.impl, "dtype": self.dtype.name}

    def __repr__(self):
        size = "" if self.attention_size is None else f", attention_size={self.attention_size}"
        return (f"Attention({self.query_size}, {self.key_size}, form={self.form!r}{size}, "
                f"dtype={self.dtype.name})")
