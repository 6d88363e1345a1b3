"""The models: whole-model gradient checks, names, configs, carried state, sampling, torch parity."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpyrnn
from conftest import DEVICES, rel_err
from numpyrnn import gradcheck
from numpyrnn.models import build

CELLS = ["rnn", "lstm", "gru"]


def classifier_batch(rng, T=5, B=3, vocab=12, lengths=(5, 2, 4), classes=3):
    return rng.integers(1, vocab, (T, B)), rng.integers(0, classes, B), list(lengths)


# --------------------------------------------------------------------------- gradient checks

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("options", [
    dict(pooling="last"), dict(pooling="mean", bidirectional=True),
    dict(pooling="max", num_layers=2, dropout=0.3), dict(num_classes=1),
    dict(pooling="last", bidirectional=True, padding_idx=0, batch_first=True),
])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_classifier_gradcheck_full(cell, options, device, impl):
    rng = np.random.default_rng(0)
    options = {"num_classes": 3, **options}
    m = numpyrnn.SequenceClassifier(cell, vocab_size=12, embedding_dim=4, hidden_size=5, seed=1,
                                    dtype=np.float64, device=device, impl=impl, **options)
    ids, targets, lengths = classifier_batch(rng, classes=options["num_classes"] + (options["num_classes"] == 1))
    if options.get("batch_first"):
        ids = ids.T
    report = gradcheck.check_model(m, (ids, targets, lengths))
    assert report.passed, str(report)
    assert [r.name for r in report.rows] == list(m.params)
    assert all(abs(r.analytic) > 0 or r.max_abs_err == 0 for r in report.rows)


@pytest.mark.parametrize("cell", CELLS)
def test_classifier_on_features_checks_the_input_gradient_too(cell):
    rng = np.random.default_rng(1)
    m = numpyrnn.SequenceClassifier(cell, input_size=3, num_classes=2, hidden_size=4, seed=0,
                                    dtype=np.float64, pooling="mean")
    report = gradcheck.check_model(m, (rng.standard_normal((4, 2, 3)), [1, 0], [4, 3]))
    assert report.passed, str(report)
    assert report.rows[-1].name == "inputs"


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("per_step", [False, True])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_regressor_gradcheck_full(cell, per_step, device, impl):
    rng = np.random.default_rng(2)
    m = numpyrnn.SequenceRegressor(cell, input_size=2, hidden_size=4, output_size=2, per_step=per_step,
                                   seed=0, dtype=np.float64, device=device, impl=impl)
    T, B = 5, 3
    targets = rng.standard_normal((T, B, 2) if per_step else (B, 2))
    report = gradcheck.check_model(m, (rng.standard_normal((T, B, 2)), targets, [5, 1, 3]))
    assert report.passed, str(report)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_charlm_gradcheck_full(cell, device, impl):
    rng = np.random.default_rng(3)
    m = numpyrnn.CharLM(cell, vocab_size=7, hidden_size=4, embedding_dim=3, num_layers=2, seed=0,
                        dtype=np.float64, device=device, impl=impl)
    ids = rng.integers(0, 7, (6, 2))
    state = tuple(rng.standard_normal((2, 2, 4)) for _ in range(2)) if cell == "lstm" else rng.standard_normal((2, 2, 4))

    report = gradcheck.check_model(m, (ids[:-1], ids[1:], [5, 3]))
    assert report.passed, str(report)
    m64 = m.astype(np.float64)
    m64.forward(ids[:-1], ids[1:], state=state)   # a carried state (on the CPU) is accepted
    m64.backward()


@pytest.mark.parametrize("cell", CELLS)
@given(T=st.integers(1, 6), B=st.integers(1, 3), seed=st.integers(0, 2**31),
       bidirectional=st.booleans(), pooling=st.sampled_from(["last", "mean", "max"]))
def test_models_pass_fast_checks_over_configurations(cell, T, B, seed, bidirectional, pooling):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=B)
    m = numpyrnn.SequenceClassifier(cell, vocab_size=9, embedding_dim=3, hidden_size=4, num_classes=3,
                                    bidirectional=bidirectional, pooling=pooling, seed=seed, dtype=np.float64)
    report = gradcheck.check_model(m, (rng.integers(0, 9, (T, B)), rng.integers(0, 3, B), lengths),
                                   mode="fast", n_directions=3)
    assert report.passed, str(report)
    lm = numpyrnn.CharLM(cell, vocab_size=5, hidden_size=4, seed=seed, dtype=np.float64)
    ids = rng.integers(0, 5, (T + 1, B))
    report = gradcheck.check_model(lm, (ids[:-1], ids[1:], lengths), mode="fast", n_directions=3)
    assert report.passed, str(report)


@pytest.mark.parametrize("cell", CELLS)
def test_larger_models_pass_fast_checks(cell):
    rng = np.random.default_rng(4)
    m = numpyrnn.SequenceClassifier(cell, vocab_size=50, embedding_dim=16, hidden_size=24, num_classes=4,
                                    num_layers=2, bidirectional=True, pooling="max", seed=0, dtype=np.float64)
    ids = rng.integers(0, 50, (30, 8))
    report = gradcheck.check_model(m, (ids, rng.integers(0, 4, 8), rng.integers(1, 31, 8)), mode="fast")
    assert report.passed, str(report)


def test_a_one_percent_error_in_a_model_is_named():
    class Wrong(numpyrnn.SequenceClassifier):
        def backward(self):
            before = self.grads["head.weight"].copy()
            out = super().backward()
            self.grads["head.weight"] = before + 1.01 * (self.grads["head.weight"] - before)
            return out

    rng = np.random.default_rng(0)
    m = Wrong("lstm", vocab_size=12, embedding_dim=4, hidden_size=5, num_classes=3, seed=0, dtype=np.float64)
    report = gradcheck.check_model(m, classifier_batch(rng))
    assert report.failed == ["head.weight"]


# --------------------------------------------------------------------------- names, copies, configs

def test_dotted_names_in_order():
    m = numpyrnn.SequenceClassifier("gru", vocab_size=10, num_classes=2, hidden_size=3, num_layers=2)
    assert list(m.params) == [
        "embedding.weight",
        "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
        "rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.bias_ih_l1", "rnn.bias_hh_l1",
        "head.weight", "head.bias"]
    assert list(m.grads) == list(m.params)
    assert [name for name, _ in m.children()] == ["embedding", "rnn", "head"]


def test_a_copy_has_one_of_each_submodule():
    """The float64 twin's forward must run on the very arrays its params dict holds."""
    m = numpyrnn.SequenceClassifier("lstm", vocab_size=10, num_classes=2, hidden_size=3, seed=0)
    twin = m.astype(np.float64)
    assert twin.rnn is twin._children["rnn"] and twin.rnn is not m.rnn
    assert twin.params["rnn.weight_hh_l0"] is twin.rnn.params["weight_hh_l0"]
    ids = np.array([[1, 2], [3, 4]])
    before, _ = twin.forward(ids, [0, 1])
    twin.params["head.weight"] *= 3.0                     # must change what forward computes
    after, _ = twin.forward(ids, [0, 1])
    assert before != after
    assert m.head.params["bias"].dtype == np.float32


def test_assigning_a_submodule_registers_it_and_none_removes_it():
    m = numpyrnn.SequenceRegressor("rnn", input_size=2, hidden_size=3)
    assert "head.weight" in m.params
    m.head = numpyrnn.Linear(3, 4)
    assert m.params["head.weight"].shape == (4, 3)
    with pytest.raises(ValueError, match="submodule extra is float64 on cpu, but its parent is float32"):
        m.extra = numpyrnn.Linear(2, 2, dtype=np.float64)


@pytest.mark.parametrize("factory", [
    lambda: numpyrnn.SequenceClassifier("gru", vocab_size=10, num_classes=3, hidden_size=4, bidirectional=True,
                                        pooling="mean", padding_idx=0, reset_after=False, seed=0),
    lambda: numpyrnn.SequenceRegressor("rnn", input_size=2, hidden_size=3, per_step=True, nonlinearity="relu", seed=0),
    lambda: numpyrnn.CharLM("lstm", vocab_size=6, hidden_size=5, num_layers=2, seed=0),
])
def test_config_rebuilds_the_same_model(factory):
    m = factory()
    rebuilt = build(m.config(), seed=123)
    assert rebuilt.config() == m.config()
    assert [(k, v.shape) for k, v in rebuilt.params.items()] == [(k, v.shape) for k, v in m.params.items()]
    rebuilt.load_state_dict(m.state_dict())
    assert all(np.array_equal(rebuilt.params[k], m.params[k]) for k in m.params)


def test_build_rejects_foreign_configs():
    with pytest.raises(ValueError, match="config must be a dict whose 'type' is one of"):
        build({"type": "Transformer"})


def test_model_argument_errors():
    with pytest.raises(ValueError, match="give exactly one of vocab_size"):
        numpyrnn.SequenceClassifier("lstm", num_classes=2)
    with pytest.raises(ValueError, match="no cell named 'lstmx'"):
        numpyrnn.SequenceClassifier("lstmx", vocab_size=3, num_classes=2)
    with pytest.raises(ValueError, match="pooling must be one of"):
        numpyrnn.SequenceClassifier("lstm", vocab_size=3, num_classes=2, pooling="first")
    m = numpyrnn.SequenceClassifier("lstm", vocab_size=3, num_classes=2)
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a forward\(\) with targets first"):
        m.backward()
    m.forward(np.array([[0, 1]]))                          # without targets: nothing to backpropagate
    with pytest.raises(RuntimeError, match="needs a forward"):
        m.backward()
    with pytest.raises(ValueError, match=r"inputs must be a 2-d array of token ids \(T, B\)"):
        m.forward(np.array([0, 1]), [0])
    with pytest.raises(ValueError, match="inputs must lie in 0..2, got 3"):
        m.forward(np.array([[0, 3]]), [0, 1])
    r = numpyrnn.SequenceRegressor("gru", input_size=2)
    with pytest.raises(ValueError, match=r"inputs must be a 3-d array \(T, B, input_size\) with input_size=2"):
        r.forward(np.zeros((3, 2)), np.zeros(2))


# --------------------------------------------------------------------------- behaviour

def test_charlm_carried_state_equals_one_long_run():
    """Chunks with the final state carried over compute exactly the long sequence."""
    lm = numpyrnn.CharLM("gru", vocab_size=8, hidden_size=6, seed=0, dtype=np.float64)
    ids = np.random.default_rng(0).integers(0, 8, (12, 2))
    _, whole = lm.forward(ids)
    _, first = lm.forward(ids[:5])
    _, second = lm.forward(ids[5:], state=lm.final_state)
    assert np.allclose(np.concatenate([first, second]), whole, rtol=0, atol=1e-14)


def test_charlm_sampling_is_seeded_and_primed():
    lm = numpyrnn.CharLM("lstm", vocab_size=5, hidden_size=4, seed=0, dropout=0.0)
    a = lm.sample(20, prime=[1, 2, 3], seed=7, temperature=0.8)
    assert a == lm.sample(20, prime=[1, 2, 3], seed=7, temperature=0.8)
    assert len(a) == 20 and all(0 <= t < 5 for t in a)
    assert lm.sample(0, prime=[1]) == []
    assert lm.training                                     # sampling restores the mode
    cold = lm.sample(50, prime=[1], seed=1, temperature=0.01)
    assert len(set(cold[10:])) <= 2                        # near-greedy: settles into a cycle
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        lm.sample(3, temperature=0)


def test_regressor_accepts_flat_targets_for_one_output():
    m = numpyrnn.SequenceRegressor("lstm", input_size=2, hidden_size=3, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 3, 2))
    loss_flat, pred = m.forward(x, np.ones(3))
    loss_col, _ = m.forward(x, np.ones((3, 1)))
    assert pred.shape == (3, 1) and loss_flat == loss_col


@pytest.mark.parametrize("cell", CELLS)
def test_edge_batches(cell):
    """B = 1, every length equal, every length 1."""
    rng = np.random.default_rng(5)
    m = numpyrnn.SequenceClassifier(cell, vocab_size=6, embedding_dim=3, hidden_size=4, num_classes=2,
                                    bidirectional=True, pooling="mean", seed=0, dtype=np.float64)
    for ids, lengths in [(rng.integers(0, 6, (4, 1)), [3]), (rng.integers(0, 6, (4, 3)), [4, 4, 4]),
                         (rng.integers(0, 6, (4, 3)), [1, 1, 1]), (rng.integers(0, 6, (1, 2)), None)]:
        report = gradcheck.check_model(m, (ids, rng.integers(0, 2, ids.shape[1]), lengths))
        assert report.passed, str(report)


# --------------------------------------------------------------------------- against torch

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_classifier_matches_torch_end_to_end(cell, pooling):
    """Embedding → bidirectional stack over packed sequences → pooling → Linear → cross-entropy,
    written in torch with our weights: same loss, same gradient for every parameter."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    T, B, V, C = 7, 4, 11, 3
    ours = numpyrnn.SequenceClassifier(cell, vocab_size=V, embedding_dim=5, hidden_size=6, num_classes=C,
                                       num_layers=2, bidirectional=True, pooling=pooling, padding_idx=0,
                                       seed=2, dtype=np.float64)
    ids = rng.integers(1, V, (T, B))
    lengths = np.array([7, 3, 1, 5])
    for b, L in enumerate(lengths):
        ids[L:, b] = 0
    targets = rng.integers(0, C, B)
    loss, _ = ours.forward(ids, targets, lengths)
    ours.backward()

    sd = {k: torch.from_numpy(v) for k, v in ours.state_dict().items()}
    emb = torch.nn.Embedding(V, 5, padding_idx=0, dtype=torch.float64)
    rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        5, 6, num_layers=2, bidirectional=True, dtype=torch.float64)
    head = torch.nn.Linear(12, C, dtype=torch.float64)
    for prefix, module in (("embedding", emb), ("rnn", rnn), ("head", head)):
        module.load_state_dict({k.split(".", 1)[1]: v for k, v in sd.items() if k.startswith(prefix + ".")})
    packed = torch.nn.utils.rnn.pack_padded_sequence(emb(torch.from_numpy(ids)), torch.from_numpy(lengths),
                                                     enforce_sorted=False)
    out, _ = rnn(packed)
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    real = torch.from_numpy(np.arange(T)[:, None] < lengths[None, :])[:, :, None]
    if pooling == "last":
        idx = torch.from_numpy(lengths - 1)
        pooled = torch.cat([y[idx, torch.arange(B), :6], y[0, :, 6:]], dim=1)
    elif pooling == "mean":
        pooled = (y * real).sum(0) / torch.from_numpy(lengths)[:, None]
    else:
        pooled = y.masked_fill(~real, -float("inf")).max(0).values
    tloss = torch.nn.functional.cross_entropy(head(pooled), torch.from_numpy(targets))
    tloss.backward()
    assert abs(loss - tloss.item()) < 1e-12
    torch_grads = {f"{p}.{k}": v.grad.numpy() for p, mod in (("embedding", emb), ("rnn", rnn), ("head", head))
                   for k, v in mod.named_parameters()}
    for name, g in ours.grads.items():
        assert rel_err(g, torch_grads[name]) < 1e-10, name
