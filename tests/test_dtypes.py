"""float32 in, float32 out: every public function keeps the dtype it is given.

The exceptions are where a float64 copy is the documented point: the gradient checker (central
differences in float32 cannot tell a right gradient from a wrong one) and gradflow's
measurements.
"""

import numpy as np
import pytest

import numpyrnn
from numpyrnn import losses, optim
from numpyrnn.cells import gru, lstm, rnn
from numpyrnn.layers import Embedding, Linear, pool_backward, pool_forward

DTYPES = [np.float32, np.float64]


def assert_dtype(arrays, dtype):
    for a in arrays:
        if a is not None:
            assert a.dtype == dtype, (a.dtype, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", [rnn, lstm, gru])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_cell_functions(dtype, cell, impl):
    rng = np.random.default_rng(0)
    G, n = cell.GATES, len(cell.STATE_NAMES)
    x = rng.standard_normal((4, 3, 2)).astype(dtype)
    states = [rng.standard_normal((3, 5)).astype(dtype) for _ in range(n)]
    params = [rng.standard_normal(s).astype(dtype) for s in ((G * 5, 2), (G * 5, 5), (G * 5,), (G * 5,))]
    forward, backward = ((cell.forward, cell.backward) if impl == "fast"
                         else (cell.forward_reference, cell.backward_reference))
    *outs, cache = forward(x, *states, *params, lengths=[4, 2, 1])
    assert_dtype(outs, dtype)
    grads = backward(np.ones_like(outs[0]), *outs[1:], cache)
    assert_dtype(grads, dtype)
    *step_outs, step_cache = cell.step_forward(x[0], *states, *params)
    assert_dtype(step_outs, dtype)
    assert_dtype(cell.step_backward(*step_outs, step_cache), dtype)
    assert_dtype(cell.gate_activations(cache).values(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["last", "mean", "max"])
def test_pooling(dtype, mode):
    y = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(dtype)
    pooled, cache = pool_forward(y, [5, 2, 1], mode, num_directions=2)
    assert pooled.dtype == dtype
    assert pool_backward(np.ones_like(pooled), cache).dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_blocks_and_losses(dtype):
    rng = np.random.default_rng(0)
    lin, emb = Linear(4, 3, dtype=dtype, seed=0), Embedding(6, 4, dtype=dtype, seed=0)
    e = emb.forward(rng.integers(0, 6, (5, 2)))
    z = lin.forward(e)
    assert_dtype([e, z, lin.backward(np.ones_like(z))], dtype)
    emb.backward(np.ones_like(e))
    assert_dtype([*lin.grads.values(), *emb.grads.values()], dtype)
    for loss, targets, mask in ((losses.cross_entropy, rng.integers(0, 3, (5, 2)), np.ones((5, 2), bool)),
                                (losses.binary_cross_entropy_with_logits, rng.random((5, 2, 3)).astype(dtype),
                                 np.ones((5, 2, 3), bool)),
                                (losses.mse, rng.standard_normal((5, 2, 3)).astype(dtype), np.ones((5, 2), bool))):
        value, cache = loss(z, targets, mask)
        backward = getattr(losses, loss.__name__ + "_backward")
        assert_dtype([value, backward(1.0, cache)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_models_layers_and_optimizers(dtype, pooling):
    rng = np.random.default_rng(0)
    models = [(numpyrnn.SequenceClassifier("lstm", vocab_size=6, num_classes=3, hidden_size=4, pooling=pooling,
                                           bidirectional=True, dtype=dtype, seed=0),
               (rng.integers(0, 6, (5, 2)), rng.integers(0, 3, 2), [5, 3])),
              (numpyrnn.SequenceRegressor("gru", input_size=2, hidden_size=4, pooling=pooling, dtype=dtype, seed=0),
               (rng.standard_normal((5, 2, 2)), rng.standard_normal((2, 1)), [5, 3])),
              (numpyrnn.CharLM("rnn", vocab_size=6, hidden_size=4, dtype=dtype, seed=0),
               (rng.integers(0, 6, (5, 2)), rng.integers(0, 6, (5, 2)), [5, 3]))]
    for model, (inputs, targets, lengths) in models:
        loss, out = model.forward(inputs, targets, lengths)
        assert isinstance(loss, float) and out.dtype == dtype
        model.backward()
        assert_dtype(model.grads.values(), dtype)
        for name in ("sgd", "adam", "adamw", "adagrad", "rmsprop"):
            opt = optim.make(name, model, lr=1e-3)
            optim.clip_grad_norm(model, 0.1)
            optim.clip_grad_value(model, 0.1)
            opt.step()
            assert_dtype(model.params.values(), dtype)
    layer = numpyrnn.GRU(2, 3, dtype=dtype, seed=0)
    y, h = layer.forward(rng.standard_normal((4, 2, 2)))        # float64 input: cast to the layer's dtype
    dx, dh0 = layer.backward(np.ones((4, 2, 3)))
    assert_dtype([y, h, dx, dh0, *layer.grads.values()], dtype)
