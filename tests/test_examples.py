"""Every script in examples/ runs, with a tiny budget, and succeeds."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name, *args):
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_parity_with_torch(impl):
    pytest.importorskip("torch")
    out = run("parity_with_torch.py", "--seeds", "2", "--seq-len", "6", "--batch", "3",
              "--input-size", "3", "--hidden", "4", "--impl", impl)
    assert out.returncode == 0, out.stderr
    assert "LSTM" in out.stdout and "GRU textbook" in out.stdout and "worst:" in out.stdout
    assert f"numpyrnn's {impl} path" in out.stdout


def test_reference_vs_fast():
    out = run("reference_vs_fast.py", "--seeds", "1", "--seq-len", "4", "--batch", "2")
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith(("RNN", "LSTM", "GRU"))]
    assert len(rows) == 5 and all(float(row.split()[-4]) < 1e-12 for row in rows)


def test_lstm_vs_gru_sentiment(tmp_path):
    out = run("lstm_vs_gru_sentiment.py", "--quick", "--seeds", "1", "--epochs", "1", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "LSTM" in out.stdout and "GRU trains in" in out.stdout
    assert (tmp_path / "compare.png").exists()


def test_adding_problem():
    out = run("adding_problem.py", "--seq-len", "10", "--steps", "30", "--train-size", "300")
    assert out.returncode == 0, out.stderr
    assert "test MSE" in out.stdout


def test_char_rnn(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 40)
    out = subprocess.run([sys.executable, str(EXAMPLES / "char_rnn.py"), "--text", str(text), "--steps", "6",
                          "--hidden", "8", "--seq-len", "16", "--batch", "4"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "bits per character" in out.stdout and (tmp_path / "char_rnn.npz").exists()


def test_gradient_check_walkthrough():
    out = run("gradient_check_walkthrough.py")
    assert out.returncode == 0, out.stderr
    assert "PASSED (5 of 5 tensors)" in out.stdout and "FAILED: x, h_prev, Wx, Wh, b" in out.stdout


def test_vanishing_gradients(tmp_path):
    out = run("vanishing_gradients.py", "--seq-len", "6", "--steps", "4", "--hidden", "8", "--batch", "4",
              "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "RNN" in out.stdout and (tmp_path / "gradflow.png").exists()


def test_lstm_backward_walkthrough():
    out = run("lstm_backward_walkthrough.py")
    assert out.returncode == 0, out.stderr
    for piece in ("h = o ⊙ tanh(c): PASSED", "c = f ⊙ c_prev + i ⊙ g: PASSED", "the gates: PASSED",
                  "the linear map: PASSED", "the whole step: PASSED"):
        assert piece in out.stdout
    assert "grading my_lstm: the LSTM step" in out.stdout and "PASSED: every output" in out.stdout
    assert "Diagnosis: dc_prev not multiplied by the forget gate f" in out.stdout


def test_the_walkthrough_is_a_notebook_in_percent_format():
    text = (EXAMPLES / "lstm_backward_walkthrough.py").read_text()
    assert text.startswith("# %% [markdown]") and text.count("# %%") >= 12


def test_custom_cell(tmp_path):
    out = subprocess.run([sys.executable, str(EXAMPLES / "custom_cell.py"), "--seq-len", "6", "--steps", "4",
                          "--hidden", "4", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "2/2 passed" in out.stdout and "MINIMAL_RNN" in out.stdout and "minimal_rnn: ‖∂L/∂s_0‖ / ‖∂L/∂s_last‖ of each state: h " in out.stdout
    assert (tmp_path / "gradflow.png").exists()


def test_every_example_has_a_test():
    names = {p.name for p in EXAMPLES.glob("*.py")}
    tested = {"custom_cell.py", "parity_with_torch.py", "lstm_vs_gru_sentiment.py", "adding_problem.py", "char_rnn.py",
              "gradient_check_walkthrough.py", "vanishing_gradients.py", "reference_vs_fast.py",
              "lstm_backward_walkthrough.py"}
    assert names == tested
