"""Every surface refuses bad input by its own checks, and nothing a user saved is lost: run
folders, output paths, data files, tasks, the trainer, gradcheck, the export; and the valid
calls that used to crash."""

import json
import os

import numpy as np
import pytest

import numpyrnn
from conftest import RECURRENT_CASES, RECURRENT_IDS, assert_same_results, recurrent_data, run_recurrent
from numpyrnn import cli, gradcheck, optim, tasks
from numpyrnn.train import Trainer

TRAIN = ["train", "--task", "adding", "--seq-len", "4", "--hidden", "3", "--steps", "2", "--eval-every", "2",
         "--quiet"]


def files_of(folder):
    return {p: (folder / p).read_bytes() for p in sorted(os.listdir(folder)) if (folder / p).is_file()}


# --------------------------------------------------------------------------- nothing is lost

def test_a_run_folder_is_never_overwritten_unless_asked(tmp_path, capsys):
    run = tmp_path / "RUN"
    assert cli.main(TRAIN + ["--cell", "lstm", "--out", str(run)]) == 0
    (run / "notes.txt").write_text("mine")
    before = files_of(run)
    assert cli.main(TRAIN + ["--cell", "rnn", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a train run already" in err and "--resume" in err and "--overwrite" in err
    assert files_of(run) == before                                          # nothing touched
    assert cli.main(TRAIN + ["--cell", "rnn", "--out", str(run), "--overwrite"]) == 0
    assert (run / "notes.txt").read_text() == "mine"                        # the user's file stays
    history = (run / "history.jsonl").read_text().splitlines()
    assert len(history) == 1 and json.loads((run / "metrics.json").read_text())["model"]["cell"] == "rnn"
    assert cli.main(TRAIN + ["--out", str(run), "--resume", "--overwrite"]) == 2
    assert "not allowed with argument --resume" in capsys.readouterr().err


@pytest.mark.parametrize("argv,command", [
    (["sweep", "--lengths", "4", "--cells", "rnn", "--steps", "1", "--hidden", "2", "--quick", "--jobs", "1"], "sweep"),
    (["gradflow", "--cells", "rnn", "--seq-len", "4", "--steps", "1", "--hidden", "2", "--batch", "2"], "gradflow"),
    (["compare", "--task", "adding", "--cells", "rnn", "--seeds", "1", "--steps", "1", "--seq-len", "4",
      "--hidden", "2"], "compare"),
])
def test_every_output_folder_follows_the_same_rule(tmp_path, capsys, monkeypatch, argv, command):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    first = argv + ["--out", str(out), "--quiet"]
    assert cli.main(first) == 0
    before = files_of(out)
    assert cli.main(first) == 2
    assert f"holds a {command} run already" in capsys.readouterr().err and files_of(out) == before
    assert cli.main(first + ["--overwrite"]) == 0
    if command != "compare":                                  # the default folder, too
        assert cli.main(argv + ["--quiet"]) == 0 and cli.main(argv + ["--quiet"]) == 2
        assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("argv,flag", [
    (TRAIN + ["--out", "{file}/sub"], "--out"),
    (["compare", "--task", "adding", "--quick", "--out", "{file}"], "--out"),
    (["sweep", "--quick", "--out", "{file}/x"], "--out"),
    (["bench", "--cells", "rnn", "--json", "{file}/x.json"], "--json"),
])
def test_output_paths_are_checked_before_any_work(tmp_path, capsys, argv, flag):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    argv = [a.replace("{file}", str(blocker)) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{flag} {blocker}" in err and blocker.read_text() == "x"


def test_the_trainer_will_not_write_over_another_run(tmp_path):
    task = tasks.make("adding", seq_len=4, seed=0, train_size=16, val_size=4, test_size=4)
    model = task.make_model("rnn", hidden_size=2, seed=0)
    Trainer(model, task, optim.SGD(model, lr=0.1), batch_size=4, out_dir=tmp_path, progress=False).fit(steps=1)
    other = task.make_model("gru", hidden_size=2, seed=0)
    with pytest.raises(ValueError, match="holds a run already .*call resume"):
        Trainer(other, task, optim.SGD(other, lr=0.1), batch_size=4, out_dir=tmp_path, progress=False).fit(steps=1)


# --------------------------------------------------------------------------- data files

def test_data_and_text_files_are_checked(tmp_path):
    folder, empty, latin = tmp_path / "f", tmp_path / "e.csv", tmp_path / "l.csv"
    folder.mkdir()
    empty.write_text("  \n")
    latin.write_bytes("caf\xe9,1\n".encode("latin-1") * 20)
    one_class = tmp_path / "one.csv"
    one_class.write_text("".join(f"review {i},pos\n" for i in range(20)))
    for data, message in ((folder, "a folder"), (empty, "empty"), (latin, "not UTF-8 text"),
                          (one_class, "every row has the label 'pos'"), (tmp_path / "none.csv", "no such file")):
        with pytest.raises(ValueError, match=message):
            tasks.make("sentiment", data=str(data))
    for bad in (123, b"x.csv", ("a",), ["a"]):
        with pytest.raises(TypeError, match="data must be a named data set"):
            tasks.make("sentiment", data=bad)
    with pytest.raises(ValueError, match="--text .*: a folder"):
        tasks.make("charlm", text=str(folder))
    with pytest.raises(TypeError, match="min_count must be an integer"):
        tasks.make("sentiment", min_count="2")
    for seed, error in (("abc", TypeError), (-1, ValueError), (1.5, TypeError)):
        with pytest.raises(error, match="seed must be"):
            tasks.make("adding", seed=seed)


def test_the_command_names_the_flag_for_a_bad_file(tmp_path, capsys):
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe" * 100)
    assert cli.main(["train", "--task", "charlm", "--text", str(tmp_path / "bad.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--text" in err and "not UTF-8" in err


# --------------------------------------------------------------------------- the trainer, gradcheck, the export

def test_the_trainer_refuses_what_it_cannot_use():
    task = tasks.make("adding", seq_len=4, seed=0, train_size=16, val_size=4, test_size=4)
    model = task.make_model("rnn", hidden_size=2, seed=0)
    opt = optim.SGD(model, lr=0.1)
    for kwargs, error, message in (({"batch_size": 2.7}, TypeError, "batch_size must be an integer"),
                                   ({"batch_size": None}, TypeError, "batch_size must be an integer"),
                                   ({"eval_every": "2"}, TypeError, "eval_every must be an integer"),
                                   ({"clip": -1}, ValueError, "clip must be None or a positive finite number"),
                                   ({"seed": -3}, ValueError, "seed must be ≥ 0")):
        with pytest.raises(error, match=message):
            Trainer(model, task, opt, **kwargs)
    with pytest.raises(TypeError, match="optimizer must be a numpyrnn.optim optimizer of this model .*got 'adam'"):
        Trainer(model, task, "adam")
    trainer = Trainer(model, task, opt, progress=False)
    with pytest.raises(TypeError, match="steps must be an integer"):
        trainer.fit(steps="3")
    with pytest.raises(TypeError, match="steps must be an integer"):
        trainer.fit(steps=2.5)


def test_gradcheck_refuses_what_it_cannot_check():
    with pytest.raises(TypeError, match="module must be a numpyrnn layer .* got 'lstm'"):
        gradcheck.check("lstm", np.zeros((2, 1, 3)))
    with pytest.raises(TypeError, match="use gradcheck.check_model"):
        gradcheck.check(numpyrnn.CharLM("rnn", vocab_size=3), np.zeros((2, 1, 3)))
    with pytest.raises(ValueError, match="inputs hold no floating-point array"):
        gradcheck.check_fn(lambda n: (n, None), lambda d, c: (None,), [np.arange(3)])
    with pytest.raises(TypeError, match="gradient for input 0 must be an array of real numbers, got dtype complex"):
        gradcheck.check_fn(lambda x: (2 * x, None), lambda d, c: (2 * d + 0j,), [np.ones(3)])
    with pytest.raises(TypeError, match="cells must be a list of cells"):
        gradcheck.check_cells("lstm")


def test_a_model_keeps_what_it_saves(tmp_path):
    lm = numpyrnn.CharLM("gru", vocab_size=5, hidden_size=3, seed=0)
    lm.vocab = ("a", "b")
    with pytest.raises(ValueError, match="model.vocab has 2 tokens, but the model's embedding has 5 ids"):
        numpyrnn.save(lm, tmp_path / "lm.npz")
    assert not (tmp_path / "lm.npz").exists()
    layer = numpyrnn.LSTM(2, 3)
    huge = {k: np.full(v.shape, 1e300) for k, v in layer.state_dict().items()}
    before = layer.state_dict()
    with pytest.raises(ValueError, match="too large for float32"):
        layer.load_state_dict(huge)
    assert all(np.array_equal(v, layer.state_dict()[k]) for k, v in before.items())     # unchanged


def test_the_export_refuses_bad_files(tmp_path):
    pytest.importorskip("torch")
    import torch

    from numpyrnn import export

    with pytest.raises(TypeError, match="path must be the path of an exported file, got NoneType"):
        export.load_torch(None)
    model = numpyrnn.SequenceRegressor("gru", input_size=2, hidden_size=3, seed=0)
    export.save_torch(model, tmp_path / "m.pt")
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    for broken in ({**data, "config": "nope"}, {**data, "state_dict": {"x": torch.zeros(1)}},
                   {**data, "config": {**data["config"], "hidden_size": 7}}):
        torch.save(broken, tmp_path / "b.pt")
        with pytest.raises(ValueError, match="b.pt: its"):
            export.load_torch(tmp_path / "b.pt")


# --------------------------------------------------------------------------- the valid calls work

def test_sample_works_without_a_prime(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("abc abd abe. " * 60)
    run = tmp_path / "lm"
    assert cli.main(["train", "--task", "charlm", "--text", str(text), "--cell", "gru", "--hidden", "4", "--steps", "2",
                     "--seq-len", "8", "--batch-size", "4", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["sample", "--checkpoint", str(run / "model.npz"), "--length", "20"]) == 0
    assert len(capsys.readouterr().out.rstrip("\n")) == 20
    lm = numpyrnn.CharLM("lstm", vocab_size=6, hidden_size=3, seed=0)
    ids = lm.sample(10)
    assert len(ids) == 10 and all(0 <= i < 6 for i in ids)


# --------------------------------------------------------------------------- a model you can use (issue 25, item 7)

def test_a_sentiment_model_keeps_its_class_names_and_tokenizer_and_classifies_text(tmp_path, capsys):
    task = tasks.make("sentiment", seed=0, train_size=60, val_size=20, test_size=20)
    model = task.make_model("gru", hidden_size=4, seed=0)
    numpyrnn.save(model, tmp_path / "m.npz")
    loaded = numpyrnn.load(tmp_path / "m.npz")
    assert loaded.classes == ("negative", "positive") and loaded.tokenizer == {"name": "words", "version": 1}
    assert "negative" not in json.dumps(loaded.config())                   # metadata, not the model's identity
    texts = ["The food was great!", "an awful, awful evening", "zzz qqq"]
    got = loaded.classify(texts)
    assert [name for name, _ in got] == [name for name, _ in model.classify(texts)]
    assert all(name in ("negative", "positive") and 0.5 <= p <= 1 for name, p in got)
    assert cli.main(["predict", str(tmp_path / "m.npz"), *texts]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [name for name, _ in got] and lines[0].endswith(texts[0])
    model.classes = None                                                    # a model saved before names were kept
    numpyrnn.save(model, tmp_path / "old.npz")
    old = numpyrnn.load(tmp_path / "old.npz")
    assert old.classes == ("0", "1") and "saved before numpyrnn kept class names" in old.class_note
    assert cli.main(["predict", str(tmp_path / "old.npz"), "fine"]) == 0
    assert "note: " in capsys.readouterr().err
    with pytest.raises(TypeError, match="texts must be a list of strings"):
        loaded.classify("one string")
    assert cli.main(["predict", str(tmp_path / "m.npz").replace("m.npz", "missing.npz"), "x"]) == 2


def test_the_export_carries_the_class_names_and_an_equal_tokenizer(tmp_path):
    pytest.importorskip("torch")
    from numpyrnn import export, text
    from numpyrnn.export import torch_modules

    rng = np.random.default_rng(0)
    alphabet = list("abcXYZ 09'.,!?-\t\né") + ["don't", "  "]
    for _ in range(200):
        s = "".join(rng.choice(alphabet, size=rng.integers(0, 12)))
        assert torch_modules.tokenize(s, "words") == text.words(s)
        assert torch_modules.tokenize(s, {"name": "characters", "version": 1}) == text.characters(s)
    task = tasks.make("sentiment", seed=0, train_size=60, val_size=20, test_size=20)
    model = task.make_model("lstm", hidden_size=4, seed=0)
    export.save_torch(model, tmp_path / "m.pt")
    module = export.load_torch(tmp_path / "m.pt")
    assert module.classes == ["negative", "positive"] and module.tokenizer == {"name": "words", "version": 1}
    texts = ["what a lovely day", "never again"]
    ours, theirs = model.classify(texts), torch_modules.classify(module, texts)
    assert [n for n, _ in ours] == [n for n, _ in theirs]
    assert np.allclose([p for _, p in ours], [p for _, p in theirs], atol=1e-5)


def test_a_comparison_says_what_ran(tmp_path):
    """results.json holds the data's name and the real split sizes; the heading names the data;
    no curve ends in a hook (an evaluation half an interval or less before the last)."""
    from numpyrnn.experiments.compare import compare, write

    data = tmp_path / "reviews.csv"
    data.write_text("".join(f"a fine film {i},pos\nan awful film {i},neg\n" for i in range(60)))
    results = compare("sentiment", cells=("rnn",), seeds=1, epochs=2, hidden=4, batch_size=9,
                      task_options={"data": str(data)}, progress=False)
    assert results["data"] == {"name": "reviews.csv", "sizes": {"train": 96, "val": 12, "test": 12}}
    assert results["label"] == "sentiment (reviews.csv)"
    epochs = [p["epoch"] for p in results["cells"]["rnn"]["runs"][0]["curve"]]
    assert epochs[-1] == 2 and all(b - a >= 0.25 for a, b in zip(epochs, epochs[1:])), epochs
    write(results, tmp_path / "out")
    assert (tmp_path / "out" / "results.md").read_text().startswith("# sentiment (reviews.csv): RNN")


# --------------------------------------------------------------------------- early stopping (issue 25, item 2)

def _stopping_run(out_dir=None, steps=60, patience=2, resume=False):
    task = tasks.make("adding", seq_len=4, seed=0, train_size=64, val_size=32, test_size=32)
    model = task.make_model("rnn", hidden_size=3, seed=0)
    trainer = Trainer(model, task, optim.SGD(model, lr=3.0), batch_size=8, eval_every=4, out_dir=out_dir,
                      progress=False, patience=patience)              # lr 3: it gets worse quickly
    if resume:
        trainer.resume()
    return trainer, model, trainer.fit(steps=steps)


def test_early_stopping_stops_and_tests_the_best_weights(tmp_path):
    trainer, model, final = _stopping_run()
    values = [r["val_mse"] for r in trainer.history]
    best = int(np.argmin(values))
    assert final["stopped_early"] and final["steps"] < 60
    assert len(values) == best + 1 + 2                              # patience 2: two evaluations after the best
    assert final["best_step"] == trainer.history[best]["step"] and final["best_val_mse"] == values[best]
    again = trainer.task.evaluate(model, "val", 64)["mse"]
    assert np.isclose(again, values[best])                         # the model holds the best weights
    assert final["restored_best"]


def test_early_stopping_survives_a_resume(tmp_path):
    _, _, whole = _stopping_run(tmp_path / "a")
    _stopping_run(tmp_path / "b", steps=8)                          # stopped before the end...
    _, model, resumed = _stopping_run(tmp_path / "b", resume=True)  # ...and continued
    assert resumed["best_step"] == whole["best_step"] and resumed["test_mse"] == whole["test_mse"]


def test_compare_takes_weight_decay_and_patience():
    from numpyrnn.experiments.compare import compare

    results = compare("adding", cells=("rnn",), seeds=1, steps=6, hidden=2, weight_decay=0.1, patience=1,
                      task_options={"seq_len": 3}, progress=False)
    settings = results["settings"]
    assert settings["optimizer"] == "adamw" and settings["weight_decay"] == 0.1 and settings["patience"] == 1
    with pytest.raises(ValueError, match="patience must be ≥ 1"):
        compare("adding", cells=("rnn",), seeds=1, steps=2, hidden=2, patience=0, task_options={"seq_len": 3},
                progress=False)


# --------------------------------------------------------------------------- the claims, measured (issue 25, item 5)

def _results(lstm_items, gru_items, higher=True, seconds=(2.0, 1.0)):
    def cell(items, s, parameters, hidden, mib):
        return {"hidden": hidden, "parameters": parameters, "summary": {"activation_mib": mib},
                "runs": [{"test_items": list(row), "seconds_per_epoch": s, "train_seconds": 10 * s} for row in items]}
    return {"higher_is_better": higher, "metric": "accuracy", "settings": {"total_steps": 10},
            "cells": {"lstm": cell(lstm_items, seconds[0], 400, 10, 2.0), "gru": cell(gru_items, seconds[1], 300, 10, 1.5)}}


def test_the_claims_table_measures_each_claim_with_a_verdict():
    from numpyrnn.experiments.claims import claims

    rng = np.random.default_rng(0)
    better = rng.random((3, 400)) < 0.8
    worse = rng.random((3, 400)) < 0.6
    rows = {r["claim"]: r for r in claims(_results(better, worse))}
    accuracy = rows["the LSTM is often more accurate"]
    assert accuracy["verdict"] == "supported" and 0.1 < accuracy["value"] < 0.3
    assert accuracy["interval"][0] > 0 and accuracy["interval"][0] < accuracy["value"] < accuracy["interval"][1]
    assert claims(_results(worse, better))[0]["verdict"] == "contradicted"
    same = claims(_results(better, better[::-1]))[0]
    assert same["verdict"] == "within noise" and same["interval"][0] < 0 < same["interval"][1]
    assert claims(_results(worse, better, higher=False))[0]["verdict"] == "supported"   # lower is better
    assert rows["the GRU is faster"]["value"] == 2.0 and rows["the GRU is faster"]["verdict"] == "supported"
    assert rows["the LSTM uses more memory"]["value"] == 2.0 / 1.5 and rows["the GRU is simpler"]["verdict"] == "supported"
    assert claims({"cells": {"rnn": {}}}) is None
    one_seed = {r["claim"]: r for r in claims(_results(better[:1], worse[:1]))}
    assert one_seed["the GRU is faster"]["verdict"] == "undecided (one seed)"      # one ratio has no spread
    assert one_seed["the LSTM is often more accurate"]["verdict"] == "supported"   # the test items still vary


def test_the_claims_across_comparisons_make_one_row_each():
    """The README's table of the claims over the data sets: a row per comparison, its sizing."""
    from numpyrnn.experiments.claims import across

    rng = np.random.default_rng(0)
    better, worse = rng.random((3, 400)) < 0.8, rng.random((3, 400)) < 0.6
    equal = _results(better, worse) | {"label": "reviews", "task": {"name": "sentiment"}}
    equal["settings"] = {**equal["settings"], "match_params": False}
    matched = _results(worse, better, seconds=(1.0, 1.25)) | {"label": "reviews", "task": {"name": "sentiment"}}
    matched["settings"] = {**matched["settings"], "match_params": True}
    matched["cells"]["gru"]["hidden"] = 12
    lines = across([equal, matched, {"cells": {"rnn": {}}}]).splitlines()
    assert len(lines) == 4 and lines[0].startswith("| data, sizing | more accurate: the LSTM's lead in the test metric |")
    assert lines[1] == "|---|---|---|---|---|"                           # a markdown table's rule
    assert lines[2].startswith("| reviews, equal hidden (h 10 vs 10) | accuracy +0.")
    assert lines[2].endswith("| 2.000, supported | 1.33, supported | 3 vs 2; 40 vs 30 |")   # no spread: no interval
    assert lines[3].startswith("| reviews, parameters matched (h 10 vs 12) | accuracy -0.")
    assert "contradicted" in lines[3].split("|")[2] and "0.800" in lines[3].split("|")[3]
    assert lines[3].endswith("| 3 vs 2; 40 vs 25 |")


def test_the_use_case_table_gives_each_use_the_seeds_pick_and_whether_it_holds():
    """Issue 32, part 4: a row per use measured, the seed's pick for it, and its verdict here."""
    from numpyrnn.experiments.claims import uses

    rng = np.random.default_rng(0)
    better, worse = rng.random((3, 400)) < 0.8, rng.random((3, 400)) < 0.6

    def comparison(task, lstm, gru, data):
        return _results(lstm, gru) | {"task": {"name": task}, "data": {"name": data}}

    latency = {"cells": {"lstm": {"numpyrnn": {"median": 81.3}, "torch": {"median": 170.0},
                                  "torch_1_thread": {"median": 165.6}},
                         "gru": {"numpyrnn": {"median": 88.5}, "torch": {"median": 93.7},
                                 "torch_1_thread": {"median": 99.0}}}}
    lines = uses([comparison("speech", better, worse, "japanese-vowels"),
                  comparison("anomaly", better, better[::-1], "internal-bleeding"),
                  comparison("demand", worse, better, "taylor"),
                  comparison("sentiment", better, worse, "rotten-tomatoes"),
                  comparison("charlm", better, worse, "hamlet")], latency).splitlines()
    assert len(lines) == 6 and lines[0].startswith("| use (the seed's pick) | data | more accurate")
    assert lines[1] == "|" + "---|" * 8
    speech, medical, demand, sentiment = (line.split(" | ") for line in lines[2:])
    assert speech[0] == "| speech recognition (LSTM, more accurate)" and speech[1] == "japanese-vowels"
    assert "supported" in speech[2] and speech[-1] == "holds: the LSTM is more accurate |"
    assert speech[4] == "-"                                      # latency: the real-time row's only
    assert medical[0] == "| medical time series (LSTM, more accurate)" and "within noise" in medical[2]
    assert medical[-1] == "not shown: the LSTM is not distinguishably more accurate |"
    assert demand[0] == "| real-time prediction (GRU, faster)"
    assert demand[4] == "0.92 (median µs: LSTM 81.3, GRU 88.5; torch.nn 1.77)"
    assert demand[-1] == ("training: the GRU is faster (supported); a step at batch 1: the GRU is not faster "
                          "(LSTM ÷ GRU 0.92) |")
    assert sentiment[0] == "| sentiment (the seed's own example)" and sentiment[-1] == "- |"
    assert "charlm" not in "\n".join(lines)                    # not one of the seed's uses
    assert "a step at batch 1" not in uses([comparison("demand", worse, better, "taylor")]).splitlines()[2]


def test_the_claims_tool_reads_the_folders_and_the_latency_record(tmp_path):
    """tools/claims_across.py, the README's two tables: the folders compare wrote, and with
    --uses the use-case table, its real-time row reading tools/latency.py --out's record."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    better, worse = (rng.random((3, 400)) < 0.8) * 1.0, (rng.random((3, 400)) < 0.6) * 1.0
    for name, task in (("a", "speech"), ("b", "demand")):
        (tmp_path / name).mkdir()
        results = _results(better, worse) | {"task": {"name": task}, "data": {"name": task + "-data"}}
        results["settings"] = {**results["settings"], "match_params": False}
        (tmp_path / name / "results.json").write_text(json.dumps(results))
    latency = {"cells": {c: {k: {"median": m, "p99": 2 * m} for k in ("numpyrnn", "torch", "torch_1_thread")}
                         for c, m in (("lstm", 90.0), ("gru", 60.0))}}
    (tmp_path / "latency.json").write_text(json.dumps(latency))
    tool = os.path.join(os.path.dirname(__file__), "..", "tools", "claims_across.py")

    def run(*args):
        done = subprocess.run([sys.executable, tool, *args], capture_output=True, text=True, cwd=tmp_path, check=True)
        return done.stdout.splitlines()

    assert run("a", "b")[2].startswith("| speech, equal hidden (h 10 vs 10) | accuracy +0.")
    uses_rows = run("--uses", "a", "b", "--latency", "latency.json")
    assert uses_rows[2].startswith("| speech recognition (LSTM, more accurate) | speech-data |")
    assert "| 1.50 (median µs: LSTM 90.0, GRU 60.0; torch.nn 1.50) |" in uses_rows[3]
    assert uses_rows[3].endswith("a step at batch 1: the GRU is faster (LSTM ÷ GRU 1.50); and the LSTM forecasts "
                                 "better |")


def test_a_quick_comparison_says_it_is_one_and_what_it_changed(monkeypatch):
    from numpyrnn.experiments import compare as compare_module

    results = compare_module.compare("adding", cells=("rnn",), quick=True, steps=3, hidden=2, progress=False)
    note = compare_module.quick_note(results)
    assert note.startswith("QUICK RUN (--quick): train size 2000; val size 300; test size 300; seq len 20.")
    assert "not the full run's" in note and results["settings"]["seeds"] == 3
    assert compare_module.quick_note(compare_module.compare("adding", cells=("rnn",), seeds=1, steps=2, hidden=2,
                                                            task_options={"seq_len": 3}, progress=False)) is None
    # a checked quick setting (as Rotten Tomatoes' is): one seed and early stopping, unless told otherwise
    monkeypatch.setattr(compare_module, "QUICK_RUNS", {"tiny": {"seeds": 1, "patience": 2, "lr": 5e-3,
                                                                 "found": "the order kept"}})
    monkeypatch.setattr(compare_module, "QUICK_DATA", {"tiny": ({"seq_len": 3}, {"steps": 2})})
    real_make = compare_module.tasks.make
    monkeypatch.setattr(compare_module.tasks, "make",
                        lambda name, seed=0, data=None, **o: real_make("adding", seed=seed, **o))
    quick = compare_module.compare("adding", cells=("rnn",), quick=True, hidden=2, progress=False,
                                   task_options={"data": "tiny"})
    assert (quick["settings"]["seeds"], quick["settings"]["patience"], quick["settings"]["lr"]) == (1, 2, 5e-3)
    assert ("1 seed (not 3); early stopping, patience 2, the best weights tested; lr 0.005 (faster, for the shorter "
            "budget)") in compare_module.quick_note(quick)
    assert "This setting was checked against the full run: the order kept. One seed" in compare_module.quick_note(quick)
    told = compare_module.compare("adding", cells=("rnn",), quick=True, hidden=2, progress=False, seeds=2,
                                  patience=3, lr=1e-3, task_options={"data": "tiny"})
    assert (told["settings"]["seeds"], told["settings"]["patience"], told["settings"]["lr"]) == (2, 3, 1e-3)


def test_compare_ends_with_the_claims(tmp_path, capsys):
    assert cli.main(["compare", "--task", "adding", "--cells", "lstm,gru", "--seeds", "1", "--steps", "3", "--seq-len", "3",
                     "--hidden", "2", "--input-dropout", "0.5", "--patience", "4", "--quiet", "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "LSTM vs GRU: the claims, measured" in out and "the GRU is faster" in out
    results = json.loads((tmp_path / "c" / "results.json").read_text())
    assert [r["claim"] for r in results["claims"]][0] == "the LSTM is often more accurate"
    assert len(results["cells"]["lstm"]["runs"][0]["test_items"]) == results["data"]["sizes"]["test"]
    markdown = (tmp_path / "c" / "results.md").read_text()
    assert "## LSTM vs GRU: the claims, measured" in markdown
    assert "steps 3, input dropout 0.5, early stopping, patience 4. " in markdown     # what ran, said


# --------------------------------------------------------------------------- regularisation (issue 25, item 1: inputs and word types)

@pytest.mark.parametrize("kind", ["classifier", "charlm", "custom cell"])
def test_input_and_embedding_dropout_gradcheck_with_their_masks(kind):
    rng = np.random.default_rng(0)
    common = dict(hidden_size=3, dtype=np.float64, seed=0, input_dropout=0.4)
    if kind == "classifier":
        model = numpyrnn.SequenceClassifier("gru", vocab_size=6, num_classes=2, embedding_dim=3, embedding_dropout=0.5,
                                            bidirectional=True, **common)
        batch = (rng.integers(0, 6, (5, 3)), rng.integers(0, 2, 3), [5, 2, 1])
    elif kind == "charlm":
        model = numpyrnn.CharLM("lstm", vocab_size=5, embedding_dim=3, embedding_dropout=0.5, **common)
        ids = rng.integers(0, 5, (6, 2))
        batch = (ids[:-1], ids[1:])
    else:
        model = numpyrnn.SequenceRegressor("mgu", input_size=3, **common)
        batch = (rng.standard_normal((5, 2, 3)), rng.standard_normal(2))
    assert gradcheck.check_model(model, batch).passed
    model.forward(*batch)
    assert model.rnn._cache[2] is not None                          # the input mask was drawn
    model.eval()
    model.forward(*batch)
    assert model.rnn._cache[2] is None and getattr(model, "_embedding_mask", None) is None   # off at evaluation


def test_embedding_dropout_drops_whole_word_types_and_is_off_by_default(tmp_path):
    model = numpyrnn.CharLM("rnn", vocab_size=4, hidden_size=2, embedding_dim=3, seed=0, embedding_dropout=0.5)
    ids = np.array([[0, 1], [0, 1], [0, 2], [0, 1]])                # word 0 in sequence 0 at every step
    model.forward(ids, ids)
    mask = model._embedding_mask[..., 0]
    assert set(np.unique(mask)) <= {0.0, 2.0}
    assert len(set(mask[:, 0])) == 1 and mask[0, 1] == mask[1, 1] == mask[3, 1]   # a word type, not a token
    plain = numpyrnn.CharLM("rnn", vocab_size=4, hidden_size=2, seed=0)
    assert "embedding_dropout" not in plain.config() and "input_dropout" not in plain.config()
    assert model.config()["embedding_dropout"] == 0.5
    numpyrnn.save(model, tmp_path / "m.npz")
    assert numpyrnn.load(tmp_path / "m.npz").config() == model.config()
    with pytest.raises(ValueError, match="embedding_dropout drops word types of an embedding"):
        numpyrnn.SequenceRegressor("gru", input_size=2, embedding_dropout=0.1)
    with pytest.raises(ValueError, match="input_dropout must be a probability in \\[0, 1\\)"):
        numpyrnn.LSTM(2, 3, input_dropout=1.0)


def test_the_regularisers_are_flags_of_train_and_compare(tmp_path, capsys):
    run = tmp_path / "r"
    assert cli.main(["train", "--task", "sentiment", "--cell", "gru", "--epochs", "1", "--hidden", "4", "--seq-len", "12",
                     "--input-dropout", "0.2", "--embedding-dropout", "0.3", "--out", str(run), "--quiet"]) == 0
    config = json.loads((run / "metrics.json").read_text())["model"]
    assert config["input_dropout"] == 0.2 and config["embedding_dropout"] == 0.3
    assert cli.main(["compare", "--task", "adding", "--cells", "rnn", "--seeds", "1", "--steps", "2", "--seq-len", "3",
                     "--hidden", "2", "--input-dropout", "0.1", "--quiet"]) == 0
    assert cli.main(["train", "--task", "adding", "--embedding-dropout", "0.2", "--steps", "1"]) == 2
    assert "embedding_dropout drops word types" in capsys.readouterr().err


def test_input_dropout_is_one_mask_per_sequence_applied_to_the_input_and_leaves_it_unchanged():
    layer = numpyrnn.GRU(4, 3, dtype=np.float64, seed=0, input_dropout=0.5)
    x = np.random.default_rng(1).standard_normal((6, 5, 4))
    original = x.copy()
    y, _ = layer.forward(x)
    mask = layer._cache[2]
    assert mask.shape == (1, 5, 4) and set(np.unique(mask)) == {0.0, 2.0}     # kept inputs scaled by 1/(1-p)
    np.testing.assert_array_equal(x, original)                                # the caller's array is not touched
    layer.eval()
    np.testing.assert_allclose(layer.forward(x * mask)[0], y, rtol=0, atol=1e-15)   # = the plain layer on x ⊙ m


# --------------------------------------------------------------------------- regularisation (issue 25, item 1: recurrent dropout)

def _layer(cell, options, impl):
    return getattr(numpyrnn, cell.upper())(3, 4, dtype=np.float64, seed=0, recurrent_dropout=0.5, impl=impl, **options)


@pytest.mark.parametrize("name,options", RECURRENT_CASES, ids=RECURRENT_IDS)
def test_recurrent_dropout_is_the_same_on_every_path(name, options):
    """fast, reference and (where the cell allows it) generic: the same masks, outputs, input,
    state and weight gradients, through two layers, both directions, lengths, initial states and
    final-state gradients."""
    x, dy, lengths, state, dstate = recurrent_data(name, np.float64, use_lengths=True)
    dropped = {**options, "recurrent_dropout": 0.5}
    reference = run_recurrent(name, dropped, np.float64, x, dy, lengths, "cpu", state, dstate, impl="reference")
    for impl in ("fast", "generic") if name != "GRU" else ("fast",):
        assert_same_results(run_recurrent(name, dropped, np.float64, x, dy, lengths, "cpu", state, dstate, impl=impl),
                            reference, 1e-12)


def _masked_loop(cell, options, params, x, h_mask, mask_carry=False):
    """The equations of derivations §16, written out independently: the recurrent products read
    h ⊙ mask; the GRU's carry z ⊙ h reads h itself."""
    sig = lambda a: 1 / (1 + np.exp(-a))
    W, U, b, c = params["weight_ih_l0"], params["weight_hh_l0"], params["bias_ih_l0"], params["bias_hh_l0"]
    h = np.zeros((x.shape[1], U.shape[1]))
    cs, out = np.zeros_like(h), []
    for x_t in x:
        hm = h * h_mask
        if cell == "rnn":
            a = x_t @ W.T + b + hm @ U.T + c
            h = np.tanh(a) if options.get("nonlinearity", "tanh") == "tanh" else np.maximum(a, 0)
        elif cell == "lstm":
            i, f, g, o = np.split(x_t @ W.T + b + hm @ U.T + c, 4, axis=1)
            cs = sig(f) * cs + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(cs)
        else:
            xr, xz, xn = np.split(x_t @ W.T + b, 3, axis=1)
            Ur, Uz, Un = np.split(U, 3)
            br, bz, bn = np.split(c, 3)
            r, z = sig(xr + hm @ Ur.T + br), sig(xz + hm @ Uz.T + bz)
            n = np.tanh(xn + r * (hm @ Un.T + bn)) if options.get("reset_after", True) else \
                np.tanh(xn + (r * hm) @ Un.T + bn)
            h = (1 - z) * n + z * (hm if mask_carry else h)
        out.append(h)
    return np.stack(out)


@pytest.mark.parametrize("name,options", RECURRENT_CASES, ids=RECURRENT_IDS)
def test_recurrent_dropout_is_one_mask_per_sequence_on_the_recurrent_products(name, options):
    cell = name.lower()
    x = np.random.default_rng(2).standard_normal((5, 3, 3))
    for impl in ("fast", "reference"):
        layer = _layer(cell, options, impl)
        y, _ = layer.forward(x)
        cache = layer._cache[0][0]
        h_mask = cache.h_mask if impl == "fast" else cache.steps[0].h_mask
        assert h_mask.shape == (3, 4) and set(np.unique(h_mask)) == {0.0, 2.0}
        params = layer.params
        np.testing.assert_allclose(y, _masked_loop(cell, options, params, x, h_mask), rtol=0, atol=1e-12)
        if cell == "gru":                        # the test would see a carry masked too: another function
            wrong = _masked_loop("gru", options, params, x, h_mask, mask_carry=True)
            assert np.abs(wrong - y).max() > 1e-3
        layer.eval()
        np.testing.assert_allclose(layer.forward(x)[0], _masked_loop(cell, options, params, x, np.ones((3, 4))),
                                   rtol=0, atol=1e-12)                     # off at evaluation


@pytest.mark.parametrize("cell,impl", [("rnn", "fast"), ("lstm", "fast"), ("lstm", "reference"), ("gru", "fast"),
                                       ("gru", "reference"), ("gru_before", "fast"), ("lstm_cifg", "fast"),
                                       ("indrnn", "fast")])
def test_recurrent_dropout_gradchecks_with_its_masks(cell, impl):
    rng = np.random.default_rng(3)
    options = {"reset_after": False} if cell == "gru_before" else {}
    model = numpyrnn.SequenceClassifier(cell.replace("_before", ""), vocab_size=6, num_classes=2, embedding_dim=3,
                                        hidden_size=3, num_layers=2, bidirectional=True, dtype=np.float64, seed=0,
                                        recurrent_dropout=0.5, impl=impl, **options)
    assert gradcheck.check_model(model, (rng.integers(0, 6, (5, 3)), rng.integers(0, 2, 3), [5, 2, 1])).passed


def test_a_cell_that_cannot_take_recurrent_dropout_refuses_it_saying_why(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"the cell 'mgu' cannot take it: recurrent dropout masks h_\{t−1\} where "
                                         r"it enters the recurrent products.*h_prev_only_in_products = True"):
        numpyrnn.Recurrent("mgu", 2, 3, recurrent_dropout=0.2)
    with pytest.raises(ValueError, match=r"the gru cell takes it on its own loops \(impl='fast' or 'reference'\), not "
                                         r"on the generic loop, which cannot keep its carry z ⊙ h_\{t−1\} unmasked"):
        numpyrnn.GRU(2, 3, recurrent_dropout=0.2, impl="generic")
    layer = numpyrnn.GRU(2, 3, recurrent_dropout=0.2)
    with pytest.raises(ValueError, match="not on the generic loop"):
        layer.impl = "generic"
    assert layer.impl == "fast"

    class Leaky(numpyrnn.cells.Cell):                  # h = (1 − α) h_prev + α tanh(...): carries h_prev
        name = "leaky_for_dropout"

        def parameters(self, input_size, hidden_size):
            return {"weight_ih": (hidden_size, input_size), "weight_hh": (hidden_size, hidden_size)}

        def step_forward(self, x_t, state, p):
            (h_prev,) = state
            g = np.tanh(x_t @ p["weight_ih"].T + h_prev @ p["weight_hh"].T)
            return (0.5 * h_prev + 0.5 * g,), (x_t, h_prev, g, p)

        def step_backward(self, dstate, cache):
            (dh,), (x_t, h_prev, g, p) = dstate, cache
            da = 0.5 * dh * (1 - g * g)
            return (da @ p["weight_ih"], (0.5 * dh + da @ p["weight_hh"],),
                    {"weight_ih": da.T @ x_t, "weight_hh": da.T @ h_prev})

    with pytest.raises(ValueError, match=r"the cell 'leaky_for_dropout' cannot take it"):
        numpyrnn.Recurrent(Leaky(), 2, 3, recurrent_dropout=0.1)
    assert gradcheck.check_step(Leaky()).passed      # a sound cell: refused for what it is, not for a defect
    with pytest.raises(ValueError, match="recurrent_dropout must be a probability in \\[0, 1\\)"):
        numpyrnn.LSTM(2, 3, recurrent_dropout=-0.1)
    assert cli.main(["train", "--task", "adding", "--cell", "mgu", "--recurrent-dropout", "0.2", "--steps", "1",
                     "--out", str(tmp_path / "r")]) == 2
    assert "the cell 'mgu' cannot take it" in capsys.readouterr().err


def test_recurrent_dropout_is_a_flag_of_train_and_compare_and_keeps_nothing_more(tmp_path):
    run = tmp_path / "r"
    assert cli.main(["train", "--task", "adding", "--cell", "gru", "--steps", "2", "--hidden", "4", "--seq-len", "5",
                     "--recurrent-dropout", "0.25", "--out", str(run), "--quiet"]) == 0
    assert json.loads((run / "metrics.json").read_text())["model"]["recurrent_dropout"] == 0.25
    model = numpyrnn.load(run / "model.npz")
    assert model.rnn.recurrent_dropout == 0.25 and "recurrent_dropout" not in numpyrnn.CharLM("gru", vocab_size=3).config()
    assert cli.main(["compare", "--task", "adding", "--cells", "lstm", "--seeds", "1", "--steps", "2", "--seq-len", "3",
                     "--hidden", "2", "--recurrent-dropout", "0.1", "--quiet", "--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "results.json").read_text())["settings"]["recurrent_dropout"] == 0.1
    # what the fast path keeps for it: one (B, H) buffer per layer and direction, for h_{t−1} ⊙ mask
    x = np.random.default_rng(0).standard_normal((7, 5, 3))
    for cell in ("rnn", "lstm", "gru"):
        plain, dropped = (getattr(numpyrnn, cell.upper())(3, 4, bidirectional=True, seed=0, recurrent_dropout=p)
                          for p in (0.0, 0.5))
        for layer in (plain, dropped):
            layer.forward(x)
        assert dropped.workspace_bytes() - plain.workspace_bytes() == 2 * 5 * 4 * 4, cell


def test_a_regularised_model_goes_to_pytorch_without_its_training_only_regularisers():
    pytest.importorskip("torch")
    from numpyrnn import export

    model = numpyrnn.SequenceClassifier("gru", vocab_size=6, num_classes=2, embedding_dim=3, hidden_size=3, seed=0,
                                        dtype=np.float64, input_dropout=0.2, embedding_dropout=0.1,
                                        recurrent_dropout=0.3)
    module = export.to_torch(model)
    ids = np.random.default_rng(0).integers(0, 6, (5, 2))
    assert export.max_difference(model, module, ids) < 1e-12          # at evaluation they change nothing
    assert export.from_torch(module, like=model).config() == model.config()
