"""gradflow's measurements: the per-step gradients of one backward, and the one-step Jacobians."""

import numpy as np
import pytest

import numpyrnn
from conftest import RECURRENT_CASES, RECURRENT_IDS, rel_err
from numpyrnn import losses, tasks
from numpyrnn.cells import gru, lstm, rnn
from numpyrnn.experiments.gradflow import gradient_norms, jacobian_norms, state_gradients, step_jacobians


def suffix_state_gradients(model, inputs, targets):
    """The measurement gradflow made before: for each t, run the sequence up to t, run the rest
    from h_t (and c_t), and read ∂L/∂h_t (∂L/∂c_t) off the rest's initial-state gradient.
    T forwards and T − 1 backwards; kept here as the independent check of the one-backward way."""
    m = model.astype(np.float64).eval()
    x = np.asarray(inputs, dtype=np.float64)
    y_true = np.asarray(targets, dtype=np.float64).reshape(x.shape[1], -1)
    T = x.shape[0]
    out = {name: [] for name in m.rnn.cell.state_names}
    for t in range(T):
        _, state = m.rnn.forward(x[:t + 1])
        states = state if isinstance(state, tuple) else (state,)
        if t == T - 1:
            last = states[0][-1]
        else:
            rest, _ = m.rnn.forward(x[t + 1:], state)
            last = rest[-1]
        _, cache = losses.mse(m.head.forward(last), y_true)
        dlast = m.head.backward(losses.mse_backward(1.0, cache))
        if t == T - 1:
            grads = (dlast,) + ((np.zeros_like(dlast),) if len(states) == 2 else ())
        else:
            dy = np.zeros_like(rest)
            dy[-1] = dlast
            _, dstate0 = m.rnn.backward(dy)
            grads = tuple(g[-1] for g in (dstate0 if isinstance(dstate0, tuple) else (dstate0,)))
        for name, g in zip(out, grads):
            out[name].append(g)
    return {name: np.stack(v) for name, v in out.items()}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_one_backward_gives_what_the_suffix_runs_gave(cell, impl):
    """∂L/∂h_t (and ∂L/∂c_t) from one backward equal the T suffix backwards' to 1e-10."""
    task = tasks.make("adding", seq_len=12, seed=0, train_size=20, val_size=10, test_size=10)
    model = task.make_model(cell, hidden_size=6, seed=1, impl=impl, dtype=np.float64)
    probe = task.examples("test", np.arange(5))
    got = state_gradients(model, probe.inputs, probe.targets)
    want = suffix_state_gradients(model, probe.inputs, probe.targets)
    assert list(got) == list(want) == (["h", "c"] if cell == "lstm" else ["h"])
    for name in want:
        assert got[name].shape == (12, 5, 6)
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-300)
    norms = gradient_norms(model, probe.inputs, probe.targets)
    np.testing.assert_allclose(norms["h"], np.linalg.norm(want["h"], axis=-1).mean(axis=1), rtol=1e-10)


@pytest.mark.parametrize("cls,options", [(getattr(numpyrnn, n), o) for n, o in RECURRENT_CASES], ids=RECURRENT_IDS)
def test_kept_state_gradients_agree_on_both_paths_with_lengths_and_stacks(cls, options):
    x = np.random.default_rng(0).standard_normal((7, 3, 2))
    kept = {}
    for impl in ("fast", "reference"):
        m = cls(2, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0, impl=impl, **options)
        y, _ = m.forward(x, lengths=[7, 4, 1])
        m.backward(np.ones_like(y), keep_state_grads=True)
        kept[impl] = [m.state_grads(layer, direction) for layer in (0, 1) for direction in (0, 1)]
    for a, b in zip(kept["fast"], kept["reference"]):
        assert list(a) == list(b)
        for k in a:
            assert a[k].shape == (7, 3, 4) and rel_err(a[k], b[k]) < 1e-12, k


def test_state_grads_need_a_backward_that_kept_them():
    m = numpyrnn.LSTM(2, 3, dtype=np.float64)
    y, _ = m.forward(np.ones((4, 1, 2)))
    m.backward(np.ones_like(y))                                    # off by default
    with pytest.raises(RuntimeError, match=r"needs a backward\(..., keep_state_grads=True\) first"):
        m.state_grads()
    m.backward(np.ones_like(y), keep_state_grads=True)
    assert set(m.state_grads()) == {"h", "c"}
    with pytest.raises(ValueError, match="no layer 1, direction 0"):
        m.state_grads(layer=1)


def finite_difference_jacobian(f, state, eps=1e-6):
    """∂f/∂state column by column, central differences; state (S,) → (S_out, S)."""
    cols = []
    for j in range(state.size):
        e = np.zeros_like(state)
        e[j] = eps
        cols.append((f(state + e) - f(state - e)) / (2 * eps))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("cls,options", [(getattr(numpyrnn, n), o) for n, o in RECURRENT_CASES], ids=RECURRENT_IDS)
def test_one_step_jacobians_match_finite_differences_of_the_step(cls, options):
    H, B, T = 4, 3, 5
    layer = cls(2, H, dtype=np.float64, seed=3, **options)
    x = np.random.default_rng(1).standard_normal((T, B, 2))
    y, _ = layer.forward(x)
    gates = layer.gate_activations()
    p = [layer.params[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
    t = 3
    h_prev = y[t - 1]
    c_prev = gates["c"][t - 1] if "c" in gates else None
    J = step_jacobians(layer.cell, x[t], (h_prev,) if c_prev is None else (h_prev, c_prev),
                       layer.cell_params(0, 0))
    for b in range(B):
        if cls is numpyrnn.LSTM:
            def f(s):
                h, c, _ = lstm.step_forward(x[t, b:b + 1], s[None, :H], s[None, H:], *p)
                return np.concatenate([h[0], c[0]])
            start = np.concatenate([h_prev[b], c_prev[b]])
        else:
            cell = rnn if cls is numpyrnn.RNN else gru

            def f(s):
                return cell.step_forward(x[t, b:b + 1], s[None], *p, **options)[0][0]
            start = h_prev[b]
        want = finite_difference_jacobian(f, start)
        assert J[b].shape == want.shape
        np.testing.assert_allclose(J[b], want, rtol=1e-6, atol=1e-8)


def test_jacobian_norms_are_the_largest_singular_values():
    task = tasks.make("adding", seq_len=6, seed=0, train_size=20, val_size=10, test_size=10)
    model = task.make_model("gru", hidden_size=5, seed=0, dtype=np.float64)
    probe = task.examples("test", np.arange(4))
    j = jacobian_norms(model, probe.inputs, batch=3)
    assert len(j["mean"]) == len(j["max"]) == 6
    assert all(0 < a <= b for a, b in zip(j["mean"], j["max"]))
