"""The cell functions themselves: step against sequence, lengths, immutability, edge shapes."""

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import DEVICES, back, on, rel_err
from numpyrnn import gradcheck
from numpyrnn.backend import array_module
from numpyrnn.cells import gru, lstm, rnn

# name → (cell module, options); the four-argument weights follow the states
CELLS = {
    "rnn_tanh": (rnn, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnn, {"nonlinearity": "relu"}),
    "lstm": (lstm, {}),
    "gru": (gru, {"reset_after": True}),
    "gru_textbook": (gru, {"reset_after": False}),
}


def make_args(cell, T, B, I, H, seed, bias=True, device="cpu"):
    """x, the initial states and the four parameters, float64, on ``device``."""
    rng = np.random.default_rng(seed)
    G = cell.GATES
    x = rng.standard_normal((T, B, I))
    states = [rng.standard_normal((B, H)) for _ in cell.STATE_NAMES]
    weights = [rng.uniform(-0.7, 0.7, (G * H, I)), rng.uniform(-0.7, 0.7, (G * H, H))]
    biases = [rng.uniform(-0.5, 0.5, G * H), rng.uniform(-0.5, 0.5, G * H)] if bias else [None, None]
    return on(device, x), [on(device, s) for s in states], [on(device, p) for p in weights + biases]


def run_steps(cell, options, x, states, params, reverse=False):
    """The sequence, one step_forward at a time, then step_backward back through it."""
    T = x.shape[0]
    order = range(T - 1, -1, -1) if reverse else range(T)
    ys, caches, s = [None] * T, [None] * T, list(states)
    for t in order:
        *s, caches[t] = cell.step_forward(x[t], *s, *params, **options)
        ys[t] = s[0]
    return array_module(ys[0]).stack(ys), s, caches


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(CELLS))
@given(T=st.integers(1, 6), B=st.integers(1, 4), I=st.integers(1, 4), H=st.integers(1, 4),
       bias=st.booleans(), reverse=st.booleans(), seed=st.integers(0, 2**31))
def test_step_and_sequence_agree(device, name, T, B, I, H, bias, reverse, seed):
    """The sequence functions are the step functions with the GEMMs hoisted out of the loop:
    forward values and every gradient must agree."""
    cell, options = CELLS[name]
    x, states, params = make_args(cell, T, B, I, H, seed, bias, device)
    given = [back(a) for a in (x, *states, *params) if a is not None]
    *outs, cache = cell.forward(x, *states, *params, reverse=reverse, **options)
    y_seq, finals_seq = outs[0], outs[1:]
    y_steps, finals_steps, caches = run_steps(cell, options, x, states, params, reverse)
    assert rel_err(back(y_seq), back(y_steps)) < 1e-13
    for a, b in zip(finals_seq, finals_steps):
        assert rel_err(back(a), back(b)) < 1e-13

    rng = np.random.default_rng(seed + 1)
    dy = on(device, rng.standard_normal(y_seq.shape))
    dfinals = [on(device, rng.standard_normal(s.shape)) for s in finals_seq]
    dx, *rest = cell.backward(dy, *dfinals, cache)
    dstates0, dparams = rest[:len(states)], rest[len(states):]

    # Backward through the steps by hand, in the reverse of the forward's order.
    order = range(T) if reverse else range(T - 1, -1, -1)
    d = list(dfinals)
    dx_steps = np.zeros(x.shape)
    dparams_steps = [None if p is None else np.zeros(p.shape) for p in params]
    for t in order:
        d[0] = d[0] + dy[t]
        dx_t, *grads = cell.step_backward(*d, caches[t])
        dx_steps[t] = back(dx_t)
        d, step_dparams = grads[:len(states)], grads[len(states):]
        for acc, g in zip(dparams_steps, step_dparams):
            if acc is not None:
                acc += back(g)
    assert rel_err(back(dx), dx_steps) < 1e-12
    for before, after in zip(given, [a for a in (x, *states, *params) if a is not None]):
        assert np.array_equal(before, back(after)), "an argument was modified"
    for a, b in zip(dstates0, d):
        assert rel_err(back(a), back(b)) < 1e-12
    for a, b in zip(dparams, dparams_steps):
        assert (a is None) == (b is None)
        if a is not None:
            assert rel_err(back(a), b) < 1e-12


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
def test_lengths_equal_separate_runs(name, reverse):
    """A padded batch with lengths gives, for each sequence, exactly what running that sequence
    alone over its own steps gives; outputs past its end are zero and receive no gradient."""
    cell, options = CELLS[name]
    T, B, I, H = 6, 4, 3, 5
    x, states, params = make_args(cell, T, B, I, H, seed=7)
    lengths = np.array([6, 2, 1, 4])
    *outs, cache = cell.forward(x, *states, *params, lengths=lengths, reverse=reverse, **options)
    rng = np.random.default_rng(0)
    dy = rng.standard_normal(outs[0].shape)
    dfinals = [rng.standard_normal(s.shape) for s in outs[1:]]
    dx, *dstates0_and_params = cell.backward(dy, *dfinals, cache)
    n = len(states)
    for b, L in enumerate(lengths):
        *alone, alone_cache = cell.forward(x[:L, b:b + 1], *(s[b:b + 1] for s in states), *params,
                                           reverse=reverse, **options)
        assert rel_err(outs[0][:L, b], alone[0][:, 0]) < 1e-13
        assert np.all(outs[0][L:, b] == 0)
        for final, final_alone in zip(outs[1:], alone[1:]):
            assert rel_err(final[b], final_alone[0]) < 1e-13
        dx_alone, *rest = cell.backward(dy[:L, b:b + 1], *(d[b:b + 1] for d in dfinals), alone_cache)
        assert rel_err(dx[:L, b], dx_alone[:, 0]) < 1e-12
        assert np.all(dx[L:, b] == 0)
        for d0, d0_alone in zip(dstates0_and_params[:n], rest[:n]):
            assert rel_err(d0[b], d0_alone[0]) < 1e-12


@pytest.mark.parametrize("name", sorted(CELLS))
def test_nothing_is_mutated(name):
    """Neither forward nor backward writes into anything it was given."""
    cell, options = CELLS[name]
    x, states, params = make_args(cell, 5, 3, 2, 4, seed=1)
    lengths = np.array([5, 3, 1])
    given_arrays = [x, *states, *params, lengths]
    snapshot = [a.copy() for a in given_arrays]
    *outs, cache = cell.forward(x, *states, *params, lengths=lengths, **options)
    rng = np.random.default_rng(2)
    dy = rng.standard_normal(outs[0].shape)
    dfinals = [rng.standard_normal(s.shape) for s in outs[1:]]
    grads_in = [dy, *dfinals]
    grads_snapshot = [g.copy() for g in grads_in]
    cell.backward(dy, *dfinals, cache)
    cell.backward(dy, *dfinals, cache)          # twice: the cache must survive a backward
    for a, before in zip(given_arrays + grads_in, snapshot + grads_snapshot):
        assert np.array_equal(a, before)
    first = cell.backward(dy, *dfinals, cache)
    second = cell.backward(dy, *dfinals, cache)
    for a, b in zip(first, second):
        assert (a is None and b is None) or np.array_equal(a, b)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_outputs_without_lengths_are_read_only_views(name):
    """The output is the cache's state buffer (no copy); writing into it must fail loudly
    rather than corrupt the backward."""
    cell, options = CELLS[name]
    x, states, params = make_args(cell, 4, 2, 3, 3, seed=0)
    y, *_ = cell.forward(x, *states, *params, **options)
    with pytest.raises(ValueError, match="read-only"):
        y[0, 0, 0] = 1.0


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("T,B", [(1, 1), (1, 3), (4, 1)])
def test_sequence_gradcheck_edge_shapes(name, T, B):
    """The sequence functions pass the gradient check at T = 1 and B = 1, with lengths too."""
    cell, options = CELLS[name]
    x, states, params = make_args(cell, T, B, 2, 3, seed=T * 10 + B)
    lengths = np.arange(B) % T + 1
    forward = functools.partial(cell.forward, lengths=lengths, **options)
    report = gradcheck.check_fn(forward, cell.backward, [x, *states, *params])
    assert report.passed, str(report)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_step_gradcheck(name):
    cell, options = CELLS[name]
    x, states, params = make_args(cell, 1, 3, 4, 5, seed=5)
    forward = functools.partial(cell.step_forward, **options)
    report = gradcheck.check_fn(forward, cell.step_backward, [x[0], *states, *params])
    assert report.passed, str(report)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_without_bias_gives_none_bias_gradients(name):
    cell, options = CELLS[name]
    x, states, params = make_args(cell, 3, 2, 2, 3, seed=0, bias=False)
    *outs, cache = cell.forward(x, *states, *params, **options)
    grads = cell.backward(np.ones_like(outs[0]), *(None for _ in states), cache)
    assert grads[-2] is None and grads[-1] is None
    report = gradcheck.check_fn(functools.partial(cell.forward, **options), cell.backward,
                                [x, *states, *params])
    assert report.passed, str(report)


# --------------------------------------------------------------------------- argument checks

def test_cell_argument_errors_name_the_argument():
    x, states, params = make_args(lstm, 3, 2, 4, 5, seed=0)
    w_ih, w_hh, b_ih, b_hh = params
    with pytest.raises(ValueError, match=r"x must be a 3-d array \(T, B, I\)"):
        lstm.forward(x[0], *states, *params)
    with pytest.raises(ValueError, match=r"weight_ih must have shape \(20, 4\), got \(20, 3\)"):
        lstm.forward(x, *states, w_ih[:, :3], w_hh, b_ih, b_hh)
    with pytest.raises(ValueError, match=r"weight_hh must have shape \(4·H, H\)"):
        lstm.forward(x, *states, w_ih, w_hh[:, :4], b_ih, b_hh)
    with pytest.raises(ValueError, match=r"c0 must have shape \(2, 5\), got \(3, 5\)"):
        lstm.forward(x, states[0], np.zeros((3, 5)), *params)
    with pytest.raises(ValueError, match=r"bias_hh must have shape \(20,\)"):
        lstm.forward(x, *states, w_ih, w_hh, b_ih, b_hh[:3])
    with pytest.raises(TypeError, match="share one floating dtype"):
        lstm.forward(x.astype(np.float32), *states, *params)
    with pytest.raises(TypeError, match="x must be a floating-point array, got dtype int64"):
        lstm.forward(x.astype(np.int64), *states, *params)
    with pytest.raises(ValueError, match=r"lengths must lie in 1..3"):
        lstm.forward(x, *states, *params, lengths=np.array([0, 2]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        lstm.forward(x, *states, *params, lengths=np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="nonlinearity must be one of 'tanh', 'relu', got 'sigmoid'"):
        rnn.forward(x, states[0], np.zeros((5, 4)), np.zeros((5, 5)), nonlinearity="sigmoid")
    *_, cache = lstm.forward(x, *states, *params)
    with pytest.raises(ValueError, match=r"dy must have shape \(3, 2, 5\)"):
        lstm.backward(np.zeros((3, 2, 4)), None, None, cache)
    with pytest.raises(TypeError, match="dh_n must have dtype float64"):
        lstm.backward(None, np.zeros((2, 5), np.float32), None, cache)


# --------------------------------------------------------------------------- the textbook GRU

def torch_textbook_gru(x, h0, w_ih, w_hh, b_ih, b_hh):
    """Cho et al. (2014, v3) GRU written directly in torch ops, differentiated by autograd."""
    torch = pytest.importorskip("torch", reason="torch is the independent reference here")
    H = h0.shape[-1]
    h, ys = h0, []
    for t in range(x.shape[0]):
        gi = x[t] @ w_ih.T + b_ih
        r = torch.sigmoid(gi[:, :H] + h @ w_hh[:H].T + b_hh[:H])
        z = torch.sigmoid(gi[:, H:2 * H] + h @ w_hh[H:2 * H].T + b_hh[H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + (r * h) @ w_hh[2 * H:].T + b_hh[2 * H:])
        h = (1 - z) * n + z * h
        ys.append(h)
    return torch.stack(ys), h


@given(T=st.integers(1, 8), B=st.integers(1, 4), I=st.integers(1, 5), H=st.integers(1, 5),
       seed=st.integers(0, 2**31))
def test_textbook_gru_matches_torch_autograd(T, B, I, H, seed):
    torch = pytest.importorskip("torch", reason="torch is the independent reference here")
    x, (h0,), params = make_args(gru, T, B, I, H, seed)
    y, h_n, cache = gru.forward(x, h0, *params, reset_after=False)
    rng = np.random.default_rng(seed + 1)
    dy, dh = rng.standard_normal(y.shape), rng.standard_normal(h_n.shape)
    grads = gru.backward(dy, dh, cache)

    tensors = [torch.tensor(a, requires_grad=True) for a in (x, h0, *params)]
    ty, th = torch_textbook_gru(*tensors)
    ((ty * torch.from_numpy(dy)).sum() + (th * torch.from_numpy(dh)).sum()).backward()
    assert rel_err(y, ty.detach().numpy()) < 1e-10
    assert rel_err(h_n, th.detach().numpy()) < 1e-10
    for ours, t in zip(grads, tensors):
        assert rel_err(ours, t.grad.numpy()) < 1e-10


def test_textbook_and_pytorch_gru_differ():
    """The two forms are different functions (equal only when W_hn or b_hn make them so)."""
    x, (h0,), params = make_args(gru, 5, 2, 3, 4, seed=3)
    y_after, *_ = gru.forward(x, h0, *params, reset_after=True)
    y_before, *_ = gru.forward(x, h0, *params, reset_after=False)
    assert rel_err(y_after, y_before) > 1e-3
