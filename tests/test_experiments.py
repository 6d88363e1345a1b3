"""The experiments: comparison, gradient flow, sweep, and their figures."""

import json

import numpy as np
import pytest

from numpyrnn import tasks
from numpyrnn.cells import rnn as rnn_cell
from numpyrnn.experiments import compare as compare_module  # the module
from numpyrnn.experiments.compare import compare, matched_hidden, table, write
from numpyrnn.experiments.gradflow import gradflow, gradient_norms
from numpyrnn.experiments.sweep import sweep
from numpyrnn import plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_compare_on_a_tiny_budget_writes_everything(tmp_path):
    results = compare("adding", cells=("lstm", "rnn"), seeds=2, steps=6, quick=True)
    assert list(results["cells"]) == ["lstm", "rnn"]
    for cell, r in results["cells"].items():
        assert len(r["runs"]) == 2 and r["hidden"] == 64
        assert r["summary"]["test_mean"] is not None and r["summary"]["train_seconds_mean"] > 0
        assert all(run["curve"] and run["activation_bytes"] > 0 for run in r["runs"])
    # the same data for every run: the task is made once, from the data seed
    assert results["task"]["seed"] == 0 and results["settings"]["budget"] == {"steps": 6}
    text = table(results)
    assert "LSTM" in text and "RNN" in text and "±" in text
    write(results, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["metric"] == "mse"
    assert (tmp_path / "results.md").read_text().startswith("# adding: LSTM, RNN")
    assert (tmp_path / "compare.png").read_bytes()[:8] == PNG


@pytest.mark.parametrize("task,metric", [("adding", "mse"), ("copy", "loss"), ("sentiment", "accuracy"),
                                         ("charlm", "bpc"), ("series", "mse")])
def test_compare_works_for_every_task_with_its_own_metric(tmp_path, task, metric):
    results = compare(task, cells=("gru", "rnn"), seeds=1, steps=3, quick=True)
    assert results["metric"] == metric
    for r in results["cells"].values():
        assert np.isfinite(r["summary"]["test_mean"]) and r["runs"][0]["curve"]
    write(results, tmp_path)
    assert metric in (tmp_path / "results.md").read_text().lower()


def test_same_seed_same_comparison():
    a = compare("sentiment", cells=("gru",), seeds=1, steps=5, quick=True)
    b = compare("sentiment", cells=("gru",), seeds=1, steps=5, quick=True)
    assert a["cells"]["gru"]["runs"][0]["test"] == b["cells"]["gru"]["runs"][0]["test"]


def test_match_params_sizes_every_cell_to_the_reference():
    task = tasks.make("sentiment", **compare_module.QUICK["sentiment"][0])
    target = task.make_model("lstm", hidden_size=64, seed=0).num_parameters()
    for cell in ("gru", "rnn"):
        h = matched_hidden(task, cell, target)
        n = task.make_model(cell, hidden_size=h, seed=0).num_parameters()
        step = task.make_model(cell, hidden_size=h + 1, seed=0).num_parameters() - n
        assert abs(n - target) <= step, (cell, h, n, target)
    results = compare("sentiment", cells=("lstm", "gru", "rnn"), seeds=1, steps=2, quick=True, match_params=True)
    sizes = {c: r["hidden"] for c, r in results["cells"].items()}
    assert sizes["lstm"] == 64 < sizes["gru"] < sizes["rnn"]


def test_gradient_norms_equal_a_backward_through_the_step_functions():
    """∂L/∂h_t from the layer's one backward against the readable step functions, step by step."""
    task = tasks.make("adding", seq_len=7, train_size=50, val_size=10, test_size=10)
    model = task.make_model("rnn", hidden_size=5, seed=3)
    batch = task.examples("test", np.arange(4))
    norms = gradient_norms(model, batch.inputs, batch.targets)

    m = model.astype(np.float64)
    W = [m.params[f"rnn.{k}_l0"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    h, caches = np.zeros((4, 5)), []
    for t in range(7):
        h, cache = rnn_cell.step_forward(batch.inputs[t].astype(np.float64), h, *W)
        caches.append(cache)
    prediction = h @ m.params["head.weight"].T + m.params["head.bias"]
    dprediction = 2 * (prediction - batch.targets) / prediction.size
    dh = dprediction @ m.params["head.weight"]
    expected = [None] * 7
    for t in range(6, -1, -1):
        expected[t] = np.linalg.norm(dh, axis=1).mean()
        dh = rnn_cell.step_backward(dh, caches[t])[1]
    assert list(norms) == ["h"]
    assert np.allclose(norms["h"], expected, rtol=1e-10)


def test_gradflow_and_its_figure(tmp_path):
    data = gradflow(("rnn", "lstm"), seq_len=6, steps=4, hidden=8, batch=4)
    for cell in ("rnn", "lstm"):
        for stage in ("initial", "trained"):
            entry = data["cells"][cell][stage]
            assert len(entry["grad_norms"]) == len(entry["jacobian"]["mean"]) == 6
            assert list(entry.get("state_grad_norms", {})) == (["c"] if cell == "lstm" else [])
            assert ("forget_gate" in entry) == (cell == "lstm")
    gate = data["cells"]["lstm"]["trained"]["forget_gate"]
    assert len(gate["mean"]) == 6 and all(0 < v < 1 for v in gate["mean"])
    assert all(lo <= m <= hi for lo, m, hi in zip(gate["p10"], gate["mean"], gate["p90"]))
    plots.gradflow(data, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == PNG


def test_sweep_and_its_figure(tmp_path):
    data = sweep(lengths=(4, 6), cells=("gru", "rnn"), steps=3, hidden=4, train_size=64)
    assert data["lengths"] == [4, 6] and all(len(v) == 2 for v in data["cells"].values())
    plots.sweep(data, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG


def test_plots_leave_pyplot_alone(tmp_path):
    """Drawing neither imports pyplot nor switches a session's backend.  In a fresh interpreter,
    so that no earlier test's import of pyplot can hide an import by the plots."""
    import subprocess
    import sys

    script = """
import sys
import matplotlib
from numpyrnn import plots
from numpyrnn.experiments.sweep import sweep
data = sweep(lengths=(4,), cells=("rnn",), steps=2, hidden=2, train_size=32)
plots.sweep(data, sys.argv[1])
print("pyplot" if "matplotlib.pyplot" in sys.modules else "no pyplot")
import matplotlib.pyplot as plt
plt.switch_backend("svg")
plots.sweep(data, sys.argv[1])
print(matplotlib.get_backend())
"""
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s.png")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["no", "pyplot", "svg"]


def test_compare_errors(capsys):
    from numpyrnn import cli

    assert cli.main(["compare", "--task", "charlm", "--bidirectional", "--quick", "--seeds", "1"]) == 2
    assert "bidirectional" in capsys.readouterr().err
    assert cli.main(["sweep", "--lengths", "10,x"]) == 2


def test_one_progress_bar_over_the_whole_command(capsys):
    """compare, sweep and gradflow draw one bar over every run's steps, labelled with the run under
    way, when asked (on a terminal by default); the log lines still reach stdout."""
    data = sweep(lengths=(4, 6), cells=("rnn",), steps=3, hidden=2, train_size=32, log=print, progress=True)
    captured = capsys.readouterr()
    assert "T=   4 rnn  test MSE" in captured.out and "T=   6 rnn  test MSE" in captured.out
    assert "6/6" in captured.err and "T=6 rnn seed 0" in captured.err
    assert len(data["cells"]["rnn"]) == 2
    sweep(lengths=(4,), cells=("rnn",), steps=2, hidden=2, train_size=32, log=print, progress=False)
    assert capsys.readouterr().err == ""


def test_progress_is_off_when_stderr_is_not_a_terminal_or_with_quiet(capsys, tmp_path):
    from numpyrnn import cli

    argv = ["sweep", "--lengths", "4", "--cells", "rnn", "--steps", "2", "--hidden", "2"]
    assert cli.main(argv + ["--out", str(tmp_path / "a")]) == 0          # pytest's stderr: no terminal
    captured = capsys.readouterr()
    assert captured.err == "" and "test MSE" in captured.out
    assert cli.main(argv + ["--out", str(tmp_path / "b"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "test MSE" in captured.out                # --quiet: no bar


def test_sweep_runs_in_workers_and_the_numbers_do_not_depend_on_how_many(tmp_path):
    """--jobs: the same numbers bit for bit with 1 worker or 2 (one BLAS thread each), any cells
    (a gallery variant, a length option filled from the task), the copy task too; the GPU takes
    one job."""
    common = dict(lengths=(4, 6), cells=("rnn", "janet"), steps=3, hidden=4, train_size=32, seeds=2)
    one, two = sweep(**common, jobs=1), sweep(**common, jobs=2)
    assert one["cells"] == two["cells"] and one["gradflow"] == two["gradflow"]
    assert two["side_by_side"] and not one["side_by_side"]
    ratios = one["gradflow"]["janet"][0][0]
    assert set(ratios) == {"initial", "trained"} and ratios["initial"]["h"] > 0
    copy = sweep(lengths=(3,), cells=("lstm_nig",), steps=2, hidden=4, train_size=16, task="copy", jobs=1)
    assert copy["metric"] == "loss" and "gradflow" not in copy and len(copy["baselines"]) == 1
    plots.sweep(copy, tmp_path / "c.png")
    with pytest.raises(ValueError, match="jobs=2 on the GPU"):
        import numpyrnn.experiments.sweep as sweep_module
        original = sweep_module.backend.resolve_device
        sweep_module.backend.resolve_device = lambda device: "gpu"
        try:
            sweep(lengths=(3,), cells=("rnn",), steps=1, jobs=2, device="gpu")
        finally:
            sweep_module.backend.resolve_device = original
