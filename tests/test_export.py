"""numpyrnn → PyTorch and back: a trained model and its export compute the same outputs, the
round trip gives the same weights, and what cannot cross is refused saying why.

The torch side is computed here by calling the exported torch module as a torch user would;
numpyrnn's side by the model's own forward.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpyrnn
from numpyrnn import export, optim
from numpyrnn.cli import main
from numpyrnn.models import CharLM, SequenceClassifier, SequenceRegressor

torch = pytest.importorskip("torch")
from numpyrnn.export import torch_modules  # noqa: E402  (imports torch)

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = {np.float32: 1e-6, np.float64: 1e-10}
VOCAB, FEATURES, T, B = 13, 4, 9, 5


def make(kind, cell, num_layers=1, bidirectional=False, dtype=np.float64, **options):
    if kind == "classifier":
        return SequenceClassifier(cell, num_classes=3, vocab_size=VOCAB, embedding_dim=5, hidden_size=6,
                                  num_layers=num_layers, bidirectional=bidirectional, padding_idx=0,
                                  dtype=dtype, seed=7, **options)
    if kind == "regressor":
        return SequenceRegressor(cell, input_size=FEATURES, hidden_size=6, output_size=2,
                                 num_layers=num_layers, bidirectional=bidirectional, dtype=dtype,
                                 seed=7, **options)
    return CharLM(cell, vocab_size=VOCAB, hidden_size=6, embedding_dim=5, num_layers=num_layers,
                  dtype=dtype, seed=7, **options)


def batch(model, seed, with_lengths=True):
    """(inputs, targets, lengths) for ``model``, time-major unless the model is batch_first."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, B)
    lengths[1] = T
    config = model.config()
    if config.get("vocab_size"):
        inputs = rng.integers(1, VOCAB, (T, B))
    else:
        inputs = rng.standard_normal((T, B, config["input_size"])).astype(model.dtype)
    if config["type"] == "SequenceClassifier":
        targets = rng.integers(0, config["num_classes"], B) if config["num_classes"] > 1 else rng.integers(0, 2, B)
    elif config["type"] == "SequenceRegressor":
        shape = (T, B, config["output_size"]) if config["per_step"] else (B, config["output_size"])
        targets = rng.standard_normal(shape)
    else:
        targets = rng.integers(0, VOCAB, (T, B))
    if config.get("batch_first"):                                 # (B, T, ...): targets per step too
        per_step = config["type"] == "CharLM" or config.get("per_step")
        inputs = np.swapaxes(inputs, 0, 1).copy()
        targets = np.swapaxes(targets, 0, 1).copy() if per_step else targets
    return inputs, targets, (lengths if with_lengths else None)


def trained(model, steps=3, with_lengths=True):
    """``model`` after a few Adam steps, so its weights are no longer the initial ones."""
    opt = optim.Adam(model, lr=0.05)
    for step in range(steps):
        inputs, targets, lengths = batch(model, step, with_lengths)
        model.zero_grad()
        model.forward(inputs, targets, lengths)
        model.backward()
        opt.step()
    return model


def torch_outputs(module, inputs, lengths, state=None):
    """What the exported module returns, as NumPy arrays (CharLM: logits and the state)."""
    t_inputs = torch.from_numpy(np.ascontiguousarray(inputs))
    t_lengths = None if lengths is None else torch.from_numpy(lengths)
    with torch.no_grad():
        if isinstance(module, torch_modules.CharLM):
            logits, state = module(t_inputs, state, t_lengths)
            return [logits.numpy(), *(s.numpy() for s in (state if isinstance(state, tuple) else (state,)))]
        return [module(t_inputs, t_lengths).numpy()]


def numpyrnn_outputs(model, inputs, lengths, state=None):
    if isinstance(model, CharLM):
        _, logits = model.forward(inputs, None, lengths, state)
        s = model.final_state
        return [logits, *(s if isinstance(s, tuple) else (s,))]
    return [model.forward(inputs, None, lengths)[1]]


def largest_difference(model, module, inputs, lengths):
    ours, theirs = numpyrnn_outputs(model, inputs, lengths), torch_outputs(module, inputs, lengths)
    assert [a.shape for a in ours] == [b.shape for b in theirs]
    return max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype and np.array_equal(sa[name], sb[name]), name


MATRIX = [(kind, cell, layers, bi, lengths)
          for kind, cell, layers, bi, lengths in itertools.product(
              ("classifier", "regressor", "charlm"), ("rnn", "lstm", "gru"), (1, 2), (False, True), (False, True))
          if not (kind == "charlm" and bi)]                       # a language model reads one way


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind,cell,layers,bidirectional,with_lengths", MATRIX,
                         ids=[f"{k}-{c}-{n}l-{'bi' if b else 'uni'}-{'lengths' if w else 'full'}"
                              for k, c, n, b, w in MATRIX])
def test_a_trained_model_and_its_export_compute_the_same_and_come_back_the_same(
        kind, cell, layers, bidirectional, with_lengths, dtype):
    model = trained(make(kind, cell, layers, bidirectional, dtype), with_lengths=with_lengths)
    model.vocab = tuple(f"tok{i}" for i in range(VOCAB)) if kind != "regressor" else None
    module = export.to_torch(model)
    assert next(module.parameters()).dtype == getattr(torch, np.dtype(dtype).name)
    model.eval(), module.eval()
    inputs, _, lengths = batch(model, 99, with_lengths)
    assert largest_difference(model, module, inputs, lengths) < TOLERANCE[dtype]

    back = export.from_torch(module)
    assert type(back) is type(model)
    assert_same_weights(back, model)
    assert back.config() == model.config()
    assert back.vocab == model.vocab


def test_the_comparison_is_not_blind():
    """A weight changed by 1e-4 on the torch side shows in the outputs far above the tolerance."""
    model = trained(make("classifier", "lstm", 2, True, np.float64))
    module = export.to_torch(model).eval()
    inputs, _, lengths = batch(model.eval(), 99)
    with torch.no_grad():
        module.rnn.weight_hh_l1_reverse[3, 2] += 1e-4
    assert largest_difference(model, module, inputs, lengths) > 1e-8
    assert export.max_difference(model, module, inputs, lengths) > 1e-8


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["classifier", "regressor", "charlm"]), cell=st.sampled_from(["rnn", "lstm", "gru"]),
       pooling=st.sampled_from(["last", "mean", "max"]), batch_first=st.booleans(),
       relu=st.booleans(), bidirectional=st.booleans(), per_step=st.booleans(),
       binary=st.booleans(), dense=st.booleans(), with_lengths=st.booleans())
def test_every_option_crosses(kind, cell, pooling, batch_first, relu, bidirectional, per_step, binary,
                              dense, with_lengths):
    options = {"batch_first": batch_first, "nonlinearity": "relu" if relu and cell == "rnn" else "tanh"}
    if kind == "classifier":
        common = dict(hidden_size=6, pooling=pooling, bidirectional=bidirectional, dtype=np.float64, seed=3, **options)
        features = dict(input_size=FEATURES) if dense else dict(vocab_size=VOCAB, embedding_dim=4, padding_idx=0)
        model = SequenceClassifier(cell, num_classes=1 if binary else 3, **features, **common)
    elif kind == "regressor":
        model = SequenceRegressor(cell, input_size=FEATURES, hidden_size=6, output_size=2, per_step=per_step,
                                  pooling=pooling, bidirectional=bidirectional, dtype=np.float64, seed=3, **options)
    else:
        model = CharLM(cell, vocab_size=VOCAB, hidden_size=6, dtype=np.float64, seed=3, **options)
    trained(model, steps=2, with_lengths=with_lengths)
    module = export.to_torch(model.eval())
    inputs, _, lengths = batch(model, 5, with_lengths)
    assert largest_difference(model, module, inputs, lengths) < 1e-10
    if kind == "classifier":
        t_lengths = None if lengths is None else torch.from_numpy(lengths)
        assert np.array_equal(module.predict(torch.from_numpy(inputs), t_lengths).numpy(),
                              model.predict(inputs, lengths))
    assert_same_weights(export.from_torch(module), model)


def test_a_language_model_carries_its_state_from_chunk_to_chunk_in_torch_too():
    model = trained(make("charlm", "lstm", 2)).eval()
    module = export.to_torch(model)
    first, _, _ = batch(model, 1, False)
    second, _, _ = batch(model, 2, False)
    ours = numpyrnn_outputs(model, first, None)
    theirs = torch_outputs(module, first, None)
    t_state = tuple(torch.from_numpy(s) for s in theirs[1:])
    ours = numpyrnn_outputs(model, second, None, model.final_state)
    theirs = torch_outputs(module, second, None, t_state)
    assert max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs)) < 1e-10


def test_the_export_is_in_the_models_mode_and_dropout_crosses():
    model = make("classifier", "gru", 2, dropout=0.3)
    assert export.to_torch(model).training and export.to_torch(model).rnn.dropout == 0.3
    assert not export.to_torch(model.eval()).training
    assert not export.from_torch(export.to_torch(model)).training


# --------------------------------------------------------------------------- layers, and torch's own modules

@pytest.mark.parametrize("cell", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_a_recurrent_layer_crosses_both_ways(cell, batch_first):
    layer = getattr(numpyrnn, cell)(FEATURES, 5, num_layers=2, bidirectional=True, batch_first=batch_first,
                                    dtype=np.float64, seed=2)
    module = export.to_torch(layer)
    assert type(module) is getattr(torch.nn, cell) and module.batch_first == batch_first
    inputs, lengths = export.example_inputs(layer, seed=4)
    y, state = layer.forward(inputs, None, lengths)
    t_y, t_state = torch_modules.run_recurrent(module, torch.from_numpy(inputs), None, torch.from_numpy(lengths))
    ours = [y, *(state if isinstance(state, tuple) else (state,))]
    theirs = [t_y, *(t_state if isinstance(t_state, tuple) else (t_state,))]
    assert max(float(np.abs(a - b.detach().numpy()).max()) for a, b in zip(ours, theirs)) < 1e-10
    assert export.max_difference(layer, module, inputs, lengths) < 1e-10
    assert_same_weights(export.from_torch(module), layer)


def test_torch_initialised_modules_come_to_numpyrnn():
    """torch.nn modules made in torch (torch's own initial weights) come back and compute the same."""
    torch.manual_seed(0)
    for module in (torch.nn.RNN(3, 4, nonlinearity="relu", bias=False), torch.nn.LSTM(3, 4, 2),
                   torch.nn.GRU(3, 4, bidirectional=True, batch_first=True).double(),
                   torch.nn.Linear(3, 2), torch.nn.Embedding(7, 3, padding_idx=2)):
        layer = export.from_torch(module)
        assert layer.dtype == {torch.float32: np.float32, torch.float64: np.float64}[next(module.parameters()).dtype]
        inputs, lengths = export.example_inputs(layer, seed=1)
        tolerance = 1e-10 if layer.dtype == np.float64 else 1e-6
        assert export.max_difference(layer, module, inputs, lengths) < tolerance, module


def test_a_model_trained_in_torch_comes_back_computing_the_same():
    """The way back after training in torch: a few torch.optim steps on the exported module."""
    model = make("classifier", "lstm", 2, True)
    module = export.to_torch(model)
    opt = torch.optim.Adam(module.parameters(), lr=0.05)
    for step in range(3):
        inputs, targets, lengths = batch(model, step)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(torch.from_numpy(inputs), torch.from_numpy(lengths)),
                                                 torch.from_numpy(targets))
        loss.backward()
        opt.step()
    back = export.from_torch(module.eval())
    assert not np.array_equal(back.state_dict()["rnn.weight_hh_l0"], model.state_dict()["rnn.weight_hh_l0"])
    inputs, _, lengths = batch(back, 9)
    assert largest_difference(back, module, inputs, lengths) < 1e-10


def test_your_own_torch_module_comes_back_with_like():
    class Mine(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCAB, 5, padding_idx=0)
            self.rnn = torch.nn.GRU(5, 6)
            self.head = torch.nn.Linear(6, 3)

    like = make("classifier", "gru")
    mine = Mine().double()
    back = export.from_torch(mine, like=like)
    for name, tensor in mine.state_dict().items():
        assert np.array_equal(back.state_dict()[name], tensor.numpy())
    assert back.config() == like.config()

    class Renamed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.rnn, self.head = torch.nn.Embedding(VOCAB, 5), torch.nn.GRU(5, 6), torch.nn.Linear(6, 3)

    with pytest.raises(KeyError, match=r"missing \['embedding.weight'\]; unexpected \['emb.weight'\]"):
        export.from_torch(Renamed().double(), like=like)
    with pytest.raises(TypeError, match=r"cannot tell what a Mine computes: give like="):
        export.from_torch(mine)
    with pytest.raises(ValueError, match=r"module is not a LSTM like `like`: they differ in \['hidden_size'\]"):
        export.from_torch(torch.nn.LSTM(FEATURES, 3), like=numpyrnn.LSTM(FEATURES, 5))


# --------------------------------------------------------------------------- what cannot cross

def test_the_textbook_gru_is_refused_saying_why():
    why = r"torch.nn.GRU computes only the reset-after GRU.*reset_after=False.*no module"
    with pytest.raises(ValueError, match=why):
        export.to_torch(make("classifier", "gru", reset_after=False))
    with pytest.raises(ValueError, match=why):
        export.to_torch(numpyrnn.GRU(3, 4, reset_after=False))
    with pytest.raises(ValueError, match=why):
        export.from_torch(torch.nn.GRU(3, 4), like=numpyrnn.GRU(3, 4, reset_after=False))


def test_what_numpyrnn_cannot_express_is_refused():
    with pytest.raises(ValueError, match=r"no projection; this one has proj_size=2"):
        export.from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match=r"does not renormalise rows: this one has max_norm=1.0"):
        export.from_torch(torch.nn.Embedding(5, 3, max_norm=1.0))
    with pytest.raises(TypeError, match=r"float32 or float64; this module's parameters are \['float16'\]"):
        export.from_torch(torch.nn.Linear(3, 2).half())
    with pytest.raises(TypeError, match=r"module must be a torch.nn.Module, got ndarray"):
        export.from_torch(np.zeros(3))
    with pytest.raises(TypeError, match=r"model must be a numpyrnn SequenceClassifier.*got Linear"):
        export.to_torch(torch.nn.Linear(3, 2))


# --------------------------------------------------------------------------- the file, and plain PyTorch

def test_the_file_is_what_plain_torch_loads(tmp_path):
    model = trained(make("classifier", "lstm", 2, True, np.float32))
    model.vocab = tuple(f"w{i}" for i in range(VOCAB))
    export.save_torch(model, tmp_path / "model.pt")
    data = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(data) == {"format", "version", "config", "state_dict", "vocab", "classes", "tokenizer"}
    assert data["format"] == "numpyrnn-torch-export" and data["version"] == 1
    assert data["config"] == {k: v for k, v in model.config().items() if k != "impl"}
    assert data["vocab"] == list(model.vocab)
    for name, value in model.state_dict().items():
        assert np.array_equal(data["state_dict"][name].numpy(), value)
    module = torch_modules.load(tmp_path / "model.pt")
    assert not module.training and module.vocab == list(model.vocab)
    inputs, _, lengths = batch(model.eval(), 3)
    assert largest_difference(model, module, inputs, lengths) < 1e-6


def test_the_builder_needs_only_torch_and_the_standard_library(tmp_path):
    """torch_modules.py copied into a project without numpyrnn loads an export."""
    source = (ROOT / "numpyrnn" / "export" / "torch_modules.py").read_text()
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported <= {"__future__", "os", "re", "torch"}                  # torch and the standard library
    model = make("charlm", "gru", 2, dtype=np.float32)
    export.save_torch(model, tmp_path / "lm.pt")
    (tmp_path / "builder.py").write_text(source)
    code = ("import sys; sys.modules['numpyrnn'] = None\n"             # numpyrnn cannot be imported
            "import torch, builder\n"
            "m = builder.load('lm.pt')\n"
            "logits, state = m(torch.zeros(4, 2, dtype=torch.long))\n"
            "print(type(m).__name__, tuple(logits.shape), tuple(state.shape))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["CharLM", "(4,", "2,", "13)", "(2,", "2,", "6)"]


def test_a_file_that_is_not_an_export_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other.pt: not a numpyrnn export"):
        torch_modules.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match=r"nothing.pt: no such file"):
        torch_modules.load(tmp_path / "nothing.pt")


def test_without_torch_the_error_names_the_install_command_and_numpyrnn_never_imports_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpyrnn, numpyrnn.export, numpyrnn.cli\n"
            "try:\n"
            "    numpyrnn.export.to_torch(numpyrnn.LSTM(2, 3))\n"
            "except numpyrnn.export.TorchUnavailable as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("exporting to PyTorch needs PyTorch, which is not installed: "
                                  "pip install numpyrnn[torch]")
    code = "import sys, numpyrnn, numpyrnn.export, numpyrnn.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


# --------------------------------------------------------------------------- the command

def test_the_export_command_writes_checks_and_says_how_to_load(tmp_path, capsys):
    model = trained(make("regressor", "gru", 2, True, np.float32))
    numpyrnn.save(model, tmp_path / "model.npz")
    assert main(["export", str(tmp_path / "model.npz"), "--to", "torch", str(tmp_path / "out.pt")]) == 0
    printed = capsys.readouterr().out
    assert "SequenceRegressor(gru, 2 layers, bidirectional, float32) -> " in printed
    difference = float(printed.split("largest difference ")[1].split()[0])
    assert 0 <= difference < 1e-6
    assert "torch_modules.load(" in printed
    module = torch_modules.load(tmp_path / "out.pt")
    inputs, _, lengths = batch(model.eval(), 1)
    assert largest_difference(model, module, inputs, lengths) < 1e-6


def test_the_export_command_refuses_clearly_and_keeps_what_was_there(tmp_path, capsys):
    numpyrnn.save(make("classifier", "gru", reset_after=False), tmp_path / "textbook.npz")
    (tmp_path / "out.pt").write_bytes(b"kept")
    assert main(["export", str(tmp_path / "textbook.npz"), "--to", "torch", str(tmp_path / "out.pt")]) == 2
    assert "reset_after=False" in capsys.readouterr().err
    assert (tmp_path / "out.pt").read_bytes() == b"kept"
    assert main(["export", str(tmp_path / "missing.npz"), "--to", "torch", str(tmp_path / "out.pt")]) == 2
    assert "missing.npz: no such file" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "textbook.npz"), "--to", "onnx", str(tmp_path / "out.pt")]) == 2
    assert "invalid choice: 'onnx'" in capsys.readouterr().err
