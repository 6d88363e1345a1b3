"""Issue 32, part 3: real-time demand (Taylor 2003, read as text from the pmdarima wheel).

The array-literal reader refuses what is not a list of finite numbers, naming the file and the
line, and never runs the file; on the real data (installed by .ci/run; without it these tests
skip, saying why) the periods are the last 4 weeks and the 2 before them, the baselines are the
issue's 2.27 % and 2.15 %, the evaluation is the stream's forecasts, and a short GRU run beats
persistence."""

import numpy as np
import pytest

from numpyrnn import cli, tasks, train
from numpyrnn.tasks import datasets

HERE = datasets.installed("taylor")
needs_data = pytest.mark.skipif(not HERE, reason="the taylor data set is not installed: "
                                                 + datasets.DATASETS["taylor"].install)


@pytest.mark.parametrize("source, message", [
    ("import numpy as np\nx = np.array([1, 2.5, 3])\n", None),
    ("import os\nos.system('echo ran')\nx = np.array([1.0, 2.0])\n", None),     # read, never run
    ("x = [1, 2]\n", "no np.array"),
    ("x = np.array([\n 1,\n 'a'])\n", "line 1: the array's list holds 'a', not a number"),
    ("x = np.array([1, float('nan')])\n", "line 1: the array's list holds something other than numbers"),
    ("x = np.array([])\n", "line 1: the array is empty"),
    ("x = np.array([1, True])\n", "line 1: the array's list holds True"),
    ("def f(:\n", "not Python source numpyrnn can read"),
])
def test_the_array_literal_reader(tmp_path, capfd, source, message):
    path = tmp_path / "data.py"
    path.write_text(source)
    if message is None:
        values = datasets.read_array_literal(str(path))
        assert values.dtype == np.float64 and values[0] == 1.0
        assert "ran" not in capfd.readouterr().out
        return
    with pytest.raises(ValueError, match=f"{path}.*{message}"):
        datasets.read_array_literal(str(path))


def test_a_missing_data_set_is_one_line(monkeypatch, capsys):
    def absent(name):
        raise datasets.DataUnavailable(f"the {name} data set comes with the pmdarima package, which is not "
                                       f"installed here: {datasets.DATASETS[name].install}")

    monkeypatch.setattr(datasets, "locate", absent)
    assert cli.main(["train", "--task", "demand", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-deps pmdarima==2.1.1" in err


@needs_data
def test_the_periods_and_the_baselines():
    task = tasks.make("demand")
    assert len(task.values) == 4032 and task.values[:3].tolist() == [22262, 21756, 22247]
    assert task.periods == {"train": (0, 2016), "val": (2016, 2688), "test": (2688, 4032)}
    assert task.split_sizes() == {"train": 1968, "val": 672, "test": 1344}        # every window of a day
    persistence, weekly = task.baselines()[1]["value"], task.baselines()[0]["value"]
    assert round(persistence, 2) == 2.27 and round(weekly, 2) == 2.15            # the figures
    assert task.baseline()[0] == persistence
    mean, std = task.scale
    np.testing.assert_allclose(task.series[:2016].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(task.series * std + mean, task.values, rtol=1e-12)


@needs_data
def test_the_evaluation_scores_the_streams_forecasts():
    task = tasks.make("demand")
    model = task.make_model("gru", hidden_size=8, seed=0, dtype=np.float64)
    result = task.evaluate(model, "val")
    mean, std = task.scale
    stream = model.stream()
    forecasts = [float(stream.step(v)[0]) for v in task.series[:2687]]       # each from every value before it
    want = 100 * np.mean(np.abs(task.values[2016:2688] - (np.array(forecasts[2015:]) * std + mean))
                         / task.values[2016:2688])
    assert result["mape"] == pytest.approx(want, rel=1e-9)
    items = task.item_scores(model, "val")
    assert items.shape == (672,) and items.mean() == pytest.approx(result["mape"], rel=1e-12)


@needs_data
def test_a_short_gru_run_beats_persistence():
    task = tasks.make("demand")
    trainer, budget = train.setup(task, "gru", steps=300, seed=0)
    metrics = trainer.fit(**budget)
    assert metrics["test_mape"] < task.baseline()[0], metrics       # below persistence's 2.27 %
