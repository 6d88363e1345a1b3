"""Who is speaking: speaker identification from short utterances (the seed's speech use).

The data: UCI's JapaneseVowels (Kudo, Toyama & Shimbo 1999), as the UEA multivariate archive
ships it inside the ``aeon`` wheel (``pip install --no-deps aeon==1.6.0``; numpyrnn reads the two
``.ts`` files and never imports aeon).  Nine male speakers each uttered the Japanese vowels /ae/
in succession; each utterance became 7 to 29 frames of 12 LPC cepstral coefficients.  The split
is the one shipped: 270 training utterances (30 a speaker) and 370 test utterances (24 to 88 a
speaker).  A user's own pair of UEA/UCR ``.ts`` files, ``data="path/X_TRAIN.ts"`` with
``X_TEST.ts`` beside it, is read the same way.

Splits: validation is a stratified fifth of the shipped training split, drawn with the fixed
seed :data:`SPLIT_SEED` (6 utterances a speaker; so every run sees the same three splits); the
rest trains; the shipped test split tests.  Inputs are standardised per coefficient with the
training part's mean and standard deviation (the same whenever the task is made from its
config); each utterance keeps its own length, and the model reads it with its length (§7).

The model: a :class:`~numpyrnn.SequenceClassifier` over the 12 features, pooled over the real
frames (``pooling``, default chosen on validation: see docs/tasks.md), softmax over the speakers.

Baseline, computed by the task on the shipped splits: one nearest neighbour under dependent
dynamic time warping (full window, raw features, every shipped training utterance as a
reference: the archive's classic, which has nothing to tune), 351 of 370 = 0.9486.
"""

from __future__ import annotations

import os

import numpy as np

from ..backend import asnumpy
from ..models import SequenceClassifier
from ..layers.pooling import check_pooling
from . import baselines as baseline_models
from . import datasets
from .base import Batch, ExampleTask, pad

#: the seed of the validation split, whatever the run's seed: every run sees the same splits
SPLIT_SEED = 0
#: the share of the shipped training split held out for validation, per class
VAL_FRACTION = 0.2


class Speech(ExampleTask):
    name = "speech"
    title = "who is speaking: nine speakers' /ae/ as 12 LPC cepstra a frame (JapaneseVowels)"
    metric = "accuracy"
    higher_is_better = True
    #: chosen on validation (the mean of the LSTM's and the GRU's over 3 seeds; docs/tasks.md): every
    #: data set of the task starts from them
    defaults = {"hidden": 64, "batch_size": 16, "epochs": 80, "lr": 3e-3, "optimizer": "adam", "clip": 1.0,
                "eval_every": 56, "input_dropout": 0.2, "recurrent_dropout": 0.2}

    def __init__(self, seed=0, data="japanese-vowels", pooling=None):
        train_path = datasets.training_file(data, self.name, "japanese-vowels", "a *_TRAIN.ts file")
        self.pooling = check_pooling("mean" if pooling is None else pooling)
        super().__init__(seed, data=data, **({} if pooling is None else {"pooling": self.pooling}))
        shipped_train, train_labels, classes = datasets.read_ts(train_path)
        test_path = datasets.test_file(train_path)
        if not os.path.isfile(test_path):
            raise ValueError(f"data {train_path}: its test split {test_path} is not there")
        test, test_labels, test_classes = datasets.read_ts(test_path)
        if test_classes != classes or {s.shape[1] for s in shipped_train} != {s.shape[1] for s in test}:
            raise ValueError(f"{test_path}: declares other classes or channels than {train_path}")
        self.classes = classes
        ids = {"shipped": np.array([classes.index(l) for l in train_labels]),
               "test": np.array([classes.index(l) for l in test_labels])}
        parts = datasets.stratified_split(ids["shipped"], SPLIT_SEED, (1 - VAL_FRACTION, VAL_FRACTION, 0.0))
        if len(parts["val"]) == 0 or len(parts["train"]) == 0:
            raise ValueError(f"{train_path}: {len(shipped_train)} training series are too few to hold out a "
                             f"validation fifth of each class and train on the rest")
        self.shipped = (shipped_train, ids["shipped"])      # the raw shipped training split (the baseline's)
        self.raw = {"train": [shipped_train[i] for i in parts["train"]],
                    "val": [shipped_train[i] for i in parts["val"]], "test": test}
        frames = np.concatenate(self.raw["train"])
        self.mean, self.std = frames.mean(axis=0), frames.std(axis=0)
        self.std[self.std == 0] = 1.0
        self.data = {split: ([(s - self.mean) / self.std for s in self.raw[split]],
                             ids["shipped"][parts[split]] if split != "test" else ids["test"])
                     for split in ("train", "val", "test")}
        self.input_size = frames.shape[1]
        self._baseline = None

    def sequence_length(self):
        """The longest utterance of the training part (a cell's length options read it)."""
        return max(len(s) for s in self.raw["train"])

    def data_info(self):
        source = self.options["data"]
        return {"name": source if datasets.is_named(source) else os.path.basename(os.fspath(source)),
                "sizes": self.split_sizes()}

    def baseline(self):
        """One nearest neighbour under dependent DTW on the raw features (computed once, a few
        seconds): the shipped training split against the test split."""
        if self._baseline is None:
            distances = baseline_models.dtw_distances(self.raw["test"], self.shipped[0])
            predicted = baseline_models.nearest_neighbour(distances, self.shipped[1])
            right = int((predicted == self.data["test"][1]).sum())
            self._baseline = (right / len(predicted),
                              f"1-nearest-neighbour, dependent DTW, full window, raw features ({right} of "
                              f"{len(predicted)})")
        return self._baseline

    def baselines(self):
        value, what = self.baseline()
        majority = baseline_models.majority(self.data["train"][1], self.data["test"][1])
        return [{"name": "DTW 1-NN", "value": value, "what": what},
                {"name": "majority class", "value": majority, "what": "always predict the most common class"}]

    def _make_model(self, cell, *, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                    dtype=np.float32, seed=None, device="auto", nonlinearity="tanh",
                    reset_after=True, impl="fast", **regularisers):
        model = SequenceClassifier(cell, input_size=self.input_size, num_classes=len(self.classes),
                                   hidden_size=hidden_size, pooling=self.pooling, num_layers=num_layers,
                                   bidirectional=bidirectional, dropout=dropout, nonlinearity=nonlinearity,
                                   reset_after=reset_after, impl=impl, dtype=dtype, seed=seed, device=device,
                                   **regularisers)
        model.classes = tuple(self.classes)
        return model

    def split_size(self, split):
        return len(self.data[split][1])

    def examples(self, split, index):
        series, labels = self.data[split]
        inputs, lengths = pad([series[i] for i in index], np.float64)
        return Batch(inputs, labels[index], lengths)

    def batch_metrics(self, loss, outputs, batch):
        return {"loss": loss, "accuracy": float((asnumpy(outputs).argmax(axis=1) == batch.targets).mean())}

    def example_scores(self, outputs, batch):
        return (outputs.argmax(axis=1) == batch.targets).astype(np.float64)     # right or wrong
