"""Linear, Embedding, the losses and pooling: gradient checks, torch parity, edge cases."""

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpyrnn
from conftest import rel_err
from numpyrnn import gradcheck, losses
from numpyrnn.layers import Embedding, Linear, pool_backward, pool_forward


def module_fn(module):
    """A layer's forward/backward as a check_fn pair over (x, *parameters)."""
    names = list(module.params)

    def forward(x, *params):
        for name, p in zip(names, params):
            module.params[name] = p
        return module.forward(x), None

    def backward(dy, _):
        module.zero_grad()
        dx = module.backward(dy)
        return (dx, *(module.grads[n].copy() for n in names))

    return forward, backward, names


# --------------------------------------------------------------------------- Linear

@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=3), n_in=st.integers(1, 5),
       n_out=st.integers(1, 5), bias=st.booleans(), seed=st.integers(0, 2**31))
def test_linear_gradcheck_any_leading_dims(lead, n_in, n_out, bias, seed):
    layer = Linear(n_in, n_out, bias=bias, dtype=np.float64, seed=seed)
    forward, backward, names = module_fn(layer)
    x = np.random.default_rng(seed).standard_normal((*lead, n_in))
    report = gradcheck.check_fn(forward, backward, [x, *(layer.params[n].copy() for n in names)])
    assert report.passed, str(report)


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    ours = Linear(4, 3, dtype=np.float64, seed=0)
    theirs = torch.nn.Linear(4, 3, dtype=torch.float64)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 5, 4))
    dy = np.random.default_rng(1).standard_normal((2, 5, 3))
    y = ours.forward(x)
    dx = ours.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    (yt * torch.from_numpy(dy)).sum().backward()
    assert rel_err(y, yt.detach().numpy()) < 1e-12 and rel_err(dx, xt.grad.numpy()) < 1e-12
    assert rel_err(ours.grads["weight"], theirs.weight.grad.numpy()) < 1e-12
    assert rel_err(ours.grads["bias"], theirs.bias.grad.numpy()) < 1e-12
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_linear_init_bounds_and_errors():
    layer = Linear(16, 8, seed=0)
    assert np.abs(layer.params["weight"]).max() <= 0.25 and np.abs(layer.params["bias"]).max() <= 0.25
    with pytest.raises(ValueError, match=r"x must have in_features=16 in its last dimension, got shape \(3, 15\)"):
        layer.forward(np.zeros((3, 15)))
    with pytest.raises(RuntimeError, match="needs a forward"):
        Linear(2, 2).backward(np.zeros((1, 2)))


# --------------------------------------------------------------------------- Embedding

def test_embedding_repeated_ids_accumulate():
    emb = Embedding(5, 3, dtype=np.float64, seed=0)
    ids = np.array([[1, 1, 4], [1, 0, 4]])
    dy = np.random.default_rng(0).standard_normal((2, 3, 3))
    out = emb.forward(ids)
    assert np.array_equal(out, emb.params["weight"][ids])
    assert emb.backward(dy) is None
    expected = np.zeros((5, 3))
    for (b, t), k in np.ndenumerate(ids):          # the definition, one position at a time
        expected[k] += dy[b, t]
    assert np.allclose(emb.grads["weight"], expected, rtol=0, atol=1e-15)
    assert np.all(emb.grads["weight"][[2, 3]] == 0)


def test_embedding_padding_row_starts_at_zero_and_gets_no_gradient():
    emb = Embedding(6, 2, padding_idx=-1, dtype=np.float64, seed=0)
    assert emb.padding_idx == 5 and np.all(emb.params["weight"][5] == 0)
    emb.forward(np.array([5, 5, 2]))
    emb.backward(np.ones((3, 2)))
    assert np.all(emb.grads["weight"][5] == 0) and np.all(emb.grads["weight"][2] == 1)


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    ours = Embedding(7, 4, padding_idx=0, dtype=np.float64, seed=3)
    theirs = torch.nn.Embedding(7, 4, padding_idx=0, dtype=torch.float64)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    ids = np.random.default_rng(0).integers(0, 7, (6, 5))
    dy = np.random.default_rng(1).standard_normal((6, 5, 4))
    ours.forward(ids)
    ours.backward(dy)
    (theirs(torch.from_numpy(ids)) * torch.from_numpy(dy)).sum().backward()
    assert rel_err(ours.grads["weight"], theirs.weight.grad.numpy()) < 1e-12


def test_embedding_gradcheck():
    emb = Embedding(4, 3, dtype=np.float64, seed=0)
    ids = np.array([[0, 3, 3], [2, 0, 3]])

    def forward(weight):
        emb.params["weight"] = weight
        return emb.forward(ids), None

    def backward(dy, _):
        emb.zero_grad()
        emb.backward(dy)
        return (emb.grads["weight"].copy(),)

    report = gradcheck.check_fn(forward, backward, [emb.params["weight"].copy()])
    assert report.passed, str(report)


def test_embedding_errors():
    emb = Embedding(5, 2)
    with pytest.raises(ValueError, match="ids must lie in 0..4, got 5"):
        emb.forward([1, 5])
    with pytest.raises(ValueError, match="ids must lie in 0..4, got -1"):
        emb.forward([-1, 2])
    with pytest.raises(TypeError, match="ids must hold integer ids, got dtype float64"):
        emb.forward(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="padding_idx must lie in -5..4, got 5"):
        Embedding(5, 2, padding_idx=5)


# --------------------------------------------------------------------------- losses

def loss_pair(loss_fn, backward_fn, n_inputs):
    """A loss as a check_fn pair: gradient for the first input, None for the rest."""
    return (lambda *args: loss_fn(*args),
            lambda dloss, cache: (backward_fn(dloss, cache),) + (None,) * (n_inputs - 1))


@pytest.mark.parametrize("with_mask", [False, True])
def test_cross_entropy_gradcheck_and_torch(with_mask):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 3, 5)) * 3
    targets = rng.integers(0, 5, (4, 3))
    mask = rng.random((4, 3)) < 0.7 if with_mask else None
    if mask is not None:
        mask[0, 0] = True
    forward, backward = loss_pair(losses.cross_entropy, losses.cross_entropy_backward, 3)
    report = gradcheck.check_fn(forward, backward, [logits, targets, mask])
    assert report.passed, str(report)

    torch = pytest.importorskip("torch")
    lt = torch.tensor(logits, requires_grad=True)
    per_entry = torch.nn.functional.cross_entropy(lt.reshape(-1, 5), torch.from_numpy(targets).reshape(-1),
                                                  reduction="none")
    weights = torch.ones(12, dtype=torch.float64) if mask is None else torch.from_numpy(mask.reshape(-1).astype(float))
    tloss = (per_entry * weights).sum() / weights.sum()
    tloss.backward()
    loss, cache = losses.cross_entropy(logits, targets, mask)
    assert abs(float(loss) - tloss.item()) < 1e-13
    assert rel_err(losses.cross_entropy_backward(1.0, cache), lt.grad.numpy()) < 1e-12


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-5e3, 5e3, 5e3]])
    loss, cache = losses.cross_entropy(logits, np.array([0, 2]))
    assert np.isfinite(float(loss)) and abs(float(loss) - np.log(2) / 2) < 1e-12
    assert np.all(np.isfinite(losses.cross_entropy_backward(1.0, cache)))


def test_bce_with_logits_gradcheck_and_torch():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((6, 2)) * 4
    targets = rng.random((6, 2))
    forward, backward = loss_pair(losses.binary_cross_entropy_with_logits,
                                  losses.binary_cross_entropy_with_logits_backward, 2)
    report = gradcheck.check_fn(forward, lambda d, c: backward(d, c), [logits, targets])
    # targets are floats, so the checker also differentiates them: only the logits matter here
    assert report.row("input 0").passed, str(report)

    torch = pytest.importorskip("torch")
    lt = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.functional.binary_cross_entropy_with_logits(lt, torch.from_numpy(targets))
    tloss.backward()
    loss, cache = losses.binary_cross_entropy_with_logits(logits, targets)
    assert abs(float(loss) - tloss.item()) < 1e-13
    assert rel_err(losses.binary_cross_entropy_with_logits_backward(1.0, cache), lt.grad.numpy()) < 1e-12
    big, _ = losses.binary_cross_entropy_with_logits(np.array([800.0, -800.0]), np.array([0.0, 1.0]))
    assert abs(float(big) - 800.0) < 1e-9


def test_mse_with_a_mask_over_leading_dims():
    rng = np.random.default_rng(2)
    pred, target = rng.standard_normal((5, 3, 2)), rng.standard_normal((5, 3, 2))
    mask = np.arange(5)[:, None] < np.array([5, 2, 1])[None, :]
    loss, cache = losses.mse(pred, target, mask)
    expected = ((pred - target) ** 2)[mask].mean()
    assert abs(float(loss) - expected) < 1e-14
    report = gradcheck.check_fn(lambda p: losses.mse(p, target, mask),
                                lambda d, c: (losses.mse_backward(d, c),), [pred])
    assert report.passed, str(report)
    torch = pytest.importorskip("torch")
    assert abs(float(losses.mse(pred, target)[0]) -
               torch.nn.functional.mse_loss(torch.from_numpy(pred), torch.from_numpy(target)).item()) < 1e-14


def test_loss_errors():
    with pytest.raises(ValueError, match="targets must be class ids in 0..2, got values in 0..3"):
        losses.cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError, match="targets must be integer class ids, got dtype float64"):
        losses.cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"targets must have shape \(2,\)"):
        losses.cross_entropy(np.zeros((2, 3)), np.array([[0], [1]]))
    nan_loss, _ = losses.cross_entropy(np.array([[np.nan, 0.0]]), np.array([0]))   # a model's NaN is a NaN loss
    assert np.isnan(float(nan_loss))
    with pytest.raises(ValueError, match="targets contains NaN or Inf"):
        losses.mse(np.zeros(2), np.array([0.0, np.nan]))
    with pytest.raises(TypeError, match="mask must be a boolean array"):
        losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), mask=np.ones(2))
    with pytest.raises(ValueError, match="mask selects no entries"):
        losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), mask=np.zeros(2, bool))
    with pytest.raises(ValueError, match=r"targets must be probabilities in \[0, 1\]"):
        losses.binary_cross_entropy_with_logits(np.zeros(2), np.array([0.0, 2.0]))
    with pytest.raises(ValueError, match=r"targets must have the predictions' shape \(3,\)"):
        losses.mse(np.zeros(3), np.zeros(4))


# --------------------------------------------------------------------------- pooling

@pytest.mark.parametrize("mode", ["last", "mean", "max"])
@pytest.mark.parametrize("directions", [1, 2])
@given(T=st.integers(1, 6), B=st.integers(1, 4), H=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_pooling_gradcheck(mode, directions, T, B, H, seed):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((T, B, directions * H))
    lengths = rng.integers(1, T + 1, size=B)
    forward = functools.partial(pool_forward, lengths=lengths, mode=mode, num_directions=directions)
    report = gradcheck.check_fn(lambda y: forward(y), lambda d, c: (pool_backward(d, c),), [y])
    assert report.passed, str(report)


def test_pooling_values_respect_lengths():
    T, B, H = 5, 3, 2
    y = np.random.default_rng(0).standard_normal((T, B, 2 * H))
    lengths = np.array([5, 1, 3])
    y[4, 1] = 100.0                                   # a padded step, larger than anything real
    last, _ = pool_forward(y, lengths, "last", num_directions=2)
    mean, _ = pool_forward(y, lengths, "mean")
    top, _ = pool_forward(y, lengths, "max")
    for b, L in enumerate(lengths):
        assert np.array_equal(last[b, :H], y[L - 1, b, :H]) and np.array_equal(last[b, H:], y[0, b, H:])
        assert np.allclose(mean[b], y[:L, b].mean(axis=0))
        assert np.array_equal(top[b], y[:L, b].max(axis=0))


def test_last_pooling_equals_final_states_of_a_bidirectional_layer():
    m = numpyrnn.GRU(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((6, 3, 3))
    lengths = [6, 2, 4]
    y, h_n = m.forward(x, lengths=lengths)
    last, _ = pool_forward(y, lengths, "last", num_directions=2)
    assert np.allclose(last, np.concatenate([h_n[2], h_n[3]], axis=1), rtol=0, atol=1e-15)


def test_pooling_errors():
    with pytest.raises(ValueError, match="pooling must be one of 'last', 'mean', 'max', got 'sum'"):
        pool_forward(np.zeros((2, 1, 2)), mode="sum")
    with pytest.raises(ValueError, match="do not split into 2 directions"):
        pool_forward(np.zeros((2, 1, 3)), num_directions=2)
