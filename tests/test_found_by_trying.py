"""What a second user tripped on (issue 34), each with the test that failed before its fix: a
state the step does not read, gradcheck.check_step's probe, a broken cell on the command line,
gradflow's report and gate panel, wording, the grader's child, raw errors, results on real data.
(The LSTM family's switches are in test_variants.py.)"""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import numpyrnn
from numpyrnn import cells, cli, exercises, gradcheck
from numpyrnn.experiments.gradflow import step_jacobians

SRU_LIKE = '''
import numpy as np
from numpyrnn import cells
from numpyrnn.backend import array_module
from numpyrnn.cells.common import sigmoid


class SRULike(cells.Cell):
    """A step that never reads h_prev (Lei et al.'s SRU, without its highway):
    f = σ(x W_f^T + b_f), c = f ⊙ c_prev + (1 − f) ⊙ (x W^T), h = tanh(c)."""
    name = "sru_like"
    state_names = ("h", "c")

    def parameters(self, input_size, hidden_size):
        return {"weight_f": (hidden_size, input_size), "bias_f": (hidden_size,),
                "weight": (hidden_size, input_size)}

    def step_forward(self, x_t, state, params):
        xp = array_module(x_t)
        _, c_prev = state
        f = sigmoid(x_t @ params["weight_f"].T + params["bias_f"])
        u = x_t @ params["weight"].T
        c = f * c_prev + (1 - f) * u
        h = xp.tanh(c)
        return (h, c), (x_t, c_prev, f, u, h, params)

    def step_backward(self, dstate, cache):
        dh, dc = dstate
        x_t, c_prev, f, u, h, params = cache
        dc = dc + dh * (1 - h * h)                  # h = tanh(c)
        df = dc * (c_prev - u)                      # c = f ⊙ c_prev + (1 − f) ⊙ u
        du = dc * (1 - f)
        da_f = df * f * (1 - f)
        grads = {"weight_f": da_f.T @ x_t, "bias_f": da_f.sum(axis=0), "weight": du.T @ x_t}
        dx_t = da_f @ params["weight_f"] + du @ params["weight"]
        return dx_t, (None, dc * f), grads           # h_prev is not read: None, a zero gradient
'''


@pytest.fixture(autouse=True)
def registry_as_it_was():
    """The cells a test's --cell-file registers leave with it."""
    protocol = cells.protocol
    saved = dict(protocol._REGISTRY), list(protocol.FILES), set(protocol.FILE_MODULES)
    yield
    protocol._REGISTRY.clear()
    protocol._REGISTRY.update(saved[0])
    protocol.FILES[:] = saved[1]
    protocol.FILE_MODULES.clear()
    protocol.FILE_MODULES.update(saved[2])


def _module(tmp_path, source=SRU_LIKE, name="sru_like.py"):
    path = tmp_path / name
    path.write_text(source)
    return path


@pytest.fixture
def sru(tmp_path):
    namespace = {}
    exec(compile(SRU_LIKE, "sru_like.py", "exec"), namespace)
    return namespace["SRULike"]


# --------------------------------------------------------------------------- item 2: None is a zero gradient

def test_a_state_the_step_does_not_read_may_have_none_as_its_gradient(sru, tmp_path):
    layer = numpyrnn.Recurrent(sru(), 3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y, _ = layer.forward(x, lengths=[5, 2])
    dx, (dh0, dc0) = layer.backward(np.ones_like(y))
    assert np.all(dh0 == 0) and np.any(dc0 != 0) and dx.shape == x.shape
    results, _ = gradcheck.check_cells([sru()], lengths=True, bidirectional=True, seq_len=4, batch=3, hidden=3)
    assert [r.passed for _, r in results] == [True, True], "\n".join(str(r) for _, r in results)
    step = results[0][1]
    assert {r.name: r.passed for r in step.rows}["h_prev"] and "no gradient" not in str(step)
    J = step_jacobians(sru(), x[0], (np.zeros((2, 4)), np.ones((2, 4))), layer.cell_params(0, 0))
    assert J.shape == (2, 8, 8) and np.all(J[:, :, :4] == 0)          # nothing depends on h_prev
    report = exercises.grade(_module(tmp_path), "sru_like")
    assert report.passed, str(report)


# --------------------------------------------------------------------------- item 3: check_step probes as the layer does

def _broken(**methods):
    """The SRU-like cell with some methods replaced."""
    namespace = {}
    exec(compile(SRU_LIKE, "sru_like.py", "exec"), namespace)
    return type("Broken", (namespace["SRULike"],), {"name": "broken", **methods})


def _writes_into_cache(self, dstate, cache):
    out = type(self).__mro__[1].step_backward(self, dstate, cache)
    cache[2][...] = 0.5                                             # f, in place
    return out


def _writes_into_dstate(self, dstate, cache):
    out = type(self).__mro__[1].step_backward(self, dstate, cache)
    dstate[1][...] = 0
    return out


def _promotes(self, x_t, state, params):
    (h, c), cache = type(self).__mro__[1].step_forward(self, x_t, state, params)
    return (h * np.ones(1), c), cache                              # a float64 array promotes float32


def _returns_none(self, dstate, cache):
    return None


def _one_tuple(self, x_t, state, params):
    return (type(self).__mro__[1].step_forward(self, x_t, state, params)[0],)


def _too_few_states(self, dstate, cache):
    dx_t, (dh, dc), grads = type(self).__mro__[1].step_backward(self, dstate, cache)
    return dx_t, (dc,), grads


def _broadcast_error(self, x_t, state, params):
    return type(self).__mro__[1].step_forward(self, x_t, (state[0], state[1][:, :2]), params)


BROKEN = [
    ({"step_backward": _writes_into_cache}, "Broken.step_backward changed its cache in place"),
    ({"step_backward": _writes_into_dstate}, "Broken.step_backward changed dstate in place"),
    ({"step_forward": _promotes}, "Broken.step_forward: the new state h is float64, but the layer computes in float32"),
    ({"step_backward": _returns_none}, "Broken.step_backward must return (dx_t, dstate_prev, grads), got NoneType"),
    ({"step_forward": _one_tuple}, "Broken.step_forward must return (new_state, cache), got tuple of 1"),
    ({"step_backward": _too_few_states}, "Broken.step_backward must return dstate_prev as a tuple of 2 arrays (h, c)"),
    ({"step_forward": _broadcast_error}, "Broken.step_forward raised ValueError: operands could not be broadcast"),
]


@pytest.mark.parametrize("methods,message", BROKEN, ids=[m for _, m in BROKEN])
def test_check_step_refuses_what_the_layer_refuses_with_its_words(methods, message):
    cell = _broken(**methods)()
    with pytest.raises(cells.CellError) as by_layer:
        numpyrnn.Recurrent(cell, 4, 5, dtype=np.float32, seed=0)
    with pytest.raises(cells.CellError) as by_check:
        gradcheck.check_step(cell, batch=2, input_size=4, hidden=5)
    assert str(by_check.value) == str(by_layer.value) and str(by_check.value).startswith(message)


def test_check_step_still_passes_a_sound_cell_and_fails_a_wrong_gradient(sru):
    assert gradcheck.check_step(sru()).passed

    def wrong(self, dstate, cache):
        dx_t, (dh, dc), grads = sru.step_backward(self, dstate, cache)
        return dx_t, (dh, 1.01 * dc), grads

    report = gradcheck.check_step(_broken(step_backward=wrong)())
    assert not report.passed and [r.name for r in report.rows if not r.passed] == ["c_prev"]


# --------------------------------------------------------------------------- item 4: a broken cell on the command line

def test_gradcheck_on_a_broken_cell_file_is_one_line_and_exit_2(tmp_path, capsys):
    source = (SRU_LIKE.replace("return dx_t, (None, dc * f), grads", "return dx_t, (dc * f,), grads")
              .replace('name = "sru_like"', 'name = "sru_broken"'))
    path = _module(tmp_path, source, "broken_cells.py")
    assert cli.main(["gradcheck", "--cell-file", str(path), "--cell", "sru_broken"]) == 2
    captured = capsys.readouterr()
    assert captured.err == ("numpyrnn gradcheck: SRULike.step_backward must return dstate_prev as a tuple of 2 "
                            "arrays (h, c) (None for a state the step does not read), got a tuple of 1\n")
    assert "Traceback" not in captured.out + captured.err
    assert cli.main(["gradcheck", "--cell-file", str(_module(tmp_path)), "--cell", "sru_like"]) == 0


# --------------------------------------------------------------------------- item 5: gradflow reports every state

def test_gradflow_reports_every_state_the_cell_carries(sru):
    from numpyrnn.experiments import gradflow

    lines = []
    cells.register(sru)
    data = gradflow.gradflow(cells=("lstm", "sru_like"), seq_len=6, steps=2, hidden=3, batch=4, log=lines.append,
                             progress=False)
    said = {line.split(":")[0]: line for line in lines if "‖∂L/∂s_0‖" in line}
    assert "h 0 (nothing flows back through h)" in said["sru_like"] and ", c " in said["sru_like"]
    ratios = data["cells"]["sru_like"]["ratios"]["initial"]
    assert ratios["h"] == 0 and ratios["c"] > 0
    assert set(data["cells"]["lstm"]["ratios"]["trained"]) == {"h", "c"} and ", c " in said["lstm"]


def test_the_gate_panel_draws_every_cell_with_a_forget_gate(tmp_path, monkeypatch):
    from numpyrnn import plots
    from numpyrnn.experiments import gradflow

    data = gradflow.gradflow(cells=("lstm", "lstm_cifg", "lstm_nfg", "gru"), seq_len=5, steps=1, hidden=2, batch=3,
                             progress=False)
    drawn = []
    real_plot = __import__("matplotlib.axes", fromlist=["Axes"]).Axes.plot
    monkeypatch.setattr("matplotlib.axes.Axes.plot",
                        lambda ax, *a, **k: drawn.append((ax.get_title(), k.get("label"))) or real_plot(ax, *a, **k))
    plots.gradflow(data, str(tmp_path / "g.png"))
    gate_lines = [label for title, label in drawn if label and label.endswith("mean, trained")]
    # the CIFG's forget gate is 1 − i, not a gate of its own rows, yet it reports f; the NFG has none
    assert sorted(gate_lines) == sorted(f"{n}: mean, trained" for n in ("LSTM", "lstm_cifg"))


# --------------------------------------------------------------------------- item 6: words

def test_a_failed_gradcheck_says_how_many_passed(sru):
    def wrong(self, dstate, cache):
        dx_t, (dh, dc), grads = sru.step_backward(self, dstate, cache)
        return dx_t, (dh, 1.01 * dc), grads

    text = str(gradcheck.check_step(_broken(step_backward=wrong)()))
    assert text.splitlines()[-1] == "FAILED: c_prev (5 of 6 tensors passed)"
    assert str(gradcheck.check_step(sru())).splitlines()[-1] == "PASSED (6 of 6 tensors)"


def test_a_grade_stopped_before_any_case_says_so(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(SRU_LIKE.replace("return dx_t, (None, dc * f), grads", "return dx_t, (dc * f,), grads"))
    report = exercises.grade(path, "sru_like")
    assert str(report).splitlines()[0] == (
        "grading mine.py: the cell 'sru_like' step forward and backward, no case ran (the error below stopped it "
        "first)")


def test_a_models_line_shows_only_its_cells_options(sru):
    model = numpyrnn.SequenceRegressor(sru(), input_size=2, output_size=1, hidden_size=3, seed=0)
    assert "nonlinearity" not in repr(model) and "reset_after" not in repr(model)
    assert "nonlinearity='relu'" in repr(numpyrnn.SequenceRegressor("rnn", input_size=2, output_size=1, hidden_size=3,
                                                                    nonlinearity="relu"))
    assert "reset_after=False" in repr(numpyrnn.SequenceRegressor("gru", input_size=2, output_size=1, hidden_size=3,
                                                                  reset_after=False))


# --------------------------------------------------------------------------- items 12, 13: the grader's child

LOOPS = (Path(__file__).parent / "fixtures" / "exercises" / "rnn_step_solution.py").read_text().replace(
    "da = dh * (1 - h ** 2)", "while True:\n        pass")


def _children_running(path):
    """The pids of grader children running ``path`` (Linux: read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if b"numpyrnn.exercises.child" in args and os.fsencode(str(path)) in args:
                found.append(int(entry))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the child through /proc (Linux)")
def test_a_killed_grader_takes_its_child_with_it(tmp_path):
    path = tmp_path / "loops.py"
    path.write_text(LOOPS)
    parent = subprocess.Popen([sys.executable, "-m", "numpyrnn", "grade", str(path), "--cell", "rnn"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _children_running(path) and time.monotonic() < deadline:
            time.sleep(0.2)
        children = _children_running(path)
        assert children, "the grader's child never started"
        time.sleep(1.0)                                   # inside the student's endless loop by now
    finally:
        parent.kill()                                     # as an editor's stop button, or run(timeout=)
        parent.wait()
    deadline = time.monotonic() + 10
    while _children_running(path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _children_running(path), "the child outlived the grader"


def test_an_endless_loop_at_import_is_reported_within_the_import_limit(tmp_path, monkeypatch):
    from numpyrnn.exercises import sandbox

    assert sandbox.IMPORT_S <= 20
    monkeypatch.setattr(sandbox, "IMPORT_S", 1.0)
    path = tmp_path / "stuck.py"
    path.write_text("while True:\n    pass\n")
    start = time.monotonic()
    report = exercises.grade(path, "rnn")
    assert time.monotonic() - start < 1.0 + sandbox.STARTUP_S
    assert report.errors == ["stuck.py did not finish importing it within 1 s (an endless loop at its top level?); "
                             "the grader stopped it"]


# --------------------------------------------------------------------------- item 14: no raw errors

@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_or_a_closed_output_is_one_line():
    full = subprocess.run(f"{sys.executable} -m numpyrnn exercise rnn > /dev/full", shell=True, capture_output=True,
                          text=True)
    assert full.returncode == 1 and full.stderr == "numpyrnn: could not write: No space left on device\n"
    closed = subprocess.run(f"{sys.executable} -m numpyrnn exercise rnn >&-", shell=True, capture_output=True,
                            text=True)
    assert closed.returncode == 2 and closed.stderr.startswith("numpyrnn: standard output is closed")


def test_check_fn_and_grade_name_what_is_wrong():
    with pytest.raises(TypeError, match=r"^forward must return arrays as its outputs \(then the cache\); output 0 is "
                                        r"a int: 3$"):
        gradcheck.check_fn(lambda x: (3, None), lambda d, c: (d,), [np.ones(2)])
    for bad in (None, 42):
        with pytest.raises(TypeError, match=r"^path_or_module must be the path of the file to grade \(a str or "
                                            rf"os.PathLike\) or a module already imported, got {type(bad).__name__}"):
            exercises.grade(bad, "rnn")


# --------------------------------------------------------------------------- item 15: what results.json says of real data

def _reviews_file(tmp_path):
    rows = [f"{'good fine nice' if k % 2 else 'bad poor dull'} film number {k},{'pos' if k % 2 else 'neg'}"
            for k in range(40)]
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_task_on_real_data_records_no_generated_sizes(tmp_path):
    from numpyrnn import tasks

    on_file = tasks.make("sentiment", data=str(_reviews_file(tmp_path)), seq_len=8)
    assert not {"train_size", "val_size", "test_size"} & set(on_file.config())
    assert {"train_size", "val_size", "test_size"} <= set(tasks.make("sentiment", train_size=20, val_size=10,
                                                                     test_size=10).config())
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question. " * 40)
    assert "size" not in tasks.make("charlm", text=str(text), seq_len=8).config()
    assert "length" not in tasks.make("series", source="membrane").config()      # matplotlib's sample recording
    assert "length" in tasks.make("series", length=400, seq_len=8).config()
    old = {"name": "sentiment", "seed": 0, "seq_len": 8, "data": "rotten-tomatoes", "train_size": 6000,
           "val_size": 1000, "test_size": 1000, "min_count": 5}
    assert tasks.upgrade_config(old) == {"name": "sentiment", "seed": 0, "seq_len": 8, "data": "rotten-tomatoes",
                                         "min_count": 5}
    generated = {"name": "sentiment", "seed": 0, "seq_len": 8, "data": None, "train_size": 20}
    assert tasks.upgrade_config(generated) == generated


def test_an_older_run_on_real_data_still_resumes_and_its_figure_still_holds(tmp_path):
    from numpyrnn import checkpoint, plots, tasks, train

    data = str(_reviews_file(tmp_path))
    task = tasks.make("sentiment", data=data, seq_len=8)
    trainer, _ = train.setup(task, "gru", hidden=3, batch_size=8, eval_every=2, out_dir=tmp_path / "run",
                             progress=False)
    trainer.fit(steps=2)
    path = tmp_path / "run" / "checkpoint.npz"
    arrays = checkpoint.read(path)                        # as the code before wrote it: the sizes recorded
    state = checkpoint.from_json_array(arrays["trainer"])
    state["task"].update(train_size=6000, val_size=1000, test_size=1000)
    arrays["trainer"] = checkpoint.to_json_array(state)
    checkpoint.write(path, {k: v for k, v in arrays.items() if k != "checksum"})
    again, _ = train.setup(tasks.make("sentiment", data=data, seq_len=8), "gru", hidden=3, batch_size=8,
                           eval_every=2, out_dir=tmp_path / "run", progress=False)
    again.resume()
    assert again.fit(steps=4)["steps"] == 4
    figure = tmp_path / "old.png"
    plots.save(plots._figure(1, 1), figure, {"command": "numpyrnn compare", "plan": {"task": dict(state["task"])}})
    assert plots.read_record(figure)["plan"]["task"] == task.config()


def test_compare_names_the_cpu(tmp_path):
    from numpyrnn import machine
    from numpyrnn.experiments.compare import compare, write

    results = compare("adding", cells=("rnn",), seeds=1, steps=2, hidden=2, task_options={"seq_len": 3},
                      progress=False)
    assert results["machine"]["cpu"] == machine.cpu_name() and results["machine"]["cores"] == machine.usable_cores()
    write(results, tmp_path)
    assert f"numpyrnn {numpyrnn.__version__}, {machine.cpu_name()}, " in (tmp_path / "results.md").read_text()


# --------------------------------------------------------------------------- items 7-11: the derivations, read beside the code

def test_the_derivations_say_what_the_code_does():
    text = (Path(__file__).parent.parent / "docs" / "derivations.md").read_text(encoding="utf-8")
    section = {n: " ".join(text.split(f"\n## {n}. ")[1].split("\n## ")[0].split()) for n in (13, 15, 16)}
    for said in ("Why last line first works", "**A parameter broadcast over the batch.**",
                 "**A derivative the output does not give.**", "**A state the step does not read**",
                 "`h_prev_only_in_products = True`"):
        assert said in section[13], said                                           # item 11, item 2
    janet, indrnn = section[15].split("### 15c.")[0], section[15].split("### 15c.")[1]
    assert r"\frac{U}{1 + U} = 1 - \frac{1}{1 + U}" in janet and "(`maxval=t_max`)" in janet      # item 7
    assert "the candidate $\\tilde c$ keeps its $\\tanh$" in janet and "both output activations" not in janet  # item 8
    assert r"db = \textstyle\sum_{\text{batch}} da" in indrnn and r"(1/\gamma)^{1/T}" in indrnn     # item 10
    assert "The three below" in section[16] and "The two below" not in section[16]               # item 9
    assert r"d\bar h_t = m_t\,(dh_t + dy_t)" in section[16] and "`dah`" in section[16]
    assert r"\odot m}" not in section[16] and r"\odot \mu" in section[16]
