"""The pieces the fast paths rest on: reused buffers, block order, bench."""

import json
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpyrnn
from numpyrnn import bench, cli, machine
from numpyrnn.cells import common, fast, gru, lstm, rnn

CELLS = {"rnn": (rnn, {}), "lstm": (lstm, {}), "gru": (gru, {}), "gru_textbook": (gru, {"reset_after": False})}


@given(T=st.integers(1, 300), step_bytes=st.integers(1, 1 << 21), reverse=st.booleans())
def test_backward_chunks_visit_every_step_once_in_backward_order(T, step_bytes, reverse):
    """The blocks, each visited as the backward's loops do (step_views(not reverse)), visit the
    steps T−1, ..., 0 after a forward pass, 0, ..., T−1 after a reversed one."""
    visited = []
    for block in common.backward_chunks(T, reverse, step_bytes):
        assert 0 <= block.start < block.stop <= T
        visited += [int(t) for (t,) in common.step_views(not reverse, np.arange(T)[block])]
    assert visited == (list(range(T)) if reverse else list(range(T - 1, -1, -1)))


def test_step_views_give_each_step_in_visiting_order_and_none_for_absent_arrays():
    a, b = np.arange(3), np.arange(3) * 10
    assert [(int(x), int(y), z) for x, y, z in common.step_views(False, a, b, None)] == [(0, 0, None), (1, 10, None), (2, 20, None)]
    assert [(int(x), int(y)) for x, y in common.step_views(True, a, b)] == [(2, 20), (1, 10), (0, 0)]
    assert common.in_block(slice(1, 3), a, None)[0].tolist() == [1, 2]
    assert common.in_block(slice(1, 3), a, None)[1] is None


@pytest.mark.parametrize("name", sorted(CELLS))
def test_workspace_gives_the_same_numbers(name):
    """A reused workspace changes nothing: the same results, bit for bit, call after call."""
    cell, options = CELLS[name]
    rng = np.random.default_rng(1)
    T, B, I, H = 7, 3, 2, 4
    x = rng.standard_normal((T, B, I))
    states = [rng.standard_normal((B, H)) for _ in cell.STATE_NAMES]
    params = [rng.uniform(-.5, .5, s) for s in ((cell.GATES * H, I), (cell.GATES * H, H), (cell.GATES * H,), (cell.GATES * H,))]
    dy = rng.standard_normal((T, B, H))
    *fresh, cache = cell.forward(x, *states, *params, lengths=[7, 2, 5], **options)
    fresh = [a.copy() for a in fresh]
    fresh_grads = cell.backward(dy, *(None for _ in states), cache)
    ws = common.Workspace()
    for _ in range(3):
        *outs, cache = cell.forward(x, *states, *params, lengths=[7, 2, 5], workspace=ws, **options)
        grads = cell.backward(dy, *(None for _ in states), cache)
        assert all(np.array_equal(a, b) for a, b in zip(outs, fresh))
        assert all(np.array_equal(a, b) for a, b in zip(grads, fresh_grads))
    assert ws.nbytes() > 0


@pytest.mark.parametrize("cls", [numpyrnn.RNN, numpyrnn.LSTM, numpyrnn.GRU])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_what_a_layer_returns_is_never_overwritten_by_the_next_call(cls, bidirectional):
    m = cls(3, 4, num_layers=2, bidirectional=bidirectional, seed=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 3))
    y1, s1 = m.forward(x1)
    dx1, _ = m.backward(np.ones_like(y1))
    h1 = s1[0] if isinstance(s1, tuple) else s1
    kept = [a.copy() for a in (y1, dx1, h1)]
    y2, _ = m.forward(x2)
    m.backward(np.full_like(y2, 2.0))
    assert all(np.array_equal(a, b) for a, b in zip(kept, (y1, dx1, h1)))
    assert not np.array_equal(y1, y2)
    m.release_memory()
    assert m.workspace_bytes() == 0
    with pytest.raises(RuntimeError, match="needs a forward"):
        m.backward(np.ones_like(y2))


@pytest.mark.parametrize("cell,per_step", [("rnn", 1), ("lstm", 7), ("gru", 5)])
def test_activation_bytes_match_the_documented_numbers(cell, per_step):
    """docs/derivations.md §10: H, 7H, 5H numbers per step and sequence, plus the h0 (and c0)
    row, plus the layer's private copy of x."""
    T, B, I, H = 6, 3, 5, 4
    layer, step = bench._numpyrnn_case(cell, (T, B, I, H), np.dtype(np.float64), "cpu")
    step()
    states = 2 if cell == "lstm" else 1
    expected = (per_step * T * B * H + states * B * H + T * B * I) * 8
    assert bench.activation_bytes(layer) == expected


def test_bench_runs_and_reports(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = cli.main(["bench", "--cells", "lstm,gru", "--shape", "3x2x4x5", "--dtypes", "float64",
                     "--repeat", "2", "--warmup", "1", "--no-torch", "--per-step", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "lstm  3x2x4x5" in text and "/floor" in text and "/honest" in text
    assert f"SIMD {machine.simd_level()}; BLAS {machine.blas_info()}, threads {machine.threads_text()};" in text
    data = json.loads(out.read_text())
    assert data["machine"] == machine.describe()
    rows = data["results"]
    assert [r["cell"] for r in rows] == ["lstm", "gru"]
    for r in rows:
        assert r["numpyrnn"]["median_ms"] > 0 and r["floor"]["median_ms"] > 0 and "torch" not in r
        assert r["honest"]["median_ms"] > 0 and r["vs_honest"] == r["numpyrnn"]["median_ms"] / r["honest"]["median_ms"]
        assert r["activation_bytes"] > 0 and r["peak_bytes"] >= r["activation_bytes"]
        p = bench.per_step(r)
        assert p["us"] == pytest.approx(1e3 * r["numpyrnn"]["median_ms"] / 3)
        assert p["products_us"] + p["tanh_us"] + p["rest_us"] == pytest.approx(p["us"])
        assert (p["calls"], p["other_calls"]) == ({"lstm": 18, "gru": 17}[r["cell"]], {"lstm": 14, "gru": 13}[r["cell"]])
        assert bench.format_per_step(r) in text


def test_bench_compares_with_torch_when_installed():
    pytest.importorskip("torch")
    rows = bench.run(cells=("lstm",), shapes=((3, 2, 4, 5),), dtypes=("float32",), repeat=2, warmup=1,
                     idle=0)
    assert rows[0]["torch"]["median_ms"] > 0 and rows[0]["vs_torch"] > 0
    assert rows[0]["aten"]["median_ms"] > 0 and rows[0]["vs_aten"] > 0    # torch without oneDNN
    line = bench.format_row(rows[0])
    assert len(line.split()) == 16 and "-" not in line.split()     # every column filled


def test_the_machine_header_names_the_simd_level_the_cpu_has():
    flags = set()
    if os.path.exists("/proc/cpuinfo"):
        flags = {f for line in open("/proc/cpuinfo") if line.startswith("flags") for f in line.split(":")[1].split()}
    if not flags:
        pytest.skip("no /proc/cpuinfo flags to compare with")
    expected = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    if expected is None:
        pytest.skip(f"a CPU with neither AVX-512 nor AVX2: {machine.simd_level()}")
    assert machine.simd_level().startswith(expected)
    info = machine.describe()
    assert set(info) == {"cpu", "simd", "blas", "threads", "cores", "numpy"}
    assert info["threads"] == machine.threads_text() and info["cores"] == machine.usable_cores()


@pytest.mark.parametrize("cell,blocks", [("rnn", [(4, 5)]), ("lstm", [(4, 20), (4, 5)]), ("gru", [(4, 15)])])
def test_the_honest_floor_is_the_products_plus_a_tanh_per_gate_element(cell, blocks):
    """Counted, not timed: the honest floor makes the floor's matrix products and, per step, one
    tanh over the (B, G·H) gate block (and the LSTM's (B, H) cell state)."""
    calls = []

    class Recording:                               # numpy, writing down what is called
        def __getattr__(self, name):
            fn = getattr(np, name)
            if name in ("matmul", "tanh"):
                return lambda a, *rest, **kw: calls.append((name, a.shape)) or fn(a, *rest, **kw)
            return fn

    T, B, I, H = 3, 4, 2, 5
    bench._floor_case(cell, (T, B, I, H), np.dtype(np.float64), Recording())()
    products = list(calls)
    calls.clear()
    bench._honest_floor_case(cell, (T, B, I, H), np.dtype(np.float64), Recording())()
    assert [c for c in calls if c[0] == "matmul"] == products and len(products) == 2 * T + 4
    assert [shape for name, shape in calls if name == "tanh"] == blocks * T


def test_torch_reference_restores_its_onednn_setting():
    torch = pytest.importorskip("torch")
    step, _ = bench._torch_case("lstm", (3, 2, 4, 5), np.dtype(np.float32), "cpu", 1, onednn=False)
    before = torch.backends.mkldnn.enabled
    step()
    assert torch.backends.mkldnn.enabled == before


def test_bench_argument_errors(capsys):
    assert cli.main(["bench", "--shape", "3x2x4"]) == 2
    assert "expected TxBxIxH" in capsys.readouterr().err
    assert cli.main(["bench", "--cells", "lstm,transformer"]) == 2


# --------------------------------------------------------------------------- NumPy calls per step

#: NumPy calls per step of the fast path's loop (forward, backward), with every optional output
#: off; a change that adds one to the loop shows here.  (cell, GRU form, lengths) → counts.
#: (cell, reset_after, lengths, reverse): NumPy calls per step (forward, backward).  With
#: lengths, the forward direction runs on through the padding of its bounded cells (no carry),
#: the reversed one carries the states (one more call per carried state) and the gradient dh
#: (one more call in the RNN's and LSTM's backward; the GRU's carries it through z = 1).
CALLS_PER_STEP = {
    ("rnn", None, False, False): (3, 3), ("rnn", None, True, False): (3, 3), ("rnn", None, True, True): (4, 4),
    ("lstm", None, False, False): (10, 8), ("lstm", None, True, False): (10, 8), ("lstm", None, True, True): (12, 9),
    ("gru", True, False, False): (12, 5), ("gru", True, True, False): (12, 5), ("gru", True, True, True): (13, 5),
    ("gru", False, False, False): (12, 10), ("gru", False, True, False): (12, 10), ("gru", False, True, True): (13, 10),
}


@pytest.mark.parametrize("cell,reset_after,lengths,reverse", list(CALLS_PER_STEP))
def test_the_fast_loop_makes_a_known_number_of_numpy_calls_per_step(cell, reset_after, lengths, reverse):
    options = {} if reset_after is None else {"reset_after": reset_after}
    calls = bench.calls_per_step(cell, lengths=lengths, reverse=reverse, **options)
    assert (sum(calls["forward"].values()), sum(calls["backward"].values())) == CALLS_PER_STEP[cell, reset_after, lengths, reverse]
    products = 2 if reset_after is False else 1          # the textbook GRU's r ⊙ h needs its own
    assert calls["forward"]["matmul"] == products and calls["backward"]["matmul"] == products
    assert "equal" not in calls["forward"] and "equal" not in calls["backward"]   # masks made once
    if not reverse:
        without = bench.calls_per_step(cell, **options)
        assert calls == without                          # the forward direction ignores its padding


@pytest.mark.parametrize("cell,reset_after", [("rnn", None), ("lstm", None), ("gru", True), ("gru", False)])
def test_gradients_of_the_final_state_make_the_backward_carry_through_the_padding(cell, reset_after):
    """Given ∂L/∂h_n, the forward direction's backward must carry it through each sequence's
    padding to its last real step: it then makes the reversed direction's calls."""
    options = {} if reset_after is None else {"reset_after": reset_after}
    forward_direction = bench.calls_per_step(cell, lengths=True, state_grads=True, **options)
    reversed_direction = bench.calls_per_step(cell, lengths=True, reverse=True, state_grads=True, **options)
    assert sum(forward_direction["backward"].values()) == CALLS_PER_STEP[cell, reset_after, True, True][1]
    assert forward_direction["backward"] == reversed_direction["backward"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_relu_rnn_carries_its_state_through_the_padding_where_it_could_overflow(dtype):
    """A ReLU RNN's state can grow without bound: run on through a long padding it would reach
    Inf (then NaN in dW_hh, as 0 · Inf).  The fast path carries it instead: every result finite
    and equal to the reference's."""
    T, B, H = 400, 2, 3
    x = np.zeros((T, B, 1), dtype)
    h0 = np.array([[0, 0, 0], [1, 1, 1]], dtype)           # sequence 1 grows 10× a step if run on
    weights = [np.zeros((H, 1), dtype), (10 * np.eye(H)).astype(dtype)]
    lengths = np.array([T, 2])
    dy = np.ones((T, B, H), dtype)
    with np.errstate(all="raise"):                           # an overflow is an error here
        y, h_n, cache = rnn.forward(x, h0, *weights, nonlinearity="relu", lengths=lengths)
        grads = rnn.backward(dy, None, cache)
    y_ref, h_n_ref, cache_ref = rnn.forward_reference(x, h0, *weights, nonlinearity="relu", lengths=lengths)
    grads_ref = rnn.backward_reference(dy, None, cache_ref)
    np.testing.assert_array_equal(h_n, h_n_ref)
    np.testing.assert_array_equal(y, y_ref)
    for got, want in zip(grads, grads_ref):
        if want is not None:
            assert np.isfinite(got).all()
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_the_call_count_sees_a_call_added_to_the_loop(monkeypatch):
    from numpyrnn.cells.fast import lstm as fast_lstm

    body = fast_lstm._forward_body

    def one_more(recurrent, c_prev, a, c, tanh_c, h):
        body(recurrent, c_prev, a, c, tanh_c, h)
        np.add(h, 0, out=h)

    monkeypatch.setattr(fast_lstm, "_forward_body", one_more)
    calls = bench.calls_per_step("lstm")
    assert sum(calls["forward"].values()) == CALLS_PER_STEP["lstm", None, False, False][0] + 1


@pytest.mark.parametrize("cell,G", [("LSTM", 4), ("GRU", 5)])
def test_the_backward_computes_its_factors_in_blocks_of_about_chunk_bytes(cell, G):
    """The factors of a block of steps take about common.CHUNK_BYTES (a block of whole steps,
    G (B, H) factors each: one per gate for the LSTM, five for the GRU): small enough to stay in
    cache, and no more memory held between calls."""
    T, B, I, H = 300, 16, 8, 64
    layer = getattr(numpyrnn, cell)(I, H, dtype=np.float32, seed=0, device="cpu")
    layer.forward(np.zeros((T, B, I), np.float32))
    layer.backward(np.ones((T, B, H), np.float32))
    factors = layer._workspaces[0]._arrays["factors"]
    assert factors.shape == (common.CHUNK_BYTES // (G * B * H * 4), G, B, H)


def test_the_step_profile_tool_runs_and_its_pieces_add_up():
    """tools/step_profile.py, whose tables docs/benchmarks.md shows: each pass's pieces and its
    loop add up to the pass, and the loop's other calls are the ones calls_per_step counts."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "tools" / "step_profile.py"
    spec = importlib.util.spec_from_file_location("step_profile", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    for cell in ("rnn", "lstm", "gru"):
        total, rows = tool.profile(cell, (6, 2, 3, 4), np.dtype(np.float64), repeat=3)
        assert total > 0 and [r[0] for r in rows] == ["forward", "backward"]
        calls = bench.calls_per_step(cell)
        for direction, pieces, loop, products, tanh, other, n in rows:
            assert loop > 0 and products > 0 and other == pytest.approx(loop - products - tanh)
            assert n == sum(calls[direction].values()) - calls[direction]["matmul"] - calls[direction].get("tanh", 0)
            assert set(pieces) <= {"layer", "input terms", "factors", "gradient products", "other helpers"}
            assert all(pieces.get(k, 0) > 0 for k in ("layer", "input terms" if direction == "forward" else "factors"))
            not_here = ("factors", "gradient products") if direction == "forward" else ("input terms",)
            assert all(pieces.get(k, 0) == 0 for k in not_here)
    assert fast.lstm.step_major_input_terms is common.step_major_input_terms   # every helper put back
