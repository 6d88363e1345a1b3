"""Your own cell: the Cell protocol, the registry, the generic loop, and everything that takes a
cell (layers, models, trainer, gradcheck, grader, gradflow, checkpoints, commands)."""

import copy
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpyrnn
from conftest import rel_err
from numpyrnn import cells, checkpoint, cli, exercises, gradcheck, optim, tasks
from numpyrnn.cells import Cell, CellError, generic
from numpyrnn.experiments.gradflow import jacobian_norms, step_jacobians
from numpyrnn.layers import Recurrent
from numpyrnn.train import Trainer

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "cells", "coupled.py")


def fixture_cells():
    """The fixture file's module, imported afresh (its classes unregistered)."""
    spec = importlib.util.spec_from_file_location("coupled_fixture", FIXTURE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIX = fixture_cells()
Coupled, Clipped = FIX.Coupled, FIX.Clipped

TEXTBOOK = [("rnn", {"nonlinearity": "tanh"}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}),
            ("gru", {"reset_after": True}), ("gru", {"reset_after": False})]
TEXTBOOK_IDS = ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_textbook"]
LAYERS = {"rnn": numpyrnn.RNN, "lstm": numpyrnn.LSTM, "gru": numpyrnn.GRU}


# --------------------------------------------------------------------------- the protocol and the registry

def test_options_are_the_constructor_s_with_defaults_and_are_saved_as_json():
    cell = Coupled()
    assert cell.options == {"scale": 1.0} and cell.scale == 1.0
    assert Coupled(scale=2.0).config() == {"name": "coupled", "options": {"scale": 2.0}}
    assert cells.get("gru", reset_after=False).config() == {"name": "gru", "options": {"reset_after": False,
                                                                                      "bias": True}}
    assert copy.deepcopy(Coupled(scale=3.0)) == Coupled(scale=3.0) != Coupled(scale=2.0)
    with pytest.raises(CellError, match="options must be plain data"):
        Coupled(scale=object()).config()
    with pytest.raises(TypeError, match="Coupled\\(\\): got an unexpected keyword argument 'bias'"):
        Coupled(bias=True)


def test_one_registry_names_every_cell():
    assert cells.names()[:3] == ["rnn", "lstm", "gru"]
    assert type(cells.get("lstm")) is cells.lstm.CELL and cells.get("rnn", nonlinearity="relu").nonlinearity == "relu"
    with pytest.raises(CellError, match="no cell named 'coupled'.*numpyrnn.cells.register"):
        cells.get("coupled")
    assert cells.lookup("coupled", [Coupled]) is Coupled        # handed over for one call only
    with pytest.raises(CellError, match="'lstm' is the name of numpyrnn's built-in"):
        cells.register(type("Mine", (Coupled,), {"name": "lstm"}))
    with pytest.raises(CellError, match="name must be a Python identifier"):
        cells.register(type("Bad", (Coupled,), {"name": "my cell"}))
    with pytest.raises(TypeError, match="subclass of numpyrnn.cells.Cell"):
        cells.register(dict)
    assert cells.resolve({"name": "gru", "options": {"reset_after": False}}) == cells.gru.CELL(reset_after=False)


def test_the_built_in_cells_draw_today_s_weights_and_equal_their_layers():
    """Same seed, same weights as numpyrnn.LSTM; and Recurrent over the built-in Cell runs the
    same fast path."""
    for name, options in TEXTBOOK:
        layer = LAYERS[name](3, 5, num_layers=2, bidirectional=True, seed=7, **options)
        generic_layer = Recurrent(cells.get(name, **options), 3, 5, num_layers=2, bidirectional=True, seed=7)
        assert list(layer.params) == list(generic_layer.params)
        for k in layer.params:
            np.testing.assert_array_equal(layer.params[k], generic_layer.params[k])
        assert generic_layer.loop.kind == "fast" and layer.loop.kind == "fast"


@pytest.mark.parametrize("name,options", TEXTBOOK, ids=TEXTBOOK_IDS)
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_the_generic_loop_equals_each_built_in_cell_s_own_loops(name, options, impl):
    """2 layers, both directions, lengths, initial states and their gradients, the final
    states' gradients, ∂L/∂s_t kept: to 1e-12 in float64."""
    rng = np.random.default_rng(len(name) + len(options))
    T, B = 7, 4
    x = rng.standard_normal((T, B, 3))
    lengths = np.array([7, 2, 1, 5])
    n = 2 if name == "lstm" else 1
    state = [rng.standard_normal((4, B, 5)) for _ in range(n)]
    dstate = [rng.standard_normal((4, B, 5)) for _ in range(n)]
    dy = rng.standard_normal((T, B, 10))
    results = []
    for path in (impl, "generic"):
        m = LAYERS[name](3, 5, num_layers=2, bidirectional=True, dtype=np.float64, seed=1, impl=path, **options)
        y, s_n = m.forward(x, tuple(state) if n == 2 else state[0], lengths)
        dx, ds0 = m.backward(dy, tuple(dstate) if n == 2 else dstate[0], keep_state_grads=True)
        as_list = (lambda s: list(s) if isinstance(s, tuple) else [s])
        kept = [g for k in range(2) for d in range(2) for g in m.state_grads(k, d).values()]
        results.append([y, dx, *as_list(s_n), *as_list(ds0), *m.grads.values(), *kept])
    for got, want in zip(*results):
        assert rel_err(got, want) < 1e-12


@given(T=st.integers(1, 6), B=st.integers(1, 4), H=st.integers(1, 4), reverse=st.booleans(),
       cell=st.sampled_from(range(5)), lengths=st.booleans(), seed=st.integers(0, 99))
def test_the_generic_loop_equals_the_reference_over_shapes(T, B, H, reverse, cell, lengths, seed):
    name, options = TEXTBOOK[cell]
    c = cells.get(name, **options)
    rng = np.random.default_rng(seed)
    params = {k: rng.uniform(-0.6, 0.6, s) for k, s in c.parameters(2, H).items()}
    x = rng.standard_normal((T, B, 2))
    s0 = tuple(rng.standard_normal((B, H)) for _ in c.state_names)
    steps = rng.integers(1, T + 1, B) if lengths else None
    dy = rng.standard_normal((T, B, H))
    out = []
    for loop in (c.sequence("reference"), generic.LOOP):
        y, s_n, cache = loop.forward(c, x, s0, params, lengths=steps, reverse=reverse)
        dx, ds0, grads = loop.backward(c, dy, s_n, cache)
        out.append([y, *s_n, dx, *ds0, *(grads[k] for k in params)])
    for a, b in zip(*out):
        assert rel_err(a, b) < 1e-12


# --------------------------------------------------------------------------- a cell written from the docs

def hand_loop(cell, x, params, H):
    """Forward and backward of one sequence batch by a plain loop of the cell's steps, written
    here without numpyrnn's loops: (y, final states, dx, dstate0, grads) for dy = 1."""
    T, B, _ = x.shape
    state = tuple(np.zeros((B, H)) for _ in cell.state_names)
    caches, ys = [], []
    for t in range(T):
        state, cache = cell.step_forward(x[t], state, params)
        caches.append(cache)
        ys.append(state[0])
    ds = [np.zeros((B, H)) for _ in cell.state_names]
    dx = np.zeros_like(x)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    for t in reversed(range(T)):
        ds[0] = ds[0] + 1.0                       # dy_t = 1 reaches h_t
        dx[t], ds, g = cell.step_backward(tuple(ds), caches[t])
        ds = list(ds)
        for k in grads:
            grads[k] += g[k]
    return np.stack(ys), state, dx, ds, grads


def test_a_cell_from_the_docs_equals_a_hand_written_loop_of_its_steps():
    x = np.random.default_rng(0).standard_normal((6, 3, 4))
    layer = Recurrent(Coupled(scale=0.7), 4, 5, dtype=np.float64, seed=2)
    y, (h, c) = layer.forward(x)
    dx, (dh0, dc0) = layer.backward(np.ones_like(y))
    want_y, want_state, want_dx, want_ds, want_grads = hand_loop(layer.cell, x, layer.cell_params(), 5)
    assert rel_err(y, want_y) < 1e-14 and rel_err(h[0], want_state[0]) < 1e-14
    assert rel_err(c[0], want_state[1]) < 1e-14 and rel_err(dx, want_dx) < 1e-13
    assert rel_err(dh0[0], want_ds[0]) < 1e-13 and rel_err(dc0[0], want_ds[1]) < 1e-13
    for k, g in want_grads.items():
        assert rel_err(layer.grads[f"{k}_l0"], g) < 1e-13
    # a sequence with lengths ends where its own steps end: the same as running it alone
    short = layer.forward(x[:2, 1:2])[1]
    padded = layer.forward(x, lengths=[6, 2, 6])[1]
    assert rel_err(padded[0][:, 1], short[0][:, 0]) < 1e-14 and rel_err(padded[1][:, 1], short[1][:, 0]) < 1e-14


def test_a_custom_cell_gradchecks_in_every_configuration_and_its_models_too():
    results, _ = gradcheck.check_cells([Coupled(scale=0.8)], num_layers=2, bidirectional=True, lengths=True,
                                       models=True, seq_len=4, batch=3, hidden=3, input_size=2)
    assert [label for label, _ in results][:2] == ["coupled step (scale=0.8)",
                                                   "Recurrent(Coupled(scale=0.8), 2, 3, num_layers=2, "
                                                   "bidirectional=True, impl='fast' (generic loop: coupled has "
                                                   "no fast path))"]
    assert len(results) == 5 and all(r.passed for _, r in results)
    assert {row.name for row in results[1][1].rows} >= {"weight_hf_l1_reverse", "x", "h0", "c0"}


def test_a_planted_error_fails_naming_the_parameter():
    class Wrong(Coupled):
        def step_backward(self, dstate, cache):
            dx_t, dprev, grads = super().step_backward(dstate, cache)
            return dx_t, dprev, {**grads, "weight_hg": 1.01 * grads["weight_hg"]}

    report = gradcheck.check_step(Wrong())
    assert report.failed == ["weight_hg"]
    layer = gradcheck.check(Recurrent(Wrong(), 4, 5, dtype=np.float64, seed=0),
                            np.random.default_rng(0).standard_normal((4, 2, 4)))
    assert layer.failed == ["weight_hg_l0"]


def test_the_checker_hands_the_backward_copies():
    """check_fn gives a function pair's backward copies: a right backward that writes into its
    arguments is not accused (check_fn reuses the projections as the loss's weights).  A Cell is
    held to the layer's protocol first, so check_step refuses one that writes into dstate, as
    the layer does (issue 34)."""
    class InPlace(Coupled):
        def step_backward(self, dstate, cache):
            out = super().step_backward(dstate, cache)
            for d in dstate:
                d *= 0
            return out

    with pytest.raises(CellError, match=r"^InPlace.step_backward changed dstate in place"):
        gradcheck.check_step(InPlace())

    def forward(x):
        y = np.tanh(x)
        return y, y

    def backward(dy, y):
        dx = dy * (1 - y * y)
        dy *= 0                                          # writes into its argument
        return (dx,)

    assert gradcheck.check_fn(forward, backward, [np.linspace(-1.0, 1.0, 5)]).passed


# --------------------------------------------------------------------------- bad cells

class Good(Cell):
    name = "good"

    def parameters(self, input_size, hidden_size):
        return {"weight_ih": (hidden_size, input_size), "weight_hh": (hidden_size, hidden_size)}

    def step_forward(self, x_t, state, p):
        h = np.tanh(x_t @ p["weight_ih"].T + state[0] @ p["weight_hh"].T)
        return (h,), {"x": x_t, "h_prev": state[0], "h": h, "p": p}

    def step_backward(self, dstate, cache):
        da = dstate[0] * (1 - cache["h"] ** 2)
        return (da @ cache["p"]["weight_ih"], (da @ cache["p"]["weight_hh"],),
                {"weight_ih": da.T @ cache["x"], "weight_hh": da.T @ cache["h_prev"]})


class TwoStates(Good):
    def step_forward(self, x_t, state, p):
        (h,), cache = super().step_forward(x_t, state, p)
        return (h, h), cache


class BareArray(Good):
    def step_forward(self, x_t, state, p):
        (h,), cache = super().step_forward(x_t, state, p)
        return h, cache


class WrongShape(Good):
    def step_forward(self, x_t, state, p):
        (h,), cache = super().step_forward(x_t, state, p)
        return (h[:, :1],), cache


class Float64Constant(Good):
    def step_forward(self, x_t, state, p):
        (h,), cache = super().step_forward(x_t, state, p)
        return (h.astype(np.float64),), cache         # computed in float64 (a NumPy float64 *scalar*
                                                      # would not promote under NumPy 1.x's value-based casting)


class ForgetsAGradient(Good):
    def step_backward(self, dstate, cache):
        dx_t, dprev, grads = super().step_backward(dstate, cache)
        return dx_t, dprev, {"weight_ih": grads["weight_ih"]}


class UnknownGradient(Good):
    def step_backward(self, dstate, cache):
        dx_t, dprev, grads = super().step_backward(dstate, cache)
        return dx_t, dprev, {**grads, "bias": np.zeros(5)}


class ListShape(Good):
    def parameters(self, input_size, hidden_size):
        return {"weight_ih": [hidden_size, input_size], "weight_hh": (hidden_size, hidden_size)}


class ChangesItsInput(Good):
    def step_forward(self, x_t, state, p):
        h_prev = state[0]
        h_prev *= 0.5                                 # writes into the state it was given
        return super().step_forward(x_t, state, p)


class ChangesItsCache(Good):
    def step_backward(self, dstate, cache):
        cache["h"] *= 0.5                             # the cache gradflow will read again
        return super().step_backward(dstate, cache)


class EmptiesItsCache(Good):
    def step_backward(self, dstate, cache):
        cache["p"] = cache.pop("p")                   # fine once...
        params = cache.pop("p")                       # ...but the second call finds nothing
        return super().step_backward(dstate, {**cache, "p": params})


BAD_CELLS = {
    TwoStates: "TwoStates.step_forward must return the new state as a tuple of 1 array \\(h\\), got a tuple of 2",
    BareArray: "BareArray.step_forward must return the new state as a tuple of 1 array \\(h\\), got a ndarray",
    WrongShape: "WrongShape.step_forward: the new state h must have shape \\(2, 5\\), got \\(2, 1\\)",
    Float64Constant: "Float64Constant.step_forward: the new state h is float64, but the layer computes in float32",
    ForgetsAGradient: "ForgetsAGradient.step_backward must return a gradient for every parameter "
                      "\\(weight_ih, weight_hh\\): missing \\['weight_hh'\\]",
    UnknownGradient: "UnknownGradient.step_backward must return a gradient for every parameter .*unknown \\['bias'\\]",
    ListShape: "ListShape.parameters: the shape of 'weight_ih' must be a tuple of positive ints, got \\[5, 3\\]",
    ChangesItsInput: "ChangesItsInput.step_forward changed its input state h in place",
    ChangesItsCache: "ChangesItsCache.step_backward changed its cache in place",
    EmptiesItsCache: "EmptiesItsCache.step_backward failed when called again on the same cache \\(KeyError",
}


@pytest.mark.parametrize("bad", list(BAD_CELLS), ids=[c.__name__ for c in BAD_CELLS])
def test_a_bad_cell_is_refused_when_its_layer_is_built_naming_the_method(bad):
    with pytest.raises(CellError, match=BAD_CELLS[bad]):
        Recurrent(bad(), 3, 5, seed=0)
    Recurrent(Good(), 3, 5, seed=0)              # the good one passes the same checks


def test_the_first_step_of_a_real_batch_is_checked_too():
    """A cell whose shapes go wrong only on a batch other than the probe's is caught at its first
    step, naming the method."""
    class OnlyBigBatches(Good):
        def step_forward(self, x_t, state, p):
            (h,), cache = super().step_forward(x_t, state, p)
            return ((h if len(h) < 3 else h[:-1]),), cache

    layer = Recurrent(OnlyBigBatches(), 3, 5, seed=0)
    with pytest.raises(CellError, match="OnlyBigBatches.step_forward: the new state h must have shape \\(4, 5\\)"):
        layer.forward(np.zeros((2, 4, 3), np.float32))


# --------------------------------------------------------------------------- models, training, saving

def test_models_take_a_cell_by_instance_or_registered_name(tmp_path):
    cells.register(Coupled)
    try:
        by_name = numpyrnn.SequenceClassifier("coupled", vocab_size=6, num_classes=2, hidden_size=4, seed=0)
        by_cell = numpyrnn.SequenceClassifier(Coupled(), vocab_size=6, num_classes=2, hidden_size=4, seed=0)
        assert by_name.config() == by_cell.config() and by_name.config()["cell"] == {"name": "coupled",
                                                                                     "options": {"scale": 1.0}}
        lm = numpyrnn.CharLM("coupled", vocab_size=5, hidden_size=4, seed=0)
        lm.forward(np.zeros((3, 2), np.int64))
        assert isinstance(lm.final_state, tuple) and len(lm.final_state) == 2
        assert len(lm.sample(5, prime=[1, 2], seed=0)) == 5
        numpyrnn.save(lm, tmp_path / "lm.npz")
        assert numpyrnn.load(tmp_path / "lm.npz").config() == lm.config()     # registered: by name
    finally:
        cells.protocol._REGISTRY.pop("coupled")
    # a textbook Cell instance is recorded as before: the name, with nonlinearity/reset_after
    gru = numpyrnn.SequenceRegressor(cells.get("gru", reset_after=False), input_size=2, seed=0)
    assert gru.config()["cell"] == "gru" and gru.config()["reset_after"] is False
    assert type(gru.rnn) is numpyrnn.GRU


def test_saving_and_loading_a_custom_cell_needs_its_class_handed_over(tmp_path):
    model = numpyrnn.SequenceRegressor(Coupled(scale=0.5), input_size=2, hidden_size=3, seed=0)
    numpyrnn.save(model, tmp_path / "m.npz")
    with pytest.raises(checkpoint.CheckpointError, match="its model runs the cell 'coupled', which is not known "
                                                         "here. Hand its class over, numpyrnn.load\\(path, cells="):
        numpyrnn.load(tmp_path / "m.npz")
    loaded = numpyrnn.load(tmp_path / "m.npz", cells=[Coupled])
    assert loaded.rnn.cell == Coupled(scale=0.5) and "coupled" not in cells.names()
    x = np.random.default_rng(0).standard_normal((4, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(x)[1], model.forward(x)[1])
    layer = Recurrent(Coupled(), 2, 3, seed=0)
    numpyrnn.save(layer, tmp_path / "layer.npz")
    assert numpyrnn.load(tmp_path / "layer.npz", cells=[Coupled]).config() == layer.config()


def test_a_checkpoint_never_imports_the_code_it_names(tmp_path, monkeypatch):
    """A file naming a module as its cell gets a refusal; the module is never imported."""
    marker = tmp_path / "imported"
    (tmp_path / "evil_cell.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = numpyrnn.SequenceRegressor(Coupled(), input_size=2, hidden_size=3, seed=0)
    arrays = checkpoint.model_arrays(model)
    for name in ("evil_cell", "evil_cell.Coupled", "os.system"):
        config = dict(model.config(), cell={"name": name, "options": {}})
        checkpoint.write(tmp_path / "m.npz", {**arrays, "config": np.array(json.dumps(config))})
        with pytest.raises(checkpoint.CheckpointError, match=f"runs the cell '{name}', which is not known here"):
            numpyrnn.load(tmp_path / "m.npz")
    assert not marker.exists() and "evil_cell" not in sys.modules


def test_the_trainer_calls_constrain_and_a_custom_run_resumes_exactly(tmp_path):
    task = tasks.make("adding", seq_len=5, seed=0, train_size=64, val_size=16, test_size=16)

    def run(steps, out, resume=False):
        model = task.make_model(Clipped(), hidden_size=4, seed=0)
        trainer = Trainer(model, task, optim.Adam(model, lr=0.05), batch_size=16, eval_every=3, seed=0,
                          out_dir=out, progress=False)
        if resume:
            trainer.resume()
        trainer.fit(steps=steps)
        return model

    whole = run(8, tmp_path / "a")
    assert np.abs(whole.params["rnn.weight_hh_l0"]).max() == pytest.approx(0.1)    # lr 0.05 pushes past it
    run(6, tmp_path / "b")
    resumed = run(8, tmp_path / "b", resume=True)
    for k, v in whole.params.items():
        np.testing.assert_array_equal(resumed.params[k], v)


def test_init_options_do_not_make_a_resumed_run_another_model(tmp_path):
    class Scaled(Coupled):
        init_options = ("scale",)

    task = tasks.make("adding", seq_len=4, seed=0, train_size=32, val_size=8, test_size=8)
    model = task.make_model(Scaled(scale=0.5), hidden_size=3, seed=0)
    trainer = Trainer(model, task, optim.SGD(model, lr=0.1), batch_size=8, eval_every=2, out_dir=tmp_path,
                      progress=False)
    trainer.fit(steps=2)
    again = task.make_model(Scaled(scale=0.9), hidden_size=3, seed=0)
    Trainer(again, task, optim.SGD(again, lr=0.1), batch_size=8, out_dir=tmp_path, progress=False).resume()
    other = task.make_model(Coupled(scale=0.9), hidden_size=3, seed=0)       # scale matters for Coupled
    with pytest.raises(checkpoint.CheckpointError, match="different model"):
        Trainer(other, task, optim.SGD(other, lr=0.1), batch_size=8, out_dir=tmp_path, progress=False).resume()


# --------------------------------------------------------------------------- gradflow

def test_one_step_jacobians_come_from_the_cell_s_steps_for_any_cell():
    """∂(h_t, c_t)/∂(h_{t−1}, c_{t−1}) of a two-state custom cell against finite differences."""
    cell = Coupled(scale=0.9)
    rng = np.random.default_rng(0)
    params = {k: rng.uniform(-0.7, 0.7, s) for k, s in cell.parameters(2, 3).items()}
    x = rng.standard_normal((2, 2))
    state = (rng.standard_normal((2, 3)), rng.standard_normal((2, 3)))
    J = step_jacobians(cell, x, state, params)
    eps = 1e-6
    for b in range(2):
        flat = np.concatenate([s[b] for s in state])
        for j in range(6):
            cols = []
            for sign in (1, -1):
                moved = flat.copy()
                moved[j] += sign * eps
                new, _ = cell.step_forward(x[b:b + 1], (moved[None, :3], moved[None, 3:]), params)
                cols.append(np.concatenate([new[0][0], new[1][0]]))
            np.testing.assert_allclose(J[b][:, j], (cols[0] - cols[1]) / (2 * eps), rtol=1e-6, atol=1e-9)
    task = tasks.make("adding", seq_len=5, seed=0, train_size=16, val_size=8, test_size=8)
    model = task.make_model(cell, hidden_size=3, seed=0)
    norms = jacobian_norms(model, task.examples("test", np.arange(4)).inputs, batch=4)
    assert len(norms["mean"]) == 5 and all(0 < m <= M for m, M in zip(norms["mean"], norms["max"]))


# --------------------------------------------------------------------------- the commands

def test_the_commands_take_a_cell_file(tmp_path, capsys):
    """gradcheck passes it and fails a planted 1 % error naming the parameter; train, resume,
    compare, bench, grade and export all take it; an unknown name is a usage error."""
    assert cli.main(["gradcheck", "--cell-file", FIXTURE, "--cell", "coupled", "--lengths"]) == 0
    out = capsys.readouterr().out
    assert "\ncoupled step " in out and "2/2 passed" in out
    planted = tmp_path / "planted.py"
    planted.write_text(open(FIXTURE).read().replace('"bias_g": da_g.sum(axis=0)', '"bias_g": 1.01 * da_g.sum(axis=0)'))
    assert cli.main(["gradcheck", "--cell-file", str(planted), "--cell", "coupled"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: bias_g" in out and "FAILED: bias_g_l0" in out
    run = str(tmp_path / "run")
    common = ["--cell-file", FIXTURE, "--cell", "coupled", "--task", "adding", "--seq-len", "5", "--hidden", "4",
              "--eval-every", "2", "--out", run, "--quiet"]
    assert cli.main(["train", *common, "--steps", "2"]) == 0
    assert cli.main(["train", *common, "--steps", "4", "--resume"]) == 0
    assert "4 steps" in capsys.readouterr().out
    assert cli.main(["compare", "--task", "adding", "--cells", "coupled,lstm", "--cell-file", FIXTURE, "--seeds", "1",
                     "--steps", "2", "--seq-len", "5", "--hidden", "4", "--quiet"]) == 0
    assert "COUPLED" in capsys.readouterr().out
    assert cli.main(["bench", "--cells", "clipped", "--cell-file", FIXTURE, "--shape", "3x2x2x3", "--dtypes",
                     "float64", "--repeat", "1", "--warmup", "0", "--no-torch"]) == 0
    assert "clipped" in capsys.readouterr().out
    assert cli.main(["grade", FIXTURE, "--cell", "coupled"]) == 0
    assert "PASSED: every gradient equals the finite differences" in capsys.readouterr().out
    assert cli.main(["grade", str(planted), "--cell", "coupled"]) == 1
    assert "bias_g" in capsys.readouterr().out
    cells.protocol._REGISTRY.pop("coupled", None)
    assert cli.main(["train", "--cell", "coupled", "--task", "adding", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown cell 'coupled'" in err and "needs --cell-file FILE" in err
    assert cli.main(["export", os.path.join(run, "model.npz"), "--to", "torch", str(tmp_path / "m.pt")]) == 2
    assert "runs the cell 'coupled'" in capsys.readouterr().err
    cells.protocol._REGISTRY.pop("coupled", None)
    cells.protocol._REGISTRY.pop("clipped", None)


def test_grade_names_a_file_without_the_cell(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("x = 1\n")
    report = exercises.grade(path, "mycell")
    assert report.errors == ["mine.py defines no Cell named 'mycell': write a subclass of numpyrnn.cells.Cell "
                             "with name = 'mycell'"]
    with pytest.raises(ValueError, match="graded by its step"):
        exercises.grade(path, "mycell", "sequence")


def test_the_example_cell_runs_from_the_command_line(tmp_path):
    example = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "custom_cell.py")
    out = subprocess.run([sys.executable, "-m", "numpyrnn", "gradcheck", "--cell-file", example, "--cell",
                          "minimal_rnn", "--bidirectional"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "2/2 passed" in out.stdout



def test_the_generic_cost_tool_runs(capsys):
    """tools/generic_cost.py, whose table docs/benchmarks.md shows."""
    path = os.path.join(os.path.dirname(__file__), os.pardir, "tools", "generic_cost.py")
    spec = importlib.util.spec_from_file_location("generic_cost", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["generic_cost.py", "3x2x2x3", "float64", "1", "gru"])
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[:3] == ["gru", "3x2x2x3", "float64"] and len(row) == 9 and float(row[6]) > 0


def test_a_char_model_of_a_custom_cell_trains_and_samples(tmp_path, capsys):
    """CharLM carries the cell's two states from chunk to chunk, saves, and samples by command."""
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. " * 40)
    run = tmp_path / "lm"
    assert cli.main(["train", "--task", "charlm", "--text", str(text), "--cell", "coupled", "--cell-file", FIXTURE,
                     "--hidden", "4", "--steps", "3", "--seq-len", "8", "--batch-size", "4", "--out", str(run),
                     "--quiet"]) == 0
    assert cli.main(["sample", "--checkpoint", str(run / "model.npz"), "--cell-file", FIXTURE, "--length", "12",
                     "--prime", "the "]) == 0
    line = capsys.readouterr().out.rstrip("\n").splitlines()[-1]
    assert line.startswith("the ") and len(line) == 16
    cells.protocol._REGISTRY.pop("coupled", None)
    cells.protocol._REGISTRY.pop("clipped", None)
