"""The copy memory task (Arjovsky, Shah & Bengio 2016).

An input is T + 20 symbols of an alphabet of 10: ten symbols drawn from 1..8, then T − 1 blanks
(0), a delimiter (9), and ten more blanks.  The target is T + 10 blanks, then the ten symbols:
after the delimiter the network must reproduce what it saw T + 10 steps before.  The loss is the
cross-entropy per step (nats), averaged over all T + 20 steps.

A network with no memory can output blanks until the delimiter and then guess uniformly among
the 8 symbols: 10 · log 8 / (T + 20) nats per step, the baseline.  Going below it means
something was remembered; ``recall`` is the fraction of the ten symbols reproduced exactly.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import asnumpy
from ..models import CharLM
from ..validation import check_int
from .base import Batch, ExampleTask

SYMBOLS, BLANK, DELIMITER = 8, 0, 9


def generate(n, T, rng):
    """n copy-task examples with T blanks: inputs and targets, (n, T + 20) ints each."""
    symbols = rng.integers(1, SYMBOLS + 1, size=(n, 10))
    inputs = np.full((n, T + 20), BLANK, dtype=np.int64)
    inputs[:, :10] = symbols
    inputs[:, T + 9] = DELIMITER
    targets = np.full((n, T + 20), BLANK, dtype=np.int64)
    targets[:, -10:] = symbols
    return inputs, targets


class CopyMemory(ExampleTask):
    name = "copy"
    title = "copy memory: reproduce 10 symbols after T blanks"
    metric = "loss"
    defaults = {"seq_len": 50, "hidden": 128, "batch_size": 64, "steps": 3000, "lr": 2e-3,
                "optimizer": "adam", "clip": 1.0, "eval_every": 250}

    def __init__(self, seed=0, seq_len=50, train_size=10_000, val_size=1_000, test_size=1_000):
        seq_len = check_int("seq_len", seq_len, 1)
        super().__init__(seed, seq_len=seq_len, train_size=train_size, val_size=val_size,
                         test_size=test_size)
        self.data = self.generate_splits(generate, seq_len, (train_size, val_size, test_size))

    def baseline(self):
        T = self.options["seq_len"]
        return 10 * math.log(SYMBOLS) / (T + 20), "blanks, then a uniform guess among the 8 symbols"

    def sequence_length(self):
        return int(self.options["seq_len"]) + 20          # T blanks between 20 symbol steps

    def _make_model(self, cell, *, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                   dtype=np.float32, seed=None, device="auto", nonlinearity="tanh",
                   reset_after=True, impl="fast", **regularisers):
        if bidirectional:
            raise ValueError("the copy task's model reads left to right (a CharLM); bidirectional is not available")
        return CharLM(cell, vocab_size=10, hidden_size=hidden_size, embedding_dim=16, num_layers=num_layers,
                      dropout=dropout, nonlinearity=nonlinearity, reset_after=reset_after, impl=impl, dtype=dtype,
                      seed=seed, device=device, **regularisers)

    def split_size(self, split):
        return len(self.data[split][0])

    def examples(self, split, index):
        inputs, targets = self.data[split]
        return Batch(inputs[index].T.copy(), targets[index].T.copy())

    def example_scores(self, outputs, batch):
        logp = outputs - outputs.max(axis=-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=-1, keepdims=True))
        T, B = batch.targets.shape
        picked = logp[np.arange(T)[:, None], np.arange(B)[None, :], batch.targets]
        return -picked.mean(axis=0)                                              # each sequence's nats per step

    def batch_metrics(self, loss, outputs, batch):
        recalled = asnumpy(outputs)[-10:].argmax(axis=-1) == batch.targets[-10:]
        return {"loss": loss, "recall": float(recalled.mean())}
