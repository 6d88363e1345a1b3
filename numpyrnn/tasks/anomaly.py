"""A medical signal: an anomaly in arterial blood pressure, found by forecasting (the seed's medical use).

The data: series #135 of the UCR time-series anomaly archive (Wu & Keogh, "Current time series
anomaly detection benchmarks are flawed and are creating the illusion of progress", IEEE TKDE
2021; the KDD 2021 anomaly detection competition), ``InternalBleeding16``: an arterial blood
pressure waveform recorded during internal bleeding (aeon's loader calls it a heart-rate record;
the waveform, a pressure pulse a beat between about 55 and 105, is blood pressure), 7 501 values,
as the ``aeon`` wheel ships it
(``pip install --no-deps aeon==1.6.0``; numpyrnn reads the two CSV files, ``timestamp,value,
is_anomaly``, and never imports aeon).  The TRAIN file is the first 1 200 values, all normal; the
TEST file is the whole series, with one anomaly labelled at 4 187-4 198.  A user's own pair,
``data="path/X_TRAIN.csv"`` with ``X_TEST.csv`` beside it, is read the same way.

Periods: the training file's values, their last sixth (:data:`VAL_FRACTION`) held out to
validate, the rest to train on; everything after them is the test period, as the archive asks
(nothing past the training prefix is seen before testing).  A model learns to forecast the next
value (:class:`~numpyrnn.tasks.series.Recording`: every window of ``seq_len`` values, the values
standardised with the training period's mean and standard deviation).

Scores:

* the metric: the mean absolute one-step forecast error, in the signal's units, on the *normal*
  part of the test period: every test value except those within the tolerance of the anomaly
  (the loss, which training minimises, is the mean squared error of the standardised values);
* the anomaly score of each test value: the absolute forecast error, averaged over the last
  ``smooth`` values (a trailing mean: a detector that runs as the data arrive can compute it);
* the detection, as the archive scores it: a hit when the test value with the highest score lies
  within :data:`TOLERANCE` (100) values of the labelled anomaly; since there is one anomaly, also
  a continuous measure, the *ratio*: the highest score within the tolerance over the highest
  score elsewhere in the test period (above 1: the anomaly stands out; below 1: something normal
  scores higher).

Baselines, computed by the task: persistence (the next value equals this one), and the seasonal
naive forecast (the value one beat before), the beat period taken from the training part's
autocorrelation (its highest peak).  Each gets the same metric and the same detection.
"""

from __future__ import annotations

import os

import numpy as np

from ..validation import check_int
from . import datasets
from .series import Recording

#: the share of the training file held out for validation (its end)
VAL_FRACTION = 1 / 6
#: the archive's protocol: a detection is a hit within this many values of the anomaly
TOLERANCE = 100


def beat_period(values, shortest=2):
    """The period of a quasi-periodic signal: the lag of the highest local maximum of its
    autocorrelation between ``shortest`` and half its length."""
    x = np.asarray(values, np.float64) - np.mean(values)
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n)                       # zero-padded: the linear, not circular, correlation
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n // 2 + 1]
    lags = np.arange(max(shortest, 1), n // 2)
    peaks = lags[(acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1])]
    if len(peaks) == 0:
        raise ValueError(f"no period in {n} values: their autocorrelation has no peak below lag {n // 2}")
    return int(peaks[np.argmax(acf[peaks])])


def trailing_mean(values, window):
    """Each value's mean with the ``window − 1`` before it (fewer at the start)."""
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


class Anomaly(Recording):
    name = "anomaly"
    title = "a medical signal: the anomaly in arterial blood pressure, found by forecasting (UCR #135)"
    metric = "mae"
    #: chosen on validation (the LSTM's and the GRU's mean MAE over 3 seeds; docs/tasks.md)
    defaults = {"seq_len": 100, "hidden": 64, "batch_size": 32, "steps": 1500, "lr": 3e-3, "optimizer": "adam",
                "clip": 1.0, "eval_every": 100}

    def __init__(self, seed=0, seq_len=100, data="internal-bleeding", smooth=10):
        seq_len = check_int("seq_len", seq_len, 2)
        self.smooth = check_int("smooth", smooth, 1)
        train_path = datasets.training_file(data, self.name, "internal-bleeding", "a *_TRAIN.csv file")
        super().__init__(seed, seq_len=seq_len, data=data, smooth=self.smooth)
        test_path = datasets.test_file(train_path)
        if not os.path.isfile(test_path):
            raise ValueError(f"data {train_path}: its test file {test_path} is not there")
        train, train_labels = datasets.read_anomaly_csv(train_path)
        values, labels = datasets.read_anomaly_csv(test_path)
        n_train = len(train)
        if len(values) <= n_train or not np.array_equal(values[:n_train], train):
            raise ValueError(f"{test_path}: the whole series should begin with the {n_train} training values of "
                             f"{train_path}, and go on after them")
        if train_labels.any() or labels[:n_train].any():
            raise ValueError(f"{train_path}: the training part holds values labelled anomalous; it must be normal")
        marked = np.flatnonzero(labels)
        if len(marked) == 0 or marked[-1] - marked[0] + 1 != len(marked):
            raise ValueError(f"{test_path}: the archive's protocol scores one anomaly, one run of is_anomaly 1; "
                             f"this file has {'none' if len(marked) == 0 else 'several'}")
        self.anomaly = (int(marked[0]), int(marked[-1]))          # first and last index, in the whole series
        val_start = n_train - max(1, int(round(VAL_FRACTION * n_train)))
        self._set_series(values, {"train": (0, val_start), "val": (val_start, n_train), "test": (n_train, len(values))},
                         seq_len)
        start, end = self.periods["test"]
        index = np.arange(start, end)
        self.near = (index >= self.anomaly[0] - TOLERANCE) & (index <= self.anomaly[1] + TOLERANCE)
        if self.near.all():
            raise ValueError(f"{test_path}: every test value lies within {TOLERANCE} of the anomaly: nothing normal "
                             "to score the forecasts on or to compare the anomaly's score with")
        try:
            self.period = beat_period(train)
        except ValueError as exc:
            raise ValueError(f"{train_path}: the seasonal-naive baseline needs the beat period: {exc}") from None

    # ---------------------------------------------------------------- the forecast error
    def _scored(self, split):
        """Which of the split's values the metric scores: all, except near the anomaly on test."""
        start, end = self.periods[split]
        return ~self.near if split == "test" else np.ones(end - start, bool)

    def _errors(self, forecasts, split):
        """The standardised forecast errors of the split's scored values."""
        start, end = self.periods[split]
        return (np.asarray(forecasts, np.float64) - self.series[start:end])[self._scored(split)]

    def _mae(self, forecasts, split):
        return float(np.mean(np.abs(self._errors(forecasts, split)))) * self.scale[1]

    def evaluate(self, model, split, batch_size=None):
        forecasts = self.forecasts(model, split)
        return {"loss": float(np.mean(self._errors(forecasts, split) ** 2)), "mae": self._mae(forecasts, split)}

    def item_scores(self, model, split, batch_size=None):
        """Each scored value's absolute forecast error in the signal's units (their mean is the
        split's MAE)."""
        return np.abs(self._errors(self.forecasts(model, split), split)) * self.scale[1]

    # ---------------------------------------------------------------- the detection
    def anomaly_scores(self, forecasts):
        """Each test value's anomaly score from the forecasts of the test values (standardised):
        the absolute error's trailing mean over ``smooth`` values."""
        start, end = self.periods["test"]
        return trailing_mean(np.abs(np.asarray(forecasts, np.float64) - self.series[start:end]), self.smooth)

    def detection(self, scores):
        """{"hit", "top", "ratio"} of test scores: the top-scoring value's index in the whole series,
        whether it lies within the tolerance of the anomaly, and the highest score there over
        the highest elsewhere (1 when both are 0, a series forecast without error; infinite when
        only the latter is)."""
        top = int(np.argmax(scores))
        there, elsewhere = float(scores[self.near].max()), float(scores[~self.near].max())
        ratio = there / elsewhere if elsewhere > 0 else (float("inf") if there > 0 else 1.0)
        return {"hit": bool(self.near[top]), "top": int(self.periods["test"][0] + top), "ratio": ratio}

    def report(self, model):
        """What compare records of each trained model beside its metric: the detection and the
        anomaly score of every test value (for the figure)."""
        scores = self.anomaly_scores(self.forecasts(model, "test"))
        return {**self.detection(scores), "score": [float(f"{v:.4g}") for v in scores]}

    report_note = (f"Detection (the UCR archive's protocol): a hit when the top anomaly score lies within "
                   f"{TOLERANCE} values of the labelled anomaly; ratio: the highest score there over the highest "
                   f"score elsewhere in the test period (above 1: the anomaly stands out).")

    def draw_report(self, results, out_dir):
        """detection.png: the signal, the runs' anomaly scores beneath, the anomaly marked."""
        from .. import plots

        context = {"values": self.values, "periods": self.periods, "anomaly": self.anomaly, "tolerance": TOLERANCE,
                   "baselines": {name: self.anomaly_scores(self._baseline_forecasts(lag))
                                 for name, lag in (("persistence", 1), ("seasonal naive", self.period))}}
        return [plots.detection(results, context, os.path.join(out_dir, "detection.png"))]

    # ---------------------------------------------------------------- baselines
    def _baseline_forecasts(self, lag):
        """The standardised forecasts of the test values that repeat the value ``lag`` steps before."""
        start, end = self.periods["test"]
        return self.series[start - lag:end - lag]

    def baseline(self):
        return self._mae(self._baseline_forecasts(1), "test"), "persistence: the next value equals this one"

    def baselines(self):
        listed = []
        for name, lag, what in (("persistence", 1, "persistence: the next value equals this one"),
                                ("seasonal naive", self.period, f"seasonal naive: the value one beat before (the "
                                                                 f"training part's period, {self.period} values)")):
            forecasts = self._baseline_forecasts(lag)
            listed.append({"name": name, "value": self._mae(forecasts, "test"),
                           "what": what, "report": self.detection(self.anomaly_scores(forecasts))})
        return listed
