"""Issue 32, part 1: speech, who is speaking (JapaneseVowels from the aeon wheel, read as files).

The .ts reader refuses every broken file naming the file and the line; the DTW baseline equals a
plain DTW written out loop by loop; a user's own pair of .ts files makes the task; on the real
data (installed by .ci/run; without it these tests skip, saying why) the splits are the shipped
ones, the baseline scores 351 of 370, and an LSTM trains past 0.9 in seconds."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyrnn import cli, tasks, train
from numpyrnn.tasks import baselines, datasets

HERE = datasets.installed("japanese-vowels")
needs_data = pytest.mark.skipif(not HERE, reason="the japanese-vowels data set is not installed: "
                                                 + datasets.DATASETS["japanese-vowels"].install)

HEADER = "#a comment\n@problemName Toy\n@univariate false\n@dimensions 2\n@equalLength false\n" \
         "@classLabel true a b c\n@data\n"


def _series_line(rng, label, length=None):
    T = int(rng.integers(3, 7)) if length is None else length
    channels = [",".join(f"{v:.5f}" for v in rng.standard_normal(T) + 4 * (ord(label) - 97)) for _ in range(2)]
    return ":".join(channels) + f":{label}\n"


def _pair(folder, n_per_class=5, seed=0):
    """A toy problem's *_TRAIN.ts and *_TEST.ts: three classes whose series sit at 0, 4 and 8."""
    rng = np.random.default_rng(seed)
    for split, n in (("TRAIN", n_per_class), ("TEST", 4)):
        lines = [_series_line(rng, label) for label in "abc" for _ in range(n)]
        with open(os.path.join(folder, f"Toy_{split}.ts"), "w") as f:
            f.write(HEADER + "".join(lines))
    return os.path.join(folder, "Toy_TRAIN.ts")


@pytest.mark.parametrize("line, message", [
    ("1,2,3:4,5,6:a", None),
    ("1,2,3:a", "line 8: 1 channel and a label, but the header says @dimensions 2"),
    ("1,2,3:4,5:a", r"line 8: its channels have different lengths \[2, 3\]"),
    ("1,2,x:4,5,6:a", "line 8: a value that is not a number"),
    ("1,2,NaN:4,5,6:a", "line 8: channel 1, step 3 is nan"),
    ("1,2,3:4,5,inf:a", "line 8: channel 2, step 3 is inf"),
    ("1,2,3:4,5,6:z", "line 8: label 'z' is not one of the header's classes a b c"),
    ("1,2,3:4,5,", "line 8: 1 channel and a label"),               # a truncated line
])
def test_a_broken_ts_file_is_refused_naming_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "X_TRAIN.ts"
    path.write_text(HEADER + line + "\n")
    if message is None:
        series, labels, classes = datasets.read_ts(str(path))
        assert series[0].tolist() == [[1, 4], [2, 5], [3, 6]] and labels == ["a"] and classes == ["a", "b", "c"]
        return
    with pytest.raises(ValueError, match=f"{path}, {message}"):
        datasets.read_ts(str(path))


def test_a_ts_file_without_its_header_or_data_is_refused(tmp_path):
    path = tmp_path / "X_TRAIN.ts"
    for text, message in ((HEADER, "no series"), ("@data\n1:a\n", "line 1: @data before @classLabel"),
                          ("1,2:3,4:a\n", "line 1: a header line"), (b"\xff\xfe", "not a .ts text file"),
                          ("@dimensions two\n", "line 1: @dimensions must be a whole number")):
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(ValueError, match=message):
            datasets.read_ts(str(path))
    with pytest.raises(ValueError, match=r"is named \*_TRAIN.ts"):
        datasets.test_file(str(tmp_path / "X.ts"))


def _dtw(a, b):
    """Dependent DTW, cell by cell, as the archive defines it."""
    D = np.full((len(a), len(b)), np.inf)
    for i in range(len(a)):
        for j in range(len(b)):
            before = [D[i - 1, j] if i else np.inf, D[i, j - 1] if j else np.inf,
                      D[i - 1, j - 1] if i and j else np.inf]
            D[i, j] = ((a[i] - b[j]) ** 2).sum() + (0.0 if i == j == 0 else min(before))
    return D[-1, -1]


@settings(max_examples=25, deadline=None)
@given(lengths_a=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       lengths_b=st.lists(st.integers(1, 6), min_size=1, max_size=4), channels=st.integers(1, 3),
       seed=st.integers(0, 1000))
def test_the_batched_dtw_is_the_plain_recursion(lengths_a, lengths_b, channels, seed):
    rng = np.random.default_rng(seed)
    a = [rng.standard_normal((n, channels)) for n in lengths_a]
    b = [rng.standard_normal((n, channels)) for n in lengths_b]
    got = baselines.dtw_distances(a, b, chunk=3)
    want = np.array([[_dtw(x, y) for y in b] for x in a])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert baselines.nearest_neighbour(got, list("pqrs"[:len(b)])).tolist() == [
        "pqrs"[int(np.argmin(row))] for row in want]


def test_a_users_ts_pair_makes_the_task(tmp_path):
    task = tasks.make("speech", data=_pair(str(tmp_path)))
    assert task.split_sizes() == {"train": 12, "val": 3, "test": 12}           # a fifth of each class held out
    assert sorted(task.data["val"][1].tolist()) == [0, 1, 2]
    train_frames = np.concatenate(task.data["train"][0])
    np.testing.assert_allclose(train_frames.mean(axis=0), 0, atol=1e-12)     # standardised on the training part
    value, how = task.baseline()
    assert value == 1.0 and "12 of 12" in how                                # the toy classes sit apart
    batch = task.examples("test", np.array([0, 5]))
    assert batch.inputs.shape[1:] == (2, 2) and batch.lengths.tolist() == [len(task.raw["test"][0]),
                                                                            len(task.raw["test"][5])]
    trainer, budget = train.setup(task, "gru", hidden=8, epochs=40, batch_size=4, lr=0.01, seed=0)
    assert trainer.fit(**budget)["test_accuracy"] > 0.9
    os.remove(tmp_path / "Toy_TEST.ts")
    with pytest.raises(ValueError, match="its test split .*Toy_TEST.ts is not there"):
        tasks.make("speech", data=str(tmp_path / "Toy_TRAIN.ts"))


def test_a_missing_data_set_is_one_line_with_its_install_command(monkeypatch, capsys):
    def absent(name):
        raise datasets.DataUnavailable(f"the {name} data set comes with the aeon package, which is not installed "
                                       f"here: {datasets.DATASETS[name].install}")

    monkeypatch.setattr(datasets, "locate", absent)
    assert cli.main(["train", "--task", "speech", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-deps aeon==1.6.0" in err
    assert cli.main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "speech" in out and "not installed: pip install --no-deps aeon==1.6.0" in out


@needs_data
def test_the_shipped_splits_and_the_dtw_baseline():
    task = tasks.make("speech")
    assert task.split_sizes() == {"train": 216, "val": 54, "test": 370}
    assert task.classes == [str(k) for k in range(1, 10)] and task.input_size == 12
    assert len(task.shipped[0]) == 270 and {len(s) for s in task.raw["test"]} <= set(range(7, 30))
    assert np.bincount(task.data["val"][1]).tolist() == [6] * 9                  # stratified, 6 a speaker
    value, how = task.baseline()
    assert how.endswith("(351 of 370)") and value == pytest.approx(351 / 370)
    assert tasks.make("speech", seed=5).data["val"][1].tolist() == task.data["val"][1].tolist()


@needs_data
def test_an_lstm_learns_who_is_speaking():
    task = tasks.make("speech")
    trainer, budget = train.setup(task, "lstm", epochs=20, seed=0)
    metrics = trainer.fit(**budget)
    assert metrics["test_accuracy"] > 0.85, metrics                 # the majority class scores 0.08


def test_too_few_series_to_hold_out_validation_are_refused(tmp_path):
    path = _pair(str(tmp_path), n_per_class=1)
    with pytest.raises(ValueError, match="3 training series are too few to hold out a validation fifth"):
        tasks.make("speech", data=path)
