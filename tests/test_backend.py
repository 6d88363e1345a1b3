"""Device choice: NumPy unless a GPU is asked for and present; clear errors otherwise."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpyrnn
from numpyrnn import backend
from conftest import gpu_available

no_gpu = pytest.mark.skipif(gpu_available(), reason="this machine has a GPU; the test is about machines without one")


def test_importing_numpyrnn_does_not_import_cupy():
    code = "import sys, numpyrnn; numpyrnn.LSTM(2, 3, device='cpu'); print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@no_gpu
def test_auto_picks_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    assert backend.resolve_device("auto") == "cpu"
    assert numpyrnn.LSTM(2, 3).device == "cpu"
    assert isinstance(numpyrnn.LSTM(2, 3).params["weight_ih_l0"], np.ndarray)


@no_gpu
def test_asking_for_a_gpu_without_one_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    with pytest.raises(backend.DeviceUnavailableError, match=r"a GPU was requested \(device argument\) but cannot be used"):
        backend.resolve_device("gpu")
    with pytest.raises(numpyrnn.DeviceUnavailableError, match="numpyrnn\\[gpu\\]|no usable GPU|sees no GPU"):
        numpyrnn.GRU(2, 3, device="gpu")


@no_gpu
def test_environment_variable_overrides_auto(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "gpu")
    with pytest.raises(backend.DeviceUnavailableError, match=r"NUMPYRNN_DEVICE=gpu"):
        backend.resolve_device("auto")
    assert backend.resolve_device("cpu") == "cpu"      # an explicit argument wins
    monkeypatch.setenv(backend.ENV_VAR, "CPU")
    assert backend.resolve_device("auto") == "cpu"
    monkeypatch.setenv(backend.ENV_VAR, "tpu")
    with pytest.raises(ValueError, match="NUMPYRNN_DEVICE must be one of auto, cpu, gpu, got 'tpu'"):
        backend.resolve_device()


def test_auto_picks_the_gpu_when_one_is_there(monkeypatch):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    monkeypatch.setattr(backend, "_gpu_probe", (True, ""))
    assert backend.resolve_device("auto") == "gpu"
    monkeypatch.setattr(backend, "_gpu_probe", (False, "no driver"))
    assert backend.resolve_device("auto") == "cpu"
    with pytest.raises(backend.DeviceUnavailableError, match="no driver"):
        backend.resolve_device("gpu")


def test_device_names_are_checked():
    for bad in ("cuda", "", None, 0):
        with pytest.raises(ValueError, match="device must be one of 'auto', 'cpu', 'gpu'"):
            backend.resolve_device(bad)


def test_numpy_helpers():
    a = np.arange(3.0)
    assert backend.array_module(a) is np
    assert backend.array_module(a, [1, 2]) is np
    assert backend.asnumpy(a) is a
    assert numpyrnn.asnumpy([1, 2]).tolist() == [1, 2]
    assert backend.to_device(a, "cpu") is a
    assert backend.device_of(a) == "cpu"


@settings(deadline=None, max_examples=50)
@given(rows=st.integers(1, 12), n=st.integers(0, 40), width=st.integers(1, 5),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_scatter_add_accumulates_repeated_indices(rows, n, width, dtype, seed):
    """target[indices[k]] += values[k] for every k, repeats adding up, as a loop would; the rest
    of target is left as it was."""
    rng = np.random.default_rng(seed)
    target = rng.standard_normal((rows, width)).astype(dtype)
    indices = rng.integers(0, rows, n)
    values = rng.standard_normal((n, width)).astype(dtype)
    expected = target.astype(np.float64)
    for k in range(n):
        expected[indices[k]] += values[k]
    got = target.copy()
    backend.scatter_add(got, indices, values)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5 if dtype == np.float32 else 1e-12)
