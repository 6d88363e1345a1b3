"""The numpyrnn command: tables, exit codes, one-line errors."""

import subprocess
import sys

import numpy as np
import pytest

from numpyrnn import cli
from numpyrnn.cells import lstm


def test_gradcheck_all_cells_passes(capsys):
    assert cli.main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for label in ("RNN(4, 5)", "RNN(4, 5, nonlinearity='relu')", "LSTM(4, 5)", "GRU(4, 5)",
                  "GRU(4, 5, reset_after=False)"):
        assert f"\n{label} " in out
    assert "5/5 passed" in out
    assert out.count("PASSED") == 5


def test_gradcheck_options(capsys):
    code = cli.main(["gradcheck", "--cell", "gru", "--mode", "fast", "--layers", "2",
                     "--bidirectional", "--lengths", "--seq-len", "4", "--hidden", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "weight_hh_l1_reverse" in out and "direction" in out and "lengths [" in out
    assert "2/2 passed" in out


def test_gradcheck_failure_exits_1(capsys, monkeypatch):
    """A backward that is 1 % off in one place makes the command fail and say where."""
    right = lstm._factors

    def wrong(gates, tanh_c, c_prev, mask, da, to_c, forget):
        right(gates, tanh_c, c_prev, mask, da, to_c, forget)
        da[2] *= 1.01                                   # the forget gate's gradient

    monkeypatch.setattr(lstm, "_factors", wrong)
    assert cli.main(["gradcheck", "--cell", "lstm"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0" in out
    assert "0/1 passed" in out


@pytest.mark.parametrize("argv,message", [
    (["gradcheck", "--cell", "transformer"], "argument --cell: invalid choice: 'transformer'"),
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


def test_gpu_request_without_gpu_is_one_line(capsys, monkeypatch):
    from numpyrnn import backend

    monkeypatch.setattr(backend, "_gpu_probe", (False, "no GPU in this test"))
    assert cli.main(["gradcheck", "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a GPU was requested" in err and "no GPU in this test" in err


def test_help_shows_defaults():
    out = subprocess.run([sys.executable, "-m", "numpyrnn", "gradcheck", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "(default: full)" in out and "(default: 1e-06)" in out and "(default: all)" in out


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "numpyrnn", "gradcheck", "--cell", "rnn", "--mode", "fast"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "2/2 passed" in out.stdout
