"""What every task provides to the trainer.

A task owns its data (train, val and test splits, generated from a seed or read from a file),
knows which model fits it, and evaluates a model on a split.  Training data are consumed in
epochs; an epoch is a *plan*, a list of integer arrays each naming the items of one batch, so
that a checkpoint can record the plan and the position in it and a resumed run continues with
exactly the batches it would have seen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .. import cells as _cells
from ..backend import asnumpy
from ..validation import check_int


@dataclass
class Batch:
    """One batch, time-major like the models: inputs (T, B[, I]), targets, lengths (B,) or None.

    ``carry_state``: continue from the state the previous batch ended in (truncated
    backpropagation through a stream, for language models).
    """

    inputs: np.ndarray
    targets: np.ndarray
    lengths: np.ndarray | None = None
    carry_state: bool = False


class Task:
    """The interface; see the tasks in this package for implementations."""

    name = ""
    title = ""
    metric = ""              # the task's own metric: "mse", "accuracy", "loss" or "bpc"
    higher_is_better = False
    #: training settings that work for this task (the CLI's defaults)
    defaults: dict = {}
    #: the option that names real data (a named data set or a file), and its value for the
    #: generated data; None: the task has generated data only
    real_data_option: str | None = None
    generated_source = None
    #: options that shape only the generated data (its sizes): they do not apply to real data,
    #: so a task reading real data does not record them
    generated_only: tuple = ()

    def __init__(self, seed=0, **options):
        self.seed = check_int("seed", seed, 0)
        self.options = self.applying(options)

    @classmethod
    def applying(cls, options) -> dict:
        """``options`` without those that do not apply: the generated data's sizes when the task
        reads real data."""
        option = cls.real_data_option
        if option is not None and options.get(option) not in (None, cls.generated_source):
            return {k: v for k, v in options.items() if k not in cls.generated_only}
        return dict(options)

    def config(self) -> dict:
        """Everything needed to make the same task (and data) again."""
        return {"name": self.name, "seed": self.seed, **self.options}

    def sequence_length(self) -> int:
        """The length of the sequences a model reads (the longest dependency it may have to
        carry): what a cell's length options (JANET's t_max, IndRNN's bound) are filled from."""
        return int(self.options["seq_len"])

    def data_info(self) -> dict:
        """What the task's data are, to report with results: ``name`` (a named data set, a file's
        name, or "generated") and the size of each split as it is (examples, or characters)."""
        source = self.options.get("data") or self.options.get("text") or (
            self.options.get("source") if self.options.get("source") not in (None, "sines") else None)
        name = "generated" if source is None else os.path.basename(os.fspath(source))
        return {"name": name, "sizes": self.split_sizes()}

    def split_sizes(self) -> dict:
        return {split: int(self.split_size(split)) for split in ("train", "val", "test")}

    def label(self) -> str:
        """The task and its data, for titles: "sentiment (rotten-tomatoes)"."""
        name = self.data_info()["name"]
        return self.name if name == "generated" else f"{self.name} ({name})"

    #: what the baseline is, for a task whose baseline takes long to compute (None: it is cheap):
    #: `numpyrnn tasks` shows this instead of computing it; train and compare compute it
    slow_baseline: str | None = None

    def baseline(self) -> tuple:
        """(value of the metric, what achieves it): the score to beat, cheap to compute (or
        announced by :attr:`slow_baseline`)."""
        raise NotImplementedError

    def baselines(self) -> list:
        """Every baseline numpyrnn computes for this task on its splits, scored on test: a list
        of {"name", "value", "what"}.  The first is :meth:`baseline`; tasks with real data add
        stronger ones (the bag of words, the n-gram model), which may take seconds."""
        value, what = self.baseline()
        return [{"name": "baseline", "value": value, "what": what}]

    #: what :meth:`report`'s numbers mean, for the comparison's results.md (None: it reports nothing)
    report_note: str | None = None

    def report(self, model) -> dict | None:
        """What this task measures of a trained model beside its metric (the anomaly task: the
        detection), which a comparison records for each run: a dict of numbers (lists for
        figures), or None."""
        return None

    def draw_report(self, results, out_dir) -> list:
        """Draw the figures of the runs' reports in a comparison's ``results`` into ``out_dir``;
        the paths written (none by default)."""
        return []

    def make_model(self, cell, *, hidden_size, **options):
        """The model that fits this task, over ``cell`` (a registered name or a Cell), with
        ``hidden_size`` units and the model's other options (num_layers, bidirectional, dropout,
        dtype, seed, device, nonlinearity, reset_after, impl).  A cell given by name gets its
        length options (JANET's t_max, IndRNN's bound) from :meth:`sequence_length`."""
        return self._make_model(_cells.for_length(cell, self.sequence_length()), hidden_size=hidden_size,
                                **options)

    def _make_model(self, cell, *, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                    dtype=np.float32, seed=None, device="auto", nonlinearity="tanh", reset_after=True,
                    impl="fast"):
        raise NotImplementedError

    def epoch(self, batch_size, rng) -> list:
        """The plan of one training epoch: a list of int arrays, one per batch."""
        raise NotImplementedError

    def batch(self, items) -> Batch:
        """The training batch made of ``items`` (one entry of a plan)."""
        raise NotImplementedError

    def evaluate(self, model, split, batch_size) -> dict:
        """{"loss": ..., <metric>: ...} of ``model`` on ``split`` ("val" or "test"), in eval mode."""
        raise NotImplementedError

    def describe(self) -> str:
        value, how = self.baseline()
        return f"{self.name:<10} {self.title}; baseline {self.metric} {value:.4g} ({how})"


class ExampleTask(Task):
    """A task whose splits are sets of independent examples, shuffled each epoch."""

    def split_size(self, split) -> int:
        raise NotImplementedError

    def generate_splits(self, generate, seq_len, sizes):
        """``{split: generate(n, seq_len, rng)}`` for train, val and test, each split drawn from
        its own child of ``SeedSequence(self.seed)``, so that changing one split's size leaves
        the others as they were."""
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(3)]
        return {split: generate(check_int(f"{split}_size", n, 1), seq_len, rng)
                for split, n, rng in zip(("train", "val", "test"), sizes, rngs)}

    def examples(self, split, index) -> Batch:
        """The examples ``index`` (an int array) of ``split`` as one batch."""
        raise NotImplementedError

    def epoch(self, batch_size, rng):
        order = rng.permutation(self.split_size("train"))
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

    def batch(self, items):
        return self.examples("train", np.asarray(items))

    def eval_batches(self, split, batch_size):
        n = self.split_size(split)
        for start in range(0, n, batch_size):
            yield self.examples(split, np.arange(start, min(start + batch_size, n)))

    def evaluate(self, model, split, batch_size):
        """Example-weighted mean loss over the split, and the task's metric."""
        was_training = model.training
        model.eval()
        totals, count = {}, 0
        try:
            for batch in self.eval_batches(split, batch_size):
                loss, outputs = model.forward(batch.inputs, batch.targets, batch.lengths)
                n = batch.inputs.shape[1]         # sequences in the batch (inputs are time-major)
                for key, value in self.batch_metrics(loss, outputs, batch).items():
                    totals[key] = totals.get(key, 0.0) + value * n
                count += n
        finally:
            model.train(was_training)
        return {key: value / count for key, value in totals.items()}

    def batch_metrics(self, loss, outputs, batch) -> dict:
        """Per-batch means of the loss and the metric (weighted by batch size when averaged)."""
        return {"loss": loss}

    def item_scores(self, model, split, batch_size):
        """The metric of each example of ``split`` on its own (their mean is the split's metric):
        what a paired bootstrap over test items resamples (:mod:`numpyrnn.experiments.claims`)."""
        was_training = model.training
        model.eval()
        scores = []
        try:
            for batch in self.eval_batches(split, batch_size):
                _, outputs = model.forward(batch.inputs, None, batch.lengths)
                scores.append(self.example_scores(np.asarray(asnumpy(outputs), np.float64), batch))
        finally:
            model.train(was_training)
        return np.concatenate(scores)

    def example_scores(self, outputs, batch):
        """Each example's metric in a batch, from the model's outputs (see :meth:`item_scores`)."""
        raise NotImplementedError


def read_text_file(path, flag):
    """The text of a user's file given as ``flag`` (--data, --text), checked: a path (not a
    number or bytes), an existing file (not a folder), UTF-8, not empty."""
    if isinstance(path, (bytes, bytearray)) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{flag} must be a file path or a named data set, got {type(path).__name__}: {path!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{flag} {path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path}: a folder; give a file")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{flag} {path}: not UTF-8 text (byte {exc.start} cannot be read: {exc.reason}); "
                         "save it as UTF-8") from None
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot be read ({exc.strerror or exc})") from None
    if not text.strip():
        raise ValueError(f"{flag} {path}: empty")
    return text


def pad(sequences, dtype, pad_value=0):
    """Sequences of different lengths (each (L, ...)) as a time-major (T, B, ...) array padded
    with ``pad_value``, and their lengths."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    T = int(lengths.max())
    first = np.asarray(sequences[0])
    out = np.full((T, len(sequences)) + first.shape[1:], pad_value, dtype=dtype)
    for b, s in enumerate(sequences):
        out[:len(s), b] = s
    return out, lengths
