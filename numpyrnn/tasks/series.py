"""Time-series forecasting: predict the next value of a series at every step.

Sources:

``sines``     a noisy sum of five sines with incommensurate periods (seeded): smooth, with
              structure on several time scales.
``membrane``  a real recording that matplotlib ships in its sample data (``membrane.dat``,
              12 000 samples of a membrane potential), read through
              ``matplotlib.cbook.get_sample_data``.

The series is split in time: the first 70 % for training, the next 15 % for validation, the last
15 % for testing, so the model is always asked about a future it did not see.  It is normalised
with the training part's mean and standard deviation.  Windows of ``seq_len`` steps (stride
``seq_len // 2`` for training) are the examples; the target at step t is the value at t + 1.

The baseline is persistence: predicting that the next value equals the current one.
"""

from __future__ import annotations

import numpy as np

from ..backend import asnumpy
from ..models import SequenceRegressor
from ..validation import check_int
from .base import Batch, ExampleTask

SOURCES = ("sines", "membrane")


def sines(n, rng, noise=0.1):
    """A sum of five sines with random amplitudes and phases and periods 7..200, plus noise."""
    t = np.arange(n)
    periods = np.array([7.3, 19.1, 41.7, 97.3, 199.1])
    amplitudes = rng.uniform(0.3, 1.0, size=5)
    phases = rng.uniform(0, 2 * np.pi, size=5)
    clean = (amplitudes[:, None] * np.sin(2 * np.pi * t[None, :] / periods[:, None] + phases[:, None])).sum(0)
    return clean + noise * rng.standard_normal(n)


def membrane():
    """The membrane-potential recording from matplotlib's sample data, as float64."""
    from matplotlib import cbook

    with cbook.get_sample_data("membrane.dat", asfileobj=True) as f:
        return np.frombuffer(f.read(), dtype="<f4").astype(np.float64)


class Series(ExampleTask):
    name = "series"
    title = "time-series forecasting: the next value (noisy sines, or --series membrane)"
    metric = "mse"
    defaults = {"seq_len": 50, "hidden": 32, "batch_size": 32, "steps": 1000, "lr": 3e-3,
                "optimizer": "adam", "clip": 1.0, "eval_every": 100}
    real_data_option, generated_source, generated_only = "source", "sines", ("length",)

    def __init__(self, seed=0, seq_len=50, source="sines", length=20_000):
        seq_len = check_int("seq_len", seq_len, 2)
        if source not in SOURCES:
            raise ValueError(f"series source must be one of {', '.join(SOURCES)}, got {source!r}")
        super().__init__(seed, seq_len=seq_len, source=source, length=length)
        values = sines(check_int("length", length, 100), np.random.default_rng(self.seed)) \
            if source == "sines" else membrane()
        n = len(values)
        cut1, cut2 = int(0.7 * n), int(0.85 * n)
        mean, std = values[:cut1].mean(), values[:cut1].std()
        self.scale = (float(mean), float(std))   # the model reads (value − mean) / std and predicts the same
        values = (values - mean) / std
        parts = {"train": values[:cut1], "val": values[cut1:cut2], "test": values[cut2:]}
        self.data = {}
        for split, part in parts.items():
            stride = max(1, seq_len // 2) if split == "train" else seq_len
            starts = np.arange(0, len(part) - seq_len - 1, stride)
            if len(starts) == 0:
                raise ValueError(f"the {split} part has {len(part)} values, too few for windows of {seq_len}")
            windows = np.stack([part[s:s + seq_len + 1] for s in starts])
            self.data[split] = (windows[:, :-1, None], windows[:, 1:, None])

    def baseline(self):
        inputs, targets = self.data["test"]
        return float(((targets - inputs) ** 2).mean()), "persistence: the next value equals this one"

    def _make_model(self, cell, *, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                   dtype=np.float32, seed=None, device="auto", nonlinearity="tanh",
                   reset_after=True, impl="fast", **regularisers):
        if bidirectional:
            raise ValueError("forecasting reads left to right; bidirectional would see the future")
        return SequenceRegressor(cell, input_size=1, hidden_size=hidden_size, output_size=1, per_step=True,
                                 num_layers=num_layers, dropout=dropout, nonlinearity=nonlinearity,
                                 reset_after=reset_after, impl=impl, dtype=dtype, seed=seed, device=device,
                                 **regularisers)

    def split_size(self, split):
        return len(self.data[split][0])

    def examples(self, split, index):
        inputs, targets = self.data[split]
        return Batch(inputs[index].transpose(1, 0, 2), targets[index].transpose(1, 0, 2))

    def batch_metrics(self, loss, outputs, batch):
        return {"loss": loss, "mse": loss}

    def example_scores(self, outputs, batch):
        return ((outputs - batch.targets) ** 2).mean(axis=(0, 2))               # each window's mean squared error


class Recording(ExampleTask):
    """A task over one recorded series, split in time into periods (``train``, ``val``,
    ``test``: (start, end) each), scored the way a stream is read.

    Training examples are every window of ``seq_len`` values of the training period (stride 1)
    with the next value as the target at every step.  Validation and test run the model once
    over the whole series up to the period's end and score its one-step-ahead forecasts of the
    period's values, each made from every value before it (what :meth:`SequenceRegressor.stream`
    gives one value at a time).  The values are standardised with the training period's mean and
    standard deviation (``scale``, which ``numpyrnn forecast`` reads back).  Subclasses set the
    series with :meth:`_set_series` and score the forecasts (``evaluate``, ``item_scores``)."""

    def _set_series(self, values, periods, seq_len):
        train_start, train_end = periods["train"]
        if train_end - train_start <= seq_len:
            raise ValueError(f"the training period has {train_end - train_start} values, too few for windows "
                             f"of {seq_len} and a target after them")
        self.values, self.periods = values, dict(periods)
        train = values[train_start:train_end]
        mean, std = train.mean(), train.std()
        if std == 0:
            raise ValueError("the training period's values are all equal: nothing to forecast")
        self.scale = (float(mean), float(std))   # the model reads (value − mean) / std and predicts the same
        self.series = (values - mean) / std
        starts = np.arange(train_start, train_end - seq_len)  # every window (stride 1)
        windows = np.stack([self.series[s:s + seq_len + 1] for s in starts])
        self.windows = (windows[:, :-1, None], windows[:, 1:, None])

    #: the model: the series task's forecaster (one value in, the next predicted at every step)
    _make_model = Series._make_model

    def split_size(self, split):
        if split == "train":
            return len(self.windows[0])
        start, end = self.periods[split]
        return end - start

    def examples(self, split, index):
        if split != "train":
            raise ValueError("the validation and test periods are scored over the whole series (evaluate)")
        inputs, targets = self.windows
        return Batch(inputs[index].transpose(1, 0, 2), targets[index].transpose(1, 0, 2))

    def forecasts(self, model, split):
        """The model's one-step-ahead forecasts of the split's values, standardised, each from
        every value before it: one pass over the series up to the split's end, in eval mode."""
        start, end = self.periods[split]
        was_training = model.training
        model.eval()
        try:
            _, predictions = model.forward(self.series[:end - 1, None, None])
        finally:
            model.train(was_training)
        return np.asarray(asnumpy(predictions), np.float64)[start - 1:end - 1, 0, 0]
