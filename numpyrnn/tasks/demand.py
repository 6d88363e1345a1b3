"""Real-time prediction: half-hourly electricity demand, one step ahead (the seed's GRU use).

The data: the half-hourly electricity demand of England and Wales, Monday 5 June to Sunday 27
August 2000, 4 032 values in megawatts (Taylor, "Short-term electricity demand forecasting using
double seasonal exponential smoothing", *Journal of the Operational Research Society* 54, 2003),
as the ``pmdarima`` wheel carries it: an array literal in ``pmdarima/datasets/taylor.py``, which
numpyrnn reads as text with :mod:`ast` and never imports or runs
(``pip install --no-deps pmdarima==2.1.1``).

Splits in time: the last 4 weeks (1 344 half-hours) test, the 2 weeks before them validate, the
first 6 weeks train.  Values are standardised with the training part's mean and standard
deviation (``scale``, which ``numpyrnn forecast`` reads back).  Training examples are windows of
``seq_len`` half-hours (a day, 48, by default) with the next value as the
target at every step, every window of the training weeks (stride 1).  Evaluation runs the model once over the whole series up to the end of
the split, as a stream would (each forecast reads every value before it), and scores the
one-step-ahead forecasts of the split's values: the loss is the MSE of the standardised values,
the metric the mean absolute percentage error in megawatts (MAPE, %).

Baselines, computed by the task on the test weeks: persistence (the next half-hour equals this
one), MAPE 2.27 %, and the weekly seasonal-naive forecast (equals the same half-hour a week
before, lag 336), 2.15 %.
"""

from __future__ import annotations

import numpy as np

from ..validation import check_int
from . import datasets
from .series import Recording

HALF_HOURS_A_WEEK = 7 * 48
#: the test and validation periods: the last 4 weeks, and the 2 before them
TEST_WEEKS, VAL_WEEKS = 4, 2


def mape(forecasts, actual) -> float:
    """Mean absolute percentage error, %: 100 · mean |actual − forecast| / |actual|."""
    return float(100 * np.mean(np.abs(actual - forecasts) / np.abs(actual)))


class Demand(Recording):
    name = "demand"
    title = "real-time demand: the next half-hour of England and Wales's electricity demand (Taylor 2003)"
    metric = "mape"
    #: chosen on validation (the LSTM's and the GRU's mean MAPE over 3 seeds; docs/tasks.md)
    defaults = {"seq_len": 48, "hidden": 64, "batch_size": 32, "steps": 3000, "lr": 3e-3, "optimizer": "adam",
                "clip": 1.0, "eval_every": 200}

    def __init__(self, seed=0, seq_len=48, data="taylor"):
        seq_len = check_int("seq_len", seq_len, 2)
        if not datasets.is_named(data) or datasets.DATASETS[data].task != self.name:
            raise ValueError(f"data must be a named data set of the demand task (taylor), got {data!r}")
        super().__init__(seed, seq_len=seq_len, data=data)
        values = datasets.read_array_literal(datasets.locate(data))
        n = len(values)
        test_start = n - TEST_WEEKS * HALF_HOURS_A_WEEK
        val_start = test_start - VAL_WEEKS * HALF_HOURS_A_WEEK
        if val_start <= seq_len + HALF_HOURS_A_WEEK:
            raise ValueError(f"{data}: {n} values leave too few before the validation and test weeks")
        self._set_series(values, {"train": (0, val_start), "val": (val_start, test_start), "test": (test_start, n)},
                         seq_len)

    def evaluate(self, model, split, batch_size=None):
        start, end = self.periods[split]
        forecasts = self.forecasts(model, split)
        mean, std = self.scale
        return {"loss": float(np.mean((forecasts - self.series[start:end]) ** 2)),
                "mape": mape(forecasts * std + mean, self.values[start:end])}

    def item_scores(self, model, split, batch_size=None):
        """Each forecast's absolute percentage error (their mean is the split's MAPE)."""
        start, end = self.periods[split]
        mean, std = self.scale
        actual = self.values[start:end]
        return 100 * np.abs(actual - (self.forecasts(model, split) * std + mean)) / np.abs(actual)

    def baseline(self):
        start, end = self.periods["test"]
        return mape(self.values[start - 1:end - 1], self.values[start:end]), "persistence: the next half-hour equals this one"

    def baselines(self):
        value, what = self.baseline()
        start, end = self.periods["test"]
        weekly = mape(self.values[start - HALF_HOURS_A_WEEK:end - HALF_HOURS_A_WEEK], self.values[start:end])
        return [{"name": "seasonal naive", "value": weekly,
                 "what": "weekly seasonal naive: the same half-hour a week before"},
                {"name": "persistence", "value": value, "what": what}]
