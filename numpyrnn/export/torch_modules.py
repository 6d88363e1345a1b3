"""numpyrnn's models written with standard PyTorch modules, and the file an export writes.

This file needs only PyTorch and the standard library: a project that has no numpyrnn can copy
it and load an exported model with::

    module = load("model.pt")            # torch.load(..., weights_only=True) underneath
    logits = module(ids, lengths)        # ids: (T, B) int64 tensor; lengths: (B,) or None

Each model has the attributes ``embedding`` (``nn.Embedding``, for token inputs), ``rnn``
(``nn.RNN``/``nn.LSTM``/``nn.GRU``) and ``head`` (``nn.Linear``), so its ``state_dict()`` keys
are numpyrnn's (``rnn.weight_ih_l0``, ``head.bias``, ...), with the same shapes and gate order.
What they compute, as numpyrnn does:

``SequenceClassifier``  inputs → [embedding] → rnn → pooling → head → logits (B, num_classes)
``SequenceRegressor``   inputs → rnn → pooling → head → (B, output_size); with ``per_step``,
                        head at every step → (T, B, output_size)
``CharLM``              ids → embedding → rnn → head at every step → (logits (T, B, V), state)

Inputs are time-major unless ``batch_first``.  ``lengths`` (B,) marks each sequence's real
steps: the recurrent layer then reads a packed sequence (``pack_padded_sequence`` with
``enforce_sorted=False``), so padded steps leave the state alone and output zeros.  Pooling:
``"last"`` takes each sequence's last real step (the reverse direction's half at t = 0, where it
ends), ``"mean"`` the average and ``"max"`` the maximum over real steps.

The file (:func:`save`, :func:`load`) is a dict that ``torch.load(path, weights_only=True)``
reads, holding only strings, numbers, lists and tensors:

``format``, ``version``  "numpyrnn-torch-export", 1
``config``               the model's arguments, with ``type`` (the class below) and ``dtype``
``state_dict``           the parameters, as tensors
``vocab``                the token strings in id order (None for feature inputs)
``source_vocab``, ``target_vocab``   an encoder-decoder's (``Seq2Seq``) two, when it has them
"""

from __future__ import annotations

import os
import re

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

FORMAT, VERSION = "numpyrnn-torch-export", 1

RECURRENT = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
POOLINGS = ("last", "mean", "max")

TEXTBOOK_GRU = ("torch.nn.GRU computes only the reset-after GRU, n = tanh(W_in x + b_in + r ⊙ "
                "(W_hn h + b_hn)); this GRU is the textbook reset-before form (reset_after=False), "
                "n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn), for which PyTorch has no module: "
                "its weights in a torch.nn.GRU would compute a different function")


def make_recurrent(cell, input_size, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                   nonlinearity="tanh", bias=True, batch_first=False):
    """``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` with the given arguments."""
    if cell not in RECURRENT:
        raise ValueError(f"cell must be one of {', '.join(map(repr, RECURRENT))}, got {cell!r}")
    options = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    return RECURRENT[cell](input_size, hidden_size, num_layers=num_layers, bias=bias,
                           batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                           **options)


def as_lengths(lengths, T, B):
    """``lengths`` as a (B,) int64 tensor on the CPU (what packing wants), each in 1..T."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths, device="cpu")
    if lengths.shape != (B,) or lengths.dtype.is_floating_point:
        raise ValueError(f"lengths must be {B} integers, got {tuple(lengths.shape)} of {lengths.dtype}")
    if int(lengths.min()) < 1 or int(lengths.max()) > T:
        raise ValueError(f"lengths must lie in 1..{T}, got {lengths.tolist()}")
    return lengths.to(torch.int64)


def run_recurrent(rnn, x, state=None, lengths=None):
    """Run ``rnn`` over x (in its layout: (T, B, I), or (B, T, I) if ``batch_first``), packed
    when ``lengths`` (a (B,) CPU tensor) is given.  Returns (y, zero past each length; the final
    state)."""
    if lengths is None:
        return rnn(x, state)
    packed = pack_padded_sequence(x, lengths, batch_first=rnn.batch_first, enforce_sorted=False)
    y, state_n = rnn(packed, state)
    y, _ = pad_packed_sequence(y, batch_first=rnn.batch_first, total_length=x.shape[int(rnn.batch_first)])
    return y, state_n


def pool(y, lengths, mode, num_directions):
    """y (T, B, D·H) → (B, D·H): the last real step, or the mean or maximum over real steps."""
    T, B, F = y.shape
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.int64)
    lengths = lengths.to(y.device)
    if mode == "last":
        H = F // num_directions
        last = y[lengths - 1, torch.arange(B, device=y.device), :H]    # forward: t = L − 1
        if num_directions == 1:
            return last
        return torch.cat([last, y[0, :, H:]], dim=1)                   # reverse: ends at t = 0
    real = (torch.arange(T, device=y.device)[:, None] < lengths[None, :])[:, :, None]
    if mode == "mean":
        return (y * real).sum(dim=0) / lengths.to(y.dtype)[:, None]
    return y.masked_fill(~real, float("-inf")).amax(dim=0)


class _Model(nn.Module):
    """What the models share: their arguments (``config()``), the input layout, the vocabulary."""

    def __init__(self, **arguments):
        super().__init__()
        self._arguments = arguments
        self.batch_first = bool(arguments.get("batch_first", False))
        self.vocab = None                      # token strings in id order, for text models

    def config(self) -> dict:
        """The arguments that rebuild this model, with ``type`` and ``dtype`` (numpyrnn's form)."""
        dtype = str(next(self.parameters()).dtype).replace("torch.", "")
        return {"type": type(self).__name__, **self._arguments, "dtype": dtype}

    def _time_major(self, inputs):
        return inputs.transpose(0, 1) if self.batch_first else inputs

    def _embed_or_pass(self, inputs):
        x = self._time_major(inputs)
        return x if self.embedding is None else self.embedding(x)


class SequenceClassifier(_Model):
    """inputs → [Embedding] → recurrent → pooling → Linear → logits (B, num_classes)."""

    def __init__(self, cell="lstm", *, num_classes, hidden_size=64, vocab_size=None,
                 embedding_dim=32, input_size=None, num_layers=1, bidirectional=False,
                 dropout=0.0, pooling="last", padding_idx=None, batch_first=False,
                 nonlinearity="tanh"):
        if (vocab_size is None) == (input_size is None):
            raise ValueError("give exactly one of vocab_size and input_size")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        super().__init__(cell=cell, num_classes=num_classes, hidden_size=hidden_size,
                         vocab_size=vocab_size, embedding_dim=embedding_dim, input_size=input_size,
                         num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                         pooling=pooling, padding_idx=padding_idx, batch_first=batch_first,
                         nonlinearity=nonlinearity)
        self.pooling, self.num_directions = pooling, 2 if bidirectional else 1
        self.embedding = None if vocab_size is None else nn.Embedding(vocab_size, embedding_dim, padding_idx)
        self.rnn = make_recurrent(cell, input_size or embedding_dim, hidden_size, num_layers,
                                  bidirectional, dropout, nonlinearity)
        self.head = nn.Linear(hidden_size * self.num_directions, num_classes)

    def forward(self, inputs, lengths=None):
        x = self._embed_or_pass(inputs)                                # (T, B, E or I)
        lengths = as_lengths(lengths, *x.shape[:2])
        y, _ = run_recurrent(self.rnn, x, None, lengths)               # (T, B, D·H)
        return self.head(pool(y, lengths, self.pooling, self.num_directions))

    def predict(self, inputs, lengths=None):
        """The class of each sequence, (B,) (with one logit: logit > 0)."""
        logits = self.forward(inputs, lengths)
        return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(dim=1)


class SequenceRegressor(_Model):
    """features → recurrent → pooling → Linear (B, output_size), or Linear at every step
    (T, B, output_size) with ``per_step=True``."""

    def __init__(self, cell="lstm", *, input_size, hidden_size=64, output_size=1, per_step=False,
                 pooling="last", num_layers=1, bidirectional=False, dropout=0.0,
                 batch_first=False, nonlinearity="tanh"):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        super().__init__(cell=cell, input_size=input_size, hidden_size=hidden_size,
                         output_size=output_size, per_step=per_step, pooling=pooling,
                         num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                         batch_first=batch_first, nonlinearity=nonlinearity)
        self.per_step, self.pooling = bool(per_step), pooling
        self.num_directions = 2 if bidirectional else 1
        self.embedding = None
        self.rnn = make_recurrent(cell, input_size, hidden_size, num_layers, bidirectional,
                                  dropout, nonlinearity)
        self.head = nn.Linear(hidden_size * self.num_directions, output_size)

    def forward(self, inputs, lengths=None):
        x = self._time_major(inputs)
        lengths = as_lengths(lengths, *x.shape[:2])
        y, _ = run_recurrent(self.rnn, x, None, lengths)
        if not self.per_step:
            return self.head(pool(y, lengths, self.pooling, self.num_directions))
        return self._time_major(self.head(y))                          # back to the inputs' layout


class CharLM(_Model):
    """ids → Embedding → recurrent → Linear at every step: (logits of the next token, state).
    Pass the returned state to the next chunk to carry it on."""

    def __init__(self, cell="lstm", *, vocab_size, hidden_size=128, embedding_dim=None,
                 num_layers=1, dropout=0.0, batch_first=False, nonlinearity="tanh"):
        embedding_dim = hidden_size if embedding_dim is None else embedding_dim
        super().__init__(cell=cell, vocab_size=vocab_size, hidden_size=hidden_size,
                         embedding_dim=embedding_dim, num_layers=num_layers, dropout=dropout,
                         batch_first=batch_first, nonlinearity=nonlinearity)
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = make_recurrent(cell, embedding_dim, hidden_size, num_layers, False, dropout,
                                  nonlinearity)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, inputs, state=None, lengths=None):
        x = self._embed_or_pass(inputs)
        lengths = as_lengths(lengths, *x.shape[:2])
        y, state_n = run_recurrent(self.rnn, x, state, lengths)
        return self._time_major(self.head(y)), state_n


class Attention(nn.Module):
    """Scores of a query against keys, as numpyrnn's: "dot" q·k_s, "general" q·W_a k_s (``weight``
    (Hq, Hk)), "additive" v·tanh(W_q q + W_k k_s) (``weight_query``, ``weight_key``, ``v``); the
    softmax over each sequence's real source positions; the context Σ_s α_s k_s."""

    def __init__(self, query_size, key_size, form="general", attention_size=None):
        super().__init__()
        self.form = form
        if form == "general":
            self.weight = nn.Parameter(torch.empty(query_size, key_size))
        elif form == "additive":
            size = key_size if attention_size is None else attention_size
            self.weight_query = nn.Parameter(torch.empty(size, query_size))
            self.weight_key = nn.Parameter(torch.empty(size, key_size))
            self.v = nn.Parameter(torch.empty(size))
        elif form != "dot":
            raise ValueError(f"form must be dot, general or additive, got {form!r}")

    def forward(self, queries, keys, lengths=None):
        """queries (T, B, Hq), keys (S, B, Hk) → contexts (T, B, Hk), weights (T, S, B)."""
        if self.form == "dot":
            scores = torch.einsum("tbh,sbh->tsb", queries, keys)
        elif self.form == "general":
            scores = torch.einsum("tbh,hk,sbk->tsb", queries, self.weight, keys)
        else:
            z = (queries @ self.weight_query.T)[:, None] + (keys @ self.weight_key.T)[None]
            scores = torch.tanh(z) @ self.v
        if lengths is not None:
            padding = torch.arange(keys.shape[0], device=keys.device)[:, None] >= lengths.to(keys.device)[None, :]
            scores = scores.masked_fill(padding[None], float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.einsum("tsb,sbh->tbh", weights, keys), weights


class Seq2Seq(_Model):
    """An encoder-decoder with attention, as numpyrnn's: source ids → ``source_embedding`` →
    ``encoder`` (both directions by default) → the bridge (each decoder layer starts from the
    encoder's layer, directions side by side; a state the encoder lacks at zero) → ``decoder``
    over ``target_embedding`` of <s> and the targets → ``attention`` with its state as query →
    ``combine`` tanh(W_c [c; h]) → ``head``.  Ids: 0 pads, the target's 1 and 2 are <s> and </s>.
    ``forward(inputs, targets, lengths)`` gives the teacher-forced logits (T, B, V);
    :meth:`greedy` decodes."""

    def __init__(self, cell="lstm", *, source_vocab_size, target_vocab_size, hidden_size=128, embedding_dim=64,
                 num_layers=1, bidirectional=True, decoder_cell=None, attention="general", attention_size=None,
                 dropout=0.0, max_length=50, batch_first=False, nonlinearity="tanh"):
        super().__init__(cell=cell, source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size,
                         hidden_size=hidden_size, embedding_dim=embedding_dim, num_layers=num_layers,
                         bidirectional=bidirectional, decoder_cell=decoder_cell, attention=attention,
                         attention_size=attention_size, dropout=dropout, max_length=max_length,
                         nonlinearity=nonlinearity)
        decoder_cell = cell if decoder_cell is None else decoder_cell
        D = 2 if bidirectional else 1
        size = D * hidden_size
        layer_dropout = dropout if num_layers > 1 else 0.0
        self.max_length, self.num_directions = max_length, D
        self.source_embedding = nn.Embedding(source_vocab_size, embedding_dim, 0)
        self.encoder = make_recurrent(cell, embedding_dim, hidden_size, num_layers, bidirectional, layer_dropout,
                                      nonlinearity)
        self.target_embedding = nn.Embedding(target_vocab_size, embedding_dim, 0)
        self.decoder = make_recurrent(decoder_cell, embedding_dim, size, num_layers, False, layer_dropout,
                                      nonlinearity)
        self.attention = None if attention is None else Attention(size, size, attention, attention_size)
        self.combine = None if attention is None else nn.Linear(2 * size, size, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(size, target_vocab_size)

    def encode(self, inputs, lengths=None):
        """The encoder's outputs (S, B, D·H) and the decoder's initial state."""
        lengths = as_lengths(lengths, *inputs.shape)
        keys, state = run_recurrent(self.encoder, self.source_embedding(inputs), None, lengths)
        by_name = dict(zip(("h", "c"), state if isinstance(state, tuple) else (state,)))
        L, B = self.encoder.num_layers, inputs.shape[1]
        H, D = self.encoder.hidden_size, self.num_directions
        names = ("h", "c") if isinstance(self.decoder, nn.LSTM) else ("h",)
        state0 = tuple(by_name[n].reshape(L, D, B, H).permute(0, 2, 1, 3).reshape(L, B, D * H) if n in by_name
                       else keys.new_zeros(L, B, D * H) for n in names)
        return keys, lengths, (state0 if len(state0) > 1 else state0[0])

    def _outputs(self, h, keys, lengths):
        if self.attention is None:
            return h
        contexts, _ = self.attention(h, keys, lengths)
        return torch.tanh(self.combine(torch.cat([contexts, h], dim=2)))

    def forward(self, inputs, targets, lengths=None):
        keys, lengths, state = self.encode(inputs, lengths)
        previous = torch.cat([torch.full_like(targets[:1], 1), targets[:-1]])          # <s>, y_1 .. y_{T−1}
        h, _ = self.decoder(self.target_embedding(previous), state)
        return self.head(self.dropout(self._outputs(h, keys, lengths)))

    @torch.no_grad()
    def greedy(self, inputs, lengths=None, max_length=None):
        """Greedy decoding: (T, B) ids, each sequence's tokens then </s> (2), padded with 0."""
        keys, lengths, state = self.encode(inputs, lengths)
        B = inputs.shape[1]
        token = torch.full((1, B), 1, dtype=torch.long, device=inputs.device)
        done = torch.zeros(B, dtype=torch.bool, device=inputs.device)
        out = []
        for _ in range(max_length or self.max_length):
            h, state = self.decoder(self.target_embedding(token), state)
            logits = self.head(self._outputs(h, keys, lengths))[0]
            logits[:, :2] = float("-inf")                       # <pad> and <s> are never decoded
            token = logits.argmax(dim=1, keepdim=True).T
            out.append(token[0].masked_fill(done, 0))
            done |= token[0] == 2
            if bool(done.all()):
                break
        return torch.stack(out)


MODELS = {"SequenceClassifier": SequenceClassifier, "SequenceRegressor": SequenceRegressor,
          "CharLM": CharLM, "Seq2Seq": Seq2Seq}


def _layer(config):
    """One of numpyrnn's layers as its torch.nn twin."""
    c, kind = config, config["type"]
    if kind == "Linear":
        return nn.Linear(c["in_features"], c["out_features"], bias=c["bias"])
    if kind == "Embedding":
        return nn.Embedding(c["num_embeddings"], c["embedding_dim"], c["padding_idx"])
    return make_recurrent(kind.lower(), c["input_size"], c["hidden_size"], c["num_layers"],
                          c["bidirectional"], c["dropout"], c.get("nonlinearity", "tanh"),
                          c["bias"], c["batch_first"])


def build(config):
    """A module from a config (numpyrnn's ``model.config()``, or a file's): one of the models
    above, or for a layer's config its ``torch.nn`` twin.  Weights are torch's fresh ones: load a
    state dict after."""
    config = dict(config)
    kind = config.pop("type", None)
    dtype = getattr(torch, config.pop("dtype", "float32"))
    config.pop("impl", None)                   # how numpyrnn runs its loop, not what it computes
    if not config.pop("reset_after", True):
        raise ValueError(TEXTBOOK_GRU)
    if kind in MODELS:
        return MODELS[kind](**config).to(dtype)
    if kind in ("RNN", "LSTM", "GRU", "Linear", "Embedding"):
        return _layer({"type": kind, **config}).to(dtype)
    raise ValueError(f"config's type must be one of {', '.join(MODELS)}, RNN, LSTM, GRU, Linear "
                     f"or Embedding, got {kind!r}")


#: an encoder-decoder's two vocabularies, kept in the file beside ``vocab``
VOCABULARIES = ("source_vocab", "target_vocab")


def save(module, path, config, vocab=None, classes=None, tokenizer=None):
    """Write ``module``'s parameters, ``config``, ``vocab``, class names and tokenizer spec to
    ``path`` (see the module's doc), and an encoder-decoder's ``source_vocab`` and
    ``target_vocab`` where the module has them."""
    torch.save({"format": FORMAT, "version": VERSION, "config": dict(config),
                "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
                "vocab": None if vocab is None else [str(t) for t in vocab],
                "classes": None if classes is None else [str(c) for c in classes],
                "tokenizer": None if tokenizer is None else dict(tokenizer),
                **{name: [str(t) for t in getattr(module, name)] for name in VOCABULARIES
                   if getattr(module, name, None) is not None}}, path)


#: numpyrnn's tokenizers (numpyrnn.text), written again here so that this file needs only torch;
#: a test holds them equal
_WORDS = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")


def tokenize(text, tokenizer="words"):
    """The tokens numpyrnn makes of ``text``: "words" (lower-cased words and single punctuation
    marks, the sentiment task's) or "characters" (the character model's)."""
    name = tokenizer.get("name") if isinstance(tokenizer, dict) else tokenizer
    if name == "words":
        return _WORDS.findall(text.lower())
    if name == "characters":
        return list(text)
    raise ValueError(f"unknown tokenizer {tokenizer!r}: words or characters")


def classify(module, texts):
    """(class name, probability) for each raw text, with a classifier loaded by :func:`load`
    from a sentiment model's export (its vocabulary, tokenizer and class names)."""
    index = {t: i for i, t in enumerate(module.vocab)}
    ids = [[index.get(t, 1) for t in tokenize(text, module.tokenizer or "words")] or [1] for text in texts]
    batch = torch.zeros(max(map(len, ids)), len(ids), dtype=torch.long)
    for b, s in enumerate(ids):
        batch[:len(s), b] = torch.tensor(s)
    with torch.no_grad():
        logits = module(batch, torch.tensor([len(s) for s in ids]))
    names = module.classes or [str(k) for k in range(max(logits.shape[1], 2))]
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits[:, 0])
        return [(names[1], float(q)) if q > 0.5 else (names[0], float(1 - q)) for q in p]
    p = torch.softmax(logits.double(), dim=1)
    return [(names[int(k)], float(row[k])) for row, k in zip(p, p.argmax(dim=1))]


def load(path, map_location="cpu"):
    """The module saved in ``path`` by an export, weights loaded, in eval mode; its vocabulary
    (or None) in ``module.vocab``."""
    if isinstance(path, (bytes, bytearray)) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be the path of an exported file, got {type(path).__name__}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:                     # torch's own errors for a file it cannot read
        raise ValueError(f"{path}: not a file torch can read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a numpyrnn export (no {FORMAT!r} format tag)")
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: export version {data.get('version')}, this file reads {VERSION}")
    for key, kind in (("config", dict), ("state_dict", dict)):
        if not isinstance(data.get(key), kind):
            raise ValueError(f"{path}: its {key} is missing or not a {kind.__name__} (a damaged export)")
    try:
        module = build(data["config"])
        module.load_state_dict(data["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: its config and state dict do not make a module ({type(exc).__name__}: "
                         f"{exc})") from None
    module.vocab = data.get("vocab")
    module.classes = data.get("classes")
    module.tokenizer = data.get("tokenizer")
    for name in VOCABULARIES:
        if data.get(name) is not None:
            setattr(module, name, data[name])
    return module.eval()
