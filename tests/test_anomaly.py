"""Issue 32, part 2: a medical signal (UCR anomaly archive #135, read from the aeon wheel's CSVs).

The reader refuses a broken file naming the file and the line; a user's own pair of files makes
the task; the periods keep everything after the training prefix for testing; the metric leaves
the anomaly's neighbourhood out and is the stream's forecast error; the detection follows the
archive's protocol (a hit within 100 values); the baselines are computed by the task; and
compare records each run's detection and draws the figure.  On the real data (installed by
.ci/run; without it these tests skip, saying why) the numbers are the ones docs/tasks.md gives."""

import json
import os

import numpy as np
import pytest

from numpyrnn import cli, plots, tasks, train
from numpyrnn.tasks import anomaly as anomaly_task
from numpyrnn.tasks import datasets

HERE = datasets.installed("internal-bleeding")
needs_data = pytest.mark.skipif(not HERE, reason="the internal-bleeding data set is not installed: "
                                                 + datasets.DATASETS["internal-bleeding"].install)

#: the toy pair: a beat of 40 values, 480 normal values to train on, an anomaly at 1 300-1 309
PERIOD, N_TRAIN, N, FIRST, LAST = 40, 480, 2000, 1300, 1309


def write_pair(folder, values=None, labels=None, n_train=N_TRAIN, name="Toy"):
    """A toy *_TRAIN.csv / *_TEST.csv pair in the archive's format: a smooth beat with noise, and a
    burst of fast oscillation where it is labelled anomalous."""
    if values is None:
        t = np.arange(N)
        values = 70 + 10 * np.sin(2 * np.pi * t / PERIOD) + 4 * np.sin(4 * np.pi * t / PERIOD + 1)
        values += 0.05 * np.random.default_rng(0).standard_normal(N)
        values[FIRST:LAST + 1] += 6 * (-1.0) ** np.arange(LAST + 1 - FIRST)
    if labels is None:
        labels = np.zeros(len(values), int)
        labels[FIRST:LAST + 1] = 1
    paths = []
    for split, count in (("TRAIN", n_train), ("TEST", len(values))):
        path = os.path.join(folder, f"{name}_{split}.csv")
        with open(path, "w") as f:
            f.write("timestamp,value,is_anomaly\n")
            f.writelines(f"{i},{values[i]:.6f},{labels[i]}\n" for i in range(count))
        paths.append(path)
    return paths[0]


@pytest.mark.parametrize("lines, message", [
    (["time,value,is_anomaly", "0,1.0,0"], "line 1: the header must be timestamp,value,is_anomaly"),
    (["timestamp,value,is_anomaly", "0,1.0,0", "1,2.0"], "line 3: 2 fields, not 3"),
    (["timestamp,value,is_anomaly", "0,1.0,0", "2,2.0,0"], "line 3: timestamp '2' where 1 comes next"),
    (["timestamp,value,is_anomaly", "0,1.0,0", "0,2.0,0"], "line 3: timestamp '0' where 1 comes next"),
    (["timestamp,value,is_anomaly", "0,abc,0"], "line 2: value 'abc' is not a number"),
    (["timestamp,value,is_anomaly", "0,1.0,0", "1,nan,0"], "line 3: value 'nan'"),
    (["timestamp,value,is_anomaly", "0,1.0,2"], "line 2: is_anomaly '2' is not 0 or 1"),
    (["timestamp,value,is_anomaly"], "no rows after the header"),
    ([], "line 1: the header must be"),
])
def test_a_broken_csv_is_refused_naming_the_file_and_line(tmp_path, lines, message):
    path = tmp_path / "X_TEST.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"{path}.*{message}"):
        datasets.read_anomaly_csv(str(path))


def test_the_reader_reads_values_and_labels(tmp_path):
    path = tmp_path / "X_TEST.csv"
    path.write_text("timestamp,value,is_anomaly\n0,63.5,0\n1,-2,1\n2,1e3,0\n")
    values, labels = datasets.read_anomaly_csv(str(path))
    assert values.tolist() == [63.5, -2.0, 1000.0] and labels.tolist() == [False, True, False]


def test_beat_period_and_trailing_mean():
    t = np.arange(2000)
    assert anomaly_task.beat_period(np.sin(2 * np.pi * t / 37) + 0.3 * np.sin(6 * np.pi * t / 37 + 1)) == 37
    values = np.arange(1.0, 8.0)
    np.testing.assert_allclose(anomaly_task.trailing_mean(values, 3), [1, 1.5, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(anomaly_task.trailing_mean(values, 1), values)
    with pytest.raises(ValueError, match="no period"):
        anomaly_task.beat_period(np.arange(50.0))


def test_a_users_pair_makes_the_task(tmp_path):
    task = tasks.make("anomaly", data=write_pair(str(tmp_path)), seq_len=20)
    assert task.periods == {"train": (0, 400), "val": (400, 480), "test": (480, N)}   # the last sixth validates
    assert task.anomaly == (FIRST, LAST) and task.period == PERIOD
    assert task.split_sizes() == {"train": 380, "val": 80, "test": N - N_TRAIN}
    near = np.arange(N_TRAIN, N)[task.near]
    assert (near[0], near[-1]) == (FIRST - 100, LAST + 100)
    persistence, seasonal = task.baselines()
    # the baselines by hand: MAE of the values away from the anomaly, in the signal's units
    actual = task.values[N_TRAIN:]
    keep = ~task.near
    assert persistence["value"] == pytest.approx(np.mean(np.abs(task.values[N_TRAIN - 1:-1] - actual)[keep]), rel=1e-12)
    assert seasonal["value"] == pytest.approx(
        np.mean(np.abs(task.values[N_TRAIN - PERIOD:-PERIOD] - actual)[keep]), rel=1e-12)
    assert task.baseline()[0] == persistence["value"]
    for b in (persistence, seasonal):          # the burst is the largest error of either
        assert b["report"]["hit"] and FIRST <= b["report"]["top"] <= LAST + 10 and b["report"]["ratio"] > 1


def test_the_detection_follows_the_archives_protocol(tmp_path):
    task = tasks.make("anomaly", data=write_pair(str(tmp_path)), seq_len=20)
    scores = np.full(N - N_TRAIN, 1.0)
    scores[LAST + 101 - N_TRAIN] = 3.0                        # just outside the tolerance: a miss
    scores[FIRST - N_TRAIN] = 2.0
    assert task.detection(scores) == {"hit": False, "top": LAST + 101, "ratio": pytest.approx(2 / 3)}
    scores[FIRST - 100 - N_TRAIN] = 4.0                       # at its edge: a hit
    assert task.detection(scores) == {"hit": True, "top": FIRST - 100, "ratio": pytest.approx(4 / 3)}


def test_the_evaluation_is_the_streams_forecast_error(tmp_path):
    task = tasks.make("anomaly", data=write_pair(str(tmp_path)), seq_len=20, smooth=5)
    model = task.make_model("lstm", hidden_size=6, seed=1, dtype=np.float64)
    stream = model.stream()
    forecasts = np.array([float(stream.step(v)[0]) for v in task.series[:-1]])   # each from every value before it
    mean, std = task.scale
    errors = np.abs(forecasts[N_TRAIN - 1:] - task.series[N_TRAIN:]) * std
    result = task.evaluate(model, "test")
    assert result["mae"] == pytest.approx(errors[~task.near].mean(), rel=1e-9)
    items = task.item_scores(model, "test")
    assert items.shape == (N - N_TRAIN - (LAST + 100 - (FIRST - 100) + 1),) and items.mean() == pytest.approx(result["mae"], rel=1e-12)
    val = task.evaluate(model, "val")
    assert val["loss"] == pytest.approx(np.mean((forecasts[399:479] - task.series[400:480]) ** 2), rel=1e-9)
    report = task.report(model)
    score = anomaly_task.trailing_mean(errors / std, 5)
    np.testing.assert_allclose(report["score"], score, rtol=1e-3)          # kept to 4 significant digits
    assert report["top"] == N_TRAIN + int(np.argmax(report["score"]))
    assert report["hit"] == (FIRST - 100 <= report["top"] <= LAST + 100)


@pytest.mark.parametrize("change, message", [
    ("prefix", "should begin with the 480 training values"),
    ("train-anomaly", "the training part holds values labelled anomalous"),
    ("two", "one run of is_anomaly 1; this file has several"),
    ("none", "this file has none"),
])
def test_a_pair_that_breaks_the_protocol_is_refused(tmp_path, change, message):
    path = write_pair(str(tmp_path))
    values, labels = datasets.read_anomaly_csv(path.replace("_TRAIN", "_TEST"))
    labels = labels.astype(int)
    if change == "prefix":
        values[5] += 1
    elif change == "train-anomaly":
        labels[10] = 1
    elif change == "two":
        labels[1500] = 1
    else:
        labels[:] = 0
    path = write_pair(str(tmp_path), values, labels, name="Changed")
    if change == "prefix":          # the training file keeps the old value
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace(f"5,{values[5]:.6f}", f"5,{values[5] - 1:.6f}"))
    with pytest.raises(ValueError, match=message):
        tasks.make("anomaly", data=path, seq_len=20)


def test_a_missing_test_file_and_a_misnamed_file_are_refused(tmp_path):
    path = write_pair(str(tmp_path))
    os.remove(path.replace("_TRAIN", "_TEST"))
    with pytest.raises(ValueError, match="its test file .*Toy_TEST.csv is not there"):
        tasks.make("anomaly", data=path)
    misnamed = tmp_path / "Toy.csv"
    misnamed.write_text(open(path).read())
    with pytest.raises(ValueError, match=r"is named \*_TRAIN.csv, with its test split beside it as \*_TEST.csv"):
        tasks.make("anomaly", data=str(misnamed))
    with pytest.raises(ValueError, match="japanese-vowels is a data set for the speech task"):
        tasks.make("anomaly", data="japanese-vowels")


def test_a_missing_data_set_is_one_line(monkeypatch, capsys):
    def absent(name):
        raise datasets.DataUnavailable(f"the {name} data set comes with the aeon package, which is not "
                                       f"installed here: {datasets.DATASETS[name].install}")

    monkeypatch.setattr(datasets, "locate", absent)
    assert cli.main(["compare", "--task", "anomaly", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-deps aeon==1.6.0" in err


def test_compare_records_each_runs_detection_and_draws_it(tmp_path, capsys):
    data = write_pair(str(tmp_path))
    out = tmp_path / "out"
    assert cli.main(["compare", "--task", "anomaly", "--data", data, "--seq-len", "20", "--cells", "gru,rnn",
                     "--seeds", "2", "--steps", "30", "--hidden", "8", "--smooth", "4", "--quiet",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote " + str(out) + "/results.json, results.md, compare.png, detection.png" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["task"]["smooth"] == 4 and results["metric"] == "mae"
    for cell in ("gru", "rnn"):
        for run in results["cells"][cell]["runs"]:
            report = run["report"]
            assert set(report) == {"hit", "top", "ratio", "score"} and len(report["score"]) == N - N_TRAIN
            assert report["top"] == N_TRAIN + int(np.argmax(report["score"]))
    md = (out / "results.md").read_text()
    assert "## What else the task measured" in md and "| GRU | 1 |" in md and "| (seasonal naive) | - |" in md
    assert "within 100 values of the labelled anomaly" in md
    assert plots.read_record(str(out / "detection.png"))["plan"]["task"]["name"] == "anomaly"
    assert "hit" in printed and "(persistence)" in printed
    assert cli.main(["compare", "--task", "demand", "--smooth", "3", "--quick"]) == 2     # not demand's option
    assert "--smooth applies to --task anomaly, not demand" in capsys.readouterr().err


@needs_data
def test_the_periods_the_anomaly_and_the_baselines():
    task = tasks.make("anomaly")
    assert len(task.values) == 7501 and task.values[:2].tolist() == [63.73215, 63.35068]
    assert task.periods == {"train": (0, 1000), "val": (1000, 1200), "test": (1200, 7501)}
    assert task.anomaly == (4187, 4198) and task.period == 183
    persistence, seasonal = task.baselines()
    assert round(persistence["value"], 4) == 0.4621 and persistence["report"]["hit"]
    assert round(persistence["report"]["ratio"], 2) == 4.02
    assert round(seasonal["value"], 3) == 1.938 and not seasonal["report"]["hit"]


@needs_data
def test_a_short_lstm_run_forecasts_better_than_persistence_and_finds_the_anomaly():
    task = tasks.make("anomaly")
    trainer, budget = train.setup(task, "lstm", steps=300, seed=0)
    metrics = trainer.fit(**budget)
    report = task.report(trainer.model)
    assert metrics["test_mae"] < task.baseline()[0], metrics
    assert report["hit"] and report["ratio"] > 2, {k: v for k, v in report.items() if k != "score"}


def test_train_prints_and_keeps_the_detection(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--task", "anomaly", "--data", write_pair(str(tmp_path)), "--seq-len", "20",
                     "--cell", "gru", "--steps", "5", "--hidden", "4", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "metrics.json").read_text())["report"]
    assert set(report) == {"hit", "top", "ratio"} and N_TRAIN <= report["top"] < N
    assert f"hit {report['hit']}, top {report['top']}, ratio {report['ratio']:.4g}. Detection" in printed
