"""Issue 30, "one way through the house": a fact about a cell lives once, on its class, and the
rest of the house reads it there (the figures, the claims, the bench, the export, the grader,
the command line), with no table of cells elsewhere and no import circle in cells/."""

import argparse
import ast
import os
import subprocess
import sys

import numpy as np
import pytest

import numpyrnn
from numpyrnn import cells, cli, plots
from numpyrnn.cells import lstm
from numpyrnn.cells.protocol import declared
from numpyrnn.cli import common as cli_common
from numpyrnn.experiments import claims

PACKAGE = os.path.dirname(numpyrnn.__file__)


class Leaky(cells.Cell):
    """A cell of the user's, with no colour, title or loops of its own."""
    name = "leaky_one_way"

    def parameters(self, input_size, hidden_size):
        return {"weight_ih": (hidden_size, input_size)}

    def step_forward(self, x_t, state, params):
        h = 0.5 * state[0] + np.tanh(x_t @ params["weight_ih"].T)
        return (h,), (x_t, params["weight_ih"], h, state[0])

    def step_backward(self, dstate, cache):
        x_t, w, h, h_prev = cache
        da = dstate[0] * (1 - (h - 0.5 * h_prev) ** 2)
        return da @ w, (0.5 * dstate[0],), {"weight_ih": da.T @ x_t}


class RewrittenLSTM(lstm.CELL):
    """A user's LSTM with its own step: none of the LSTM's facts about its math hold for it."""
    name = "rewritten_lstm"

    def step_forward(self, x_t, state, params):
        return super().step_forward(x_t, state, params)


class RenamedLSTM(lstm.CELL):
    """The LSTM's math under another name: its loops and its export hold, its colour does not."""
    name = "renamed_lstm"


def test_facts_are_read_off_the_cell():
    rnn, lstm_, gru = cells.get("rnn", nonlinearity="relu"), cells.get("lstm"), cells.get("gru", reset_after=False)
    assert [cells.protocol.title(c) for c in (rnn, lstm_, gru)] == ["RNN (relu)", "LSTM", "GRU"]
    assert [declared(c, "section") for c in (rnn, lstm_, gru)] == ["§4", "§5", "§6b"]
    assert declared(lstm_, "blocks") == ("i", "f", "g", "o") and declared(gru, "gates") == ("r", "z")
    assert claims._gates("lstm") == (3, 4) and claims._gates("gru") == (2, 3)
    assert declared(cells.get("lstm_cifg"), "blocks") == ("i", "g", "o")
    assert declared(cells.get("lstm_nig"), "section") == "§14a"


def test_a_subclass_keeps_the_facts_of_the_math_it_keeps():
    fb1, renamed, rewritten = cells.get("lstm_fb1"), RenamedLSTM(), RewrittenLSTM()
    for same in (fb1, renamed):                  # the LSTM's math: its loops and its export
        assert same.sequence("fast").kind == "fast" and declared(same, "torch_module") == "LSTM"
    assert rewritten.sequence("fast").kind == "generic" and rewritten.sequence("reference").kind == "generic"
    assert declared(rewritten, "torch_module") is None and declared(rewritten, "section") is None
    for other in (fb1, renamed, rewritten):      # a subclass names and colours itself
        assert cells.protocol.colour(other) is None and cells.protocol.title(other) == other.name


def test_a_cell_of_the_users_gets_a_colour_of_its_own():
    cells.register(Leaky)
    given = plots.colours(["lstm", "leaky_one_way", "gru", "rnn", "lstm_nig"])
    assert given["lstm"] == "#1f77b4" and given["gru"] == "#d62728" and given["rnn"] == "#7f7f7f"
    assert len(set(given.values())) == 5         # no cell wears another's colour
    assert given["leaky_one_way"] not in ("#1f77b4", "#d62728", "#7f7f7f", plots.TOP_UNITS)
    assert plots.label("leaky_one_way") == "leaky_one_way" and plots.label("rnn") == "RNN (tanh)"


def test_the_export_reads_the_cell_not_its_name():
    from numpyrnn import export

    for cell, refused in ((RenamedLSTM(), False), (RewrittenLSTM(), True), (cells.get("lstm_nig"), True)):
        layer = numpyrnn.Recurrent(cell, 3, 4, seed=0)
        if refused:
            with pytest.raises(ValueError, match="torch.nn has no module that computes the cell"):
                export.torch_config(layer)
        else:
            assert export.torch_config(layer)["type"] == "LSTM"


def test_forget_bias_reaches_the_cells_with_a_forget_gate_of_their_own():
    """The live symptom: sweep --cells lstm,lstm_nfg --forget-bias 1 failed, reading a property
    object off the class as "has a forget gate"."""
    args = argparse.Namespace(command="sweep", forget_bias=1.0)
    made = cli._cells_with_options(args, ["lstm", "lstm_nfg", "lstm_cifg", "lstm_nig"])
    assert made[0] == cells.get("lstm", forget_bias=1.0) and made[3] == cells.get("lstm_nig", forget_bias=1.0)
    assert made[1:3] == ["lstm_nfg", "lstm_cifg"]
    with pytest.raises(cli.UsageError, match=r"--forget-bias: forget_bias applies to the cells that take it "
                                             r"\(lstm, lstm_fb1, .*lstm_nig.*\), and none of lstm_nfg, gru does"):
        cli._cells_with_options(args, ["lstm_nfg", "gru"])


def test_the_flags_choices_are_the_librarys_lists():
    from numpyrnn import optim, tasks, train
    from numpyrnn.layers.pooling import POOLINGS
    from numpyrnn.layers.recurrent import IMPLS

    parser = cli.build_parser()
    train_parser = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    choices = {a.dest: list(a.choices) for a in train_parser._actions if a.choices}
    assert choices["task"] == list(tasks.TASKS) and choices["optimizer"] == list(optim.OPTIMIZERS)
    assert choices["impl"] == list(IMPLS) and choices["schedule"] == list(train.SCHEDULES)
    assert choices["pooling"] == list(POOLINGS)


def _imports(path):
    tree = ast.parse(open(path).read())
    return [(node.module or alias.name, node.level) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            for alias in node.names]


def test_no_import_circle_in_cells_and_no_textbook_branch_above_them():
    """cells/: common ← generic ← protocol ← builtin ← the cells, each importing only what is
    below it, at the top of the file; above cells/, nothing asks whether a cell is a built-in one."""
    order = ["common", "generic", "protocol", "builtin"]
    for k, name in enumerate(order):
        below = {f"{m}" for m in order[:k]}
        for module, level in _imports(os.path.join(PACKAGE, "cells", f"{name}.py")):
            if level == 1:
                assert module.split(".")[0] in below | {"fast"}, (name, module)
    for base, _, files in os.walk(PACKAGE):
        if os.path.relpath(base, PACKAGE).split(os.sep)[0] == "cells":
            continue
        for f in files:
            if f.endswith(".py"):
                text = open(os.path.join(base, f)).read()
                assert "is_textbook" not in text and "textbook = True" not in text, f
                assert "TEXTBOOK_LAYERS" not in text and "legacy_cell" not in text, f
    assert '"lstm"' not in open(os.path.join(PACKAGE, "checkpoint.py")).read()   # it reads cells by their records
    # the package imports cleanly in a fresh interpreter from cells/ upward
    done = subprocess.run([sys.executable, "-c", "import numpyrnn.cells.generic, numpyrnn.cells.protocol"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_gradchecks_numpy_core_builds_nothing():
    """gradcheck/core.py checks any function pair and imports nothing that builds layers or
    models; the suite that does is gradcheck/suite.py, with its imports at the top."""
    core = _imports(os.path.join(PACKAGE, "gradcheck", "core.py"))
    assert {m for m, level in core if level >= 1} == {"backend"}, core
    suite = open(os.path.join(PACKAGE, "gradcheck", "suite.py")).read()
    assert not [line for line in suite.splitlines() if line.startswith("    ") and "import " in line
                and line.strip().startswith(("import ", "from "))]
    from numpyrnn import gradcheck

    assert gradcheck.check_fn is gradcheck.core.check_fn and gradcheck.check is gradcheck.suite.check


def test_each_command_is_parsed_and_printed_in_one_module():
    """The command line is a package, one module per family of commands: a command's parser and
    the function that runs it and prints its results live in the same module."""
    import argparse

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    families = {}
    for name, sub in commands.choices.items():
        run = sub.get_default("run")
        assert run.__module__.startswith("numpyrnn.cli.") and run.__module__ != "numpyrnn.cli.common", name
        families.setdefault(run.__module__.rsplit(".", 1)[1], []).append(name)
        plan = sub.get_default("plan")
        assert plan is None or plan.__module__ == run.__module__, name
    assert {k: sorted(v) for k, v in families.items()} == {
        "training": ["export", "forecast", "predict", "sample", "tasks", "train"], "comparing": ["compare", "gradflow", "sweep"],
        "checking": ["bench", "gradcheck"], "teaching": ["exercise", "grade"]}


def test_the_command_line_asks_the_library_its_rules():
    """Which task takes which option, which cell takes which option and what a resumed run may
    change are the library's (tasks.options_of, cells.takes, train.saved_run); the command line
    turns their errors into usage lines."""
    from numpyrnn import tasks, train

    assert tasks.taking("data") == ["sentiment", "speech", "demand", "anomaly", "g2p"] and tasks.taking("source") == ["series"]
    assert "seq_len" in tasks.options_of("adding") and "text" in tasks.options_of("charlm")
    with pytest.raises(cli.UsageError, match="--series applies to --task series, not adding"):
        cli_common._task_options(argparse.Namespace(command="train", task="adding", series="membrane"))
    assert cli_common._task_options(argparse.Namespace(command="train", task="series", series="membrane")) == {
        "source": "membrane"}
    assert cells.takes("lstm_nig", "forget_bias") and not cells.takes("lstm_cifg", "forget_bias")
    assert not cells.takes("gru", "forget_bias") and cells.takes("rnn", "nonlinearity")
    assert cells.with_options(["gru", "rnn"], forget_bias=None) == ["gru", "rnn"]
    with pytest.raises(ValueError, match=r"forget_bias applies to the cells that take it \(lstm, "):
        cells.with_options(["gru"], forget_bias=1.0)


def test_a_saved_run_is_resumed_by_the_library(tmp_path):
    from numpyrnn import tasks, train

    task = tasks.make("adding", seq_len=5, train_size=64, val_size=16, test_size=16)
    trainer, budget = train.setup(task, "gru", hidden=3, batch_size=16, steps=4, eval_every=2,
                                  out_dir=str(tmp_path))
    trainer.fit(**budget)
    again, settings = train.saved_run(str(tmp_path), {"steps": 8})
    assert again.config() == task.config() and settings.steps == 8 and settings.cell == "gru"
    with pytest.raises(ValueError, match="trains on --task adding, not copy"):
        train.saved_run(str(tmp_path), task="copy")
    with pytest.raises(ValueError, match="has seq_len 5, not 7"):
        train.saved_run(str(tmp_path), task_options={"seq_len": 7})
    with pytest.raises(ValueError, match="hidden was 3 in the saved run"):
        train.saved_run(str(tmp_path), {"hidden": 4})
    with pytest.raises(ValueError, match="does not exist"):
        train.saved_run(str(tmp_path / "none"))


def test_a_model_records_and_builds_its_cell_through_the_cell():
    """How a model's config records its cell is the cell's (Cell.record: the three textbook
    cells by name, as every model of theirs has had it) and how the layer over it is chosen is
    the layers' (Recurrent.over): no table of the built-in cells above cells/."""
    assert cells.get("gru", reset_after=False).record() == "gru"
    assert cells.get("lstm", forget_bias=1.0).record() == {"name": "lstm", "options": {"bias": True, "forget_bias": 1.0}}
    assert cells.get("lstm_fb1").record() == {"name": "lstm_fb1", "options": {"bias": True, "forget_bias": 1.0}}
    assert cells.get("rnn", bias=False).record()["options"] == {"nonlinearity": "tanh", "bias": False}
    assert cells.from_record("rnn", nonlinearity="relu", reset_after=False) == cells.get("rnn", nonlinearity="relu")
    assert cells.from_record("lstm_nig", nonlinearity="relu") == cells.get("lstm_nig")
    layer = numpyrnn.Recurrent.over(cells.get("gru", reset_after=False), 3, 4, seed=0)
    assert type(layer) is numpyrnn.GRU and layer.cell.reset_after is False
    assert type(numpyrnn.Recurrent.over(cells.get("lstm_fb1"), 3, 4)) is numpyrnn.Recurrent
    assert type(numpyrnn.Recurrent.over(cells.get("lstm", forget_bias=2.0), 3, 4)) is numpyrnn.LSTM
    model = numpyrnn.SequenceRegressor("rnn", input_size=2, hidden_size=3, nonlinearity="relu", seed=0)
    assert model.config()["cell"] == "rnn" and model.rnn.cell.nonlinearity == "relu"
    assert numpyrnn.models.build(model.config()).rnn.cell == model.rnn.cell


def test_a_saved_run_is_migrated_in_one_place():
    """An older run's settings and task config are brought up to date as the checkpoint is read
    (checkpoint._as_written_today); nothing else in the package calls the migrations."""
    for base, _, files in os.walk(PACKAGE):
        for f in files:
            if not f.endswith(".py") or f in ("checkpoint.py", "settings.py", "plots.py") or base.endswith("tasks"):
                continue
            text = open(os.path.join(base, f)).read()
            assert "upgrade_config(" not in text and "saved(" not in text.replace("_saved(", ""), f


def test_the_grader_runs_one_case_loop_over_named_records():
    import re

    source = open(os.path.join(PACKAGE, "exercises", "grader.py")).read()
    assert source.count("for k, case in enumerate(") == 1            # _run_cases, which every grader calls
    assert source.count("= _run_cases(report, ") == 4                # the step, sequence, Cell and attention graders
    assert not re.search(r"\b(r|run)\[\d\]", source)                  # records are read by name
