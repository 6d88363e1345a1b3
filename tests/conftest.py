"""Shared test helpers: the error measure, torch references, devices."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=400,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def rel_err(a, b):
    """Normwise relative error max|a − b| / max|b| (the reference b sets the scale).

    Elementwise relative error is meaningless for entries that are zero up to rounding (two
    correct summation orders can differ there by 100 %); normwise is the standard measure.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    scale = np.abs(b).max(initial=0.0)
    return float(np.abs(a - b).max(initial=0.0) / scale) if scale > 0 else float(np.abs(a).max(initial=0.0))


def gpu_available():
    from numpyrnn.backend import gpu_status

    return gpu_status()[0]


def _gpu_reason():
    from numpyrnn.backend import gpu_status

    return f"no GPU: {gpu_status()[1]}"


requires_gpu = pytest.mark.skipif(not gpu_available(), reason=_gpu_reason() if not gpu_available() else "")

#: parametrize a test over the devices: the CPU always, the GPU where there is one
DEVICES = ["cpu", pytest.param("gpu", marks=[pytest.mark.gpu, requires_gpu])]


def on(device, a):
    """``a`` (or None) as an array on ``device``."""
    from numpyrnn.backend import to_device

    return None if a is None else to_device(np.asarray(a), device)


def back(a):
    """A NumPy copy of ``a`` (or None), wherever it lives."""
    from numpyrnn.backend import asnumpy

    return None if a is None else np.array(asnumpy(a))


#: the recurrent layers in each of their forms: (class name, options), with test ids
RECURRENT_CASES = [("RNN", {"nonlinearity": "tanh"}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}),
                   ("GRU", {"reset_after": True}), ("GRU", {"reset_after": False})]
RECURRENT_IDS = ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_textbook"]


def recurrent_data(cls_name, dtype, use_lengths, seed=0):
    """Inputs for :func:`run_recurrent`: x (9, 4, 5), dy (9, 4, 16), lengths (or None), and random
    initial states and final-state gradients (a pair for LSTM)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((9, 4, 5)).astype(dtype)
    dy = rng.standard_normal((9, 4, 16)).astype(dtype)
    lengths = np.array([9, 3, 1, 6]) if use_lengths else None
    n = 2 if cls_name == "LSTM" else 1
    state, dstate = ([rng.standard_normal((4, 4, 8)).astype(dtype) for _ in range(n)] for _ in range(2))
    pack = (lambda s: tuple(s) if n == 2 else s[0])
    return x, dy, lengths, pack(state), pack(dstate)


def assert_same_results(got, want, tol):
    """Two :func:`run_recurrent` results agree: every output and every parameter gradient."""
    for a, b in zip(got[0], want[0]):
        assert rel_err(a, b) < tol
    for k in want[1]:
        assert rel_err(got[1][k], want[1][k]) < tol, k


def run_recurrent(cls_name, options, dtype, x, dy, lengths=None, device="cpu", state=None, dstate=None,
                  impl="fast"):
    """A 2-layer bidirectional layer (5 inputs, 8 units, seed 0) forward and backward on the path
    ``impl``: the NumPy copies of [y, dx, *state_n, *dstate0] and of every parameter gradient."""
    import numpyrnn

    m = getattr(numpyrnn, cls_name)(5, 8, num_layers=2, bidirectional=True, dtype=dtype, seed=0,
                                    device=device, impl=impl, **options)
    y, state_n = m.forward(x, state=state, lengths=lengths)
    dx, dstate0 = m.backward(dy, dstate)
    as_tuple = (lambda s: s if isinstance(s, tuple) else (s,))
    return ([back(a) for a in (y, dx, *as_tuple(state_n), *as_tuple(dstate0))],
            {k: back(g) for k, g in m.grads.items()})
