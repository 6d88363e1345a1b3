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
same words and opposite labels).  ``bag_of_words_accuracy`` measures it.

A user's file: ``text,label`` rows (CSV or TSV, an optional header), any label strings; the rows
are shuffled with the seed and split 80/10/10.

Tokens: lower-cased words and punctuation marks.  The vocabulary is built from the training
split (tokens seen at least ``min_count`` times) with id 0 for padding and 1 for unknown words,
and is saved with the model.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter

import numpy as np

from ..backend import asnumpy
from ..models import SequenceClassifier
from ..validation import check_int
from .base import Batch, ExampleTask, pad

PAD, UNK = "<pad>", "<unk>"

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


def tokenize(text):
    """Lower-cased words (letters, digits, apostrophes) and single punctuation marks."""
    return re.findall(r"[a-z0-9']+|[^\sa-z0-9']", text.lower())


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
    """(texts, label strings) from a CSV or TSV file of text,label rows (header optional)."""
    if not os.path.exists(path):
        raise ValueError(f"--data {path}: no such file")
    with open(path, newline="", encoding="utf-8") as f:
        sample = f.read(4096)
        f.seek(0)
        delimiter = "\t" if path.endswith((".tsv", ".tab")) or sample.count("\t") > sample.count(",") else ","
        rows = [row for row in csv.reader(f, delimiter=delimiter) if row and any(c.strip() for c in row)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["text", "label"]:
        rows = rows[1:]
    bad = [i + 1 for i, row in enumerate(rows) if len(row) != 2 or not row[0].strip() or not row[1].strip()]
    if bad:
        raise ValueError(f"--data {path}: every row must be text,label (row {bad[0]} is not)")
    if len(rows) < 10:
        raise ValueError(f"--data {path}: needs at least 10 labelled rows, has {len(rows)}")
    return [r[0] for r in rows], [r[1].strip() for r in rows]


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

    def __init__(self, seed=0, seq_len=48, data=None, train_size=6_000, val_size=1_000,
                 test_size=1_000, min_count=None):
        seq_len = check_int("seq_len", seq_len, 8)
        super().__init__(seed, seq_len=seq_len, data=data, train_size=train_size, val_size=val_size,
                         test_size=test_size, min_count=min_count)
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
            all_texts, label_strings = read_labelled_file(os.fspath(data))
            self.classes = sorted(set(label_strings))
            ids = np.array([self.classes.index(l) for l in label_strings], dtype=np.int64)
            order = ss.permutation(len(all_texts))
            cut1, cut2 = int(0.8 * len(order)), int(0.9 * len(order))
            texts, labels = {}, {}
            for split, sel in (("train", order[:cut1]), ("val", order[cut1:cut2]), ("test", order[cut2:])):
                texts[split], labels[split] = [all_texts[i] for i in sel], ids[sel]
            min_count = 2 if min_count is None else min_count
        tokens = {split: [tokenize(t) for t in texts[split]] for split in texts}
        self.vocab = build_vocab(tokens["train"], min_count)
        index = {t: i for i, t in enumerate(self.vocab)}
        self.texts = texts
        self.data = {split: ([encode(t, index) for t in tokens[split]], labels[split]) for split in texts}

    def baseline(self):
        labels = self.data["test"][1]
        majority = np.bincount(labels, minlength=len(self.classes)).max() / len(labels)
        return float(majority), "always predict the most common class"

    def make_model(self, cell, *, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                   dtype=np.float32, seed=None, device="auto", nonlinearity="tanh",
                   reset_after=True, impl="fast"):
        model = SequenceClassifier(cell, vocab_size=len(self.vocab), embedding_dim=32, padding_idx=0,
                                   num_classes=len(self.classes), hidden_size=hidden_size,
                                   num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                                   nonlinearity=nonlinearity, reset_after=reset_after, impl=impl, dtype=dtype,
                                   seed=seed, device=device)
        model.vocab = tuple(self.vocab)
        return model

    def split_size(self, split):
        return len(self.data[split][1])

    def examples(self, split, index):
        sequences, labels = self.data[split]
        ids, lengths = pad([sequences[i] for i in index], np.int64)
        return Batch(ids, labels[index], lengths)

    def batch_metrics(self, loss, outputs, batch):
        return {"loss": loss, "accuracy": float((asnumpy(outputs).argmax(axis=1) == batch.targets).mean())}

    # ------------------------------------------------------------------ the bag-of-words check

    def bag_of_words_accuracy(self, epochs=200, lr=0.5):
        """Test accuracy of a logistic regression on word counts (full-batch gradient descent,
        trained on the training split): what ignoring word order achieves."""
        V, C = len(self.vocab), len(self.classes)

        def counts(split):
            sequences, _ = self.data[split]
            X = np.zeros((len(sequences), V))
            for row, s in enumerate(sequences):
                np.add.at(X[row], s, 1.0)
            return X / np.maximum(X.sum(axis=1, keepdims=True), 1)

        X, y = counts("train"), self.data["train"][1]
        W, b = np.zeros((V, C)), np.zeros(C)
        onehot = np.eye(C)[y]
        for _ in range(epochs):
            logits = X @ W + b
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            grad = (p - onehot) / len(y)
            W -= lr * (X.T @ grad)
            b -= lr * grad.sum(axis=0)
        Xt, yt = counts("test"), self.data["test"][1]
        return float(((Xt @ W + b).argmax(axis=1) == yt).mean())
