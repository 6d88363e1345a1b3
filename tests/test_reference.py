"""The layers' two paths: impl="fast" held to impl="reference" everywhere a layer goes.

The reference is the textbook loop over the step functions (cells/*.py, forward_reference and
backward_reference); the fast path is the same functions arranged for speed.  test_cells.py holds
them together cell by cell; here the layers, the models, training and the command line do.
"""

import json

import numpy as np
import pytest

import numpyrnn
from conftest import RECURRENT_CASES, RECURRENT_IDS, rel_err
from numpyrnn import bench, cli, gradcheck, optim, tasks
from numpyrnn.train import Trainer

CASES = [(getattr(numpyrnn, name), options) for name, options in RECURRENT_CASES]


def _run(cls, options, impl, x, lengths, state, dstate, dy, **kw):
    m = cls(3, 4, dtype=np.float64, seed=7, impl=impl, **options, **kw)
    y, state_n = m.forward(x, state, lengths)
    dx, dstate0 = m.backward(dy, dstate)
    as_list = (lambda s: list(s) if isinstance(s, tuple) else [s])
    return [y, dx, *as_list(state_n), *as_list(dstate0)], m.grads


@pytest.mark.parametrize("case", CASES, ids=RECURRENT_IDS)
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
def test_fast_equals_reference_in_every_layer_configuration(case, layers, bidirectional, batch_first,
                                                            use_lengths):
    """Every cell × form × 1–3 layers × uni/bi × time-major/batch-first × with and without
    lengths: outputs, final states, dx, dstate0 and every parameter gradient to 1e-12."""
    cls, options = case
    T, B, D = 6, 4, 2 if bidirectional else 1
    rng = np.random.default_rng(layers * 8 + bidirectional * 4 + batch_first * 2 + use_lengths)
    x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3))
    lengths = np.array([6, 1, 4, 3]) if use_lengths else None
    n = 2 if cls is numpyrnn.LSTM else 1
    pack = (lambda s: tuple(s) if n == 2 else s[0])
    state = pack([rng.standard_normal((layers * D, B, 4)) for _ in range(n)])
    dstate = pack([rng.standard_normal((layers * D, B, 4)) for _ in range(n)])
    dy = rng.standard_normal((B, T, D * 4) if batch_first else (T, B, D * 4))
    kw = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    fast, fast_grads = _run(cls, options, "fast", x, lengths, state, dstate, dy, **kw)
    ref, ref_grads = _run(cls, options, "reference", x, lengths, state, dstate, dy, **kw)
    for a, b in zip(fast, ref):
        assert a.shape == b.shape and rel_err(a, b) < 1e-12
    assert list(fast_grads) == list(ref_grads)
    for k in ref_grads:
        assert rel_err(fast_grads[k], ref_grads[k]) < 1e-12, k


def test_impl_lives_in_config_not_in_state_dict_and_survives_copies():
    m = numpyrnn.LSTM(3, 4, num_layers=2, impl="reference")
    assert m.impl == "reference" and m.config()["impl"] == "reference"
    assert list(m.state_dict()) == list(numpyrnn.LSTM(3, 4, num_layers=2).state_dict())
    assert "impl='reference'" in repr(m) and "impl" not in repr(numpyrnn.LSTM(3, 4))
    assert m.astype(np.float64).impl == "reference"
    assert m.to("cpu").impl == "reference"
    rebuilt = numpyrnn.LSTM(**{k: v for k, v in m.config().items() if k != "type"})
    assert rebuilt.impl == "reference"
    model = numpyrnn.SequenceClassifier("gru", vocab_size=5, num_classes=2, hidden_size=3, impl="reference")
    assert model.config()["impl"] == "reference" and model.rnn.impl == "reference"
    assert numpyrnn.models.build(model.config()).rnn.impl == "reference"
    assert numpyrnn.models.build(model.astype(np.float64).config()).rnn.impl == "reference"


@pytest.mark.parametrize("bad", ["slow", "Fast", None, 1])
def test_a_bad_impl_is_an_error_naming_the_argument(bad):
    with pytest.raises(ValueError, match=rf"impl must be one of 'fast', 'reference', 'generic', got {bad!r}"):
        numpyrnn.GRU(3, 4, impl=bad)
    with pytest.raises(ValueError, match="impl must be one of"):
        numpyrnn.CharLM("lstm", vocab_size=4, impl=bad)
    m = numpyrnn.RNN(3, 4)
    with pytest.raises(ValueError, match="impl must be one of"):
        m.impl = bad
    assert m.impl == "fast"


def test_changing_impl_between_forward_and_backward_uses_the_forward_s_path():
    """The cache records which path made it: the backward that follows is that path's."""
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    m = numpyrnn.GRU(3, 4, dtype=np.float64, seed=0)
    y, _ = m.forward(x)
    m.impl = "reference"
    dx, _ = m.backward(np.ones_like(y))
    twin = numpyrnn.GRU(3, 4, dtype=np.float64, seed=0)
    twin.forward(x)
    assert rel_err(dx, twin.backward(np.ones_like(y))[0]) < 1e-15
    assert m.gate_activations()["z"].shape == (5, 2, 4)


@pytest.mark.parametrize("cls,options", CASES, ids=RECURRENT_IDS)
def test_gate_activations_and_activation_bytes_on_both_paths(cls, options):
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    gates, memory = {}, {}
    for impl in ("fast", "reference"):
        m = cls(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=1, impl=impl, **options)
        m.forward(x, lengths=[6, 3])
        gates[impl] = m.gate_activations(layer=1, direction=1)
        memory[impl] = bench.activation_bytes(m)
    for k in gates["fast"]:
        assert rel_err(gates["fast"][k], gates["reference"][k]) < 1e-13
    assert memory["fast"] > 0 and memory["reference"] > 0


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_training_runs_the_same_on_both_paths(cell):
    """Five Adam steps with clipping on the copy task, float64: the same losses and weights."""
    task = tasks.make("copy", seed=0, seq_len=6, train_size=64, val_size=16, test_size=16)
    results = {}
    for impl in ("fast", "reference"):
        model = task.make_model(cell, hidden_size=8, seed=0, dtype=np.float64, impl=impl)
        trainer = Trainer(model, task, optim.make("adam", model, lr=0.01), batch_size=16, clip=1.0,
                          eval_every=5, seed=0, progress=False)
        metrics = trainer.fit(steps=5)
        results[impl] = metrics["test_loss"], model.state_dict()
    assert abs(results["fast"][0] - results["reference"][0]) < 1e-10
    for k, v in results["fast"][1].items():
        assert rel_err(v, results["reference"][1][k]) < 1e-10, k


def test_model_gradcheck_on_the_reference_with_dropout_and_lengths():
    m = numpyrnn.SequenceClassifier("lstm", vocab_size=6, embedding_dim=3, hidden_size=4, num_classes=2,
                                    num_layers=2, bidirectional=True, dropout=0.3, pooling="mean",
                                    dtype=np.float64, seed=0, impl="reference")
    rng = np.random.default_rng(0)
    report = gradcheck.check_model(m, (rng.integers(0, 6, (5, 3)), [0, 1, 1], [5, 2, 1]))
    assert report.passed, str(report)


def test_cli_gradcheck_and_train_take_impl(tmp_path, capsys):
    assert cli.main(["gradcheck", "--cell", "gru", "--impl", "reference", "--lengths"]) == 0
    out = capsys.readouterr().out
    assert "4/4 passed (reference path" in out
    run = tmp_path / "run"
    assert cli.main(["train", "--task", "adding", "--seq-len", "8", "--hidden", "4", "--steps", "2",
                     "--eval-every", "2", "--impl", "reference", "--out", str(run), "--quiet"]) == 0
    assert json.loads((run / "metrics.json").read_text())["model"]["impl"] == "reference"
    assert numpyrnn.load(run / "model.npz").rnn.impl == "reference"
    # the run continues on the fast path: impl is how a model computes, not what
    assert cli.main(["train", "--task", "adding", "--seq-len", "8", "--hidden", "4", "--steps", "4",
                     "--eval-every", "2", "--out", str(run), "--resume", "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--task", "adding", "--impl", "slow"]) == 2
    assert "numpyrnn train: argument --impl: invalid choice: 'slow'" in capsys.readouterr().err
