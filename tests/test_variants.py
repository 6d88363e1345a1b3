"""The gallery of cell variants: each gradchecked, each held to a loop of its equations written
here independently, the forget-gate bias, the length options, IndRNN's bound, the exercise."""

import inspect
import json

import numpy as np
import pytest

import numpyrnn
from conftest import rel_err
from numpyrnn import cells, cli, exercises, gradcheck, optim, tasks
from numpyrnn.cells import variants
from numpyrnn.train import Trainer

GALLERY = ["lstm_nig", "lstm_nfg", "lstm_nog", "lstm_niaf", "lstm_noaf", "lstm_cifg", "lstm_peephole", "mgu",
           "janet", "indrnn", "lstm_fb1"]


def sig(a):
    return 1 / (1 + np.exp(-a))


def equations(name, x, h, c, p):
    """One step of each variant, from its equations (docs/derivations.md §14, §15), without
    numpyrnn: (h, c) (c None for one-state cells)."""
    if name.startswith("lstm"):
        variant = name[5:]
        rows = {"nig": "fgo", "nfg": "igo", "nog": "ifg", "cifg": "igo"}.get(variant, "ifgo")
        a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        H = h.shape[1]
        blocks = {k: a[:, j * H:(j + 1) * H] for j, k in enumerate(rows)}
        if variant == "peephole":
            blocks["i"] = blocks["i"] + p["weight_ci"] * c
            blocks["f"] = blocks["f"] + p["weight_cf"] * c
        i = sig(blocks["i"]) if "i" in rows else 1.0
        f = 1 - i if variant == "cifg" else (sig(blocks["f"]) if "f" in rows else 1.0)
        g = blocks["g"] if variant == "niaf" else np.tanh(blocks["g"])
        c_new = f * c + i * g
        if variant == "peephole":
            blocks["o"] = blocks["o"] + p["weight_co"] * c_new
        o = sig(blocks["o"]) if "o" in rows else 1.0
        return o * (c_new if variant == "noaf" else np.tanh(c_new)), c_new
    if name == "mgu":
        H = h.shape[1]
        f = sig(x @ p["weight_ih"][:H].T + p["bias_ih"][:H] + h @ p["weight_hh"][:H].T + p["bias_hh"][:H])
        n = np.tanh(x @ p["weight_ih"][H:].T + p["bias_ih"][H:] + (f * h) @ p["weight_hh"][H:].T + p["bias_hh"][H:])
        return (1 - f) * h + f * n, None
    if name == "janet":
        H = h.shape[1]
        a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        s, c_tilde = a[:, :H], np.tanh(a[:, H:])
        return sig(s) * h + (1 - sig(s - 1.0)) * c_tilde, None
    return np.maximum(x @ p["weight_ih"].T + p["bias_ih"] + p["weight_hh"] * h, 0), None     # indrnn


def assert_loop_of(cell, step, rng, T=6, I=3, H=4):
    """A layer over ``cell`` (float64, its parameters moved off their draw) equals, step by step,
    a loop of ``step(x_t, h, c, params) -> (h, c or None)`` written from the equations.
    Returns the layer's final state and the loop's last h and c."""
    layer = numpyrnn.Recurrent(cell, I, H, dtype=np.float64, seed=1)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in layer.cell_params().items()}
    for k, v in params.items():
        layer.params[f"{k}_l0"] = v
    x = rng.standard_normal((T, 2, I))
    y, state = layer.forward(x)
    h, c = np.zeros((2, H)), np.zeros((2, H))
    for t in range(T):
        h, c_new = step(x[t], h, c, params)
        c = c_new if c_new is not None else c
        assert rel_err(y[t], h) < 1e-13, t
    return state, h, c


@pytest.mark.parametrize("name", GALLERY)
def test_each_variant_is_a_loop_of_its_equations(name):
    state, h, c = assert_loop_of(name, lambda *a: equations(name, *a), np.random.default_rng(len(name)))
    finals = state if isinstance(state, tuple) else (state,)
    assert rel_err(finals[0][0], h) < 1e-13
    if len(finals) == 2:
        assert rel_err(finals[1][0], c) < 1e-13


@pytest.mark.parametrize("name", GALLERY)
def test_each_variant_gradchecks_step_and_layer(name):
    results, _ = gradcheck.check_cells([name], bidirectional=True, lengths=True, seq_len=4, batch=3, input_size=3,
                                       hidden=3)
    assert [r.passed for _, r in results] == [True, True], "\n".join(str(r) for _, r in results)
    names = {row.name for row in results[1][1].rows}
    assert {f"{k}_l0_reverse" for k in cells.get(name).parameters(3, 3)} <= names


def test_every_variant_is_registered_and_named_by_its_docstring():
    assert [n for n in cells.names() if n in GALLERY] == GALLERY[-1:] + GALLERY[:-1]
    for cls in variants.VARIANTS:
        assert cls.name in (inspect.getdoc(cls) + (inspect.getdoc(inspect.getmodule(cls)) or ""))
        assert "=" in inspect.getdoc(inspect.getmodule(cls))          # the equations


def test_a_variant_without_a_gate_has_no_rows_for_it():
    assert cells.get("lstm_nig").parameters(2, 3)["weight_hh"] == (9, 3)
    assert cells.get("lstm_cifg").parameters(2, 3)["weight_ih"] == (9, 2)
    assert set(cells.get("lstm_peephole").parameters(2, 3)) >= {"weight_ci", "weight_cf", "weight_co"}
    assert cells.get("indrnn").parameters(2, 3)["weight_hh"] == (3,)


def test_the_forget_bias_moves_no_other_draw_and_is_refused_without_biases():
    plain = numpyrnn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=5)
    biased = numpyrnn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=5, forget_bias=1.0)
    for k, v in plain.params.items():
        w = biased.params[k]
        if k.startswith("bias"):
            forget = slice(4, 8)
            want = 1.0 if k.startswith("bias_ih") else 0.0
            np.testing.assert_array_equal(w[forget], want)
            np.testing.assert_array_equal(np.delete(w, np.arange(4, 8)), np.delete(v, np.arange(4, 8)))
        else:
            np.testing.assert_array_equal(w, v)
    fb1 = numpyrnn.Recurrent("lstm_fb1", 3, 4, num_layers=2, bidirectional=True, seed=5)
    assert fb1.loop.kind == "fast"                                   # the LSTM's own fast path
    for k, v in biased.params.items():
        np.testing.assert_array_equal(fb1.params[k], v)
    nig = numpyrnn.Recurrent(cells.get("lstm_nig", forget_bias=2.0), 3, 4, seed=0)
    assert np.all(nig.params["bias_ih_l0"][:4] == 2.0)              # rows [f | g | o]: f first
    with pytest.raises(ValueError, match="forget_bias initialises the forget gate's bias, so it needs bias=True"):
        numpyrnn.LSTM(3, 4, bias=False, forget_bias=1.0)
    with pytest.raises(ValueError, match="lstm_nfg has no forget gate of its own"):
        cells.get("lstm_nfg", forget_bias=1.0)
    with pytest.raises(ValueError, match="forget_bias must be a finite number"):
        cells.get("lstm", forget_bias=float("nan"))
    assert biased.config()["forget_bias"] == 1.0 and "forget_bias" not in plain.config()


def test_the_forget_bias_is_not_the_model_s_identity_when_resuming(tmp_path):
    task = tasks.make("adding", seq_len=4, seed=0, train_size=32, val_size=8, test_size=8)
    model = task.make_model(cells.get("lstm", forget_bias=1.0), hidden_size=3, seed=0)
    Trainer(model, task, optim.SGD(model, lr=0.1), batch_size=8, eval_every=2, out_dir=tmp_path,
            progress=False).fit(steps=2)
    again = task.make_model("lstm", hidden_size=3, seed=0)
    trainer = Trainer(again, task, optim.SGD(again, lr=0.1), batch_size=8, out_dir=tmp_path, progress=False)
    trainer.resume()
    np.testing.assert_array_equal(again.params["rnn.bias_ih_l0"], model.params["rnn.bias_ih_l0"])


def test_length_options_come_from_the_task_unless_given():
    adding = tasks.make("adding", seq_len=30, seed=0, train_size=16, val_size=8, test_size=8)
    assert adding.make_model("janet", hidden_size=4, seed=0).cell.t_max == 30
    assert adding.make_model(cells.get("janet", t_max=7), hidden_size=4, seed=0).cell.t_max == 7
    copy = tasks.make("copy", seq_len=10, seed=0, train_size=16, val_size=8, test_size=8)
    assert copy.make_model("indrnn", hidden_size=4, seed=0).cell.t_max == 30     # T + 20 steps
    bias = adding.make_model("janet", hidden_size=64, seed=0).params["rnn.bias_ih_l0"][:64]
    assert 0 <= bias.min() and bias.max() <= np.log(30) and bias.std() > 0.3       # chrono: log U(1, 30)


def test_indrnn_keeps_its_recurrent_weight_bounded():
    task = tasks.make("adding", seq_len=10, seed=0, train_size=64, val_size=8, test_size=8)
    model = task.make_model("indrnn", hidden_size=8, seed=0)
    bound = 2.0 ** (1 / 10)
    u = model.params["rnn.weight_hh_l0"]
    assert 0 <= u.min() and u.max() <= bound
    model.params["rnn.weight_hh_l0"] = np.array([3.0, -3.0, 0.5, 0, 0, 0, 0, 0])        # beyond the bound
    Trainer(model, task, optim.SGD(model, lr=1e-3), batch_size=16, progress=False).fit(steps=1)
    np.testing.assert_allclose(u[:3], [bound, -bound, 0.5], rtol=1e-2)                    # clipped, and held


def test_the_export_refuses_a_variant_saying_why():
    pytest.importorskip("torch")
    from numpyrnn import export

    with pytest.raises(ValueError, match="torch.nn has no module that computes the cell 'lstm_cifg'"):
        export.to_torch(numpyrnn.SequenceRegressor("lstm_cifg", input_size=2, hidden_size=3, seed=0))
    model = numpyrnn.SequenceRegressor("lstm_fb1", input_size=2, hidden_size=3, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 2)).astype(np.float32)
    assert export.max_difference(model, export.to_torch(model), x) < 1e-6     # an LSTM, by another init


def test_a_variant_is_an_exercise_graded_against_its_reference(tmp_path, capsys):
    assert cli.main(["exercise", "lstm_peephole"]) == 0
    text = capsys.readouterr().out
    assert "class MyPeephole(Peephole)" in text and "a_o += p_o ⊙ c" in text
    path = tmp_path / "my_peephole.py"
    path.write_text(text)
    report = exercises.grade(path, "lstm_peephole")
    assert not report.passed and "not written yet" in str(report)
    solution = text.replace('        raise NotImplementedError("step_forward")',
                            "        return super().step_forward(x_t, state, params)")
    solution = solution.replace('        raise NotImplementedError("step_backward")',
                                "        return super().step_backward(dstate, cache)")
    path.write_text(solution)
    report = exercises.grade(path, "lstm_peephole")
    assert report.passed, str(report)
    assert "equals numpyrnn's lstm_peephole" in str(report)


def test_the_study_runs_quick_in_parallel_and_its_tool_draws_it(tmp_path, capsys):
    """The issue's command, at --quick with two workers; then tools/gate_study.py reads the
    sweeps' JSON and prints the table and draws the figure."""
    import importlib.util
    import os

    out = tmp_path / "adding"
    assert cli.main(["sweep", "--task", "adding", "--cells", "lstm,lstm_nfg,lstm_noaf", "--seeds", "1", "--quick",
                     "--jobs", "2", "--lengths", "5", "--out", str(out), "--quiet"]) == 0
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    folder = tmp_path / "gates"
    folder.mkdir()
    (folder / "adding50.json").write_text((out / "sweep.json").read_text())
    longer = json.loads((out / "sweep.json").read_text())
    longer["lengths"] = [10]                                     # a second T for the lines against T
    (folder / "adding100.json").write_text(json.dumps(longer))
    path = os.path.join(os.path.dirname(__file__), os.pardir, "tools", "gate_study.py")
    spec = importlib.util.spec_from_file_location("gate_study", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    capsys.readouterr()
    tool.main(["gate_study.py", str(folder), str(tmp_path / "g.png")])
    printed = capsys.readouterr().out
    assert "| lstm_nfg |" in printed and "h: " in printed and "adding, T = 100" in printed
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


GATE_STUDY = {"adding50": ("adding", 50, 3000, 64), "adding100": ("adding", 100, 4000, 64), "copy5": ("copy", 5, 4000, 128)}
GATE_CELLS = ["lstm", "lstm_nig", "lstm_nfg", "lstm_nog", "lstm_niaf", "lstm_noaf", "lstm_cifg", "lstm_peephole",
              "lstm_fb1", "mgu", "janet", "indrnn", "gru", "rnn"]


def test_the_gate_study_is_committed_and_its_figure_is_redrawn_from_it(tmp_path, capsys):
    """docs/results/gates holds the study's sweeps, run as docs/benchmarks.md says (each cell,
    3 seeds, the stated budget), and tools/gate_study.py redraws the README's figure from them."""
    import importlib.util
    import os

    root = os.path.join(os.path.dirname(__file__), os.pardir)
    for name, (task, T, steps, hidden) in GATE_STUDY.items():
        with open(os.path.join(root, "docs", "results", "gates", f"{name}.json")) as f:
            d = json.load(f)
        assert (d["task"], d["lengths"], d["budget"]["steps"], d["hidden"], d["seeds"]) == (task, [T], steps, hidden, 3)
        assert list(d["cells"]) == GATE_CELLS and all(len(v[0]) == 3 for v in d["cells"].values())
        assert (task == "adding") == ("gradflow" in d)
    spec = importlib.util.spec_from_file_location("gate_study", os.path.join(root, "tools", "gate_study.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(["gate_study.py", os.path.join(root, "docs", "results", "gates"), str(tmp_path / "gates.png")])
    assert "| lstm_cifg |" in capsys.readouterr().out and (tmp_path / "gates.png").read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- the switches combined (issue 34, item 1)

SWITCHES = ("input_gate", "forget_gate", "output_gate", "input_activation", "output_activation", "coupled", "peepholes")
BASE = {"input_gate": True, "forget_gate": True, "output_gate": True, "input_activation": True,
        "output_activation": True, "coupled": False, "peepholes": False}


def family(**switches):
    """An LSTMFamily subclass with these switches (the rest as the base's)."""
    name = "combo_" + "_".join(k for k, v in switches.items() if v != BASE[k])
    return type("Combo", (variants.LSTMFamily,), {"name": name, **switches})


def family_equations(s, x, h, c, p):
    """One step of the LSTM with switches ``s``, from §14's equations, without numpyrnn."""
    s = {**BASE, **s}
    rows = "".join(k for k, keep in (("i", s["input_gate"]), ("f", s["forget_gate"] and not s["coupled"]),
                                     ("g", True), ("o", s["output_gate"])) if keep)
    a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    H = h.shape[1]
    blocks = {k: a[:, j * H:(j + 1) * H] for j, k in enumerate(rows)}
    if s["peepholes"] and "i" in rows:
        blocks["i"] = blocks["i"] + p["weight_ci"] * c
    if s["peepholes"] and "f" in rows:
        blocks["f"] = blocks["f"] + p["weight_cf"] * c
    i = sig(blocks["i"]) if "i" in rows else 1.0
    f = 1 - i if s["coupled"] else (sig(blocks["f"]) if "f" in rows else 1.0)
    g = np.tanh(blocks["g"]) if s["input_activation"] else blocks["g"]
    c_new = f * c + i * g
    if s["peepholes"] and "o" in rows:
        blocks["o"] = blocks["o"] + p["weight_co"] * c_new
    o = sig(blocks["o"]) if "o" in rows else 1.0
    return o * (np.tanh(c_new) if s["output_activation"] else c_new), c_new


VALID = [dict(zip(SWITCHES, values)) for values in np.ndindex(*(2,) * len(SWITCHES))]
VALID = [{k: bool(v) for k, v in combo.items()} for combo in VALID]
VALID = [s for s in VALID if not (s["coupled"] and not (s["input_gate"] and s["forget_gate"]))]


@pytest.mark.parametrize("switches", VALID, ids=lambda s: "-".join(k for k, v in s.items() if v != BASE[k]) or "base")
def test_every_combination_of_the_switches_gradchecks_and_is_its_equations(switches):
    cell = family(**switches)()
    results, _ = gradcheck.check_cells([cell], lengths=True, seq_len=3, batch=2, input_size=2, hidden=2)
    assert all(r.passed for _, r in results), "\n".join(str(r) for _, r in results)
    assert_loop_of(cell, lambda *a: family_equations(switches, *a), np.random.default_rng(7), T=4, I=2, H=3)
    peepholes = {"weight_ci", "weight_cf", "weight_co"} & set(cell.parameters(2, 3))
    kept = {"i": switches["input_gate"], "f": switches["forget_gate"] and not switches["coupled"],
            "o": switches["output_gate"]}
    assert peepholes == ({f"weight_c{g}" for g, k in kept.items() if k} if switches["peepholes"] else set())


def test_greffs_own_variants_keep_their_peepholes():
    """NIG, NFG, NOG, NIAF, NOAF and CIFG as the paper has them: each with its peepholes."""
    for cls, weights in ((variants.NIG, {"weight_cf", "weight_co"}), (variants.NFG, {"weight_ci", "weight_co"}),
                         (variants.NOG, {"weight_ci", "weight_cf"}), (variants.CIFG, {"weight_ci", "weight_co"}),
                         (variants.NIAF, {"weight_ci", "weight_cf", "weight_co"}),
                         (variants.NOAF, {"weight_ci", "weight_cf", "weight_co"})):
        greff = type(f"Greff{cls.__name__}", (cls,), {"name": f"greff_{cls.name[5:]}", "peepholes": True})
        assert {k for k in greff().parameters(2, 3) if k.startswith("weight_c")} == weights, cls.__name__


@pytest.mark.parametrize("switches,why", [
    ({"coupled": True, "input_gate": False}, "coupled gates set f = 1 − i, and this variant has no input gate i "
                                             "(coupled = True needs input_gate = True)"),
    ({"coupled": True, "forget_gate": False}, "coupled gates set f = 1 − i, and forget_gate = False sets f ≡ 1; "
                                              "choose one of them"),
    ({"coupled": True, "forget_gate": False, "input_gate": False, "peepholes": True}, "no input gate i"),
])
def test_the_switches_that_contradict_each_other_are_refused_saying_why(switches, why):
    cls = family(**switches)
    with pytest.raises(ValueError) as refused:
        cls()
    assert str(refused.value).startswith(f"{cls.name}: coupled gates set f = 1 − i") and why in str(refused.value)
    assert "\n" not in str(refused.value)
