"""tools/ab_behaviour.py, the check that a restructuring changes no number: it reads every weight
and every recorded number back, ignores timings and the stored configuration, and fails on a
single changed bit."""

import importlib.util
import json
import os

import numpy as np

spec = importlib.util.spec_from_file_location(
    "ab_behaviour", os.path.join(os.path.dirname(__file__), "..", "tools", "ab_behaviour.py"))
ab = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ab)


def _run_folder(path, weight, seconds, config, history_loss):
    os.makedirs(path, exist_ok=True)
    history = json.dumps([{"step": 1, "train_loss": history_loss, "train_seconds": seconds}])
    np.savez(os.path.join(path, "checkpoint.npz"), **{"param/w": weight, "config": np.array(config),
                                                    "array/history": np.array(history)})
    with open(os.path.join(path, "metrics.json"), "w") as f:
        json.dump({"test_loss": 0.25, "train_seconds": seconds, "machine": {"cpu": config}}, f)


def test_one_changed_bit_is_found_and_timings_are_not(tmp_path, capsys):
    w = np.linspace(-1, 1, 12).reshape(3, 4)
    _run_folder(tmp_path / "a", w, 1.0, '{"hidden": 4}', 0.5)
    _run_folder(tmp_path / "b", w.copy(), 9.0, '{"hidden": 4, "new_key": 1}', 0.5)
    a, b = ab.read_folder(tmp_path / "a"), ab.read_folder(tmp_path / "b")
    assert "checkpoint.npz:param/w" in a and "metrics.json:.test_loss" in a
    assert "checkpoint.npz:array/history[0].train_loss" in a
    assert ab.compare(a, b) == 0                 # seconds, the machine and the config differ only
    changed = w.copy()
    changed[1, 2] = np.nextafter(changed[1, 2], 2.0)
    _run_folder(tmp_path / "c", changed, 1.0, '{"hidden": 4}', np.nextafter(0.5, 1.0))
    assert ab.compare(a, ab.read_folder(tmp_path / "c")) == 2
    out = capsys.readouterr().out
    assert "DIFFERS checkpoint.npz:param/w" in out and "DIFFERS checkpoint.npz:array/history[0].train_loss" in out
