"""The cell functions themselves: step against sequence, lengths, immutability, edge shapes."""

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import DEVICES, back, on, rel_err
from numpyrnn import gradcheck
from numpyrnn.cells import common, gru, lstm, rnn

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


#: the two sequence paths of every cell: (forward, backward) by name
PATHS = {"fast": lambda cell: (cell.forward, cell.backward),
         "reference": lambda cell: (cell.forward_reference, cell.backward_reference)}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(CELLS))
@given(T=st.integers(1, 6), B=st.integers(1, 4), I=st.integers(1, 4), H=st.integers(1, 4),
       bias=st.booleans(), reverse=st.booleans(), use_lengths=st.booleans(), given_dy=st.booleans(),
       seed=st.integers(0, 2**31))
def test_fast_path_equals_the_reference(device, name, T, B, I, H, bias, reverse, use_lengths, given_dy,
                                        seed):
    """The fast sequence functions compute what the reference (the textbook loop over the step
    functions) computes: every output and every gradient, to 1e-12 in float64."""
    cell, options = CELLS[name]
    x, states, params = make_args(cell, T, B, I, H, seed, bias, device)
    rng = np.random.default_rng(seed + 1)
    lengths = rng.integers(1, T + 1, size=B) if use_lengths else None
    given = [back(a) for a in (x, *states, *params) if a is not None]
    *fast_outs, fast_cache = cell.forward(x, *states, *params, lengths=lengths, reverse=reverse, **options)
    *ref_outs, ref_cache = cell.forward_reference(x, *states, *params, lengths=lengths, reverse=reverse,
                                                  **options)
    for a, b in zip(fast_outs, ref_outs):
        assert rel_err(back(a), back(b)) < 1e-12
    dy = on(device, rng.standard_normal(ref_outs[0].shape)) if given_dy else None
    dfinals = [on(device, rng.standard_normal(s.shape)) for s in ref_outs[1:]]
    fast_grads = cell.backward(dy, *dfinals, fast_cache)
    ref_grads = cell.backward_reference(dy, *dfinals, ref_cache)
    assert len(fast_grads) == len(ref_grads) == 1 + len(states) + 4
    for a, b in zip(fast_grads, ref_grads):
        assert (a is None) == (b is None)
        if a is not None:
            assert rel_err(back(a), back(b)) < 1e-12
    for before, after in zip(given, [a for a in (x, *states, *params) if a is not None]):
        assert np.array_equal(before, back(after)), "an argument was modified"


@pytest.mark.parametrize("name", sorted(CELLS))
def test_each_path_reads_only_its_own_cache(name):
    """Handing one path's cache to the other's backward is a clear error, not wrong numbers."""
    cell, options = CELLS[name]
    x, states, params = make_args(cell, 3, 2, 2, 3, seed=0)
    *outs, fast_cache = cell.forward(x, *states, *params, **options)
    *_, ref_cache = cell.forward_reference(x, *states, *params, **options)
    nones = [None] * len(states)
    module = f"numpyrnn.cells.{cell.__name__.rsplit('.', 1)[1]}"
    with pytest.raises(TypeError, match=rf"{module}.backward_reference reads the cache of "
                                        rf"{module}.forward_reference, got one made by {module}.forward "
                                        r"\(the fast path\)"):
        cell.backward_reference(outs[0], *nones, fast_cache)
    with pytest.raises(TypeError, match=rf"{module}.backward reads the cache of {module}.forward "
                                        rf"\(the fast path\), got one made by {module}.forward_reference"):
        cell.backward(outs[0], *nones, ref_cache)
    with pytest.raises(TypeError, match=rf"{module}.step_backward reads the cache of "
                                        rf"{module}.step_forward, got one made by {module}.forward_reference"):
        cell.step_backward(*[outs[0][0]] + nones[1:], ref_cache)
    with pytest.raises(TypeError, match=r"got a tuple"):
        cell.backward(outs[0], *nones, tuple(fast_cache))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_reference_ignores_the_workspace_and_keeps_named_caches(name):
    cell, options = CELLS[name]
    x, states, params = make_args(cell, 4, 2, 2, 3, seed=0)
    ws = common.Workspace()
    *_, cache = cell.forward_reference(x, *states, *params, workspace=ws, **options)
    assert ws.nbytes() == 0
    assert cache._fields == ("steps", "mask", "reverse", "zoneout") and len(cache.steps) == 4
    assert type(cache.steps[0]).__name__ == "StepCache" and "x_t" in cache.steps[0]._fields
    *_, fast_cache = cell.forward(x, *states, *params, workspace=ws, **options)
    assert ws.nbytes() > 0 and type(fast_cache).__name__ == "FastCache"


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("use_lengths", [False, True])
def test_gate_activations_agree_on_both_paths(name, use_lengths):
    cell, options = CELLS[name]
    x, states, params = make_args(cell, 5, 3, 2, 4, seed=2)
    lengths = np.array([5, 2, 1]) if use_lengths else None
    *_, fast_cache = cell.forward(x, *states, *params, lengths=lengths, **options)
    *_, ref_cache = cell.forward_reference(x, *states, *params, lengths=lengths, **options)
    fast, ref = cell.gate_activations(fast_cache), cell.gate_activations(ref_cache)
    want = {"rnn": ["h"], "lstm": ["i", "f", "g", "o", "c"], "gru": ["r", "z", "n"]}[name.split("_")[0]]
    assert list(fast) == list(ref) == want
    for k in want:
        assert fast[k].shape == (5, 3, 4) and rel_err(fast[k], ref[k]) < 1e-13, k
        if use_lengths:
            assert np.all(fast[k][2:, 1] == 0) and np.all(fast[k][1:, 2] == 0), k   # padded steps
    if name == "lstm":
        assert np.all((fast["f"][:, 0] > 0) & (fast["f"][:, 0] < 1))


def _body_lines(function):
    """Lines of code of a function, without its signature, docstring, blank lines and comments."""
    import ast
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(function))
    body = ast.parse(source).body[0].body
    if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]                                   # the docstring
    lines = source.splitlines()[body[0].lineno - 1:body[-1].end_lineno]
    return [ln for ln in lines if ln.strip() and not ln.strip().startswith("#")]


@pytest.mark.parametrize("cell", [rnn, lstm, gru])
def test_the_reference_stays_a_page_of_plain_loop(cell):
    """A student reads each reference forward and backward at a glance: about 40 lines, and no
    buffers, workspaces, reordering or GPU bodies of the fast path."""
    for function in (cell.forward_reference, cell.backward_reference):
        lines = _body_lines(function)
        assert len(lines) <= 40, (function.__name__, len(lines))
        text = "\n".join(lines)
        for word in ("scratch", "workspace", "fused", "_INTERNAL", "chunks", "out="):
            assert word not in text, (function.__name__, word)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
def test_lengths_equal_separate_runs(name, reverse, path):
    """A padded batch with lengths gives, for each sequence, exactly what running that sequence
    alone over its own steps gives; outputs past its end are zero and receive no gradient."""
    cell, options = CELLS[name]
    forward, backward = PATHS[path](cell)
    T, B, I, H = 6, 4, 3, 5
    x, states, params = make_args(cell, T, B, I, H, seed=7)
    lengths = np.array([6, 2, 1, 4])
    *outs, cache = forward(x, *states, *params, lengths=lengths, reverse=reverse, **options)
    rng = np.random.default_rng(0)
    dy = rng.standard_normal(outs[0].shape)
    dfinals = [rng.standard_normal(s.shape) for s in outs[1:]]
    dx, *dstates0_and_params = backward(dy, *dfinals, cache)
    n = len(states)
    for b, L in enumerate(lengths):
        *alone, alone_cache = forward(x[:L, b:b + 1], *(s[b:b + 1] for s in states), *params,
                                           reverse=reverse, **options)
        assert rel_err(outs[0][:L, b], alone[0][:, 0]) < 1e-13
        assert np.all(outs[0][L:, b] == 0)
        for final, final_alone in zip(outs[1:], alone[1:]):
            assert rel_err(final[b], final_alone[0]) < 1e-13
        dx_alone, *rest = backward(dy[:L, b:b + 1], *(d[b:b + 1] for d in dfinals), alone_cache)
        assert rel_err(dx[:L, b], dx_alone[:, 0]) < 1e-12
        assert np.all(dx[L:, b] == 0)
        for d0, d0_alone in zip(dstates0_and_params[:n], rest[:n]):
            assert rel_err(d0[b], d0_alone[0]) < 1e-12


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(CELLS))
def test_nothing_is_mutated(name, path):
    """Neither forward nor backward writes into anything it was given."""
    cell, options = CELLS[name]
    forward, backward = PATHS[path](cell)
    x, states, params = make_args(cell, 5, 3, 2, 4, seed=1)
    lengths = np.array([5, 3, 1])
    given_arrays = [x, *states, *params, lengths]
    snapshot = [a.copy() for a in given_arrays]
    *outs, cache = forward(x, *states, *params, lengths=lengths, **options)
    rng = np.random.default_rng(2)
    dy = rng.standard_normal(outs[0].shape)
    dfinals = [rng.standard_normal(s.shape) for s in outs[1:]]
    grads_in = [dy, *dfinals]
    grads_snapshot = [g.copy() for g in grads_in]
    backward(dy, *dfinals, cache)
    backward(dy, *dfinals, cache)          # twice: the cache must survive a backward
    for a, before in zip(given_arrays + grads_in, snapshot + grads_snapshot):
        assert np.array_equal(a, before)
    first = backward(dy, *dfinals, cache)
    second = backward(dy, *dfinals, cache)
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


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("T,B", [(1, 1), (1, 3), (4, 1)])
def test_sequence_gradcheck_edge_shapes(name, T, B, path):
    """The sequence functions pass the gradient check at T = 1 and B = 1, with lengths too."""
    cell, options = CELLS[name]
    forward, backward = PATHS[path](cell)
    x, states, params = make_args(cell, T, B, 2, 3, seed=T * 10 + B)
    lengths = np.arange(B) % T + 1
    report = gradcheck.check_fn(functools.partial(forward, lengths=lengths, **options), backward,
                                [x, *states, *params])
    assert report.passed, str(report)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_step_gradcheck(name):
    cell, options = CELLS[name]
    x, states, params = make_args(cell, 1, 3, 4, 5, seed=5)
    forward = functools.partial(cell.step_forward, **options)
    report = gradcheck.check_fn(forward, cell.step_backward, [x[0], *states, *params])
    assert report.passed, str(report)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(CELLS))
def test_without_bias_gives_none_bias_gradients(name, path):
    cell, options = CELLS[name]
    forward, backward = PATHS[path](cell)
    x, states, params = make_args(cell, 3, 2, 2, 3, seed=0, bias=False)
    *outs, cache = forward(x, *states, *params, **options)
    grads = backward(np.ones_like(outs[0]), *(None for _ in states), cache)
    assert grads[-2] is None and grads[-1] is None
    report = gradcheck.check_fn(functools.partial(forward, **options), backward, [x, *states, *params])
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


@pytest.mark.parametrize("path", PATHS)
def test_nan_and_inf_in_arguments_are_refused_before_any_work(path):
    """Called directly, the cell functions refuse NaN or Inf in what they are given (naming it);
    a layer, which checks its own inputs, passes check=False for what it computed itself."""
    forward, backward = PATHS[path](lstm)
    x, states, params = make_args(lstm, 3, 2, 4, 5, seed=0)
    bad_x, bad_w = x.copy(), params[1].copy()
    bad_x[1, 0, 2], bad_w[0, 0] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"x contains NaN or Inf \(first at index \(1, 0, 2\): nan\)"):
        forward(bad_x, *states, *params)
    with pytest.raises(ValueError, match=r"weight_hh contains NaN or Inf \(first at index \(0, 0\): inf\)"):
        forward(x, *states, params[0], bad_w, *params[2:])
    y, *_ = forward(bad_x, *states, *params, check=False)        # NaN in, NaN out
    assert np.isnan(y[1:, 0]).all()
    y, h_n, c_n, cache = forward(x, *states, *params)
    dy = np.ones_like(y)
    dy[0, 1, 1] = np.inf
    with pytest.raises(ValueError, match=r"dy contains NaN or Inf \(first at index \(0, 1, 1\): inf\)"):
        backward(dy, None, None, cache)
    with pytest.raises(ValueError, match=r"dc_n contains NaN or Inf"):
        backward(None, None, np.full_like(c_n, np.nan), cache)
    step_forward = lstm.step_forward
    with pytest.raises(ValueError, match=r"h_prev contains NaN or Inf"):
        step_forward(x[0], np.full_like(states[0], np.nan), states[1], *params)
    _, _, step_cache = step_forward(x[0], *states, *params)
    with pytest.raises(ValueError, match=r"dh contains NaN or Inf"):
        lstm.step_backward(np.full_like(states[0], np.inf), None, step_cache)
