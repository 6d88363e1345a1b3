"""Addition as strings, "535+61" → "596": the encoder-decoder's sanity task (issue 31).

The reference is Keras's addition example ("Sequence to sequence learning for performing number
addition", keras.io): questions a+b with a and b of 1 to ``digits`` digits drawn uniformly by
their number of digits and then their value, each unordered pair once; the question read
reversed ("16+535" read as "535+61" backwards, which shortens the path from the last digits of
the numbers to the first digit of the answer); one LSTM of 128 units; 50 000 questions; about
100 epochs to 99 % per-character accuracy there.  Here the model is :class:`~numpyrnn.Seq2Seq`
without attention by default (the plain encoder-decoder, as Keras's), its decoder fed the true
previous digit in training (teacher forcing; Keras's repeats the encoder's state instead), and
scored by greedy decoding:

* ``accuracy`` (the metric): the share of answers decoded exactly;
* ``char_accuracy``: the share of the answer's characters right at their place (a missing or
  extra character counts as wrong), Keras's measure.

Baseline, computed by the task: adding digit by digit without carrying, which is right exactly
when no column carries.
"""

from __future__ import annotations

import numpy as np

from ..seq2seq import EOS, PAD, SPECIALS, Seq2Seq, encode
from ..validation import check_int
from .base import Batch, ExampleTask, pad

SOURCE = ("<pad>", *"0123456789+")
TARGET = (*SPECIALS, *"0123456789")


def generate(n, digits, rng):
    """``n`` distinct unordered questions (a, b) as Keras's example draws them: each number's
    length uniform in 1..digits, then its digits."""
    seen, out = set(), []
    largest = 10 ** digits
    if n > (largest * (largest + 1)) // 2:
        raise ValueError(f"{n} distinct questions of up to {digits} digits do not exist")
    while len(out) < n:
        a, b = (int("".join(rng.choice(list("0123456789"), int(rng.integers(1, digits + 1))))) for _ in range(2))
        key = (min(a, b), max(a, b))
        if key not in seen:
            seen.add(key)
            out.append((a, b))
    return out


class Addition(ExampleTask):
    name = "addition"
    title = "addition as strings: '535+61' -> '596' (an encoder-decoder; Keras's example)"
    metric = "accuracy"
    higher_is_better = True
    defaults = {"hidden": 128, "batch_size": 64, "epochs": 20, "lr": 2e-3, "optimizer": "adam", "clip": 5.0,
                "eval_every": 782}

    def __init__(self, seed=0, digits=3, train_size=50_000, val_size=2_000, test_size=2_000, reverse=True,
                 attention="none"):
        self.digits = check_int("digits", digits, 1)
        if attention not in ("dot", "general", "additive", "none"):
            raise ValueError(f"attention must be one of dot, general, additive or 'none', got {attention!r}")
        if not isinstance(reverse, (bool, np.bool_)):
            raise TypeError(f"reverse must be True or False, got {reverse!r}")
        sizes = [check_int(name, n, 1) for name, n in (("train_size", train_size), ("val_size", val_size),
                                                       ("test_size", test_size))]
        super().__init__(seed, digits=self.digits, train_size=sizes[0], val_size=sizes[1], test_size=sizes[2],
                         **({} if reverse else {"reverse": False}),
                         **({} if attention == "none" else {"attention": attention}))
        self.reverse, self.attention = bool(reverse), None if attention == "none" else attention
        pairs = generate(sum(sizes), self.digits, np.random.default_rng(self.seed))
        bounds = np.cumsum([0, *sizes])
        self.pairs = {split: pairs[bounds[k]:bounds[k + 1]] for k, split in enumerate(("train", "val", "test"))}

    def sequence_length(self):
        return 2 * self.digits + 1

    def question(self, a, b):
        """The question as the model reads it (reversed by default)."""
        text = f"{a}+{b}"
        return text[::-1] if self.reverse else text

    def split_size(self, split):
        return len(self.pairs[split])

    def examples(self, split, index):
        pairs = [self.pairs[split][i] for i in index]
        src, lengths = encode([self.question(a, b) for a, b in pairs], SOURCE)
        tgt, _ = pad([[TARGET.index(c) for c in str(a + b)] + [EOS] for a, b in pairs], np.int64)
        return Batch(src, tgt, lengths)

    def _make_model(self, cell, *, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                    dtype=np.float32, seed=None, device="auto", nonlinearity="tanh", reset_after=True,
                    impl="fast"):
        model = Seq2Seq(cell, source_vocab_size=len(SOURCE), target_vocab_size=len(TARGET), hidden_size=hidden_size,
                        embedding_dim=16, num_layers=num_layers, bidirectional=bidirectional,
                        attention=self.attention, dropout=dropout, max_length=self.digits + 2,
                        nonlinearity=nonlinearity, reset_after=reset_after, impl=impl, dtype=dtype, seed=seed,
                        device=device)
        model.source_vocab, model.target_vocab = SOURCE, TARGET
        return model

    def _answers(self, model, split, batch_size):
        out = []
        for batch in self.eval_batches(split, batch_size):
            out += ["".join(TARGET[i] for i in seq) for seq in model.greedy(batch.inputs, batch.lengths)]
        return out

    def evaluate(self, model, split, batch_size):
        was_training = model.training
        model.eval()
        loss_sum = tokens = 0.0
        try:
            for batch in self.eval_batches(split, batch_size):
                loss, _ = model.forward(batch.inputs, batch.targets, batch.lengths)
                n = int((batch.targets != PAD).sum())
                loss_sum, tokens = loss_sum + loss * n, tokens + n
            answers = self._answers(model, split, max(batch_size, 500))
        finally:
            model.train(was_training)
        truth = [str(a + b) for a, b in self.pairs[split]]
        exact = np.mean([g == t for g, t in zip(answers, truth)])
        chars = sum(sum(x == y for x, y in zip(g, t)) for g, t in zip(answers, truth))
        return {"loss": loss_sum / tokens, "accuracy": float(exact),
                "char_accuracy": chars / sum(max(len(g), len(t)) for g, t in zip(answers, truth))}

    def item_scores(self, model, split, batch_size):
        was_training = model.training
        model.eval()
        try:
            answers = self._answers(model, split, max(batch_size, 500))
        finally:
            model.train(was_training)
        return np.array([g == str(a + b) for g, (a, b) in zip(answers, self.pairs[split])], np.float64)

    def baseline(self):
        """Adding column by column without carrying: right exactly when no column carries."""
        right = [no_carry(a, b) == a + b for a, b in self.pairs["test"]]
        return float(np.mean(right)), "add digit by digit without carrying"


def no_carry(a, b):
    """a + b with every carry dropped."""
    out, place = 0, 1
    while a or b:
        out += ((a % 10 + b % 10) % 10) * place
        a, b, place = a // 10, b // 10, place * 10
    return out


__all__ = ["Addition", "generate", "no_carry"]
