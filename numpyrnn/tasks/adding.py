"""The adding problem (Hochreiter & Schmidhuber 1997), in the form of Arjovsky et al. (2016).

Each input is T steps of two numbers: a value drawn uniformly from [0, 1], and a marker that is
0 everywhere except at two steps, one drawn uniformly from the first half of the sequence and
one from the second half.  The target is the sum of the two marked values.  The network must
find the markers, remember the first value across up to T steps, and add.

Predicting 1 (the mean of the sum of two U(0, 1) numbers) scores MSE = Var = 2/12 ≈ 0.167: the
baseline.  Solving the task means MSE well below it; 0.01 is the usual bar.
"""

from __future__ import annotations

import numpy as np

from ..models import SequenceRegressor
from ..validation import check_int
from .base import Batch, ExampleTask

BASELINE_MSE = 1 / 6


def generate(n, T, rng):
    """n adding-problem examples of length T: inputs (n, T, 2), targets (n,)."""
    values = rng.random((n, T))
    first = rng.integers(0, T // 2, size=n)
    second = rng.integers(T // 2, T, size=n)
    markers = np.zeros((n, T))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    inputs = np.stack([values, markers], axis=-1)
    targets = values[rows, first] + values[rows, second]
    return inputs, targets


class AddingProblem(ExampleTask):
    name = "adding"
    title = "adding problem: add the two marked numbers of a sequence of T"
    metric = "mse"
    defaults = {"seq_len": 50, "hidden": 64, "batch_size": 64, "steps": 2000, "lr": 2e-3,
                "optimizer": "adam", "clip": 1.0, "eval_every": 200}

    def __init__(self, seed=0, seq_len=50, train_size=10_000, val_size=1_000, test_size=1_000):
        seq_len = check_int("seq_len", seq_len, 2)
        super().__init__(seed, seq_len=seq_len, train_size=train_size, val_size=val_size,
                         test_size=test_size)
        self.data = self.generate_splits(generate, seq_len, (train_size, val_size, test_size))

    def baseline(self):
        return BASELINE_MSE, "always predict 1, the mean of the sum"

    def _make_model(self, cell, *, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                   dtype=np.float32, seed=None, device="auto", nonlinearity="tanh",
                   reset_after=True, impl="fast", **regularisers):
        return SequenceRegressor(cell, input_size=2, hidden_size=hidden_size, output_size=1,
                                 num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                                 nonlinearity=nonlinearity, reset_after=reset_after, impl=impl, dtype=dtype,
                                 seed=seed, device=device, **regularisers)

    def split_size(self, split):
        return len(self.data[split][1])

    def examples(self, split, index):
        inputs, targets = self.data[split]
        return Batch(inputs[index].transpose(1, 0, 2), targets[index][:, None])

    def batch_metrics(self, loss, outputs, batch):
        return {"loss": loss, "mse": loss}

    def example_scores(self, outputs, batch):
        return (outputs[:, 0] - batch.targets[:, 0]) ** 2                         # squared error
