"""The numpyrnn command: tables, exit codes, one-line errors."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

import numpyrnn
from numpyrnn import cli
from numpyrnn.cells.fast import lstm as fast_lstm


def test_gradcheck_all_cells_passes(capsys):
    assert cli.main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for label in ("rnn step", "RNN(4, 5)", "rnn step (nonlinearity='relu')", "RNN(4, 5, nonlinearity='relu')",
                  "lstm step", "LSTM(4, 5)", "gru step", "GRU(4, 5)", "gru step (reset_after=False)",
                  "GRU(4, 5, reset_after=False)"):
        assert f"\n{label} " in out
    from numpyrnn import cells

    checks = sum(2 * len(cells.lookup(name).forms) for name in cells.names())   # each form: step and layer
    assert checks >= 30 and f"{checks}/{checks} passed" in out
    assert out.count("PASSED") == checks
    for name in ("lstm_peephole", "mgu", "janet", "indrnn"):
        assert f"\n{name} step " in out


def test_gradcheck_options(capsys):
    code = cli.main(["gradcheck", "--cell", "gru", "--mode", "fast", "--layers", "2",
                     "--bidirectional", "--lengths", "--seq-len", "4", "--hidden", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "weight_hh_l1_reverse" in out and "direction" in out and "lengths [" in out
    assert "4/4 passed" in out


def test_gradcheck_failure_exits_1(capsys, monkeypatch):
    """A backward that is 1 % off in one place makes the command fail and say where."""
    right = fast_lstm._factors

    def wrong(gates, tanh_c, c_prev, mask, da, *rest):
        right(gates, tanh_c, c_prev, mask, da, *rest)
        da[2] *= 1.01                                   # the forget gate's gradient

    monkeypatch.setattr(fast_lstm, "_factors", wrong)
    assert cli.main(["gradcheck", "--cell", "lstm"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0" in out
    assert "1/2 passed" in out                          # the step (not the fast path) passes


@pytest.mark.parametrize("argv,message", [
    (["gradcheck", "--cell", "transformer"], "unknown cell 'transformer': the registered cells are rnn, lstm, gru"),
    (["gradcheck", "--hidden", "0"], "argument --hidden: expected a positive integer, got 0"),
    (["gradcheck", "--eps", "nan"], "argument --eps: expected a positive finite number"),
    (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
])
def test_user_errors_are_one_line_with_status_2(capsys, argv, message):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err


@pytest.mark.parametrize("argv", [["gradcheck"], ["train", "--task", "adding", "--steps", "1"],
                                  ["compare", "--quick"], ["gradflow", "--steps", "1"], ["sweep", "--steps", "1"],
                                  ["bench", "--shape", "2x1x1x1"]])
def test_gpu_request_without_gpu_is_one_line(capsys, monkeypatch, tmp_path, argv):
    from numpyrnn import backend

    monkeypatch.setattr(backend, "_gpu_probe", (False, "no GPU in this test"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv + ["--device", "gpu"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "a GPU was requested" in captured.err
    assert "no GPU in this test" in captured.err
    assert list(tmp_path.iterdir()) == []                # refused before any work or file


def test_help_shows_defaults():
    out = subprocess.run([sys.executable, "-m", "numpyrnn", "gradcheck", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "(default: full)" in out and "(default: 1e-06)" in out and "(default: all)" in out


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "numpyrnn", "gradcheck", "--cell", "rnn", "--mode", "fast"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "4/4 passed" in out.stdout


# --------------------------------------------------------------------------- train, sample, tasks

TINY_ADDING = ["--task", "adding", "--seq-len", "8", "--hidden", "8", "--batch-size", "16", "--eval-every", "10"]


def test_train_writes_metrics_model_history_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", *TINY_ADDING, "--cell", "gru", "--steps", "20", "--out", str(out), "--quiet"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("test_mse ") and "(baseline 0.1667" in line and "20 steps" in line
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_loss", "test_mse", "val_loss", "val_mse", "train_seconds", "steps", "epochs", "task",
                "model", "optimizer", "version", "baseline"):
        assert key in metrics, key
    assert metrics["model"]["cell"] == "gru" and metrics["task"]["seq_len"] == 8
    assert metrics["version"] == numpyrnn.__version__
    assert len((out / "history.jsonl").read_text().splitlines()) == 2
    assert numpyrnn.load(out / "model.npz").config() == metrics["model"]


def test_cli_resume_equals_an_uninterrupted_run(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    common = ["train", *TINY_ADDING, "--cell", "lstm", "--dropout", "0.2", "--layers", "2", "--quiet"]
    assert cli.main([*common, "--steps", "30", "--out", str(whole)]) == 0
    assert cli.main([*common, "--steps", "20", "--out", str(parts)]) == 0
    assert cli.main([*common, "--steps", "30", "--out", str(parts), "--resume"]) == 0
    a, b = numpyrnn.load(whole / "model.npz"), numpyrnn.load(parts / "model.npz")
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (whole, parts))
    assert ma["test_mse"] == mb["test_mse"]


def test_resume_keeps_the_regularisers_the_run_was_saved_with(tmp_path, monkeypatch, capsys):
    """A task's default regularisers may change between a run and its resume (Rotten Tomatoes'
    tuned settings did): a flag not given resumes as the run was saved, one given is used."""
    from numpyrnn.tasks.adding import AddingProblem

    run = ["train", *TINY_ADDING, "--cell", "gru", "--quiet", "--out", str(tmp_path / "r")]
    assert cli.main([*run, "--steps", "10"]) == 0                          # saved without dropout
    monkeypatch.setattr(AddingProblem, "defaults", {**AddingProblem.defaults, "input_dropout": 0.3})
    assert cli.main([*run, "--steps", "20", "--resume"]) == 0
    assert "input_dropout" not in numpyrnn.load(tmp_path / "r" / "model.npz").config()
    capsys.readouterr()
    assert cli.main([*run, "--steps", "30", "--resume", "--input-dropout", "0.3"]) == 2   # asked: another model
    assert "input_dropout was 0.0 in the saved run and is 0.3 here" in capsys.readouterr().err
    fresh = ["train", *TINY_ADDING, "--cell", "gru", "--quiet", "--steps", "5", "--out", str(tmp_path / "f")]
    assert cli.main(fresh) == 0                                            # a new run takes today's default
    assert numpyrnn.load(tmp_path / "f" / "model.npz").config()["input_dropout"] == 0.3


def test_sample_from_a_charlm_run(tmp_path, capsys):
    out = tmp_path / "lm"
    assert cli.main(["train", "--task", "charlm", "--hidden", "16", "--steps", "5", "--batch-size", "4",
                     "--seq-len", "16", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["sample", "--checkpoint", str(out / "model.npz"), "--length", "40", "--prime", "Ada "]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Ada ") and len(text.rstrip("\n")) == 44
    assert cli.main(["sample", "--checkpoint", str(out / "model.npz"), "--prime", "Ωmega"]) == 2
    assert "never saw: ['Ω']" in capsys.readouterr().err


def test_tasks_lists_every_task_with_its_baseline(capsys):
    assert cli.main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("adding", "copy", "sentiment", "charlm", "series"):
        assert f"\n{name} " in "\n" + out
    assert "baseline 0.1667" in out and "baseline 0.2971" in out


@pytest.mark.parametrize("argv,message", [
    (["train", "--task", "adding", "--data", "x.csv"], "--data applies to --task sentiment or speech or demand or anomaly or g2p, not adding"),
    (["train", "--task", "charlm", "--bidirectional", "--steps", "1"], "bidirectional is not available for charlm"),
    (["train", "--task", "adding", "--resume"], "--resume needs --out DIR"),
    (["train", "--task", "sentiment", "--data", "/nonexistent.csv"], "no such file"),
    (["train", "--task", "adding", "--steps", "5", "--epochs", "2"], "not allowed with argument"),
    (["train", "--task", "pong"], "invalid choice: 'pong'"),
    (["sample", "--checkpoint", "/nonexistent.npz"], "no such file"),
])
def test_train_and_sample_errors_are_one_line(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_resume_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert cli.main(["train", *TINY_ADDING, "--steps", "5", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_every_option_of_every_command_shows_its_default():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            if action.option_strings and action.dest != "help" and action.default not in (None, argparse.SUPPRESS):
                assert action.help, f"{name} {action.option_strings[0]} has no help"
                assert f"(default: {action.default}" in text, f"{name} {action.option_strings[0]}"


def test_one_rule_for_device_in_every_command():
    """Every command that computes takes --device with the library's default, auto, and says in
    its help what auto means."""
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    with_device = []
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if "--device" in action.option_strings:
                assert action.default == "auto" and list(action.choices) == ["auto", "cpu", "gpu"], name
                assert "auto: the GPU if CuPy sees one" in action.help, name
                with_device.append(name)
    assert sorted(with_device) == ["bench", "compare", "gradcheck", "gradflow", "sample", "sweep", "train"]
