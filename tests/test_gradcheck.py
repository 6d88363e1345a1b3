"""The gradient checker: it passes right gradients, fails wrong ones, and says which."""

import functools
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpyrnn
from conftest import DEVICES
from numpyrnn import gradcheck
from numpyrnn.cells import lstm

LAYERS = {
    "rnn_tanh": (numpyrnn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (numpyrnn.RNN, {"nonlinearity": "relu"}),
    "lstm": (numpyrnn.LSTM, {}),
    "gru": (numpyrnn.GRU, {"reset_after": True}),
    "gru_textbook": (numpyrnn.GRU, {"reset_after": False}),
}


def layer(name, I=3, H=4, **kw):
    cls, options = LAYERS[name]
    return cls(I, H, dtype=np.float64, seed=0, **options, **kw)


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_cell_passes_full_check(name, device, impl):
    m = layer(name, device=device, impl=impl)
    x = np.random.default_rng(0).standard_normal((5, 3, 3))
    report = gradcheck.check(m, x)
    assert report.passed, str(report)
    names = [r.name for r in report.rows]
    expected_states = ["h0", "c0"] if name == "lstm" else ["h0"]
    assert names == list(m.params) + ["x"] + expected_states
    for row in report.rows:
        assert row.checked == int(np.prod(row.shape))
        assert row.max_rel_err <= 1e-7


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("name", sorted(LAYERS))
@given(T=st.integers(1, 6), B=st.integers(1, 3), I=st.integers(1, 3), H=st.integers(1, 4),
       layers=st.integers(1, 2), bidirectional=st.booleans(), use_lengths=st.booleans(),
       seed=st.integers(0, 2**31))
def test_check_passes_over_configurations(name, impl, T, B, I, H, layers, bidirectional, use_lengths, seed):
    """Right gradients pass in every configuration, on both paths: the noise floor is never too
    tight."""
    cls, options = LAYERS[name]
    m = cls(I, H, num_layers=layers, bidirectional=bidirectional, dtype=np.float64, seed=seed,
            impl=impl, **options)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I))
    lengths = rng.integers(1, T + 1, size=B) if use_lengths else None
    report = gradcheck.check(m, x, lengths=lengths, mode="fast", n_directions=3)
    assert report.passed, str(report)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_fast_mode_passes_on_a_bigger_stack(name):
    m = layer(name, I=6, H=16, num_layers=2, bidirectional=True)
    x = np.random.default_rng(1).standard_normal((12, 4, 6))
    report = gradcheck.check(m, x, lengths=[12, 3, 7, 1], mode="fast")
    assert report.passed, str(report)
    assert all(r.checked == 8 and r.worst.startswith("direction") for r in report.rows)


def scaled_backward(cls, param, factor):
    """A layer class whose backward gets one parameter's gradient wrong by ``factor``."""

    class Wrong(cls):
        def backward(self, dy, dstate=None):
            before = self.grads[param].copy()
            out = super().backward(dy, dstate)
            self.grads[param][...] = before + factor * (self.grads[param] - before)
            return out

    return Wrong


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("mode", ["full", "fast"])
def test_one_percent_wrong_gradient_fails_and_is_named(name, mode):
    cls, options = LAYERS[name]
    for param in ("weight_hh_l0", "bias_ih_l0"):
        m = scaled_backward(cls, param, 1.01)(3, 4, dtype=np.float64, seed=0, **options)
        x = np.random.default_rng(0).standard_normal((5, 2, 3))
        report = gradcheck.check(m, x, mode=mode)
        assert not report.passed
        assert report.failed == [param], str(report)
        assert report.row(param).max_rel_err > 1e-3
        assert f"FAILED: {param}" in str(report)


def test_wrong_input_and_state_gradients_are_named():
    class WrongDx(numpyrnn.LSTM):
        def backward(self, dy, dstate=None):
            dx, (dh0, dc0) = super().backward(dy, dstate)
            return dx * 1.01, (dh0, dc0 * 0.99)

    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    report = gradcheck.check(WrongDx(3, 4, dtype=np.float64, seed=0), x)
    assert report.failed == ["x", "c0"]


def test_check_fn_on_a_wrong_user_cell():
    """A student's hand-written step with a deliberate error in the recurrent-weight gradient."""
    def forward(x, h, W, U):
        h_new = np.tanh(x @ W.T + h @ U.T)
        return h_new, (x, h, W, U, h_new)

    def backward(dh_new, cache):
        x, h, W, U, h_new = cache
        da = dh_new * (1 - h_new ** 2)
        return da @ W, da @ U, da.T @ x, 1.01 * (da.T @ h)

    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((3, 2)), "h": rng.standard_normal((3, 4)),
              "W": rng.standard_normal((4, 2)), "U": rng.standard_normal((4, 4))}
    report = gradcheck.check_fn(forward, backward, inputs)
    assert report.failed == ["U"]
    assert report.row("U").worst.startswith("(")


def test_check_fn_accepts_the_cells_as_they_are():
    rng = np.random.default_rng(3)
    B, I, H = 2, 3, 4
    args = [rng.standard_normal((6, B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H)),
            rng.standard_normal((4 * H, I)), rng.standard_normal((4 * H, H)),
            rng.standard_normal(4 * H), rng.standard_normal(4 * H)]
    report = gradcheck.check_fn(functools.partial(lstm.forward, reverse=True), lstm.backward, args)
    assert report.passed, str(report)
    assert len(report.rows) == 7


def test_missing_gradient_is_a_failure():
    def forward(x, w):
        return x * w, (x, w)

    def backward(dy, cache):
        x, w = cache
        return dy * w, None         # forgot dw

    report = gradcheck.check_fn(forward, backward, [np.ones(3), np.full(3, 2.0)])
    assert report.failed == ["input 1"]
    assert report.row("input 1").note == "backward gave no gradient"


def test_numerical_gradient_of_known_functions():
    x = np.array([[0.3, -1.2], [2.0, 0.5]])
    g = gradcheck.numerical_gradient(lambda v: float(np.sum(np.sin(v) * v)), x)
    np.testing.assert_allclose(g, np.cos(x) * x + np.sin(x), rtol=1e-8)
    before = x.copy()
    gradcheck.numerical_gradient(lambda v: float(v.sum() ** 2), x)
    assert np.array_equal(x, before)
    assert gradcheck.numerical_gradient(lambda v: float(v.sum()), np.zeros(4, np.float32)).dtype == np.float64


def test_float32_is_promoted_with_a_warning_that_says_why():
    m = numpyrnn.GRU(2, 3, seed=0)                     # float32
    x = np.random.default_rng(0).standard_normal((3, 2, 2)).astype(np.float32)
    with pytest.warns(UserWarning, match="promoted to float64.*rounding"):
        report = gradcheck.check(m, x)
    assert report.passed
    assert m.dtype == np.float32 and all(p.dtype == np.float32 for p in m.params.values())


def test_check_leaves_the_module_untouched():
    m = layer("lstm")
    m.grads["weight_hh_l0"][...] = 7.0
    before = {k: v.copy() for k, v in m.params.items()}
    gradcheck.check(m, np.random.default_rng(0).standard_normal((3, 2, 3)))
    assert all(np.array_equal(before[k], m.params[k]) for k in before)
    assert np.all(m.grads["weight_hh_l0"] == 7.0)


def test_dropout_is_replayed_identically():
    """With dropout active, each evaluation must draw the same masks, or nothing would pass."""
    m = numpyrnn.LSTM(3, 4, num_layers=3, dropout=0.5, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    report = gradcheck.check(m, x)
    assert report.passed, str(report)


def test_report_table_and_dict():
    report = gradcheck.check(layer("rnn_tanh"), np.ones((2, 1, 3)))
    text = str(report)
    for column in ("tensor", "max abs err", "max rel err", "worst at", "result"):
        assert column in text
    assert text.splitlines()[-1] == "PASSED (6 of 6 tensors)"
    d = report.to_dict()
    assert d["passed"] is True and len(d["rows"]) == 6 and d["tiny"] == report.noise / report.tol
    with pytest.raises(KeyError, match="no tensor named 'nope'"):
        report.row("nope")


def test_option_errors():
    m = layer("lstm")
    x = np.ones((2, 1, 3))
    with pytest.raises(ValueError, match="mode must be one of 'full', 'fast'"):
        gradcheck.check(m, x, mode="slow")
    with pytest.raises(ValueError, match="eps must be a positive finite number"):
        gradcheck.check(m, x, eps=0)
    with pytest.raises(ValueError, match="tol must be a positive number"):
        gradcheck.check(m, x, tol=-1)
    with pytest.raises(TypeError, match=r"forward must return \(\*outputs, cache\)"):
        gradcheck.check_fn(lambda x: x, lambda d, c: (d,), [np.ones(2)])
    with pytest.raises(TypeError, match="backward must return one gradient per input"):
        gradcheck.check_fn(lambda x, y: (x * y, None), lambda d, c: (d,), [np.ones(2), np.ones(2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gradcheck.check(m, x)                          # float64 throughout: no warning


def relu_sum(x):
    return np.maximum(x, 0).sum(), x


def test_a_kink_within_eps_is_recognised_not_failed():
    """relu at x = 1e-7: a step of ±1e-6 straddles the kink and the central difference gives
    0.55, not 1; at a step of 1e-7 it gives 1.  The check passes and says why."""
    x = np.array([1e-7, 0.5, -0.3])
    report = gradcheck.check_fn(lambda x: (np.maximum(x, 0), x),
                                lambda dy, x: ((x > 0) * dy,), [x])
    row = report.rows[0]
    assert row.passed, str(report)
    assert row.note.startswith("1 at a kink")


def test_a_wrong_gradient_at_a_kink_still_fails():
    x = np.array([1e-7, 0.5, -0.3])
    report = gradcheck.check_fn(lambda x: (np.maximum(x, 0), x),
                                lambda dy, x: (np.where(x > 0, 0.99, 0.0) * dy,), [x])
    assert not report.passed


@pytest.mark.parametrize("error", [1e-2, 1e-4, 1e-5])
def test_small_errors_in_smooth_functions_are_not_excused_as_kinks(error):
    """Retrying at a smaller step must not let a small real error through: a smooth function's
    estimate does not move with the step."""
    x = np.linspace(-2, 2, 7)
    report = gradcheck.check_fn(lambda x: (np.sin(x) * 3, x),
                                lambda dy, x: (3 * np.cos(x) * (1 + error) * dy,), [x])
    assert not report.passed
    assert report.rows[0].note == ""


def test_relu_rnn_at_a_realistic_size_passes_the_fast_check():
    """Kinks are common here (ReLUs switching within ±eps along a random direction); the check
    must still pass, and still catch a 1 % error in the same model."""
    kw = dict(num_layers=2, bidirectional=True, nonlinearity="relu", dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 8, 16))
    lengths = rng.integers(1, 51, size=8)
    report = gradcheck.check(numpyrnn.RNN(16, 32, **kw), x, lengths=lengths, mode="fast", n_directions=4)
    assert report.passed, str(report)
    wrong = scaled_backward(numpyrnn.RNN, "bias_hh_l0_reverse", 1.01)(16, 32, **kw)
    report = gradcheck.check(wrong, x, lengths=lengths, mode="fast", n_directions=4)
    assert report.failed == ["bias_hh_l0_reverse"]


def test_an_entry_on_the_noise_edge_passes_on_the_second_look_and_a_wrong_one_does_not():
    """A 4-step GRU with H = 1 (found by hypothesis): one direction of weight_hh is off by 1.2ν
    at ε, right gradient and all.  Richardson's estimate, held to its own noise 3ν, passes it and
    the report says so; the same entry 1 % wrong still fails."""
    m = numpyrnn.GRU(1, 1, dtype=np.float64, seed=2)
    x = np.random.default_rng(2).standard_normal((4, 1, 1))
    report = gradcheck.check(m, x, mode="fast", n_directions=3)
    row = next(r for r in report.rows if r.name == "weight_hh_l0")
    assert report.passed and "1 on Richardson's extrapolation" in row.note

    class Wrong(numpyrnn.GRU):
        def backward(self, dy, dstate=None):
            out = super().backward(dy, dstate)
            self.grads["weight_hh_l0"][...] *= 1.01
            return out

    report = gradcheck.check(Wrong(1, 1, dtype=np.float64, seed=2), x, mode="fast", n_directions=3)
    assert [r.name for r in report.rows if not r.passed] == ["weight_hh_l0"]
