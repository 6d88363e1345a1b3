"""The trainer: tiny runs that must learn, exact repeats and resumes, stops on NaN, honest timing."""

import json
import time

import numpy as np
import pytest

from numpyrnn import optim, tasks
from numpyrnn.train import Trainer, TrainingError

TINY = {
    "adding": dict(seq_len=10, train_size=2000, val_size=200, test_size=200),
    "copy": dict(seq_len=5, train_size=2000, val_size=200, test_size=200),
    "sentiment": dict(seq_len=20, train_size=1000, val_size=200, test_size=200),
    "charlm": dict(seq_len=32, size=8000),
    "series": dict(seq_len=20, length=3000),
}


def make(name, cell="gru", hidden=16, batch_size=32, lr=1e-2, seed=0, out_dir=None, schedule=None,
         steps_for_schedule=None, layers=1, dropout=0.0, **kwargs):
    task = tasks.make(name, seed=seed, **TINY[name])
    model = task.make_model(cell, hidden_size=hidden, num_layers=layers, dropout=dropout, seed=seed)
    opt = optim.Adam(model, lr=lr)
    sched = optim.CosineAnnealingLR(opt, T_max=steps_for_schedule) if schedule == "cosine" else None
    return Trainer(model, task, opt, batch_size=batch_size, clip=1.0, schedule=sched, seed=seed,
                   out_dir=out_dir, progress=False, **kwargs)


# "learning" means beating the task's baseline by this factor on the test split
@pytest.mark.parametrize("name,steps,factor", [("adding", 400, 0.1), ("copy", 600, 0.97),
                                               ("sentiment", 150, None), ("charlm", 60, 0.75),
                                               ("series", 150, 0.5)])
def test_tiny_runs_learn(name, steps, factor):
    trainer = make(name, hidden=32 if name in ("copy", "charlm", "sentiment") else 16,
                   batch_size=16 if name == "charlm" else 32, eval_every=steps)
    result = trainer.fit(steps=steps)
    baseline, _ = trainer.task.baseline()
    metric = result[f"test_{trainer.task.metric}"]
    if name == "sentiment":
        assert metric > 0.8 > baseline + 0.2, f"accuracy {metric}"
    else:
        assert metric < factor * baseline, f"{name}: {metric} against baseline {baseline}"
    assert result["steps"] == steps and result["train_seconds"] > 0 and len(trainer.history) == 1


def test_same_seed_same_run_bit_for_bit():
    a = make("adding", layers=2, dropout=0.3, eval_every=25)
    b = make("adding", layers=2, dropout=0.3, eval_every=25)
    ra, rb = a.fit(steps=50), b.fit(steps=50)
    assert all(np.array_equal(a.model.params[k], b.model.params[k]) for k in a.model.params)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert ra["test_mse"] == rb["test_mse"]
    c = make("adding", layers=2, dropout=0.3, seed=1, eval_every=25)
    c.fit(steps=50)
    assert not np.array_equal(a.model.params["head.weight"], c.model.params["head.weight"])


def without_times(history):
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in history]


@pytest.mark.parametrize("name,kwargs", [
    ("adding", dict(layers=2, dropout=0.3, schedule="cosine", steps_for_schedule=45)),
    ("charlm", dict(batch_size=8)),
    ("sentiment", dict()),
])
def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path, name, kwargs):
    """Stopped at step 30 (mid-epoch) and resumed by fresh objects, a run ends with the same
    parameters, bit for bit, and the same history as one that never stopped."""
    whole = make(name, out_dir=tmp_path / "whole", eval_every=15, **kwargs)
    whole.fit(steps=45)
    first = make(name, out_dir=tmp_path / "parts", eval_every=15, **kwargs)
    first.fit(steps=30)
    assert 0 < first.position < len(first.plan)                  # stopped inside an epoch
    second = make(name, out_dir=tmp_path / "parts", eval_every=15, **kwargs).resume()
    assert second.step == 30
    second.fit(steps=45)
    for k in whole.model.params:
        assert np.array_equal(whole.model.params[k], second.model.params[k]), k
    assert without_times(whole.history) == without_times(second.history)
    lines = [json.loads(l) for l in (tmp_path / "parts" / "history.jsonl").read_text().splitlines()]
    assert without_times(lines) == without_times(whole.history)


def test_resume_refuses_a_different_run(tmp_path):
    first = make("adding", out_dir=tmp_path, eval_every=10)
    first.fit(steps=10)
    from numpyrnn.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="different batch_size"):
        make("adding", out_dir=tmp_path, batch_size=8).resume()
    with pytest.raises(CheckpointError, match="different task"):
        make("adding", seed=5, out_dir=tmp_path).resume()
    with pytest.raises(CheckpointError, match="config differs"):
        make("adding", hidden=8, out_dir=tmp_path).resume()


def test_nan_stops_the_run_naming_the_step_and_keeps_the_checkpoint(tmp_path):
    trainer = make("adding", out_dir=tmp_path, eval_every=10)
    trainer.fit(steps=10)
    saved = (tmp_path / "checkpoint.npz").read_bytes()
    trainer.model.params["head.bias"] = np.array([np.inf], dtype=np.float32)
    with pytest.raises(TrainingError, match=r"the loss became (nan|inf) at step 11 \(epoch 1\); training stopped; "
                                            r"the last good checkpoint, from step 10, is"):
        trainer.fit(steps=20)
    assert (tmp_path / "checkpoint.npz").read_bytes() == saved


def test_infinite_gradient_stops_the_run():
    trainer = make("adding", eval_every=100)
    original = trainer.model.backward

    def exploding():
        out = original()
        trainer.model.grads["head.weight"][0, 0] = np.inf
        return out

    trainer.model.backward = exploding
    with pytest.raises(TrainingError, match="the gradient norm became inf at step 1 .*no checkpoint was written"):
        trainer.fit(steps=5)


def test_training_time_excludes_evaluation():
    trainer = make("adding", eval_every=5)
    evaluate = trainer.task.evaluate

    def slow_evaluate(*args, **kwargs):
        time.sleep(0.3)
        return evaluate(*args, **kwargs)

    trainer.task.evaluate = slow_evaluate
    start = time.perf_counter()
    result = trainer.fit(steps=10)
    elapsed = time.perf_counter() - start
    assert elapsed > 0.9                                  # two evaluations and the test pass slept
    assert result["train_seconds"] < elapsed - 0.85


def test_epochs_budget_and_epoch_times():
    trainer = make("sentiment", eval_every=1000)
    result = trainer.fit(epochs=2)
    per_epoch = len(trainer.task.epoch(32, np.random.default_rng(0)))
    assert result["steps"] == 2 * per_epoch and result["epochs"] == 2
    assert len(trainer.epoch_seconds) == 2 and result["seconds_per_epoch"] > 0
    with pytest.raises(ValueError, match="exactly one of steps and epochs"):
        trainer.fit(steps=5, epochs=1)


def test_ctrl_c_stops_between_steps_and_keeps_everything(tmp_path):
    """A SIGINT mid-run lets the current step finish, writes a complete checkpoint and history,
    and the run resumes to exactly what an uninterrupted run gives."""
    import os
    import signal

    from numpyrnn.train import Interrupted

    whole = make("adding", out_dir=tmp_path / "whole", eval_every=10, layers=2, dropout=0.2)
    whole.fit(steps=40)
    trainer = make("adding", out_dir=tmp_path / "cut", eval_every=10, layers=2, dropout=0.2)
    batch = trainer.task.batch

    def interrupting(items):
        if trainer.step == 23:
            os.kill(os.getpid(), signal.SIGINT)
        return batch(items)

    trainer.task.batch = interrupting
    before = signal.getsignal(signal.SIGINT)     # Python's default, or SIG_IGN under nohup or `&`
    with pytest.raises(Interrupted, match="interrupted at step 24; checkpoint and history written to"):
        trainer.fit(steps=40)
    assert signal.getsignal(signal.SIGINT) is before     # the handler is put back
    resumed = make("adding", out_dir=tmp_path / "cut", eval_every=10, layers=2, dropout=0.2).resume()
    assert resumed.step == 24 and len(resumed.history) == 2
    resumed.fit(steps=40)
    assert all(np.array_equal(whole.model.params[k], resumed.model.params[k]) for k in whole.model.params)
    assert without_times(whole.history) == without_times(resumed.history)


def test_exploding_gradients_are_reported(tmp_path):
    lines = []
    trainer = make("adding", eval_every=50, log=lines.append)
    original = trainer.model.backward

    def spiking():
        out = original()
        if trainer.step == 30:
            for g in trainer.model.grads.values():
                g *= 1e4
        return out

    trainer.model.backward = spiking
    trainer.fit(steps=50)
    assert any(l.startswith("exploding gradient at step 31: norm") and "clipped to 1.0" in l for l in lines)
    assert trainer.history[-1]["grad_spikes"] >= 1


def test_resume_with_a_bad_optimizer_state_changes_nothing(tmp_path):
    from numpyrnn import checkpoint

    first = make("adding", out_dir=tmp_path, eval_every=10)
    first.fit(steps=10)
    arrays = checkpoint.read(tmp_path / "checkpoint.npz")
    key = next(k for k in arrays if k.startswith("optim/") and k != "optim/step")
    arrays[key] = np.zeros(3)                                  # the wrong shape
    checkpoint.write(tmp_path / "checkpoint.npz", arrays)
    fresh = make("adding", out_dir=tmp_path, eval_every=10)
    before = fresh.model.state_dict()
    with pytest.raises(checkpoint.CheckpointError, match="optimizer state"):
        fresh.resume()
    assert all(np.array_equal(before[k], fresh.model.params[k]) for k in before) and fresh.step == 0


def test_resuming_a_finished_run_just_reports(tmp_path):
    first = make("adding", out_dir=tmp_path, eval_every=10)
    done = first.fit(steps=10)
    again = make("adding", out_dir=tmp_path, eval_every=10).resume()
    result = again.fit(steps=10)
    assert result["steps"] == 10 and result["test_mse"] == done["test_mse"]


def test_a_tasks_default_regularisers_reach_the_run_unless_given(monkeypatch):
    """A data set's tuned settings may hold regularisers (Rotten Tomatoes does): they become the
    defaults of train.setup and compare, an explicit value (0 included) overrides them, and
    compare's results and plan record the values that ran."""
    from numpyrnn.experiments import compare
    from numpyrnn.tasks.sentiment import Sentiment
    from numpyrnn.train import setup, task_regularisers

    monkeypatch.setattr(Sentiment, "defaults", {**Sentiment.defaults, "embedding_dropout": 0.25})
    task = tasks.make("sentiment", **TINY["sentiment"])
    assert task_regularisers(task) == {"input_dropout": 0.0, "embedding_dropout": 0.25, "recurrent_dropout": 0.0,
                                       "zoneout": 0.0, "zoneout_c": 0.0}
    trainer, _ = setup(task, "gru", hidden=8, steps=2)
    assert trainer.model.config()["embedding_dropout"] == 0.25
    trainer, _ = setup(task, "gru", hidden=8, steps=2, embedding_dropout=0.0, input_dropout=0.1)
    assert "embedding_dropout" not in trainer.model.config() and trainer.model.config()["input_dropout"] == 0.1
    settings = compare.plan("sentiment", cells=("gru",), task_options=TINY["sentiment"])["settings"]
    assert (settings["embedding_dropout"], settings["input_dropout"]) == (0.25, 0.0)
    with pytest.raises(TypeError, match="unknown regularisers dropout; known: input_dropout, embedding_dropout"):
        task_regularisers(task, dropout=0.5)
