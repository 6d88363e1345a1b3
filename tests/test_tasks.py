"""The tasks: their data are what their papers define, seeded, split, with the stated baselines."""

import math

import numpy as np
import pytest

from numpyrnn import tasks
from numpyrnn.tasks import adding, copy, corpus, sentiment


def test_adding_data_and_baseline():
    inputs, targets = adding.generate(2000, 20, np.random.default_rng(0))
    assert inputs.shape == (2000, 20, 2) and targets.shape == (2000,)
    markers = inputs[..., 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :10].sum(axis=1) == 1) and np.all(markers[:, 10:].sum(axis=1) == 1)
    assert np.allclose((inputs[..., 0] * markers).sum(axis=1), targets)
    # predicting 1 scores about 1/6, the baseline
    assert abs(np.mean((targets - 1) ** 2) - 1 / 6) < 0.015
    task = tasks.make("adding", seq_len=20)
    assert task.baseline()[0] == pytest.approx(1 / 6)


def test_copy_data_and_baseline():
    inputs, targets = copy.generate(50, 7, np.random.default_rng(0))
    assert inputs.shape == targets.shape == (50, 27)
    assert np.all((inputs[:, :10] >= 1) & (inputs[:, :10] <= 8))
    assert np.all(inputs[:, 10:16] == 0) and np.all(inputs[:, 16] == 9) and np.all(inputs[:, 17:] == 0)
    assert np.all(targets[:, :17] == 0) and np.array_equal(targets[:, -10:], inputs[:, :10])
    assert tasks.make("copy", seq_len=50).baseline()[0] == pytest.approx(10 * math.log(8) / 70)


def test_tasks_are_seeded_and_splits_differ():
    a, b, c = (tasks.make("adding", seq_len=10, seed=s) for s in (0, 0, 1))
    assert np.array_equal(a.data["train"][0], b.data["train"][0])
    assert not np.array_equal(a.data["train"][0], c.data["train"][0])
    assert not np.array_equal(a.data["train"][0][:100], a.data["test"][0][:100])


def test_sentiment_reviews_need_order():
    """Swapping a contrast's clauses flips its label; a bag of unigrams and bigrams, which sees
    "not good", stays far from what the recurrent cells reach (99 %+)."""
    rng = np.random.default_rng(0)
    texts, labels = sentiment.generate(2000, rng, max_distractors=3)
    assert set(labels) == {0, 1} and 0.45 < labels.mean() < 0.55
    assert any(" but " in t for t in texts) and any("although" in t for t in texts)
    task = tasks.make("sentiment", train_size=3000, val_size=200, test_size=1000)
    names = [b["name"] for b in task.baselines()]
    bow = task.baselines()[1]["value"]
    assert names == ["majority class", "bag of words"]
    assert bow < 0.7, f"a bag of words scored {bow}"
    assert task.vocab[:2] == ["<pad>", "<unk>"]


def test_tokenize():
    assert sentiment.tokenize("The food, honestly? NOT good!") == ["the", "food", ",", "honestly", "?", "not", "good", "!"]


def test_sentiment_from_a_users_file(tmp_path):
    rows = ["text,label"] + [f'"{"great" if i % 2 else "awful"} movie number {i}",{"pos" if i % 2 else "neg"}'
                             for i in range(40)]
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(rows) + "\n")
    task = tasks.make("sentiment", data=str(path), seed=3)
    assert task.classes == ["neg", "pos"]
    assert [task.split_size(s) for s in ("train", "val", "test")] == [32, 4, 4]
    tsv = tmp_path / "reviews.tsv"
    tsv.write_text("\n".join(f"{'good' if i % 3 else 'bad'} thing\t{i % 3 == 0}" for i in range(30)))
    assert tasks.make("sentiment", data=str(tsv)).classes == ["False", "True"]
    bad = tmp_path / "bad.csv"
    bad.write_text("just text\n" * 20)
    with pytest.raises(ValueError, match="every row must be text,label"):
        tasks.make("sentiment", data=str(bad))
    with pytest.raises(ValueError, match="no such file"):
        tasks.make("sentiment", data=str(tmp_path / "missing.csv"))


def test_corpus_and_charlm_splits(tmp_path):
    text = corpus.generate(5000, np.random.default_rng(0))
    assert len(text) >= 5000 and text.count('"') % 2 == 0 and text.count("(") == text.count(")")
    assert corpus.generate(5000, np.random.default_rng(0)) == text
    task = tasks.make("charlm", size=20_000, seq_len=16)
    assert sum(len(v) for v in task.splits.values()) >= 20_000
    assert 3 < task.baseline()[0] < math.log2(len(task.vocab))
    plan = task.epoch(8, np.random.default_rng(0))
    first, second = task.batch(plan[0]), task.batch(plan[1])
    assert first.inputs.shape == (16, 8) and not first.carry_state and second.carry_state
    assert np.array_equal(first.targets[:-1], first.inputs[1:])       # next-character targets
    assert np.array_equal(second.inputs[0], first.targets[-1])        # chunks continue the streams
    own = tmp_path / "t.txt"
    own.write_text("abc def ghi\n" * 200)
    assert tasks.make("charlm", text=str(own), seq_len=8).vocab == ["\n", " ", "a", "b", "c", "d", "e", "f", "g", "h", "i"]
    with pytest.raises(ValueError, match="needs at least"):
        tasks.make("charlm", text=str(own), seq_len=200)


def test_series_sources():
    task = tasks.make("series", seq_len=20, length=2000)
    inputs, targets = task.data["train"]
    assert np.array_equal(inputs[:, 1:], targets[:, :-1])          # the target is the next value
    assert abs(inputs.mean()) < 0.2 and abs(inputs.std() - 1) < 0.2
    membrane = tasks.make("series", source="membrane", seq_len=50)
    assert membrane.split_size("test") > 10
    with pytest.raises(ValueError, match="series source must be one of sines, membrane"):
        tasks.make("series", source="stocks")


def test_unknown_task_and_bad_options():
    with pytest.raises(ValueError, match="task must be one of adding, copy, sentiment, charlm, series, speech, demand, anomaly, g2p, addition, got 'mnist'"):
        tasks.make("mnist")
    with pytest.raises(ValueError, match="seq_len must be ≥ 2"):
        tasks.make("adding", seq_len=1)
    with pytest.raises(ValueError, match="bidirectional"):
        tasks.make("charlm", size=5000).make_model("lstm", hidden_size=4, bidirectional=True)
