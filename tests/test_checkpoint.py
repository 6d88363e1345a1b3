"""Saving and loading: round trips, and every kind of bad file gets a clear error."""

import json
import os
import zipfile

import numpy as np
import pytest

import numpyrnn
from numpyrnn import checkpoint
from numpyrnn.checkpoint import CheckpointError


def model():
    m = numpyrnn.SequenceClassifier("gru", vocab_size=7, embedding_dim=3, hidden_size=4, num_classes=2,
                                    bidirectional=True, seed=1)
    m.vocab = ("<pad>", "<unk>", "a", "b", "c", "d", "é")
    return m


def test_round_trip_rebuilds_the_same_model(tmp_path):
    m = model()
    path = tmp_path / "m.npz"
    numpyrnn.save(m, path)
    loaded = numpyrnn.load(path)
    assert type(loaded) is type(m) and loaded.config() == m.config() and loaded.vocab == m.vocab
    assert all(np.array_equal(loaded.params[k], m.params[k]) for k in m.params)
    ids = np.array([[2, 3], [4, 5], [6, 2]])
    assert np.array_equal(loaded.forward(ids)[1], m.forward(ids)[1])


def test_files_are_plain_arrays(tmp_path):
    path = tmp_path / "m.npz"
    numpyrnn.save(model(), path)
    with np.load(path, allow_pickle=False) as data:
        assert str(data["format"]) == "numpyrnn-checkpoint" and int(data["format_version"]) == 1
        assert json.loads(str(data["config"]))["type"] == "SequenceClassifier"
        assert all(data[k].dtype != object for k in data.files)


def test_writing_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves the old file whole and no temporary behind."""
    path = tmp_path / "m.npz"
    numpyrnn.save(model(), path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        numpyrnn.save(model(), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        numpyrnn.load(tmp_path / "nope.npz")
    path = tmp_path / "m.npz"
    numpyrnn.save(model(), path)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable .npz file"):
        numpyrnn.load(truncated)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable .npz file"):
        numpyrnn.load(text)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    with pytest.raises(CheckpointError, match="not a numpyrnn checkpoint"):
        numpyrnn.load(foreign)


def test_pickled_content_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, format=np.array("numpyrnn-checkpoint"), format_version=np.array(1),
             config=np.array([{"type": "CharLM"}], dtype=object))
    with pytest.raises(CheckpointError, match="pickled objects"):
        numpyrnn.load(path)


def rewrite(path, seal=True, **changes):
    """Change arrays of a saved file: sealed with a fresh checksum (a well-formed file that says
    something else), or not (damage)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    if seal:
        checkpoint.write(path, arrays)
    else:
        np.savez(path, **arrays)


def test_version_mismatch_and_damage(tmp_path):
    path = tmp_path / "m.npz"
    numpyrnn.save(model(), path)
    rewrite(path, format_version=np.array(99))
    with pytest.raises(CheckpointError, match="format version 99, but this numpyrnn"):
        numpyrnn.load(path)
    numpyrnn.save(model(), path)
    with np.load(path) as data:
        damaged = data["param/head.weight"].copy()
    damaged[0, 0] += 1e-3
    rewrite(path, seal=False, **{"param/head.weight": damaged})
    with pytest.raises(CheckpointError, match="do not match their checksum"):
        numpyrnn.load(path)
    numpyrnn.save(model(), path)
    rewrite(path, seal=False, meta=np.array('{"version": "0.0.0"}'))     # any array counts
    with pytest.raises(CheckpointError, match="do not match their checksum"):
        numpyrnn.load(path)


def test_load_into_refuses_another_model_and_changes_nothing(tmp_path):
    path = tmp_path / "m.npz"
    numpyrnn.save(model(), path)
    other = numpyrnn.SequenceClassifier("lstm", vocab_size=7, embedding_dim=3, hidden_size=4, num_classes=2)
    before = other.state_dict()
    with pytest.raises(CheckpointError, match=r"different model \(config differs in \['bidirectional', 'cell'\]\)"):
        checkpoint.load_into(other, path)
    assert all(np.array_equal(before[k], other.params[k]) for k in before)


def test_unbuildable_config(tmp_path):
    path = tmp_path / "m.npz"
    numpyrnn.save(model(), path)
    rewrite(path, config=np.array(json.dumps({"type": "Transformer"})))
    with pytest.raises(CheckpointError, match="does not describe a model numpyrnn can build"):
        numpyrnn.load(path)
