"""Issue 30, item 1: a run's settings are one object, resolved against the task's defaults in
one place, saved whole in the checkpoint, and a resumed run is the saved settings with the
flags given laid over them."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

import numpyrnn
from numpyrnn import checkpoint, cli, settings as settings_module, tasks, train
from numpyrnn.settings import MAY_CHANGE_ON_RESUME, SPEC, Settings

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
TINY = ["--task", "adding", "--seq-len", "6", "--hidden", "3", "--batch-size", "8", "--eval-every", "2"]


def test_resolved_fills_every_field_the_task_decides_and_nothing_else():
    task = tasks.make("sentiment", data=None, seq_len=8, train_size=64, val_size=16, test_size=16)
    s = Settings(cell="gru", lr=0.01).resolved(task)
    d = task.defaults
    assert (s.hidden, s.optimizer, s.batch_size, s.clip, s.eval_every, s.epochs, s.steps) == \
        (d["hidden"], d["optimizer"], d["batch_size"], d["clip"], d["eval_every"], d["epochs"], None)
    assert s.lr == 0.01 and s.cell == "gru" and s.regularisers == {}
    assert Settings(clip=None, steps=5).resolved(task).clip is None
    assert Settings(steps=5).resolved(task).budget == {"steps": 5}
    with pytest.raises(ValueError, match="at most one of steps and epochs"):
        Settings(steps=5, epochs=2).resolved(task)


def test_the_object_and_the_keyword_form_make_the_same_run():
    task = tasks.make("adding", seq_len=5, train_size=32, val_size=8, test_size=8)
    a, _ = train.setup(task, "gru", hidden=3, steps=4, batch_size=8, lr=0.01)
    b, budget = train.setup(task, Settings(cell="gru", hidden=3, steps=4, batch_size=8, lr=0.01))
    a.fit(steps=4), b.fit(**budget)
    assert all(np.array_equal(a.model.params[k], b.model.params[k]) for k in a.model.params)
    assert b.settings == Settings(cell="gru", hidden=3, steps=4, batch_size=8, lr=0.01).resolved(task)


def test_every_setting_has_its_flag_and_a_flag_sets_only_its_field():
    fields = {f.name for f in dataclasses.fields(Settings)}
    flagged = {flag.field for flag in SPEC}
    assert flagged == fields - {"device"}          # --device: every command's, with --threads
    assert set(MAY_CHANGE_ON_RESUME) <= fields
    args = cli.build_parser().parse_args(["train", *TINY, "--gru-form", "before", "--no-clip"])
    assert settings_module.given(args) == {"hidden": 3, "batch_size": 8, "eval_every": 2, "reset_after": False,
                                           "clip": None}


def test_the_checkpoint_holds_the_settings_and_a_bare_resume_continues_the_run(tmp_path):
    run, whole = tmp_path / "run", tmp_path / "whole"
    assert cli.main(["train", *TINY, "--cell", "gru", "--lr", "0.02", "--steps", "4", "--quiet", "--out", str(run)]) == 0
    state = checkpoint.from_json_array(checkpoint.read(run / "checkpoint.npz")["trainer"])
    saved = Settings.from_dict(state["settings"])
    assert saved.cell == "gru" and saved.lr == 0.02 and saved.hidden == 3 and saved.steps == 4
    assert cli.main(["train", "--out", str(run), "--resume", "--steps", "8", "--quiet"]) == 0
    assert cli.main(["train", *TINY, "--cell", "gru", "--lr", "0.02", "--steps", "8", "--quiet", "--out",
                     str(whole)]) == 0
    a, b = numpyrnn.load(run / "model.npz"), numpyrnn.load(whole / "model.npz")
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    resumed = checkpoint.from_json_array(checkpoint.read(run / "checkpoint.npz")["trainer"])["settings"]
    assert resumed["steps"] == 8 and resumed["lr"] == 0.02


@pytest.mark.parametrize("flag, value, refused", [
    ("--hidden", "4", "hidden was 3 in the saved run and is 4 here"),
    ("--lr", "0.5", "lr was 0.02"),
    ("--no-clip", None, "clip was 1.0 in the saved run and is None here"),
    ("--cell", "lstm", "cell was 'gru'"),
    ("--schedule", "cosine", "schedule was 'none'"),
    ("--impl", "reference", None),
    ("--eval-every", "3", None),
])
def test_resume_refuses_what_defines_the_run_and_takes_the_rest(tmp_path, capsys, flag, value, refused):
    run = tmp_path / "run"
    assert cli.main(["train", *TINY, "--cell", "gru", "--lr", "0.02", "--steps", "2", "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    code = cli.main(["train", "--out", str(run), "--resume", "--steps", "4", "--quiet", flag,
                     *([value] if value else [])])
    err = capsys.readouterr().err
    if refused:
        assert code == 2 and refused in err and "only steps, epochs" in err and err.count("\n") == 1
    else:
        assert code == 0, err


def test_a_checkpoint_from_before_settings_were_saved_resumes_from_the_command_line(tmp_path):
    """The format-1 fixture (commit f7190b5) holds no settings: they are read from its model,
    optimizer, batch size and seed (numpyrnn.settings.saved), and its run resumed with only the
    budget and the evaluation given ends where the run uninterrupted did, bit for bit."""
    shutil.copy(os.path.join(FIXTURES, "format1_adding_step2.npz"), tmp_path / "checkpoint.npz")
    with np.load(tmp_path / "checkpoint.npz") as raw:
        assert "settings" not in checkpoint.from_json_array(raw["trainer"])      # the file holds none
    state = checkpoint.from_json_array(checkpoint.read(tmp_path / "checkpoint.npz")["trainer"])
    assert state["settings"]["cell"] == "lstm" and state["settings"]["batch_size"] == 8     # read() migrates
    assert "steps" not in state["settings_recorded"] and "batch_size" in state["settings_recorded"]
    assert cli.main(["train", "--out", str(tmp_path), "--resume", "--steps", "4", "--eval-every", "2", "--quiet"]) == 0
    want = numpyrnn.load(os.path.join(FIXTURES, "format1_adding_step4.npz"))
    got = numpyrnn.load(tmp_path / "model.npz")
    assert all(np.array_equal(got.params[k], v) for k, v in want.params.items())


def test_train_without_a_task_says_what_it_needs(capsys):
    assert cli.main(["train", "--steps", "3"]) == 2
    assert "--task (or --resume" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--task", "adding", "--hidden", "0"], "argument --hidden: expected a positive integer, got 0"),
    (["compare", "--lr", "inf"], "argument --lr: expected a positive finite number, got inf"),
    (["sweep", "--steps", "x"], "argument --steps: expected a positive integer, got 'x'"),
])
def test_the_settings_flags_check_their_values_as_every_flag_does(argv, message, capsys):
    """The settings' flags use the command line's own argument types (one pair, in settings.py)."""
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
