"""The same cells on CuPy: generic and fused kernels must match the CPU.

Where no GPU is present every GPU test skips, saying why; the last tests here run anywhere and
check what must hold without a GPU.
"""

import numpy as np
import pytest

import numpyrnn
from conftest import RECURRENT_CASES, assert_same_results, gpu_available, recurrent_data, run_recurrent
from numpyrnn import backend, gradcheck, optim, tasks
from numpyrnn.backend import gpu_status
from numpyrnn.train import Trainer

requires_gpu = pytest.mark.skipif(not gpu_available(), reason=f"no GPU: {gpu_status()[1]}")

CASES = [(getattr(numpyrnn, name), options) for name, options in RECURRENT_CASES]
TOL = {np.float64: 1e-10, np.float32: 1e-5}


@requires_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("cls,options", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("use_lengths", [False, True])
@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.5])
def test_generic_and_fused_gpu_paths_match_the_cpu(monkeypatch, cls, options, dtype, use_lengths, recurrent_dropout):
    """And under recurrent dropout the same masks (drawn by NumPy, then moved) give the CPU's
    results, fused or not."""
    if recurrent_dropout:
        options = {**options, "recurrent_dropout": recurrent_dropout}
    x, dy, lengths, state, dstate = recurrent_data(cls.__name__, dtype, use_lengths)
    monkeypatch.delenv(backend.FUSED_ENV_VAR, raising=False)
    cpu = run_recurrent(cls.__name__, options, dtype, x, dy, lengths, "cpu", state, dstate)
    generic = run_recurrent(cls.__name__, options, dtype, x, dy, lengths, "gpu", state, dstate)
    monkeypatch.setenv(backend.FUSED_ENV_VAR, "1")
    fused = run_recurrent(cls.__name__, options, dtype, x, dy, lengths, "gpu", state, dstate)
    for gpu in (generic, fused):
        assert_same_results(gpu, cpu, TOL[dtype])


@requires_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("cls,options", CASES)
@pytest.mark.parametrize("impl", ["fast", "generic"])
def test_zoneout_on_the_gpu_matches_the_cpu(monkeypatch, cls, options, impl):
    """Zoneout's masks are drawn by NumPy and moved, so the GPU's fast path (fused bodies on and
    off) and generic loop give the CPU's results under the same masks (derivations §17)."""
    options = {**options, "zoneout": 0.3, **({"zoneout_c": 0.5} if cls is numpyrnn.LSTM else {})}
    x, dy, lengths, state, dstate = recurrent_data(cls.__name__, np.float64, use_lengths=True)
    monkeypatch.delenv(backend.FUSED_ENV_VAR, raising=False)
    cpu = run_recurrent(cls.__name__, options, np.float64, x, dy, lengths, "cpu", state, dstate, impl=impl)
    plain = run_recurrent(cls.__name__, options, np.float64, x, dy, lengths, "gpu", state, dstate, impl=impl)
    monkeypatch.setenv(backend.FUSED_ENV_VAR, "1")
    fused = run_recurrent(cls.__name__, options, np.float64, x, dy, lengths, "gpu", state, dstate, impl=impl)
    for gpu in (plain, fused):
        assert_same_results(gpu, cpu, TOL[np.float64])


@requires_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("cls,options", CASES)
@pytest.mark.parametrize("fused", ["0", "1"])
def test_gradcheck_on_the_gpu(monkeypatch, cls, options, fused):
    monkeypatch.setenv(backend.FUSED_ENV_VAR, fused)
    m = cls(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0, device="gpu", **options)
    report = gradcheck.check(m, np.random.default_rng(0).standard_normal((5, 2, 3)), lengths=[5, 2])
    assert report.passed, str(report)


@requires_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("name,cell", [("sentiment", "lstm"), ("adding", "gru"), ("charlm", "rnn"), ("copy", "lstm")])
def test_models_and_training_on_the_gpu_follow_the_cpu(name, cell):
    options = {"sentiment": dict(train_size=300, val_size=50, test_size=50, seq_len=20),
               "adding": dict(train_size=300, val_size=50, test_size=50, seq_len=10),
               "charlm": dict(size=5000, seq_len=16), "copy": dict(train_size=300, val_size=50, test_size=50, seq_len=5)}
    histories = {}
    for device in ("cpu", "gpu"):
        task = tasks.make(name, seed=0, **options[name])
        model = task.make_model(cell, hidden_size=8, seed=0, dtype=np.float64, device=device)
        trainer = Trainer(model, task, optim.Adam(model, lr=1e-2), batch_size=8, clip=1.0, eval_every=5,
                          progress=False)
        result = trainer.fit(steps=10)
        histories[device] = ([r["train_loss"] for r in trainer.history], result[f"test_{task.metric}"])
    for a, b in zip(histories["gpu"][0], histories["cpu"][0]):
        assert abs(a - b) <= 1e-9 * max(1.0, abs(b))
    assert abs(histories["gpu"][1] - histories["cpu"][1]) <= 1e-9 * max(1.0, abs(histories["cpu"][1]))


@requires_gpu
@pytest.mark.gpu
def test_moving_models_and_optimizers_between_devices(tmp_path):
    m = numpyrnn.SequenceClassifier("gru", vocab_size=9, hidden_size=4, num_classes=2, seed=0, device="cpu")
    opt = optim.Adam(m)
    ids, labels = np.array([[1, 2], [3, 4]]), np.array([0, 1])
    m.forward(ids, labels)
    m.backward()
    opt.step()
    before = m.state_dict()
    m.to("gpu")
    opt.to("gpu")
    assert all(backend.device_of(p) == "gpu" for p in m.params.values())
    assert all(backend.device_of(b) == "gpu" for s in opt.state.values() for b in s.values())
    loss, _ = m.forward(ids, labels)
    m.backward()
    opt.step()
    numpyrnn.save(m, tmp_path / "m.npz")                  # saved from the GPU, loaded on the CPU
    assert numpyrnn.load(tmp_path / "m.npz", device="cpu").config() == m.config()
    m.to("cpu")
    assert all(isinstance(p, np.ndarray) for p in m.params.values())
    assert any(not np.array_equal(before[k], m.params[k]) for k in before)


# --------------------------------------------------------------------------- without a GPU too

def test_fused_kernels_never_run_on_numpy(monkeypatch):
    monkeypatch.setenv(backend.FUSED_ENV_VAR, "1")
    assert backend.fused_enabled(np) is False
    from numpyrnn.cells.fast import fused

    assert fused.choose(np, "the NumPy body", "lstm_forward") == "the NumPy body"
    m = numpyrnn.LSTM(3, 4, dtype=np.float64, seed=0)
    report = gradcheck.check(m, np.random.default_rng(0).standard_normal((4, 2, 3)))
    assert report.passed


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU")
def test_moving_to_a_missing_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    m = numpyrnn.CharLM("lstm", vocab_size=5, hidden_size=3)
    with pytest.raises(numpyrnn.DeviceUnavailableError, match="a GPU was requested"):
        m.to("gpu")
    assert m.device == "cpu" and all(isinstance(p, np.ndarray) for p in m.params.values())
    with pytest.raises(numpyrnn.DeviceUnavailableError):
        optim.Adam(m).to("gpu")
    assert m.to("cpu") is m and m.to("auto").device == "cpu"
