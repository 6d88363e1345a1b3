"""From numpyrnn to PyTorch, and back.

    module = numpyrnn.export.to_torch(model)      # a torch.nn.Module computing the same outputs
    model = numpyrnn.export.from_torch(module)    # and back (or from_torch(m, like=model))
    numpyrnn.export.save_torch(model, "model.pt") # a file plain PyTorch loads (below)

A model (``SequenceClassifier``, ``SequenceRegressor``, ``CharLM``, ``Seq2Seq``) becomes the module of the
same name in :mod:`numpyrnn.export.torch_modules`: ``nn.Embedding``, ``nn.RNN``/``LSTM``/``GRU``
(reading packed sequences when given lengths), the same pooling and ``nn.Linear``, under the
same parameter names.  A layer (``RNN``, ``LSTM``, ``GRU``, ``Linear``, ``Embedding``) becomes
its ``torch.nn`` twin.  The textbook GRU (``reset_after=False``) is refused: torch has no module
that computes it.

Why a state dict and not TorchScript: a state dict is what PyTorch users load (``torch.load``
with ``weights_only=True`` runs no code from the file), and TorchScript is deprecated in recent
PyTorch.  The module classes it needs are one file, :mod:`numpyrnn.export.torch_modules`, that
imports only torch: ``torch_modules.load("model.pt")`` works where numpyrnn is not installed.

PyTorch is an optional extra (``pip install numpyrnn[torch]``), imported by this module only
when called, and never used to compute numpyrnn's own gradients.
"""

from __future__ import annotations

import importlib

import numpy as np

from ..backend import asnumpy
from ..checkpoint import atomic_write
from ..models import BUILDABLE, MODELS, REGULARISERS, TRAINING_ONLY, build, buildable

INSTALL = "pip install numpyrnn[torch]"


class TorchUnavailable(ImportError):
    """PyTorch is not installed."""


def _import_torch_modules():
    """:mod:`numpyrnn.export.torch_modules`, imported now (it imports torch)."""
    try:
        importlib.import_module("torch")
    except ImportError as exc:
        raise TorchUnavailable(f"exporting to PyTorch needs PyTorch, which is not installed: "
                               f"{INSTALL}") from exc
    return importlib.import_module(".torch_modules", __name__)


def _check_numpyrnn(model, what="model"):
    if not buildable(model):
        raise TypeError(f"{what} must be a numpyrnn {', '.join(BUILDABLE)}, got {type(model).__name__}")


# numpyrnn's regularisers that torch.nn's modules lack: those of training only (models.TRAINING_ONLY,
# derivations §16) are left out, since the exported module computes what the model computes at
# evaluation without them; zoneout acts at evaluation too (§17), and a model with it is refused.


def torch_config(model):
    """``model.config()`` in the terms of :mod:`torch_modules`, whose recurrent layers are
    torch.nn's RNN (tanh, relu), LSTM and reset-after GRU, each with both biases.  A model whose
    cell is one of those under another name or with options of the initialisation only (the
    LSTM with ``forget_bias``, ``lstm_fb1``) is written as that layer; any other cell is
    refused, saying why.  The regularisers of training only (:data:`TRAINING_ONLY`) are left
    out: torch.nn has none of them, and at evaluation they change nothing."""
    from ..cells.protocol import declared

    config = {k: v for k, v in model.config().items() if k not in TRAINING_ONLY}
    acting = [k for k in REGULARISERS if k not in TRAINING_ONLY and config.get(k)]
    if acting:
        raise ValueError(f"torch.nn has no {acting[0]}: at evaluation a model trained with it still mixes each "
                         "state with its previous value (derivations §17), which torch.nn's modules do not compute; "
                         "keep the model in numpyrnn")
    if config["type"] == "Seq2Seq":
        if isinstance(config["cell"], dict) or isinstance(config.get("decoder_cell"), dict):
            raise ValueError("numpyrnn's export writes an encoder-decoder of torch.nn's RNN, LSTM and GRU; this "
                             "one has a cell of another kind: keep the model in numpyrnn")
        return config
    if config["type"] != "Recurrent" and not isinstance(config.get("cell"), dict):
        return config                            # RNN, LSTM, GRU, or a model of one: torch has it
    cell = getattr(model, "rnn", model).cell
    kind = (declared(cell, "torch_module") or "").lower()         # the cell's own fact: rnn, lstm or gru
    if kind not in ("rnn", "lstm", "gru"):
        raise ValueError(f"torch.nn has no module that computes the cell {cell.name!r} ({cell!r}): torch "
                         "offers RNN, LSTM and GRU only. Keep the model in numpyrnn, or write the cell as a "
                         "torch module yourself (the state dict's names are PyTorch-style)")
    if not cell.bias:
        raise ValueError(f"numpyrnn's export writes {kind.upper()} layers with biases, as torch.nn builds them "
                         "by default; this cell has none (bias=False)")
    options = cell.function_options()
    if config["type"] == "Recurrent":
        layer = {"type": kind.upper(), **{k: config[k] for k in ("input_size", "hidden_size", "num_layers",
                                                                 "batch_first", "dropout", "bidirectional",
                                                                 "dtype", "impl")}}
        return {**layer, "bias": True, **options}
    return {**config, "cell": kind, **options}


def to_torch(model):
    """A ``torch.nn.Module`` that computes what ``model`` computes, with its weights (copied),
    dtype, train/eval mode and vocabulary (``module.vocab``).  For models, see
    :mod:`numpyrnn.export.torch_modules` for the forward's arguments."""
    _check_numpyrnn(model)
    config = torch_config(model)
    tm = _import_torch_modules()
    torch = importlib.import_module("torch")
    module = tm.build(config)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    module.vocab = None if getattr(model, "vocab", None) is None else list(model.vocab)
    for name in ("source_vocab", "target_vocab"):          # an encoder-decoder's
        if getattr(model, name, None) is not None:
            setattr(module, name, list(getattr(model, name)))
    module.classes = None if getattr(model, "classes", None) is None else list(model.classes)
    module.tokenizer = getattr(model, "tokenizer", None)
    return module.train(model.training)


def _torch_config(module):
    """numpyrnn's config for a torch module it can express, or None for one it cannot tell."""
    tm = _import_torch_modules()
    nn = importlib.import_module("torch.nn")
    dtypes = {str(p.dtype).replace("torch.", "") for p in module.parameters()}
    if not dtypes <= {"float32", "float64"} or len(dtypes) > 1:
        raise TypeError(f"numpyrnn computes in float32 or float64; this module's parameters are "
                        f"{sorted(dtypes)}: convert it first (module.float() or module.double())")
    dtype = dtypes.pop() if dtypes else "float32"
    if isinstance(module, tm._Model):
        return module.config()
    if isinstance(module, (nn.RNN, nn.LSTM, nn.GRU)):
        if getattr(module, "proj_size", 0):
            raise ValueError(f"numpyrnn's LSTM has no projection; this one has proj_size={module.proj_size}")
        kind = type(module).__name__
        options = ({"nonlinearity": module.nonlinearity} if kind == "RNN"
                   else {"reset_after": True} if kind == "GRU" else {})
        return {"type": kind, "input_size": module.input_size, "hidden_size": module.hidden_size,
                "num_layers": module.num_layers, "bias": module.bias,
                "batch_first": module.batch_first, "dropout": float(module.dropout),
                "bidirectional": module.bidirectional, "dtype": dtype, **options}
    if isinstance(module, nn.Linear):
        return {"type": "Linear", "in_features": module.in_features,
                "out_features": module.out_features, "bias": module.bias is not None, "dtype": dtype}
    if isinstance(module, nn.Embedding):
        if module.max_norm is not None:
            raise ValueError("numpyrnn's Embedding does not renormalise rows: this one has "
                             f"max_norm={module.max_norm}")
        return {"type": "Embedding", "num_embeddings": module.num_embeddings,
                "embedding_dim": module.embedding_dim, "padding_idx": module.padding_idx,
                "dtype": dtype}
    return None


def from_torch(module, like=None, *, device="auto"):
    """The numpyrnn model or layer that computes what the torch ``module`` computes, with its
    weights (copied), train/eval mode and vocabulary.

    Without ``like``, ``module`` must be one numpyrnn can read the configuration of: a module of
    :mod:`numpyrnn.export.torch_modules`, or a ``torch.nn`` RNN, LSTM (without projection), GRU,
    Linear or Embedding.  With ``like`` (a numpyrnn model or layer), the result is built like it
    and takes ``module``'s weights, whose names and shapes must be ``like``'s: your own torch
    module with ``embedding``/``rnn``/``head`` of the right kinds comes back this way.
    """
    tm = _import_torch_modules()
    nn = importlib.import_module("torch.nn")
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    config = _torch_config(module)
    if like is not None:
        _check_numpyrnn(like, "like")
        wanted = like.config()
        if wanted.get("reset_after") is False:
            raise ValueError(tm.TEXTBOOK_GRU)
        if config is not None:                 # torch has no impl, and its GRU is reset-after
            differ = sorted(k for k in (set(config) | set(wanted)) - {"impl", "reset_after", *TRAINING_ONLY}
                            if config.get(k) != wanted.get(k))
            if differ:
                raise ValueError(f"module is not a {wanted['type']} like `like`: they differ in {differ}")
        config = wanted
    elif config is None:
        raise TypeError(f"numpyrnn cannot tell what a {type(module).__name__} computes: give "
                        f"like=, a numpyrnn model or layer with the same parameter names ({', '.join(MODELS)} "
                        f"have embedding.*, rnn.*, head.*)")
    model = build(config, device=device)
    try:
        model.load_state_dict({k: v.detach().cpu().numpy() for k, v in module.state_dict().items()})
    except KeyError as exc:
        raise KeyError(f"the torch module's parameters are not a {config['type']}'s: {exc.args[0]}") from None
    vocab = getattr(module, "vocab", None)
    if vocab is None and like is not None:
        vocab = getattr(like, "vocab", None)
    if vocab is not None and hasattr(model, "vocab"):
        model.vocab = tuple(str(t) for t in vocab)
    for name in ("source_vocab", "target_vocab"):          # an encoder-decoder's
        vocab = getattr(module, name, None) or (None if like is None else getattr(like, name, None))
        if vocab is not None and hasattr(model, name):
            setattr(model, name, tuple(str(t) for t in vocab))
    return model.train(module.training)


def save_torch(model, path):
    """Write ``model`` to ``path`` as a file plain PyTorch loads: ``torch.load(path,
    weights_only=True)`` gives a dict with its ``config``, ``state_dict`` and ``vocab``, and
    ``numpyrnn.export.torch_modules.load(path)`` the module, weights loaded.  Atomic, as
    :func:`numpyrnn.save`.  Returns the module written."""
    module = to_torch(model)
    tm = _import_torch_modules()
    config = {k: v for k, v in torch_config(model).items() if k != "impl"}
    atomic_write(path, lambda f: tm.save(module, f, config, module.vocab, getattr(model, "classes", None),
                                         getattr(model, "tokenizer", None)), suffix=".pt")
    return module


def load_torch(path, map_location="cpu"):
    """The torch module in a file :func:`save_torch` wrote (in eval mode)."""
    return _import_torch_modules().load(path, map_location)


def example_inputs(model, *, batch=4, steps=9, seed=0):
    """A random batch ``model`` takes, as (inputs, lengths) NumPy arrays, lengths in 1..steps
    with one full-length sequence.  Layers get inputs only (lengths None for Linear/Embedding)."""
    rng = np.random.default_rng(seed)
    config = model.config()
    lengths = rng.integers(1, steps + 1, batch)
    lengths[0] = steps
    if config["type"] == "Seq2Seq":                   # letters 1.. padded after each length with 0
        inputs = rng.integers(1, config["source_vocab_size"], (steps, batch))
        inputs[np.arange(steps)[:, None] >= lengths[None, :]] = 0
    elif config.get("vocab_size") or config["type"] == "Embedding":
        vocab = config.get("vocab_size") or config["num_embeddings"]
        inputs = rng.integers(0, vocab, (steps, batch))
    else:
        size = config.get("input_size") or config.get("in_features")
        inputs = rng.standard_normal((steps, batch, size)).astype(model.dtype)
    if config.get("batch_first"):
        inputs = np.swapaxes(inputs, 0, 1).copy()
    return inputs, (None if config["type"] in ("Linear", "Embedding") else lengths)


def max_difference(model, module, inputs, lengths=None):
    """The largest |difference| between what ``model`` (numpyrnn) and ``module`` (torch)
    compute on ``inputs``: outputs, and for CharLM and recurrent layers the final state too.
    Both are put in eval mode for it (dropout off) and back in their modes after."""
    torch = importlib.import_module("torch")
    modes = model.training, module.training
    model.eval()
    module.eval()
    try:
        kind = model.config()["type"]
        # numpyrnn's forward first: its checks refuse bad inputs and lengths by name, before
        # torch sees them; torch then gets what numpyrnn accepted, in the model's dtype.
        if kind == "Seq2Seq":                # teacher-forced on the model's own greedy decoding
            _, targets = model.forward(inputs, None, lengths)
            ours = [model.forward(inputs, targets, lengths)[1]]
        elif kind in ("SequenceClassifier", "SequenceRegressor"):
            ours = [model.forward(inputs, None, lengths)[1]]
        elif kind == "CharLM":
            ours = [model.forward(inputs, None, lengths)[1], *_parts(model.final_state)]
        elif kind in ("Linear", "Embedding"):
            if lengths is not None:
                raise ValueError(f"lengths applies to sequences; a {kind} takes inputs only: leave lengths out")
            ours = [model.forward(inputs)]
        else:
            y, state = model.forward(inputs, None, lengths)
            ours = [y, *_parts(state)]
        x = np.asarray(inputs)
        x = x.astype(model.dtype) if x.dtype.kind == "f" else x.astype(np.int64)
        t_inputs = torch.from_numpy(np.ascontiguousarray(x))
        t_lengths = None if lengths is None else torch.as_tensor(np.asarray(lengths, dtype=np.int64))
        with torch.no_grad():
            if kind == "Seq2Seq":
                theirs = [module(t_inputs, torch.from_numpy(targets), t_lengths)]
                decoded = module.greedy(t_inputs, t_lengths).numpy()
                if decoded.shape != targets.shape or (decoded != targets).any():
                    raise ValueError("the torch module decodes other tokens than the model (greedy decoding)")
            elif kind in ("SequenceClassifier", "SequenceRegressor"):
                theirs = [module(t_inputs, t_lengths)]
            elif kind == "CharLM":
                logits, state = module(t_inputs, None, t_lengths)
                theirs = [logits, *_parts(state)]
            elif kind in ("Linear", "Embedding"):
                theirs = [module(t_inputs)]
            else:
                t_y, t_state = _import_torch_modules().run_recurrent(module, t_inputs, None, t_lengths)
                theirs = [t_y, *_parts(t_state)]
        if [tuple(a.shape) for a in ours] != [tuple(b.shape) for b in theirs]:
            raise ValueError(f"shapes differ: numpyrnn {[a.shape for a in ours]}, torch {[tuple(b.shape) for b in theirs]}")
        return max(float(np.max(np.abs(asnumpy(a) - b.numpy()), initial=0.0)) for a, b in zip(ours, theirs))
    finally:
        model.train(modes[0])
        module.train(modes[1])


def _parts(state):
    """A recurrent state as a tuple of arrays: (h,) or (h, c)."""
    return state if isinstance(state, tuple) else (state,)
