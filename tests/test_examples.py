"""Every script in examples/ runs, with a tiny budget, and succeeds."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name, *args):
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=300)


def test_parity_with_torch():
    pytest.importorskip("torch")
    out = run("parity_with_torch.py", "--seeds", "2", "--seq-len", "6", "--batch", "3",
              "--input-size", "3", "--hidden", "4")
    assert out.returncode == 0, out.stderr
    assert "LSTM" in out.stdout and "worst:" in out.stdout
