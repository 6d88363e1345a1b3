"""Issue 31, the first piece: attention's step, forward and backward derived by hand (§18).

Each form (Luong's dot and general, Bahdanau's additive) against torch's autograd of the same
equations to 1e-10 in float64, with padded source positions; against finite differences for
every tensor; padding takes no weight and no gradient; a loss that reads the weights too; bad
arguments refused naming them, before any work."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyrnn.gradcheck import check_fn
from numpyrnn.layers import attention

FORMS = attention.FORMS


def _case(form, S=5, B=3, Hq=4, Hk=4, A=6, lengths=(5, 2, 4), seed=0):
    rng = np.random.default_rng(seed)
    Hk = Hq if form == "dot" else Hk
    params = attention.init_parameters(form, Hq, Hk, A, seed=seed)
    query, keys = rng.standard_normal((B, Hq)), rng.standard_normal((S, B, Hk))
    return query, keys, [params[name] for name in attention.PARAMETERS[form]], \
        None if lengths is None else np.array(lengths)


def _torch_reference(torch, form, query, keys, params, lengths):
    """The forward written again in torch, for its autograd: the scores, the masked softmax, the context."""
    q = torch.tensor(query, requires_grad=True)
    k = torch.tensor(keys, requires_grad=True)
    p = [torch.tensor(w, requires_grad=True) for w in params]
    if form == "dot":
        scores = (k * q).sum(-1)
    elif form == "general":
        scores = torch.einsum("bi,ij,sbj->sb", q, p[0], k)
    else:
        scores = torch.tanh(q @ p[0].T + k @ p[1].T) @ p[2]
    if lengths is not None:
        padding = torch.arange(keys.shape[0])[:, None] >= torch.tensor(lengths)[None, :]
        scores = scores.masked_fill(padding, float("-inf"))
    alpha = torch.softmax(scores, dim=0)
    context = (alpha[:, :, None] * k).sum(0)
    return (q, k, *p), context, alpha


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("lengths", [None, (5, 2, 4), (1, 1, 5)])
@pytest.mark.parametrize("read_weights", [False, True])
def test_each_form_equals_torch_autograd(form, lengths, read_weights):
    torch = pytest.importorskip("torch", reason="torch is the independent reference for these tests")
    query, keys, params, lengths = _case(form, Hk=4 if form == "dot" else 7, lengths=lengths)
    context, alpha, cache = attention.step_forward(query, keys, *params, form=form, lengths=lengths)
    leaves, t_context, t_alpha = _torch_reference(torch, form, query, keys, params, lengths)
    np.testing.assert_allclose(context, t_context.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(alpha, t_alpha.detach().numpy(), rtol=0, atol=1e-12)
    rng = np.random.default_rng(1)
    dcontext = rng.standard_normal(context.shape)
    dalpha = rng.standard_normal(alpha.shape) if read_weights else None
    loss = (t_context * torch.tensor(dcontext)).sum()
    if read_weights:
        loss = loss + (t_alpha * torch.tensor(dalpha)).sum()
    loss.backward()
    ours = attention.step_backward(dcontext, dalpha, cache)
    names = ["query", "keys", *attention.PARAMETERS[form]]
    assert len(ours) == len(names)
    for name, mine, leaf in zip(names, ours, leaves):
        np.testing.assert_allclose(mine, leaf.grad.numpy(), rtol=0, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("form", FORMS)
def test_each_form_passes_the_gradient_check(form):
    query, keys, params, lengths = _case(form, S=4, B=2, Hq=3, Hk=3 if form == "dot" else 5, A=4, lengths=(4, 2))
    names = ["query", "keys", *attention.PARAMETERS[form]]

    def forward(*inputs):
        return attention.step_forward(*inputs, form=form, lengths=lengths)

    report = check_fn(forward, attention.step_backward, dict(zip(names, [query, keys, *params])))
    assert report.passed, report
    assert [row.name for row in report.rows] == names              # every tensor checked, by name


def test_padding_takes_no_weight_and_no_gradient():
    query, keys, params, lengths = _case("general", lengths=(5, 2, 4))
    keys[2:, 1] = 1e3                                # what lies past a sequence's end does not matter
    context, alpha, cache = attention.step_forward(query, keys, *params, form="general", lengths=lengths)
    assert np.all(alpha[2:, 1] == 0) and np.all(alpha[4:, 2] == 0)
    np.testing.assert_allclose(alpha.sum(axis=0), 1, rtol=1e-14)
    dquery, dkeys, dweight = attention.step_backward(np.ones_like(context), np.ones_like(alpha), cache)
    assert np.all(dkeys[2:, 1] == 0) and np.all(dkeys[4:, 2] == 0)
    short = attention.step_forward(query[1:2], keys[:2, 1:2], *params, form="general")
    np.testing.assert_allclose(short[0], context[1:2], rtol=1e-14)   # the same as the short sequence alone


@settings(max_examples=40, deadline=None)
@given(form=st.sampled_from(FORMS), S=st.integers(1, 6), B=st.integers(1, 4), Hq=st.integers(1, 5),
       Hk=st.integers(1, 5), A=st.integers(1, 5), seed=st.integers(0, 10_000), data=st.data())
def test_any_shape_against_finite_differences(form, S, B, Hq, Hk, A, seed, data):
    lengths = np.array(data.draw(st.lists(st.integers(1, S), min_size=B, max_size=B)))
    query, keys, params, lengths = _case(form, S, B, Hq, Hk, A, lengths, seed)
    names = ["query", "keys", *attention.PARAMETERS[form]]
    report = check_fn(lambda *inputs: attention.step_forward(*inputs, form=form, lengths=lengths),
                      attention.step_backward, dict(zip(names, [query, keys, *params])), mode="fast")
    assert report.passed, report


def test_a_planted_mistake_fails_the_check(monkeypatch):
    """The check above can fail: the softmax's backward without its Σ_r α_r ∂L/∂α_r term."""
    query, keys, params, lengths = _case("general", lengths=(5, 2, 4))
    real = attention.step_backward

    def wrong(dcontext, dweights, cache):
        form, q, k, alpha, p, u, t = cache
        dalpha = np.einsum("bh,sbh->sb", dcontext, k) + (0 if dweights is None else dweights)
        dscores = alpha * dalpha                                   # the mistake: no − Σ_r α_r ∂L/∂α_r
        du = np.einsum("sb,sbh->bh", dscores, k)
        dk = alpha[:, :, None] * dcontext[None] + dscores[:, :, None] * u[None]
        return du @ p[0].T, dk, q.T @ du

    def forward(*inputs):
        return attention.step_forward(*inputs, form="general", lengths=lengths)

    inputs = {"query": query, "keys": keys, "weight": params[0]}
    assert check_fn(forward, real, inputs).passed
    assert not check_fn(forward, wrong, inputs).passed


@pytest.mark.parametrize("change, error, message", [
    ({"form": "cosine"}, ValueError, "form must be one of dot, general, additive, got 'cosine'"),
    ({"form": "dot", "Hk": 5}, ValueError, "dot attention scores q · k_s, so the query's size must equal the keys'"),
    ({"params": []}, TypeError, "general attention takes 1 parameter \\(weight\\), got 0"),
    ({"weight_shape": (4, 3)}, ValueError, r"general attention's weight must have shape \(4, 6\), got \(4, 3\)"),
    ({"keys_batch": 2}, ValueError, "query must be \\(B, Hq\\) and keys \\(S, B, Hk\\) with the same B"),
    ({"lengths": [0, 2, 3]}, ValueError, "lengths must lie in 1..5"),
    ({"lengths": [1, 2]}, ValueError, "lengths must have shape \\(3,\\)"),
    ({"nan": True}, ValueError, "keys contains NaN or Inf"),
    ({"dtype": np.float32}, TypeError, "keys have dtype float32, the query float64"),
])
def test_bad_arguments_are_refused_naming_them(change, error, message):
    rng = np.random.default_rng(0)
    Hk = change.get("Hk", 6)
    query, keys = rng.standard_normal((3, 4)), rng.standard_normal((5, change.get("keys_batch", 3), Hk))
    form = change.get("form", "general")
    params = change.get("params", [rng.standard_normal(change.get("weight_shape", (4, Hk)))])
    if form == "dot":
        params = []
    if change.get("nan"):
        keys[1, 2, 0] = np.nan
    keys = keys.astype(change.get("dtype", np.float64))
    with pytest.raises(error, match=message):
        attention.step_forward(query, keys, *params, form=form, lengths=change.get("lengths"))


def test_the_backward_refuses_what_its_forward_did_not_make():
    query, keys, params, lengths = _case("dot")
    context, alpha, cache = attention.step_forward(query, keys, *params, form="dot", lengths=lengths)
    with pytest.raises(TypeError, match="cache must be what step_forward returned"):
        attention.step_backward(context, None, (1, 2))
    with pytest.raises(ValueError, match=r"dcontext must have shape \(3, 4\)"):
        attention.step_backward(context[:2], None, cache)
    with pytest.raises(ValueError, match=r"dweights must have shape \(5, 3\)"):
        attention.step_backward(context, alpha.T, cache)


@pytest.mark.parametrize("form", FORMS)
def test_the_layer_runs_every_decoder_step_and_sums_the_keys_gradient(form):
    """Attention as a layer: T queries at once, each step the function above; ∂L/∂keys summed
    over the steps and the parameters' gradients accumulated, against torch's autograd."""
    torch = pytest.importorskip("torch", reason="torch is the independent reference for these tests")
    T, S, B, Hq = 4, 5, 3, 4
    Hk = Hq if form == "dot" else 6
    layer = attention.Attention(Hq, Hk, form, attention_size=5, impl="reference", dtype=np.float64, seed=2)
    rng = np.random.default_rng(3)
    queries, keys, lengths = rng.standard_normal((T, B, Hq)), rng.standard_normal((S, B, Hk)), np.array([5, 2, 4])
    contexts, weights = layer.forward(queries, keys, lengths)
    assert contexts.shape == (T, B, Hk) and weights.shape == (T, S, B)
    params = [layer.params[name] for name in attention.PARAMETERS[form]]
    for t in range(T):
        context, alpha, _ = attention.step_forward(queries[t], keys, *params, form=form, lengths=lengths)
        np.testing.assert_array_equal(contexts[t], context)
    dcontexts, dweights = rng.standard_normal(contexts.shape), rng.standard_normal(weights.shape)
    layer.zero_grad()
    dqueries, dkeys = layer.backward(dcontexts, dweights)
    q = torch.tensor(queries, requires_grad=True)
    k = torch.tensor(keys, requires_grad=True)
    p = [torch.tensor(w, requires_grad=True) for w in params]
    loss = 0
    for t in range(T):       # the reference on shared leaves: the keys' and parameters' gradients sum over steps
        if form == "dot":
            scores = (k * q[t]).sum(-1)
        elif form == "general":
            scores = torch.einsum("bi,ij,sbj->sb", q[t], p[0], k)
        else:
            scores = torch.tanh(q[t] @ p[0].T + k @ p[1].T) @ p[2]
        padding = torch.arange(S)[:, None] >= torch.tensor(lengths)[None, :]
        alpha = torch.softmax(scores.masked_fill(padding, float("-inf")), dim=0)
        context = (alpha[:, :, None] * k).sum(0)
        loss = loss + (context * torch.tensor(dcontexts[t])).sum() + (alpha * torch.tensor(dweights[t])).sum()
    loss.backward()
    np.testing.assert_allclose(dqueries, q.grad.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(dkeys, k.grad.numpy(), rtol=0, atol=1e-10)
    for name, leaf in zip(attention.PARAMETERS[form], p):
        np.testing.assert_allclose(layer.grads[name], leaf.grad.numpy(), rtol=0, atol=1e-10, err_msg=name)
    one_context, one_alpha = layer.forward(queries[1], keys, lengths)               # one step: no T
    np.testing.assert_array_equal(one_context, contexts[1])
    assert one_alpha.shape == (S, B) and layer.backward(dcontexts[1])[0].shape == (B, Hq)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("lengths", [None, (5, 2, 4), (1, 5, 3)])
def test_the_fast_path_equals_the_reference(form, lengths):
    """attention_fast.py (every step at once, the batch first) against the reference loop over
    step_forward / step_backward: outputs and every gradient to 1e-12 in float64, T steps and one."""
    T, S, B, Hq = 4, 5, 3, 4
    Hk = Hq if form == "dot" else 6
    layers = {impl: attention.Attention(Hq, Hk, form, attention_size=5, impl=impl, dtype=np.float64, seed=2)
              for impl in ("fast", "reference")}
    rng = np.random.default_rng(4)
    queries, keys = rng.standard_normal((T, B, Hq)), rng.standard_normal((S, B, Hk))
    dcontexts = rng.standard_normal((T, B, Hk))
    lengths = None if lengths is None else np.array(lengths)
    for steps in (slice(None), 2):                      # all T steps, and one step (no T)
        out = {}
        for impl, layer in layers.items():
            layer.zero_grad()
            contexts, weights = layer.forward(queries[steps], keys, lengths)
            dqueries, dkeys = layer.backward(dcontexts[steps])
            out[impl] = [contexts, weights, dqueries, dkeys, *layer.grads.values()]
        for name, a, b in zip(["contexts", "weights", "dqueries", "dkeys", *layers["fast"].grads], *out.values()):
            assert a.shape == b.shape, name
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12, err_msg=name)


def test_the_layer_refuses_wrong_shapes_and_a_backward_first():
    fast = attention.Attention(4, 6, "general", seed=0)
    fast.forward(np.zeros((3, 2, 4)), np.zeros((7, 2, 6)))
    with pytest.raises(ValueError, match=r"dcontexts must have shape \(3, 2, 6\)"):
        fast.backward(np.zeros((2, 2, 6)))
    with pytest.raises(ValueError, match="the fast path takes dcontexts only"):
        fast.backward(np.zeros((3, 2, 6)), np.zeros((3, 7, 2)))
    with pytest.raises(ValueError, match="impl must be 'fast'"):
        attention.Attention(4, 6, "general", impl="generic")
    layer = attention.Attention(4, 6, "additive", impl="reference", seed=0)
    assert set(layer.params) == {"weight_query", "weight_key", "v"} and layer.params["v"].shape == (6,)
    with pytest.raises(RuntimeError, match="needs a forward"):
        layer.backward(np.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"queries must be \(T, B, 4\) or \(B, 4\) and keys \(S, B, 6\)"):
        layer.forward(np.zeros((3, 2, 5)), np.zeros((7, 2, 6)))
    with pytest.raises(ValueError, match="queries contains NaN"):
        layer.forward(np.full((3, 2, 4), np.nan), np.zeros((7, 2, 6)))
    layer.forward(np.zeros((3, 2, 4)), np.zeros((7, 2, 6)))
    with pytest.raises(ValueError, match="the forward's 3 steps first"):
        layer.backward(np.zeros((2, 2, 6)))
    with pytest.raises(ValueError, match="dot attention scores q · k_s"):
        attention.Attention(4, 6, "dot")

