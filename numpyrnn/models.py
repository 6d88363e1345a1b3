"""Models: a recurrent layer between an input (token ids or features) and a loss.

``SequenceClassifier``   ids → Embedding (or features) → RNN/LSTM/GRU → pooling → Linear →
                         softmax cross-entropy (binary cross-entropy with ``num_classes=1``)
``SequenceRegressor``    features → RNN/LSTM/GRU → last step (or every step) → Linear → MSE
``CharLM``               ids → Embedding → RNN/LSTM/GRU → Linear at every step → cross-entropy
                         over the next token; the final state can be carried to the next chunk

Each model: ``loss, outputs = model.forward(inputs, targets, lengths=None)`` (the loss is a float,
None without targets); ``model.backward()`` then adds the gradient of that loss into
``model.grads``.  Parameters carry dotted names (``rnn.weight_ih_l0``, ``head.bias``), and
``model.config()`` holds what :func:`build` needs to make the same model again.

Inputs are time-major, (T, B) ids or (T, B, I) features, unless ``batch_first=True``.
Every model takes the recurrent layer's options: ``num_layers``, ``dropout``, ``nonlinearity``
(RNN), ``reset_after`` (GRU) and ``impl`` ("fast", the default; "reference", the textbook
loop over the cell's step functions; "generic", the loop written once for any cell; see
:mod:`numpyrnn.layers.recurrent`).

``cell`` is a registered cell's name ("rnn", "lstm", "gru", or one of your own registered with
``numpyrnn.cells.register``) or a :class:`~numpyrnn.cells.Cell` instance.  The config names the
three textbook cells as before ("lstm", with ``nonlinearity`` and ``reset_after`` beside it);
any other cell by its name and options, ``{"name": ..., "options": {...}}``.
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np

from . import backend, cells, losses
from . import cells as _cells          # ``cells`` is also build's argument
from .backend import asnumpy
from .layers import GRU, LSTM, RNN, Embedding, Linear, Module, Recurrent
from .layers.linear import as_indices
from .layers.pooling import check_pooling, pool_backward, pool_forward
from .validation import as_float_array, as_lengths, check_int, check_probability

def cell_setting(cell, nonlinearity="tanh", reset_after=True):
    """What a model records of its cell, and the cell: ``(config value, nonlinearity,
    reset_after, Cell)``.  The config value is the cell's record (:meth:`Cell.record`: the
    three textbook cells by name, their options in ``nonlinearity`` and ``reset_after``, which
    every config keeps; any other cell by its config, ``{"name": ..., "options": {...}}``).  A
    name is made with the model's ``nonlinearity`` and ``reset_after`` where the cell takes them
    (:func:`numpyrnn.cells.from_record`)."""
    if isinstance(cell, str):
        cell = cells.from_record(cell, nonlinearity=nonlinearity, reset_after=reset_after)
    cell = cells.resolve(cell)
    record = cell.record()
    if isinstance(record, str):                      # by name: its options beside it
        nonlinearity = cell.options.get("nonlinearity", nonlinearity)
        reset_after = cell.options.get("reset_after", reset_after)
    return record, nonlinearity, reset_after, cell


def _child_seeds(seed, n):
    """n independent integer seeds derived from one (None: fresh entropy)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


#: the regularisers of training (derivations §16), off by default and at evaluation: a model
#: option each, and the `train` / `compare` flags of the same names
REGULARISERS = ("input_dropout", "embedding_dropout", "recurrent_dropout", "zoneout", "zoneout_c")
#: those that change nothing at evaluation (zoneout does: each state mixes in its previous value)
TRAINING_ONLY = ("input_dropout", "embedding_dropout", "recurrent_dropout")


class SequenceModel(Module):
    """What the models share: the recurrent layer, the input layout, the config."""

    #: the regularisers every model takes by name (:data:`REGULARISERS`)
    REGULARISERS = REGULARISERS

    def __init__(self, config, *, dtype, device):
        super().__init__(dtype=dtype, device=device)
        self._config = dict(config, dtype=self.dtype.name)
        self.vocab = None        # token strings in id order, when the inputs are tokens of a text
        self.classes = None      # class names in label order, for a classifier that knows them
        self.tokenizer = None    # {"name", "version"} of numpyrnn.text's tokenizer of its texts

    def config(self) -> dict:
        """Everything :func:`build` needs to rebuild this model (parameters aside)."""
        return {"type": type(self).__name__, **self._config}

    def __repr__(self):
        # nonlinearity and reset_after are the RNN's and the GRU's options, kept in every config
        # (older files have them): shown only for a cell that has them
        cell_options = self.rnn.cell.options if getattr(self, "rnn", None) is not None else {}
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items()
                         if k not in ("nonlinearity", "reset_after") or k in cell_options)
        return f"{type(self).__name__}({args})"

    def _make_recurrent(self, cell, input_size, hidden_size, num_layers, bidirectional, dropout, impl, seed,
                        regularisers=None):
        """The recurrent layer over ``cell`` (a Cell): :meth:`Recurrent.over`, RNN, LSTM or GRU
        for the cells those classes make, :class:`~numpyrnn.Recurrent` for any other."""
        return Recurrent.over(cell, input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                              dropout=dropout, impl=impl, dtype=self.dtype, seed=seed, device=self.device,
                              **(regularisers or {}))

    def _regularisers(self, seed, **given):
        """Record the regularisers (:data:`REGULARISERS`, by name; in the config only when on, as
        older files lack them), make embedding dropout's generator (the model's own, saved with
        the run's generators), and return the recurrent layer's (all but embedding dropout, which
        acts here)."""
        unknown = sorted(set(given) - set(REGULARISERS))
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r} (its "
                            f"regularisers are {', '.join(REGULARISERS)})")
        values = {name: check_probability(name, given.get(name, 0.0)) for name in REGULARISERS}
        self.embedding_dropout = values["embedding_dropout"]
        if self.embedding_dropout and getattr(self, "embedding", None) is None:
            raise ValueError("embedding_dropout drops word types of an embedding: this model reads features, not "
                             "token ids (give vocab_size)")
        self._config.update({k: values[k] for k in REGULARISERS if values[k]})
        self._embedding_rng = np.random.default_rng(_child_seeds(seed, 4)[3])
        self._embedding_mask = None
        return {k: v for k, v in values.items() if k != "embedding_dropout"}

    def _embed(self, ids):
        """The embeddings of time-major ``ids``; with embedding dropout (Gal & Ghahramani 2016),
        each sequence drops whole word types: every occurrence of a dropped id embeds as 0, the
        kept ones scaled by 1/(1−p) (derivations §16)."""
        x = self.embedding.forward(ids)
        self._embedding_mask = None
        if self.training and self.embedding_dropout:
            T, B = ids.shape
            keep = self._embedding_rng.random((B, self.embedding.num_embeddings)) >= self.embedding_dropout
            ids_np = asnumpy(ids)
            mask = keep[np.arange(B)[None, :], ids_np].astype(self.dtype) / self.dtype.type(1 - self.embedding_dropout)
            self._embedding_mask = self.xp.asarray(mask[..., None])             # (T, B, 1)
            x = x * self._embedding_mask
        return x

    def _embed_backward(self, dx):
        if self._embedding_mask is not None:
            dx = dx * self._embedding_mask                 # the dropped occurrences get no gradient (§16)
        return self.embedding.backward(dx)

    def rng_state(self) -> dict:
        return {**super().rng_state(), "embedding_dropout": self._embedding_rng.bit_generator.state}

    def set_rng_state(self, state: dict):
        super().set_rng_state(state)
        if "embedding_dropout" in state:                   # runs saved before it existed lack it
            self._embedding_rng.bit_generator.state = state["embedding_dropout"]

    @property
    def cell(self):
        """The recurrent layer's :class:`~numpyrnn.cells.Cell`."""
        return self.rnn.cell

    def _time_major_ids(self, ids, name="inputs"):
        ids = as_indices(name, ids, self.embedding.num_embeddings)
        if ids.ndim != 2:
            layout = "(B, T)" if self.batch_first else "(T, B)"
            raise ValueError(f"{name} must be a 2-d array of token ids {layout}, got shape {ids.shape}")
        return ids.T if self.batch_first else ids

    def _time_major_features(self, x, input_size):
        x = as_float_array("inputs", x, self.dtype, self.device)
        if x.ndim != 3 or x.shape[-1] != input_size:
            layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
            raise ValueError(f"inputs must be a 3-d array {layout} with input_size={input_size}, "
                             f"got shape {x.shape}")
        return x.transpose(1, 0, 2) if self.batch_first else x

    def _step_mask(self, lengths, T, B):
        """(T, B) booleans, True at real steps; None when every step is real."""
        if lengths is None:
            return None
        lengths = as_lengths(lengths, T, B)
        return self.xp.asarray(np.arange(T)[:, None] < lengths[None, :])

    def _needs_cache(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() needs a forward() with targets first")
        return self._cache


class SequenceClassifier(SequenceModel):
    """Classify whole sequences: inputs → [Embedding] → recurrent → pooling → Linear → logits.

    Token input: give ``vocab_size`` (and ``embedding_dim``, ``padding_idx``); dense input: give
    ``input_size``.  ``pooling`` is ``"last"`` (each sequence's last real step; with two
    directions, the reverse half at t = 0), ``"mean"`` or ``"max"`` over real steps.
    ``num_classes=1`` gives a binary classifier trained with binary cross-entropy on one logit.
    """

    def __init__(self, cell="lstm", *, num_classes, hidden_size=64, vocab_size=None,
                 embedding_dim=32, input_size=None, num_layers=1, bidirectional=False,
                 dropout=0.0, pooling="last", padding_idx=None, batch_first=False,
                 nonlinearity="tanh", reset_after=True, impl="fast", dtype=np.float32, seed=None, device="auto",
                 **regularisers):
        cell, nonlinearity, reset_after, cell_object = cell_setting(cell, nonlinearity, reset_after)
        check_pooling(pooling)
        if (vocab_size is None) == (input_size is None):
            raise ValueError("give exactly one of vocab_size (token-id inputs) and input_size "
                             f"(feature inputs), got vocab_size={vocab_size!r}, input_size={input_size!r}")
        num_classes = check_int("num_classes", num_classes, 1)
        super().__init__(dict(cell=cell, num_classes=num_classes, hidden_size=hidden_size,
                              vocab_size=vocab_size, embedding_dim=embedding_dim, input_size=input_size,
                              num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                              pooling=pooling, padding_idx=padding_idx, batch_first=batch_first,
                              nonlinearity=nonlinearity, reset_after=reset_after, impl=impl),
                         dtype=dtype, device=device)
        self.num_classes, self.pooling, self.batch_first = num_classes, pooling, bool(batch_first)
        seeds = _child_seeds(seed, 3)
        self.embedding = None
        if vocab_size is not None:
            self.embedding = Embedding(vocab_size, embedding_dim, padding_idx, dtype=self.dtype,
                                       seed=seeds[0], device=self.device)
            rnn_input = self.embedding.embedding_dim
        else:
            rnn_input = check_int("input_size", input_size, 1)
        regularisers = self._regularisers(seed, **regularisers)
        self.rnn = self._make_recurrent(cell_object, rnn_input, hidden_size, num_layers, bidirectional,
                                        dropout, impl, seeds[1], regularisers)
        self.head = Linear(self.rnn.hidden_size * self.rnn.num_directions, num_classes,
                           dtype=self.dtype, seed=seeds[2], device=self.device)

    def forward(self, inputs, targets=None, lengths=None):
        """Returns (loss, logits (B, num_classes)); loss is None without targets."""
        if self.embedding is not None:
            ids = self._time_major_ids(inputs)
            x = self._embed(ids)                                  # (T, B, E)
        else:
            x = self._time_major_features(inputs, self.rnn.input_size)
        y, _ = self.rnn.forward(x, None, lengths)                 # (T, B, D·H)
        pooled, pool_cache = pool_forward(y, lengths, self.pooling, self.rnn.num_directions)
        logits = self.head.forward(pooled, check=False)                        # (B, C)
        self._cache = None
        if targets is None:
            return None, logits
        if self.num_classes == 1:
            targets = self.xp.asarray(targets)
            targets = targets.reshape(logits.shape) if targets.size == logits.size else targets
            loss, loss_cache = losses.binary_cross_entropy_with_logits(
                logits, targets.astype(self.dtype) if targets.dtype.kind in "biu" else targets)
        else:
            loss, loss_cache = losses.cross_entropy(logits, targets)
        self._cache = (pool_cache, loss_cache)
        return float(loss), logits


    def backward(self):
        """Gradient of the last forward's loss into ``grads``.  Returns ∂L/∂inputs for feature
        inputs (None for token ids)."""
        pool_cache, loss_cache = self._needs_cache()
        if self.num_classes == 1:
            dlogits = losses.binary_cross_entropy_with_logits_backward(1.0, loss_cache)
        else:
            dlogits = losses.cross_entropy_backward(1.0, loss_cache)
        dpooled = self.head.backward(dlogits)
        dy = pool_backward(dpooled, pool_cache)
        dx, _ = self.rnn.backward(dy)
        if self.embedding is not None:
            return self._embed_backward(dx)
        return dx.transpose(1, 0, 2).copy() if self.batch_first else dx

    def classify(self, texts):
        """The class of each raw text, with its probability: a list of (class name, probability).

        Needs what a model trained on text keeps (its vocabulary, its tokenizer, its class
        names; a model saved before class names were kept calls them "0", "1", ...): the text
        is tokenized as in training, unknown words become <unk>."""
        from . import text as tokenizers

        if isinstance(texts, str) or not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
        if not texts:
            return []
        if self.embedding is None or self.vocab is None or self.tokenizer is None:
            raise ValueError("classify reads raw text: the model must have been trained on text (a vocabulary and a "
                             "tokenizer, as the sentiment task's models have)")
        tokenize = tokenizers.tokenizer(self.tokenizer)
        index = {t: i for i, t in enumerate(self.vocab)}
        unknown = index.get("<unk>", 1)
        ids = [[index.get(t, unknown) for t in tokenize(text)] or [unknown] for text in texts]
        T = max(len(s) for s in ids)
        batch = np.zeros((len(ids), T), np.int64)
        for b, s in enumerate(ids):
            batch[b, :len(s)] = s
        lengths = np.array([len(s) for s in ids])
        was_training = self.training
        self.eval()
        try:
            _, logits = self.forward(batch.T if not self.batch_first else batch, None, lengths)
        finally:
            self.train(was_training)
        logits = asnumpy(logits).astype(np.float64)
        names = self.classes or tuple(str(k) for k in range(max(self.num_classes, 2)))
        if self.num_classes == 1:
            p = 1 / (1 + np.exp(-logits[:, 0]))
            return [(names[1], float(q)) if q > 0.5 else (names[0], float(1 - q)) for q in p]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return [(names[k], float(row[k])) for row, k in zip(p, p.argmax(axis=1))]

    def predict(self, inputs, lengths=None):
        """Predicted class of each sequence, (B,) ints (for num_classes=1: logit > 0)."""
        _, logits = self.forward(inputs, None, lengths)
        logits = asnumpy(logits)
        return (logits[:, 0] > 0).astype(np.int64) if self.num_classes == 1 else logits.argmax(axis=1)


class SequenceRegressor(SequenceModel):
    """Regress real values: features → recurrent → (pooled, or every step) → Linear; MSE loss.

    With ``per_step=False`` one prediction per sequence, (B, output_size), from the pooled
    output (``pooling="last"`` by default); with ``per_step=True`` one per step,
    (T, B, output_size), and padded steps do not count in the loss.
    """

    def __init__(self, cell="lstm", *, input_size, hidden_size=64, output_size=1, per_step=False,
                 pooling="last", num_layers=1, bidirectional=False, dropout=0.0, batch_first=False,
                 nonlinearity="tanh", reset_after=True, impl="fast", dtype=np.float32, seed=None, device="auto",
                 **regularisers):
        cell, nonlinearity, reset_after, cell_object = cell_setting(cell, nonlinearity, reset_after)
        check_pooling(pooling)
        output_size = check_int("output_size", output_size, 1)
        super().__init__(dict(cell=cell, input_size=input_size, hidden_size=hidden_size,
                              output_size=output_size, per_step=bool(per_step), pooling=pooling,
                              num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                              batch_first=batch_first, nonlinearity=nonlinearity, reset_after=reset_after, impl=impl),
                         dtype=dtype, device=device)
        self.per_step, self.pooling, self.batch_first = bool(per_step), pooling, bool(batch_first)
        self.output_size = output_size
        seeds = _child_seeds(seed, 2)
        regularisers = self._regularisers(seed, **regularisers)
        self.rnn = self._make_recurrent(cell_object, check_int("input_size", input_size, 1), hidden_size,
                                        num_layers, bidirectional, dropout, impl, seeds[0], regularisers)
        self.head = Linear(self.rnn.hidden_size * self.rnn.num_directions, output_size,
                           dtype=self.dtype, seed=seeds[1], device=self.device)

    def forward(self, inputs, targets=None, lengths=None):
        """Returns (loss, predictions); loss is None without targets."""
        x = self._time_major_features(inputs, self.rnn.input_size)
        T, B = x.shape[:2]
        y, _ = self.rnn.forward(x, None, lengths)
        self._cache = None
        if self.per_step:
            predictions = self.head.forward(y, check=False)                    # (T, B, O)
            pool_cache, mask = None, self._step_mask(lengths, T, B)
            user_predictions = predictions.transpose(1, 0, 2) if self.batch_first else predictions
        else:
            pooled, pool_cache = pool_forward(y, lengths, self.pooling, self.rnn.num_directions)
            predictions, mask = self.head.forward(pooled, check=False), None   # (B, O)
            user_predictions = predictions
        if targets is None:
            return None, user_predictions
        targets = as_float_array("targets", targets, self.dtype, self.device)
        if self.per_step and self.batch_first and targets.ndim == 3:
            targets = targets.transpose(1, 0, 2)
        if self.output_size == 1 and targets.shape == predictions.shape[:-1]:
            targets = targets[..., None]                          # (B,) for (B, 1), and per step alike
        loss, loss_cache = losses.mse(predictions, targets, mask)
        self._cache = (pool_cache, loss_cache)
        return float(loss), user_predictions


    def stream(self, state=None) -> Stream:
        """A :class:`Stream`: the model fed one step at a time as data arrives, each step's
        prediction returned at once, the state carried between calls (``state``: the initial
        one, None for zeros).  For a model whose prediction at step t reads steps ≤ t only: one
        prediction per step (``per_step=True``) or the last step's (``pooling="last"``), and
        one direction."""
        if not self.per_step and self.pooling != "last":
            raise ValueError(f"stream(): the prediction of a model pooled by {self.pooling!r} reads every step of "
                             "the sequence; a stream predicts at each step from the steps so far (per_step=True, "
                             "or pooling='last')")
        if self.rnn.bidirectional:
            raise ValueError("stream(): a bidirectional model reads each sequence from its end too; a stream needs "
                             "bidirectional=False")
        return Stream(self, state)

    def backward(self):
        """Gradient of the last forward's loss into ``grads``; returns ∂L/∂inputs."""
        pool_cache, loss_cache = self._needs_cache()
        dpredictions = losses.mse_backward(1.0, loss_cache)
        dhead = self.head.backward(dpredictions)
        dy = dhead if self.per_step else pool_backward(dhead, pool_cache)
        dx, _ = self.rnn.backward(dy)
        return dx.transpose(1, 0, 2).copy() if self.batch_first else dx


class Stream:
    """A regressor fed one step at a time (:meth:`SequenceRegressor.stream`): ``step(x_t)`` takes
    the features of one step, (I,) for one sequence or (B, I) for a batch of them (a number when
    I = 1), and returns the prediction there, (O,) or (B, O); the recurrent state is carried
    from call to call (``state``, as the layer's forward takes and returns it; ``reset()``
    starts again from zeros).  The predictions equal the model's forward over the whole sequence
    at evaluation (to rounding).

    The built-in RNN, LSTM and GRU step through ``cells/fast/stream.py`` (their step's equations
    without the checks and the cache a backward needs; the weights read as they are at each
    step); other cells, and ``impl="reference"``, through the cell's own ``step_forward``.

    Each step runs under numpyrnn's thread policy (its products on one BLAS thread).  Entering
    and leaving the policy costs more than a small step itself, so a loop that feeds a stream
    can hold it once: ``with model.stream() as stream: ...`` (inside, NumPy's BLAS runs on one
    thread)."""

    def __init__(self, model, state=None):
        self.model, self.steps = model, 0
        self._state, self._given = None, state
        self._region = None

    @property
    def state(self):
        """The state after the last step, as the layer's forward returns it (None before a step)."""
        if self._state is None:
            return self._given
        return self.model.rnn._pack_state(self._state, self._unbatched)

    def step(self, x_t):
        rnn = self.model.rnn
        if isinstance(x_t, numbers.Real) and not isinstance(x_t, bool):
            x_t = np.full(1, x_t, dtype=rnn.dtype)
        x, unbatched = rnn._step_input(x_t)
        if self._state is not None and (self._state[0].shape[1], self._unbatched) != (x.shape[0], unbatched):
            carried = "one sequence" if self._unbatched else f"a batch of {self._state[0].shape[1]}"
            raise ValueError(f"x_t has shape {np.shape(x_t)}, but the stream carries the state of {carried}: "
                             "feed it steps of the same shape, or reset() it first")
        with backend.thread_policy():
            if self._state is None:                  # the first step: the initial state, checked
                self._state, self._unbatched = rnn._prepare_state(self._given, x.shape[0], unbatched), unbatched
            y, self._state = rnn._step(x, self._state)
            prediction = self.model.head.apply(y)      # y W^T + b: nothing kept for a backward
        self.steps += 1
        return prediction[0] if unbatched else prediction

    def reset(self, state=None):
        """Start again from ``state`` (None: zeros)."""
        self._state, self._given, self.steps = None, state, 0

    def __enter__(self):
        self._region = backend.thread_policy()
        self._region.__enter__()
        return self

    def __exit__(self, *exc):
        region, self._region = self._region, None
        return region.__exit__(*exc)


class CharLM(SequenceModel):
    """A character (or token) language model: predict token t+1 from tokens ≤ t.

    ``forward(inputs, targets, lengths=None, state=None)``: inputs and targets are (T, B) ids,
    targets usually inputs shifted by one.  The final recurrent state is kept in
    ``final_state``; pass it as ``state`` to the next chunk for truncated backpropagation
    through time (the backward of a chunk stops at its first step).
    """

    def __init__(self, cell="lstm", *, vocab_size, hidden_size=128, embedding_dim=None,
                 num_layers=1, dropout=0.0, batch_first=False, nonlinearity="tanh",
                 reset_after=True, impl="fast", dtype=np.float32, seed=None, device="auto", **regularisers):
        cell, nonlinearity, reset_after, cell_object = cell_setting(cell, nonlinearity, reset_after)
        vocab_size = check_int("vocab_size", vocab_size, 1)
        hidden_size = check_int("hidden_size", hidden_size, 1)
        embedding_dim = hidden_size if embedding_dim is None else embedding_dim
        super().__init__(dict(cell=cell, vocab_size=vocab_size, hidden_size=hidden_size,
                              embedding_dim=embedding_dim, num_layers=num_layers, dropout=dropout,
                              batch_first=batch_first, nonlinearity=nonlinearity, reset_after=reset_after, impl=impl),
                         dtype=dtype, device=device)
        self.batch_first, self.vocab_size = bool(batch_first), vocab_size
        seeds = _child_seeds(seed, 3)
        self.embedding = Embedding(vocab_size, embedding_dim, dtype=self.dtype, seed=seeds[0],
                                   device=self.device)
        regularisers = self._regularisers(seed, **regularisers)
        self.rnn = self._make_recurrent(cell_object, embedding_dim, hidden_size, num_layers, False,
                                        dropout, impl, seeds[1], regularisers)
        self.head = Linear(hidden_size, vocab_size, dtype=self.dtype, seed=seeds[2], device=self.device)
        self.final_state = None

    def forward(self, inputs, targets=None, lengths=None, state=None):
        """Returns (loss, logits (T, B, vocab_size)); loss is None without targets."""
        ids = self._time_major_ids(inputs)
        T, B = ids.shape
        x = self._embed(ids)
        y, state_n = self.rnn.forward(x, state, lengths)
        self.final_state = state_n                                # carried by the caller, if it wants
        logits = self.head.forward(y, check=False)                             # (T, B, V)
        user_logits = logits.transpose(1, 0, 2) if self.batch_first else logits
        self._cache = None
        if targets is None:
            return None, user_logits
        target_ids = self._time_major_ids(targets, "targets")
        if target_ids.shape != (T, B):
            raise ValueError(f"targets must have the inputs' shape {ids.shape[::-1] if self.batch_first else ids.shape}, "
                             f"got {np.shape(targets)}")
        loss, loss_cache = losses.cross_entropy(logits, target_ids, self._step_mask(lengths, T, B))
        self._cache = loss_cache
        return float(loss), user_logits


    def backward(self):
        """Gradient of the last forward's loss into ``grads`` (stopping at the chunk's start)."""
        loss_cache = self._needs_cache()
        dlogits = losses.cross_entropy_backward(1.0, loss_cache)
        dy = self.head.backward(dlogits)
        dx, _ = self.rnn.backward(dy)
        self._embed_backward(dx)

    def sample(self, length, *, prime=(), temperature=1.0, seed=None):
        """Generate ``length`` token ids after the ids in ``prime``, drawing each from
        softmax(logits / temperature).  Dropout is off while sampling."""
        length = check_int("length", length, 0)
        if not isinstance(temperature, numbers.Real) or not temperature > 0:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if prime is None or (isinstance(prime, (list, tuple)) and not prime):
            prime = []                                            # no prime (an empty list has no dtype)
        else:
            prime = [int(i) for i in as_indices("prime", prime, self.vocab_size).reshape(-1)]
        rng = np.random.default_rng(seed)
        feed = prime or [int(rng.integers(self.vocab_size))]     # no prime: start anywhere
        was_training = self.training
        self.eval()
        try:
            state = None
            if len(feed) > 1:                                     # read the prime in one pass
                _, state = self.rnn.forward(self.embedding.forward(np.array(feed[:-1])[:, None]))
            token, out = feed[-1], []
            for _ in range(length):
                y, state = self.rnn.forward(self.embedding.forward(np.array([[token]])), state)
                logits = asnumpy(self.head.forward(y, check=False))[0, 0].astype(np.float64) / temperature
                p = np.exp(logits - logits.max())                 # softmax(logits / temperature)
                token = int(rng.choice(self.vocab_size, p=p / p.sum()))
                out.append(token)
            return out
        finally:
            self.train(was_training)


from .seq2seq import Seq2Seq  # noqa: E402  (it builds on SequenceModel, above)

MODELS = {"SequenceClassifier": SequenceClassifier, "SequenceRegressor": SequenceRegressor,
          "CharLM": CharLM, "Seq2Seq": Seq2Seq}

#: every module that :func:`build` makes from its ``config()`` (and so that numpyrnn.save keeps
#: and numpyrnn.load rebuilds): the models and the layers
BUILDABLE = {**MODELS, "Recurrent": Recurrent, "RNN": RNN, "LSTM": LSTM, "GRU": GRU, "Linear": Linear,
             "Embedding": Embedding}


def buildable(module) -> bool:
    """Whether :func:`build` can make ``module`` again from its config: one of :data:`BUILDABLE`
    itself, not a subclass (whose own arguments build cannot know)."""
    return type(module) in BUILDABLE.values() and callable(getattr(module, "config", None))


def build(config, *, device="auto", seed=None, cells=()):
    """A new model or layer from its ``config()`` (weights freshly initialised; load a state
    dict after).  A cell named in the config is looked up in ``cells`` (classes handed over),
    then in the registry; no code is ever imported by a name in a config."""
    if not isinstance(config, dict) or config.get("type") not in BUILDABLE:
        raise ValueError(f"config must be a dict whose 'type' is one of {', '.join(BUILDABLE)}, got "
                         f"{config.get('type') if isinstance(config, dict) else type(config).__name__!r}")
    cls = BUILDABLE[config["type"]]
    kwargs = {k: v for k, v in config.items() if k != "type"}
    allowed = inspect.signature(cls).parameters
    # the regularisers a model or layer takes by name (its **regularisers)
    unknown = sorted(set(kwargs) - set(allowed) - set(getattr(cls, "REGULARISERS", ())))
    missing = sorted(name for name, p in allowed.items()
                     if p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD and name not in kwargs)
    if unknown or missing:
        raise ValueError(f"config of a {config['type']} " + "; ".join(
            ([f"has unknown keys {unknown}"] if unknown else []) + ([f"lacks {missing}"] if missing else [])))
    if isinstance(kwargs.get("cell"), (dict, str)):    # a model's record of its cell (Cell.record)
        kwargs["cell"] = _cells.from_record(kwargs["cell"], cells, **{
            k: kwargs[k] for k in ("nonlinearity", "reset_after") if k in kwargs})
    return cls(**kwargs, seed=seed, device=device)
