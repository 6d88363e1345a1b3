"""The layer API: PyTorch's names, shapes and defaults; state dicts; errors before work."""

import numpy as np
import pytest

import numpyrnn
from conftest import DEVICES, back

CLASSES = {"RNN": 1, "LSTM": 4, "GRU": 3}     # class → gate blocks


@pytest.mark.parametrize("cls_name,G", CLASSES.items())
def test_parameter_names_shapes_and_order(cls_name, G):
    m = getattr(numpyrnn, cls_name)(3, 5, num_layers=2, bidirectional=True)
    expected = []
    for layer in range(2):
        for suffix in ("", "_reverse"):
            inp = 3 if layer == 0 else 10
            expected += [(f"weight_ih_l{layer}{suffix}", (G * 5, inp)),
                         (f"weight_hh_l{layer}{suffix}", (G * 5, 5)),
                         (f"bias_ih_l{layer}{suffix}", (G * 5,)),
                         (f"bias_hh_l{layer}{suffix}", (G * 5,))]
    assert [(k, v.shape) for k, v in m.params.items()] == expected
    assert list(m.grads) == [k for k, _ in expected]
    assert all(np.all(g == 0) for g in m.grads.values())


@pytest.mark.parametrize("cls_name", CLASSES)
def test_same_names_and_shapes_as_torch(cls_name):
    torch = pytest.importorskip("torch")
    ours = getattr(numpyrnn, cls_name)(4, 6, num_layers=3, bidirectional=True, bias=False)
    theirs = getattr(torch.nn, cls_name)(4, 6, num_layers=3, bidirectional=True, bias=False)
    assert [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()] == \
           [(k, v.shape) for k, v in ours.state_dict().items()]


def test_initialisation_is_uniform_within_one_over_sqrt_hidden():
    m = numpyrnn.LSTM(10, 64, num_layers=2, seed=0)
    bound = 1 / np.sqrt(64)
    values = np.concatenate([p.ravel() for p in m.params.values()])
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.95 * bound and values.max() > 0.95 * bound   # fills the range
    assert abs(values.mean()) < 0.01 * bound and abs(values.std() - bound / np.sqrt(3)) < 0.01 * bound


def test_seed_gives_the_same_weights_in_either_dtype():
    a = numpyrnn.GRU(3, 4, seed=11)
    b = numpyrnn.GRU(3, 4, seed=11)
    c = numpyrnn.GRU(3, 4, seed=11, dtype=np.float64)
    d = numpyrnn.GRU(3, 4, seed=12)
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k])
        assert np.array_equal(a.params[k], c.params[k].astype(np.float32))
        assert not np.array_equal(a.params[k], d.params[k])


def test_torch_state_dict_loads_as_is():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.LSTM(3, 4, num_layers=2)
    ours = numpyrnn.LSTM(3, 4, num_layers=2)
    ours.load_state_dict({k: t.numpy() for k, t in theirs.state_dict().items()})
    for k, t in theirs.state_dict().items():
        assert np.array_equal(ours.params[k], t.numpy())
    # and back: torch takes ours
    theirs2 = torch.nn.LSTM(3, 4, num_layers=2)
    theirs2.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})


def test_state_dict_is_a_copy_and_round_trips():
    m = numpyrnn.RNN(2, 3, seed=0)
    sd = m.state_dict()
    sd["weight_hh_l0"][...] = 0
    assert not np.all(m.params["weight_hh_l0"] == 0)
    other = numpyrnn.RNN(2, 3, seed=1)
    ref = other.params["weight_ih_l0"]
    other.load_state_dict(m.state_dict())
    assert other.params["weight_ih_l0"] is ref            # written in place: optimizers keep their references
    assert all(np.array_equal(m.params[k], other.params[k]) for k in m.params)


def test_load_state_dict_errors_change_nothing():
    m = numpyrnn.GRU(2, 3, seed=0)
    before = m.state_dict()
    good = m.state_dict()
    bad_cases = [
        ({k: v for k, v in good.items() if k != "bias_hh_l0"}, KeyError, r"missing \['bias_hh_l0'\]"),
        ({**good, "weight_ih_l1": good["weight_ih_l0"]}, KeyError, r"unexpected \['weight_ih_l1'\]"),
        ({**good, "weight_hh_l0": np.zeros((9, 4))}, ValueError,
         r"state\['weight_hh_l0'\] has shape \(9, 4\), expected \(9, 3\)"),
        ({**{k: v * 0 for k, v in good.items()}, "bias_ih_l0": np.full(9, np.nan)}, ValueError,
         r"state\['bias_ih_l0'\] contains NaN or Inf"),
        ({**good, "bias_ih_l0": np.array(["a"] * 9)}, TypeError, "must hold real numbers"),
        ([1, 2], TypeError, "state must be a dict"),
    ]
    for state, exc, message in bad_cases:
        with pytest.raises(exc, match=message):
            m.load_state_dict(state)
        assert all(np.array_equal(before[k], m.params[k]) for k in before)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cls_name", CLASSES)
def test_shapes_of_outputs_and_states(cls_name, device):
    m = getattr(numpyrnn, cls_name)(3, 5, num_layers=2, bidirectional=True, batch_first=True, seed=0,
                                    device=device)
    x = np.zeros((4, 7, 3), np.float32)            # (B, T, I)
    y, state = m.forward(x)
    assert y.shape == (4, 7, 10) and y.dtype == np.float32
    states = state if isinstance(state, tuple) else (state,)
    assert len(states) == (2 if cls_name == "LSTM" else 1)
    assert all(s.shape == (4, 4, 5) for s in states)
    dx, dstate0 = m.backward(np.ones(y.shape, np.float32))
    assert dx.shape == x.shape and np.all(np.isfinite(back(dx)))
    assert all(d.shape == (4, 4, 5) for d in (dstate0 if isinstance(dstate0, tuple) else (dstate0,)))


def test_call_is_forward_and_outputs_are_private():
    m = numpyrnn.RNN(2, 3, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 2, 2))
    y1, h1 = m(x)
    y1[...] = 99.0                                   # the user owns y: writing to it is fine ...
    x[...] = 0.0                                     # ... and so is changing x after forward
    dx, _ = m.backward(np.ones((4, 2, 3)))
    m2 = numpyrnn.RNN(2, 3, seed=0, dtype=np.float64)
    m2.forward(np.random.default_rng(0).standard_normal((4, 2, 2)))
    dx2, _ = m2.backward(np.ones((4, 2, 3)))
    assert np.array_equal(dx, dx2)                   # the backward did not see either change
    assert all(np.array_equal(m.grads[k], m2.grads[k]) for k in m.grads)


def test_gradients_accumulate_until_zero_grad():
    m = numpyrnn.LSTM(2, 3, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((3, 2, 2))
    y, _ = m.forward(x)
    m.backward(np.ones_like(y))
    once = {k: v.copy() for k, v in m.grads.items()}
    m.forward(x)
    m.backward(np.ones_like(y))
    assert all(np.allclose(m.grads[k], 2 * once[k]) for k in once)
    m.zero_grad()
    assert all(np.all(g == 0) for g in m.grads.values())


def test_backward_with_state_gradient_only():
    m = numpyrnn.GRU(2, 3, seed=0, dtype=np.float64)
    y, h = m.forward(np.ones((5, 2, 2)))
    dx, dh0 = m.backward(None, np.ones_like(h))
    assert dx.shape == (5, 2, 2) and dh0.shape == (1, 2, 3)
    assert np.any(dx != 0)


def test_lstm_state_gradient_parts_may_be_none():
    m = numpyrnn.LSTM(2, 3, seed=0, dtype=np.float64)
    y, (h, c) = m.forward(np.ones((5, 2, 2)))
    dx, (dh0, dc0) = m.backward(None, (None, np.ones_like(c)))
    assert np.any(dx != 0) and np.any(dc0 != 0)


def test_unbatched_input():
    m = numpyrnn.LSTM(3, 4, num_layers=2, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((6, 3))
    y, (h, c) = m.forward(x)
    assert y.shape == (6, 4) and h.shape == (2, 4) and c.shape == (2, 4)
    dx, (dh0, dc0) = m.backward(np.ones_like(y), (np.ones_like(h), None))
    assert dx.shape == (6, 3) and dh0.shape == (2, 4)
    yb, (hb, cb) = m.forward(x[:, None, :])
    assert np.array_equal(y, yb[:, 0]) and np.array_equal(h, hb[:, 0])
    dxb, (dh0b, _) = m.backward(np.ones_like(yb), (np.ones_like(hb), None))
    assert np.array_equal(dx, dxb[:, 0]) and np.array_equal(dh0, dh0b[:, 0])
    with pytest.raises(ValueError, match="lengths applies to a batch"):
        m.forward(x, lengths=[6])


def test_lengths_give_zero_outputs_and_own_final_states():
    m = numpyrnn.GRU(2, 3, bidirectional=True, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((5, 3, 2))
    y, h = m.forward(x, lengths=[5, 2, 3])
    assert np.all(y[2:, 1] == 0) and np.all(y[3:, 2] == 0)
    y1, h1 = m.forward(x[:2, 1:2])
    assert np.allclose(y[:2, 1], y1[:, 0]) and np.allclose(h[:, 1], h1[:, 0])


def test_float32_and_float64_inputs_are_cast_to_the_layer_dtype():
    m = numpyrnn.RNN(2, 3, seed=0)
    y, _ = m.forward(np.ones((2, 1, 2), np.float64))
    assert y.dtype == np.float32
    y, _ = m.forward([[[1.0, 2.0]]])                   # nested lists work too
    assert y.shape == (1, 1, 3)


def test_astype_copies_and_keeps_weights():
    m = numpyrnn.LSTM(2, 3, seed=0)
    m64 = m.astype(np.float64)
    assert m64.dtype == np.float64 and m.dtype == np.float32
    assert all(m64.params[k].dtype == np.float64 for k in m64.params)
    assert all(np.array_equal(m64.params[k].astype(np.float32), m.params[k]) for k in m.params)
    m64.params["weight_ih_l0"][...] = 0
    assert not np.all(m.params["weight_ih_l0"] == 0)


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_dropout_acts_only_in_training_and_is_seeded(impl):
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    a = numpyrnn.LSTM(3, 8, num_layers=2, dropout=0.5, seed=5, dtype=np.float64, impl=impl)
    b = numpyrnn.LSTM(3, 8, num_layers=2, dropout=0.5, seed=5, dtype=np.float64, impl=impl)
    ya, _ = a.forward(x)
    yb, _ = b.forward(x)
    assert np.array_equal(ya, yb)                      # same seed, same masks
    ya2, _ = a.forward(x)
    assert not np.array_equal(ya, ya2)                 # a new mask each forward
    a.eval()
    e1, _ = a.forward(x)
    e2, _ = a.forward(x)
    assert np.array_equal(e1, e2)
    ref = numpyrnn.LSTM(3, 8, num_layers=2, seed=5, dtype=np.float64, impl=impl)
    assert np.array_equal(e1, ref.forward(x)[0])       # eval mode = no dropout at all
    with pytest.warns(UserWarning, match="dropout acts between stacked layers"):
        numpyrnn.GRU(2, 2, dropout=0.3)


def test_repr_and_config():
    m = numpyrnn.GRU(3, 4, num_layers=2, bidirectional=True, reset_after=False)
    assert repr(m) == ("GRU(3, 4, num_layers=2, bidirectional=True, reset_after=False, "
                       "dtype=float32, device='cpu')")
    cfg = m.config()
    assert cfg["type"] == "GRU" and cfg["reset_after"] is False and cfg["dtype"] == "float32"
    rebuilt = numpyrnn.GRU(**{k: v for k, v in cfg.items() if k != "type"})
    assert [p.shape for p in rebuilt.params.values()] == [p.shape for p in m.params.values()]
    assert m.num_parameters() == sum(p.size for p in m.params.values())


# --------------------------------------------------------------------------- errors before work

@pytest.mark.parametrize("kwargs,exc,message", [
    ({"input_size": 0}, ValueError, "input_size must be ≥ 1, got 0"),
    ({"hidden_size": 2.5}, TypeError, "hidden_size must be an integer, got 2.5"),
    ({"num_layers": True}, TypeError, "num_layers must be an integer, got True"),
    ({"dropout": 1.0}, ValueError, r"dropout must be a probability in \[0, 1\), got 1.0"),
    ({"bidirectional": "yes"}, TypeError, "bidirectional must be True or False, got 'yes'"),
    ({"dtype": np.int32}, TypeError, "dtype must be float32 or float64, got int32"),
    ({"dtype": np.float16}, TypeError, "dtype must be float32 or float64, got float16"),
    ({"device": "tpu"}, ValueError, "device must be one of 'auto', 'cpu', 'gpu', got 'tpu'"),
    ({"seed": -1}, ValueError, "seed must be ≥ 0, got -1"),
])
def test_constructor_errors(kwargs, exc, message):
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(exc, match=message):
        numpyrnn.LSTM(**args)


def test_rnn_nonlinearity_and_gru_reset_after_errors():
    with pytest.raises(ValueError, match="nonlinearity must be one of 'tanh', 'relu', got 'gelu'"):
        numpyrnn.RNN(2, 3, nonlinearity="gelu")
    with pytest.raises(TypeError, match="reset_after must be True or False"):
        numpyrnn.GRU(2, 3, reset_after=1)


def test_forward_errors_name_the_argument():
    m = numpyrnn.LSTM(3, 4, num_layers=2)
    x = np.zeros((5, 2, 3), np.float32)
    cases = [
        ((np.zeros((5, 2, 4)),), {}, ValueError,
         r"x must have input_size=3 features in its last dimension, got shape \(5, 2, 4\)"),
        ((np.zeros((5,)),), {}, ValueError, r"x must be 3-d \(T, B, input_size\)"),
        ((np.zeros((5, 2, 3), np.int64),), {}, TypeError, "x must hold floating-point numbers, got dtype int64"),
        ((np.zeros((0, 2, 3)),), {}, ValueError, "x must hold at least one step"),
        ((np.full((5, 2, 3), np.nan),), {}, ValueError, r"x contains NaN or Inf \(first at index \(0, 0, 0\)"),
        ((x, np.zeros((2, 2, 4))), {}, TypeError, r"state of LSTM must be a tuple \(h0, c0\)"),
        ((x, (np.zeros((1, 2, 4)), np.zeros((2, 2, 4)))), {}, ValueError,
         r"h0 must have shape \(2, 2, 4\), got \(1, 2, 4\)"),
        ((x, (np.zeros((2, 2, 4)), np.full((2, 2, 4), np.inf))), {}, ValueError, "c0 contains NaN or Inf"),
        ((x,), {"lengths": [5, 6]}, ValueError, r"lengths must lie in 1..5 \(the padded length T\), got lengths\[1\] = 6"),
        ((x,), {"lengths": [5, 0]}, ValueError, r"got lengths\[1\] = 0"),
        ((x,), {"lengths": [5]}, ValueError, r"lengths must have shape \(2,\)"),
        ((x,), {"lengths": [2.5, 1]}, TypeError, "lengths must be integers, got dtype float64"),
        ((None,), {}, TypeError, "x must be an array, got None"),
    ]
    for args, kwargs, exc, message in cases:
        with pytest.raises(exc, match=message):
            m.forward(*args, **kwargs)
    batch_first = numpyrnn.GRU(3, 4, batch_first=True)
    with pytest.raises(ValueError, match=r"x must be 3-d \(B, T, input_size\)"):
        batch_first.forward(np.zeros((1, 2, 3, 4)))
    with pytest.raises(TypeError, match="state of GRU must be one array h0"):
        batch_first.forward(np.zeros((2, 5, 3)), (np.zeros((1, 2, 4)),))


def test_backward_errors():
    m = numpyrnn.LSTM(3, 4)
    with pytest.raises(RuntimeError, match=r"LSTM.backward\(\) needs a forward\(\) first"):
        m.backward(np.zeros((5, 2, 4)))
    y, _ = m.forward(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"dy must have shape \(5, 2, 4\), got \(5, 2, 3\)"):
        m.backward(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"dc_n must have shape \(1, 2, 4\)"):
        m.backward(np.zeros((5, 2, 4)), (None, np.zeros((2, 4))))
    with pytest.raises(ValueError, match="dy contains NaN or Inf"):
        m.backward(np.full((5, 2, 4), np.nan))
    m.astype(np.float64)                               # a copy: the original keeps its cache
    m.backward(np.zeros((5, 2, 4)))


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("cls_name", CLASSES)
def test_truncated_bptt_chunks_compose_into_full_bptt(cls_name, impl):
    """forward(x, state) continues from the previous chunk's final state, and each chunk's
    backward stops at its boundary, returning dstate0.  Handing that dstate0 back to the
    previous chunk's backward reproduces full backpropagation exactly: nothing is lost at the
    boundary, only deferred."""
    cls = getattr(numpyrnn, cls_name)
    kw = dict(num_layers=2, bidirectional=False, dtype=np.float64, impl=impl)
    full, first, second = (cls(3, 4, seed=0, **kw) for _ in range(3))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 2, 3))
    dy = rng.standard_normal((9, 2, 4))

    y, _ = full.forward(x)
    dx, dstate0 = full.backward(dy)

    y1, state1 = first.forward(x[:4])
    y2, _ = second.forward(x[4:], state1)
    assert np.allclose(np.concatenate([y1, y2]), y, rtol=0, atol=1e-14)
    dx2, dstate1 = second.backward(dy[4:])                 # truncated: stops at the boundary
    assert np.any((dstate1[0] if isinstance(dstate1, tuple) else dstate1) != 0)
    dx1, dstate0_chunks = first.backward(dy[:4], dstate1)  # ... unless the gradient is handed back
    assert np.allclose(np.concatenate([dx1, dx2]), dx, rtol=0, atol=1e-13)
    as_tuple = lambda s: s if isinstance(s, tuple) else (s,)   # noqa: E731
    for a, b in zip(as_tuple(dstate0_chunks), as_tuple(dstate0)):
        assert np.allclose(a, b, rtol=0, atol=1e-13)
    for k in full.grads:
        assert np.allclose(first.grads[k] + second.grads[k], full.grads[k], rtol=0, atol=1e-12)


def test_calling_a_module_calls_the_forward_of_its_own_class():
    """m(x) is m.forward(x) for a subclass that overrides forward, as in PyTorch."""
    class Doubled(numpyrnn.Linear):
        def forward(self, x, **kwargs):
            return 2 * super().forward(x, **kwargs)

    class Reversed(numpyrnn.GRU):
        def forward(self, x, state=None, lengths=None):
            return super().forward(x[::-1], state, lengths)

    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    lin = Doubled(3, 2, dtype=np.float64, seed=0)
    assert np.array_equal(lin(x), 2 * numpyrnn.Linear.forward(lin, x))
    gru = Reversed(3, 5, dtype=np.float64, seed=0)
    assert np.array_equal(gru(x)[0], numpyrnn.GRU.forward(gru, x[::-1])[0])
    plain = numpyrnn.LSTM(3, 5, dtype=np.float64, seed=0)
    assert np.array_equal(plain(x, lengths=[4, 2])[0], plain.forward(x, lengths=[4, 2])[0])


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_a_diverged_layer_gives_nan_not_an_input_error(impl):
    """NaN in a layer's own weights (a diverged model) flows to the outputs and gradients as NaN:
    the trainer reports it; no check mistakes it for a bad input."""
    m = numpyrnn.GRU(3, 4, num_layers=2, dtype=np.float64, seed=0, impl=impl)
    m.params["weight_hh_l0"][0, 0] = np.nan
    y, _ = m.forward(np.ones((3, 2, 3)))
    assert np.isnan(y).any()
    with np.errstate(invalid="ignore"):
        dx, _ = m.backward(np.ones_like(y))
    assert np.isnan(dx).any()
