"""The same cells on CuPy: every result must match the CPU's.  Skipped without a GPU."""

import numpy as np
import pytest

import numpyrnn
from conftest import gpu_available, rel_err
from numpyrnn.backend import gpu_status

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not gpu_available(), reason=f"no GPU: {gpu_status()[1]}")]

CASES = [(numpyrnn.RNN, {"nonlinearity": "tanh"}), (numpyrnn.RNN, {"nonlinearity": "relu"}),
         (numpyrnn.LSTM, {}), (numpyrnn.GRU, {"reset_after": True}), (numpyrnn.GRU, {"reset_after": False})]


@pytest.mark.parametrize("cls,options", CASES)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_gpu_matches_cpu(cls, options, dtype, tol):
    kw = dict(num_layers=2, bidirectional=True, dtype=dtype, seed=0, **options)
    cpu, gpu = cls(5, 8, device="cpu", **kw), cls(5, 8, device="gpu", **kw)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 4, 5)).astype(dtype)
    lengths = np.array([9, 3, 1, 6])
    y_c, s_c = cpu.forward(x, lengths=lengths)
    y_g, s_g = gpu.forward(x, lengths=lengths)
    dy = rng.standard_normal(y_c.shape).astype(dtype)
    dx_c, _ = cpu.backward(dy)
    dx_g, _ = gpu.backward(numpyrnn.asnumpy(dy))
    assert rel_err(numpyrnn.asnumpy(y_g), y_c) < tol
    assert rel_err(numpyrnn.asnumpy(dx_g), dx_c) < tol
    for k in cpu.grads:
        assert rel_err(numpyrnn.asnumpy(gpu.grads[k]), cpu.grads[k]) < tol


def test_gradcheck_on_the_gpu():
    from numpyrnn import gradcheck

    m = numpyrnn.LSTM(3, 4, dtype=np.float64, seed=0, device="gpu")
    report = gradcheck.check(m, np.random.default_rng(0).standard_normal((4, 2, 3)))
    assert report.passed, str(report)
