"""Saving and loading models (and training runs) as ``.npz`` files.

    numpyrnn.save(model, "model.npz")
    model = numpyrnn.load("model.npz")          # rebuilt from its config, weights loaded

A file holds, as plain arrays (it is read with ``allow_pickle=False``, so it can carry no code):

``format``, ``format_version``   what it is: "numpyrnn-checkpoint", version 1 (older versions are
                                 brought up to date by UPGRADES, newer ones refused)
``config``                       the model's config, JSON (what :func:`numpyrnn.models.build` takes)
``param/<name>``                 each parameter
``checksum``                     SHA-256 over every other array: names, shapes, dtypes and bytes
``vocab``                        the model's vocabulary, if it has one (token strings, in id order);
                                 an encoder-decoder's two: ``source_vocab``, ``target_vocab``
``meta``                         JSON: package version, and whatever the caller adds
``optim/<key>``, ``trainer``     a training run's optimizer state and trainer state (JSON), if any
``array/<key>``                  other arrays a training run needs to resume (carried states, ...)

Writing is atomic: the file is written beside its destination under a temporary name, flushed
to disk, then renamed over it, so a crash leaves either the old file or the new one, never half
of one.  Loading checks everything before building anything and says what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np

from . import __version__

FORMAT = "numpyrnn-checkpoint"
FORMAT_VERSION = 1

#: version → a function that turns that version's arrays into the next version's.  A change of
#: the format bumps FORMAT_VERSION and adds the step from the old version here, so that every
#: file ever written keeps loading: read() applies the steps one after another.
UPGRADES = {}


class CheckpointError(ValueError):
    """A file that is not a numpyrnn checkpoint, or is damaged, or does not fit the model."""


def _checksum(arrays) -> str:
    """SHA-256 over every array but the checksum itself."""
    h = hashlib.sha256()
    for name in sorted(k for k in arrays if k != "checksum"):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _check_path(path):
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}") from None


def atomic_write(path, write_to, *, suffix=""):
    """Write a file by ``write_to(f)`` (f a binary file) beside ``path`` under a temporary name,
    flush it to disk, then rename it over ``path``: a crash leaves the old file or the new one,
    never half of one."""
    path = _check_path(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder: give the path of the file to write, "
                                f"e.g. {os.path.join(path, 'model' + suffix)}")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write_to(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write(path, arrays):
    """Write ``arrays`` (name → array) to ``path`` as an uncompressed .npz, sealed with a
    checksum of all of them, atomically."""
    arrays = {**arrays, "checksum": np.array(_checksum(arrays))}
    atomic_write(path, lambda f: np.savez(f, **arrays), suffix=".npz")


def model_arrays(model, *, meta=None):
    """The arrays that describe ``model``: config, parameters, checksum, vocabulary, meta."""
    from .models import BUILDABLE, buildable

    if not buildable(model):
        raise TypeError(f"numpyrnn.save keeps what numpyrnn.load can rebuild: a {', '.join(BUILDABLE)} "
                        f"(not a subclass), got {type(model).__name__}; for other modules save "
                        "model.state_dict() yourself (np.savez) and load it with load_state_dict")
    params = model.state_dict()
    arrays = {"format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION),
              "config": np.array(json.dumps(model.config())),
              "meta": np.array(json.dumps({"version": __version__, **(meta or {})}))}
    arrays.update({f"param/{k}": v for k, v in params.items()})
    for name, embedding in vocabularies(model).items():
        vocab = getattr(model, name, None)
        if vocab is not None:
            check_vocab(model, vocab, f"model.{name}", embedding)
            arrays[name] = np.array(list(vocab), dtype=str)
    classes = getattr(model, "classes", None)
    if classes is not None:
        count = max(getattr(model, "num_classes", len(classes)), 2)
        if isinstance(classes, str) or len(classes) != count or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"model.classes must be {count} class names (strings), got {classes!r}")
        arrays["classes"] = np.array(list(classes), dtype=str)
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None:
        from .text import tokenizer as find

        find(tokenizer)                                   # a tokenizer numpyrnn has
        meta = json.loads(str(arrays["meta"]))
        arrays["meta"] = np.array(json.dumps({**meta, "tokenizer": tokenizer}))
    return arrays


def _text_metadata(model, arrays, path):
    """The vocabulary, class names and tokenizer a file keeps beside the model, onto ``model``.
    A classifier saved before class names were kept gets "0", "1", ... and a note saying so."""
    for name, embedding in vocabularies(model).items():
        if name in arrays:
            vocab = tuple(str(t) for t in arrays[name].reshape(-1))
            try:
                check_vocab(model, vocab, f"{path}: its vocabulary" if name == "vocab" else f"{path}: its {name}",
                            embedding)
            except ValueError as exc:
                raise CheckpointError(str(exc)) from None
            setattr(model, name, vocab)
    if "classes" in arrays:
        model.classes = tuple(str(c) for c in arrays["classes"].reshape(-1))
    elif hasattr(model, "num_classes") and getattr(model, "vocab", None) is not None:
        model.classes = tuple(str(k) for k in range(max(model.num_classes, 2)))
        model.class_note = (f"{path} was saved before numpyrnn kept class names: its classes are called "
                            f"{', '.join(model.classes)} (the labels' order in training)")
    try:
        meta = json.loads(str(arrays.get("meta", "{}")))
    except json.JSONDecodeError:
        meta = {}
    if isinstance(meta, dict) and isinstance(meta.get("tokenizer"), dict) and hasattr(model, "tokenizer"):
        model.tokenizer = meta["tokenizer"]
    elif hasattr(model, "tokenizer") and getattr(model, "vocab", None) is not None:
        # saved before tokenizers were named: the task's own, as it was then
        model.tokenizer = {"name": "characters" if type(model).__name__ == "CharLM" else "words", "version": 1}


def vocabularies(model) -> dict:
    """The vocabularies a model keeps beside its weights: attribute name → the name of the
    embedding whose ids it names (``{"vocab": "embedding"}`` unless the model's class says
    otherwise in ``VOCABULARIES``: the encoder-decoder's source and target)."""
    return dict(getattr(type(model), "VOCABULARIES", {"vocab": "embedding"}))


def check_vocab(model, vocab, what, embedding="embedding"):
    """A vocabulary that fits the model: strings, one per token id of its embedding."""
    embedding = getattr(model, embedding, None)
    size = getattr(embedding, "num_embeddings", None)
    if isinstance(vocab, str) or not all(isinstance(t, str) for t in vocab):
        raise ValueError(f"{what} must be a sequence of token strings, one per id")
    if size is not None and len(vocab) != size:
        raise ValueError(f"{what} has {len(vocab)} tokens, but the model's embedding has {size} ids: every id needs "
                         "its token (a shorter vocabulary would fail at sample or decode time)")


def save(model, path, *, meta=None):
    """Save ``model`` (its config, parameters and vocabulary) to ``path``, atomically.

    ``model``: a model (SequenceClassifier, SequenceRegressor, CharLM) or a layer (RNN, LSTM,
    GRU, Linear, Embedding); anything :func:`load` could not rebuild is refused here.
    """
    write(path, model_arrays(model, meta=meta))


def read(path):
    """All arrays of a checkpoint file, checked to be a numpyrnn checkpoint of this version with
    intact parameters.  Returns a dict name → NumPy array."""
    path = _check_path(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: a folder, not a checkpoint file")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":              # every .npz is a zip archive
            raise CheckpointError(f"{path}: not a readable .npz file (it is not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable .npz file (truncated or corrupt?): {exc}") from exc
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise CheckpointError(f"{path}: holds pickled objects, which numpyrnn never writes and "
                                  "will not load (they could run code)") from exc
        raise CheckpointError(f"{path}: cannot be read: {exc}") from exc
    if arrays.get("format") is None or str(arrays["format"]) != FORMAT:
        raise CheckpointError(f"{path}: not a numpyrnn checkpoint (no '{FORMAT}' format tag)")
    try:
        version = int(arrays.get("format_version", -1))
    except (TypeError, ValueError):
        version = -1
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version}, but this numpyrnn "
                              f"({__version__}) reads versions up to {FORMAT_VERSION}: upgrade numpyrnn")
    if version < 1 or (version < FORMAT_VERSION and version not in UPGRADES):
        raise CheckpointError(f"{path}: checkpoint format version {version}, which this numpyrnn "
                              f"({__version__}) cannot read")
    if "checksum" not in arrays or _checksum(arrays) != str(arrays["checksum"]):
        raise CheckpointError(f"{path}: its contents do not match their checksum (the file is damaged)")
    while version < FORMAT_VERSION:              # an older file: brought up to date step by step
        arrays = UPGRADES[version](arrays)
        version += 1
    return _as_written_today(arrays, path)


def _as_written_today(arrays, path):
    """What an older training checkpoint holds, in today's terms: the one place a saved run is
    migrated when read (after the format's own UPGRADES).  Its task's config without the options
    that do not apply (:func:`numpyrnn.tasks.upgrade_config`: runs on real data once recorded
    the generated data's sizes), and its settings whole (:func:`numpyrnn.settings.saved`: a run
    written before settings were saved has them read from its model's config, optimizer, batch
    size, seed and schedule), with ``settings_recorded``, the fields the file itself held."""
    if "trainer" not in arrays:
        return arrays
    from .settings import saved
    from .tasks import upgrade_config

    state = from_json_array(arrays["trainer"])
    if not isinstance(state, dict) or "task" not in state:
        raise CheckpointError(f"{path}: its trainer state is not a numpyrnn run's")
    state["task"] = upgrade_config(state["task"])
    if "settings_recorded" not in state:
        try:
            settings, recorded = saved(state, config_of(arrays, path))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: its run's settings cannot be read: {exc}") from exc
        state["settings"], state["settings_recorded"] = settings.to_dict(), list(recorded)
    return {**arrays, "trainer": to_json_array(state)}


def params_of(arrays):
    return {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}


#: config keys that say how a model computes, not what it computes: a run saved with one value
#: may continue with another (``impl``: the fast path and the reference agree to rounding).
#: Files written before ``impl`` existed lack it; :func:`load` builds them with the default.
HOW_NOT_WHAT = ("impl",)


def config_of(arrays, path="checkpoint"):
    try:
        config = json.loads(str(arrays["config"]))
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: its model config is missing or not JSON") from exc
    return config


def _what_it_computes(config, init_only):
    """``config`` without what does not change the model: the cell's options that only shape the
    initial weights (a cell's ``init_options``), in the cell's config or beside it.  A cell
    recorded by name is written out by its options (:func:`numpyrnn.cells.from_record`), so
    that the same cell recorded either way compares equal."""
    config = {k: v for k, v in config.items() if k not in init_only}
    cell = config.get("cell")
    if isinstance(cell, str):
        from .cells import CellError, from_record

        try:
            cell = from_record(cell, **{k: config[k] for k in ("nonlinearity", "reset_after") if k in config}).config()
        except (CellError, TypeError, ValueError):
            pass                                 # not a cell known here: compared by name
    if isinstance(cell, dict) and isinstance(cell.get("options"), dict):
        options = {k: v for k, v in cell["options"].items() if k not in init_only}
        config = {**config, "cell": {**cell, "options": options}}
    return config


def check_same_model(saved_config, model, path):
    """Refuse to load ``saved_config``'s parameters into ``model`` when they describe different
    models (keys in :data:`HOW_NOT_WHAT` aside, and the cell's options that only shape the
    initialisation)."""
    layer = getattr(model, "rnn", model)
    init_only = tuple(getattr(getattr(layer, "cell", None), "init_options", ()))
    current = _what_it_computes(json.loads(json.dumps(model.config())), init_only)
    saved_config = _what_it_computes(saved_config, init_only)
    diff = sorted(k for k in set(saved_config) | set(current)
                  if k not in HOW_NOT_WHAT and saved_config.get(k) != current.get(k))
    if diff:
        raise CheckpointError(f"{path}: was saved from a different model (config differs in {diff})")


def _cell_name(config):
    cell = config.get("cell")
    return cell.get("name") if isinstance(cell, dict) else cell


def load(path, *, device="auto", cells=()):
    """The model or layer saved in ``path``, rebuilt from its config with its parameters (and
    vocabulary).

    The file names its cell; a cell of your own comes back only from a class you hand over,
    ``cells=[MyCell]``, or one registered with ``numpyrnn.cells.register`` (a file never makes
    numpyrnn import code).
    """
    from .cells import CellError, lookup
    from .models import build

    arrays = read(path)
    config = config_of(arrays, path)
    if not isinstance(cells, (list, tuple)):
        raise TypeError(f"cells must be a list of Cell classes, got {type(cells).__name__}")
    name = _cell_name(config)
    if isinstance(name, str):
        try:
            lookup(name, cells)
        except CellError:
            raise CheckpointError(
                f"{path}: its model runs the cell {name!r}, which is not known here. Hand its class over, "
                f"numpyrnn.load(path, cells=[MyCell]), or register it first with numpyrnn.cells.register(MyCell); "
                f"on the command line, --cell-file FILE (the file that defines it)") from None
    try:
        model = build(config, device=device, cells=cells)
        model.load_state_dict(params_of(arrays))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: does not describe a model numpyrnn can build: {exc}") from exc
    _text_metadata(model, arrays, path)
    return model


def load_into(model, path):
    """Load the parameters saved in ``path`` into an existing ``model`` whose config must match
    (up to :data:`HOW_NOT_WHAT`: the model keeps its own ``impl``).

    Nothing is changed if anything does not fit.
    """
    arrays = read(path)
    check_same_model(config_of(arrays, path), model, path)
    try:
        model.load_state_dict(params_of(arrays))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    _text_metadata(model, arrays, path)
    return arrays


def to_json_array(obj):
    return np.array(json.dumps(obj))


def from_json_array(a):
    return json.loads(str(a))

