"""Saving and loading: round trips, and every kind of bad file gets a clear error."""

import json
import os

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
    with pytest.raises(CheckpointError, match=r"format version 99, but this numpyrnn .* reads versions up to 1: "
                                              "upgrade numpyrnn"):
        numpyrnn.load(path)
    rewrite(path, format_version=np.array(0))
    with pytest.raises(CheckpointError, match=r"format version 0, which this numpyrnn .* cannot read"):
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


# --------------------------------------------------------------------------- files written by earlier versions

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _fixture_maker():
    """tests/fixtures/make_format1_fixtures.py, which made the fixtures with format-1 numpyrnn."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_format1_fixtures",
                                                  os.path.join(FIXTURES, "make_format1_fixtures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_a_model_saved_before_impl_existed_loads_and_computes_what_it_did(impl):
    """A model file of format 1, written before layers had ``impl``, loads (as impl "fast"), and
    gives the logits the numpyrnn that wrote it computed, on either path."""
    maker = _fixture_maker()
    m = numpyrnn.load(os.path.join(FIXTURES, "format1_charlm_gru.npz"))
    assert m.config()["impl"] == "fast" and m.rnn.impl == "fast" and m.vocab == tuple("abcde")
    m.rnn.impl = impl
    _, logits = m.forward(maker.FIXED_IDS)
    want = np.load(os.path.join(FIXTURES, "format1_charlm_gru_logits.npy"))
    assert np.abs(logits - want).max() <= (0 if impl == "fast" else 1e-6)


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_a_training_checkpoint_written_before_impl_existed_resumes_exactly(tmp_path, impl):
    """A run checkpointed at step 2 by format-1 numpyrnn, resumed by today's and trained to step
    4, ends with the weights that run reached uninterrupted: bit for bit on the fast path, to
    rounding on the reference (a run may change path when it resumes)."""
    maker = _fixture_maker()
    import shutil

    shutil.copy(os.path.join(FIXTURES, "format1_adding_step2.npz"), tmp_path / "checkpoint.npz")
    trainer = maker.adding_run(str(tmp_path))
    trainer.model.rnn.impl = impl
    trainer.resume()
    assert trainer.step == 2
    trainer.fit(steps=4)
    want = numpyrnn.load(os.path.join(FIXTURES, "format1_adding_step4.npz"))
    for k, v in want.params.items():
        assert np.abs(trainer.model.params[k] - v).max() <= (0 if impl == "fast" else 1e-5), k


def test_a_checkpoint_of_another_model_is_still_refused_whatever_its_impl(tmp_path):
    m = model()
    numpyrnn.save(m, tmp_path / "m.npz")
    other = numpyrnn.SequenceClassifier("gru", vocab_size=7, embedding_dim=3, hidden_size=5, num_classes=2,
                                        bidirectional=True, seed=1, impl="reference")
    with pytest.raises(CheckpointError, match=r"config differs in \['hidden_size'\]"):
        checkpoint.load_into(other, tmp_path / "m.npz")
    same = numpyrnn.SequenceClassifier("gru", vocab_size=7, embedding_dim=3, hidden_size=4, num_classes=2,
                                       bidirectional=True, seed=2, impl="reference")
    checkpoint.load_into(same, tmp_path / "m.npz")            # impl is how, not what: it loads
    assert same.rnn.impl == "reference"
    assert all(np.array_equal(same.params[k], m.params[k]) for k in m.params)


# --------------------------------------------------------------------------- what save accepts, load rebuilds

SAVABLE = [
    lambda: numpyrnn.RNN(3, 4, num_layers=2, nonlinearity="relu", bidirectional=True, seed=0),
    lambda: numpyrnn.LSTM(3, 4, batch_first=True, dtype=np.float64, impl="reference", seed=0),
    lambda: numpyrnn.GRU(3, 4, reset_after=False, bias=False, dropout=0.2, num_layers=2, seed=0),
    lambda: numpyrnn.Linear(3, 2, bias=False, dtype=np.float64, seed=0),
    lambda: numpyrnn.Embedding(6, 3, padding_idx=0, seed=0),
    lambda: numpyrnn.SequenceClassifier("lstm", vocab_size=5, num_classes=2, hidden_size=3, seed=0),
    lambda: numpyrnn.SequenceRegressor("rnn", input_size=2, hidden_size=3, per_step=True, seed=0,
                                       dtype=np.float64),
    lambda: numpyrnn.CharLM("gru", vocab_size=5, hidden_size=3, impl="reference", seed=0),
]


@pytest.mark.parametrize("make", SAVABLE, ids=lambda make: type(make()).__name__)
def test_every_module_save_accepts_load_rebuilds(tmp_path, make):
    m = make()
    numpyrnn.save(m, tmp_path / "m.npz")
    loaded = numpyrnn.load(tmp_path / "m.npz")
    assert type(loaded) is type(m) and loaded.config() == m.config() and loaded.dtype == m.dtype
    assert getattr(loaded, "impl", None) == getattr(m, "impl", None)
    assert list(loaded.params) == list(m.params)
    assert all(np.array_equal(loaded.params[k], m.params[k]) for k in m.params)


def test_save_refuses_what_load_could_not_rebuild(tmp_path):
    class MyLSTM(numpyrnn.LSTM):
        pass

    for thing, name in ((MyLSTM(2, 3), "MyLSTM"), (np.zeros(3), "ndarray"), ({"a": 1}, "dict")):
        with pytest.raises(TypeError, match=rf"numpyrnn.save keeps what numpyrnn.load can rebuild: .*got {name}"):
            numpyrnn.save(thing, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_an_older_format_is_brought_up_to_date_by_its_upgrade_step(tmp_path, monkeypatch):
    """How a format change keeps old files loading: FORMAT_VERSION moves on, UPGRADES gets the
    step from the old version, and read() applies it (here a pretend version 2 that renamed
    "meta" to "about")."""
    path = tmp_path / "m.npz"
    numpyrnn.save(model(), path)                       # a version-1 file
    monkeypatch.setattr(checkpoint, "FORMAT_VERSION", 2)
    with pytest.raises(CheckpointError, match=r"format version 1, which this numpyrnn .* cannot read"):
        checkpoint.read(path)                          # a version without its upgrade is refused
    monkeypatch.setattr(checkpoint, "UPGRADES", {1: lambda a: {**{k: v for k, v in a.items() if k != "meta"},
                                                               "about": a["meta"]}})
    arrays = checkpoint.read(path)
    assert "about" in arrays and "meta" not in arrays
    assert numpyrnn.load(path).config() == model().config()
