r"""An encoder–decoder with attention (sequence to sequence), every backward by hand (derivations §19).

    source ids x_1..x_S ──Embedding──► encoder (any cell, stacked, bidirectional)
                                          │ outputs k_1..k_S (S, B, D·H): the keys
                                          │ final states ──bridge──► the decoder's initial state
    <s> y_1 .. y_{T−1} ──Embedding──► decoder (any cell, D·H units) ──► h_1..h_T
                                 attention(h_t; k_1..k_S) ──► c_t          (layers/attention.py, §18)
                                 h̃_t = tanh(W_c [c_t; h_t])                (Luong's attentional layer)
                                 logits_t = W_o h̃_t + b_o ──► cross-entropy against y_t, per real token

What is taken from Luong, Pham & Manning (2015): the scores (``attention="dot"`` q·k_s,
``"general"`` q·W_a k_s) and the attentional layer h̃_t = tanh(W_c[c_t; h_t]), with the
decoder's new state h_t as the query.  Not taken: input feeding (h̃_{t−1} as an input of step t)
— without it the decoder reads only the target tokens, so teacher forcing runs it over all T
steps at once (one call of the recurrent layer, its fast path), and attention then reads every
h_t.  Bahdanau's additive score is the third form, ``attention="additive"``, in the same place
(its query is h_t here, not s_{t−1}).  ``attention=None`` is the plain encoder–decoder: logits_t
= W_o h_t + b_o, the source reaching the decoder only through its initial state.

**The bridge** (how the decoder starts).  The decoder has the encoder's layers and D·H units
(D = 2 for a bidirectional encoder), so its layer l starts from the encoder's layer l: for each
state the decoder's cell carries (``state_names``: h; h and c for the LSTM), the encoder's final
state of that name, both directions side by side, s_{l} = [s_l^→ ; s_l^←]; a state the encoder's
cell lacks starts at zero (a GRU encoder gives an LSTM decoder c = 0; an LSTM encoder's c is
unused by a GRU decoder).  The decoder's size D·H is the keys' size, so Luong's dot form, which
needs the query's size to equal the keys', always has it.

**Token ids.**  Id 0 pads (both vocabularies); the target vocabulary's ids 1 and 2 are <s> and
</s> (:data:`SPECIALS`).  ``targets`` (T, B) hold each sequence's tokens then </s>, padded with 0
after it; the loss counts the real tokens (</s> included) and the padding is nothing more than
masked out: the decoder is causal, so a padded step changes no earlier one.  ``lengths`` (B,)
are the sources' true lengths, as for every model here.
"""

from __future__ import annotations

import numpy as np

from . import losses
from .backend import asnumpy
from .layers import Embedding, Linear
from .layers.attention import FORMS, PARAMETERS, Attention, step_forward
from .layers.linear import as_indices
from .models import SequenceModel, _child_seeds, cell_setting
from .validation import as_lengths, check_int, check_probability

PAD, BOS, EOS = 0, 1, 2
#: the target vocabulary's first three tokens (the source's first is padding)
SPECIALS = ("<pad>", "<s>", "</s>")


class Seq2Seq(SequenceModel):
    """An encoder–decoder with attention (the module's docstring): ``forward(inputs, targets,
    lengths)`` trains it with teacher forcing; :meth:`greedy` and :meth:`beam_search` decode.

    ``Seq2Seq(cell="lstm", *, source_vocab_size, target_vocab_size, hidden_size=128,
    embedding_dim=64, num_layers=1, bidirectional=True, decoder_cell=None, attention="general",
    attention_size=None, dropout=0.0, max_length=50, ...)``: ``cell`` the encoder's cell,
    ``decoder_cell`` the decoder's (None: the same); ``hidden_size`` the encoder's units per
    direction (the decoder has D·H); ``attention`` one of "dot", "general", "additive" or None;
    ``dropout`` acts on h̃_t before the output layer and between stacked layers; ``max_length``
    bounds decoding and the targets a forward takes.
    """

    def __init__(self, cell="lstm", *, source_vocab_size, target_vocab_size, hidden_size=128, embedding_dim=64,
                 num_layers=1, bidirectional=True, decoder_cell=None, attention="general", attention_size=None,
                 dropout=0.0, max_length=50, batch_first=False, nonlinearity="tanh", reset_after=True, impl="fast",
                 dtype=np.float32, seed=None, device="auto"):
        cell, nonlinearity, reset_after, encoder_cell = cell_setting(cell, nonlinearity, reset_after)
        decoder_record, _, _, decoder_cell_object = (
            (None, None, None, encoder_cell) if decoder_cell is None
            else cell_setting(decoder_cell, nonlinearity, reset_after))
        if attention is not None and attention not in FORMS:
            raise ValueError(f"attention must be one of {', '.join(FORMS)} or None (the plain encoder-decoder), "
                             f"got {attention!r}")
        if batch_first:
            raise ValueError("Seq2Seq reads time-major ids (S, B) and (T, B): batch_first is not supported")
        source_vocab_size = check_int("source_vocab_size", source_vocab_size, 2)
        target_vocab_size = check_int("target_vocab_size", target_vocab_size, len(SPECIALS) + 1)
        hidden_size = check_int("hidden_size", hidden_size, 1)
        embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        num_layers = check_int("num_layers", num_layers, 1)
        dropout = check_probability("dropout", dropout)
        max_length = check_int("max_length", max_length, 1)
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise TypeError(f"bidirectional must be True or False, got {bidirectional!r}")
        super().__init__(dict(cell=cell, source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size,
                              hidden_size=hidden_size, embedding_dim=embedding_dim, num_layers=num_layers,
                              bidirectional=bool(bidirectional), decoder_cell=decoder_record, attention=attention,
                              attention_size=attention_size, dropout=dropout, max_length=max_length,
                              nonlinearity=nonlinearity, reset_after=reset_after, impl=impl),
                         dtype=dtype, device=device)
        self.batch_first = False
        self.attention_form, self.dropout, self.max_length = attention, dropout, max_length
        self.source_vocab = self.target_vocab = None      # token strings in id order, when known
        seeds = _child_seeds(seed, 8)
        layer_dropout = dropout if num_layers > 1 else 0.0
        D = 2 if bidirectional else 1
        decoder_size = D * hidden_size
        self.source_embedding = Embedding(source_vocab_size, embedding_dim, PAD, dtype=self.dtype, seed=seeds[0],
                                          device=self.device)
        self.encoder = self._make_recurrent(encoder_cell, embedding_dim, hidden_size, num_layers, bool(bidirectional),
                                            layer_dropout, impl, seeds[1])
        self.target_embedding = Embedding(target_vocab_size, embedding_dim, PAD, dtype=self.dtype, seed=seeds[2],
                                          device=self.device)
        self.decoder = self._make_recurrent(decoder_cell_object, embedding_dim, decoder_size, num_layers, False,
                                            layer_dropout, impl, seeds[3])
        if attention is not None:
            self.attention = Attention(decoder_size, decoder_size, attention, attention_size, dtype=self.dtype,
                                       impl="reference" if impl == "reference" else "fast", seed=seeds[4],
                                       device=self.device)
            self.combine = Linear(2 * decoder_size, decoder_size, bias=False, dtype=self.dtype, seed=seeds[5],
                                  device=self.device)                          # W_c of h̃_t = tanh(W_c [c_t; h_t])
        self.head = Linear(decoder_size, target_vocab_size, dtype=self.dtype, seed=seeds[6], device=self.device)
        self._regularisers(seed)                          # none taken; sets what SequenceModel keeps
        self._dropout_rng = np.random.default_rng(seeds[7])
        self.last_attention = None

    #: the vocabularies a checkpoint keeps beside the weights, and the embedding each names
    VOCABULARIES = {"source_vocab": "source_embedding", "target_vocab": "target_embedding"}

    @property
    def rnn(self):
        """The encoder (what :class:`SequenceModel`'s ``cell`` and the comparisons read)."""
        return self.encoder

    # ------------------------------------------------------------------ the bridge

    def _bridge(self, encoder_state):
        """The decoder's initial state from the encoder's final one (the module's docstring):
        per decoder state name, the encoder's of that name at each layer, directions side by
        side ((L·D, B, H) → (L, B, D·H)); zeros for a name the encoder's cell lacks."""
        encoder_state = encoder_state if isinstance(encoder_state, tuple) else (encoder_state,)
        by_name = dict(zip(self.encoder.cell.state_names, encoder_state))
        L, D, H = self.encoder.num_layers, self.encoder.num_directions, self.encoder.hidden_size
        B = encoder_state[0].shape[1]
        state0 = []
        for name in self.decoder.cell.state_names:
            if name in by_name:                           # s_l = [s_l^→ ; s_l^←]
                state0.append(by_name[name].reshape(L, D, B, H).transpose(0, 2, 1, 3).reshape(L, B, D * H))
            else:
                state0.append(self.xp.zeros((L, B, D * H), self.dtype))
        return tuple(state0) if len(state0) > 1 else state0[0]

    def _bridge_backward(self, dstate0):
        """∂L/∂(the encoder's final states) from ∂L/∂(the decoder's initial ones): each half of
        ∂L/∂s_l goes back to its direction; a state the decoder lacks gets none (None)."""
        dstate0 = dstate0 if isinstance(dstate0, tuple) else (dstate0,)
        by_name = dict(zip(self.decoder.cell.state_names, dstate0))
        L, D, H = self.encoder.num_layers, self.encoder.num_directions, self.encoder.hidden_size
        dstate_n = []
        for name in self.encoder.cell.state_names:
            d = by_name.get(name)
            if d is not None:                             # ∂L/∂s_l^→, ∂L/∂s_l^← = the halves of ∂L/∂s_l
                B = d.shape[1]
                d = d.reshape(L, B, D, H).transpose(0, 2, 1, 3).reshape(L * D, B, H)
            dstate_n.append(d)
        return tuple(dstate_n) if len(dstate_n) > 1 else dstate_n[0]

    # ------------------------------------------------------------------ teacher forcing

    def _source(self, inputs, lengths):
        src = as_indices("inputs", inputs, self.source_embedding.num_embeddings)
        if src.ndim != 2 or src.shape[0] == 0 or src.shape[1] == 0:
            raise ValueError(f"inputs must be a 2-d array of source ids (S, B) with S, B ≥ 1, got shape {src.shape}")
        S, B = src.shape
        return src, (None if lengths is None else as_lengths(lengths, S, B))

    def _targets(self, targets, B):
        tgt = as_indices("targets", targets, self.head.out_features)
        if tgt.ndim != 2 or tgt.shape[1] != B:
            raise ValueError(f"targets must be a 2-d array of target ids (T, B) with the inputs' batch B = {B}, "
                             f"got shape {tgt.shape}")
        T = tgt.shape[0]
        if T == 0 or T > self.max_length:
            raise ValueError(f"targets must have 1..max_length={self.max_length} steps, got {T}; a longer target "
                             "needs a model with a larger max_length")
        real = asnumpy(tgt) != PAD
        if not real[0].all() or (real[1:] & ~real[:-1]).any():
            b = int(np.flatnonzero(~real[0] | (real[1:] & ~real[:-1]).any(axis=0))[0])
            raise ValueError(f"targets: sequence {b} has padding (id {PAD}) before a token; each target is its "
                             "tokens and </s>, then padding only")
        return tgt, self.xp.asarray(real)

    def _encode(self, src, lengths):
        """Encoder outputs (the keys, (S, B, D·H)) and the decoder's initial state."""
        keys, state_n = self.encoder.forward(self.source_embedding.forward(src), None, lengths)
        return keys, self._bridge(state_n)

    def _dropout_mask(self, shape):
        """Inverted dropout on h̃ (training only): keep with 1 − p, scaled by 1/(1 − p)."""
        if not (self.training and self.dropout):
            return None
        keep = self._dropout_rng.random(shape) >= self.dropout
        return self.xp.asarray(keep.astype(self.dtype) / self.dtype.type(1 - self.dropout))

    def forward(self, inputs, targets=None, lengths=None):
        """Teacher forcing: ``inputs`` (S, B) source ids, ``targets`` (T, B) target ids (tokens,
        </s>, padding), ``lengths`` (B,) the sources' lengths.  Returns (loss, logits (T, B, V)),
        the loss the mean cross-entropy over the real target tokens.  Without targets, decodes
        greedily: (None, ids (T, B)), each sequence's tokens then </s>, padded with 0."""
        src, lengths = self._source(inputs, lengths)
        S, B = src.shape
        if targets is None:
            self._cache = None
            return None, self._pad(self.greedy(src, lengths, keep_eos=True), B)
        tgt, real = self._targets(targets, B)
        keys, state0 = self._encode(src, lengths)
        previous = np.concatenate([np.full((1, B), BOS, np.int64), asnumpy(tgt)[:-1]])  # <s>, y_1 .. y_{T−1}
        h, _ = self.decoder.forward(self.target_embedding.forward(previous), state0)       # h_t (T, B, D·H)
        if self.attention_form is None:
            out = h                                               # no attention: the head reads h_t
        else:
            contexts, self.last_attention = self.attention.forward(h, keys, lengths, check=False)  # c_t (§18)
            out = self.xp.tanh(self.combine.forward(self.xp.concatenate([contexts, h], axis=2), check=False))  # h̃_t
        mask = self._dropout_mask(out.shape)
        logits = self.head.forward(out if mask is None else out * mask, check=False)        # (T, B, V)
        loss, loss_cache = losses.cross_entropy(logits, tgt, real)
        self._cache = (out, mask, loss_cache)
        return float(loss), logits

    def backward(self):
        """Gradient of the last forward's loss into ``grads`` (derivations §19).  Returns None
        (the inputs are ids)."""
        out, mask, loss_cache = self._needs_cache()
        dlogits = losses.cross_entropy_backward(1.0, loss_cache)     # ∂L/∂logits_t = (p_t − onehot(y_t)) m_t / N
        dout = self.head.backward(dlogits)                           # ∂L/∂h̃_t = ∂L/∂logits_t W_o
        if mask is not None:
            dout = dout * mask                                       # the dropped units get none
        dkeys = None
        if self.attention_form is None:
            dh = dout
        else:
            dz = dout * (1 - out * out)                              # ∂L/∂z_t = ∂L/∂h̃_t ⊙ (1 − h̃_t²)
            dcombined = self.combine.backward(dz)                    # ∂L/∂[c_t; h_t] = ∂L/∂z_t W_c
            size = out.shape[2]
            dcontexts, dh = dcombined[..., :size], dcombined[..., size:]
            dqueries, dkeys = self.attention.backward(dcontexts)     # ∂L/∂h_t (as the query), Σ_t ∂L/∂k_s (§18)
            dh = dh + dqueries                                       # h_t feeds W_c and the query: both paths
        dx, dstate0 = self.decoder.backward(dh)                      # BPTT through the decoder, to its h_{−1}
        self.target_embedding.backward(dx)
        dx, _ = self.encoder.backward(dkeys, self._bridge_backward(dstate0))   # keys and final states
        self.source_embedding.backward(dx)

    # ------------------------------------------------------------------ decoding

    def _output_step(self, h_t, keys, lengths):
        """log p(y_t | ...) of one decoder step from its state h_t (B, D·H), and the step's
        attention weights (S, B) (None without attention).  Nothing is kept for a backward."""
        xp, weights = self.xp, None
        out = h_t
        if self.attention_form is not None:
            params = [self.attention.params[name] for name in PARAMETERS[self.attention_form]]
            context, weights, _ = step_forward(h_t, keys, *params, form=self.attention_form, lengths=lengths,
                                               check=False)
            out = xp.tanh(self.combine.apply(xp.concatenate([context, h_t], axis=1)))
        logits = self.head.apply(out)
        logits = logits - logits.max(axis=1, keepdims=True)
        logp = logits - xp.log(xp.exp(logits).sum(axis=1, keepdims=True))   # log softmax
        logp[:, [PAD, BOS]] = -xp.inf                     # never targets, so never decoded
        return logp, weights

    def _decoding(self, inputs, lengths, max_length):
        src, lengths = self._source(inputs, lengths)
        max_length = self.max_length if max_length is None else check_int("max_length", max_length, 1)
        return src, lengths, max_length

    def greedy(self, inputs, lengths=None, max_length=None, *, keep_eos=False, attention=False):
        """Greedy decoding of a batch: at each step the most probable token, fed back as the next
        input, until every sequence has given </s> or ``max_length`` steps.  Returns a list of
        token-id lists (without </s> unless ``keep_eos``); with ``attention=True`` also each
        sequence's attention weights, an array (its steps, its source length)."""
        src, lengths, max_length = self._decoding(inputs, lengths, max_length)
        S, B = src.shape
        was_training = self.training
        self.eval()
        try:
            keys, state = self._encode(src, lengths)
            token = np.full(B, BOS, np.int64)
            out, weights, done = [], [], np.zeros(B, bool)
            for _ in range(max_length):
                h_t, state = self.decoder.step(self.target_embedding.forward(token), state)
                logp, alpha = self._output_step(h_t, keys, lengths)
                token = asnumpy(logp.argmax(axis=1)).astype(np.int64)
                out.append(np.where(done, PAD, token))
                weights.append(None if alpha is None else asnumpy(alpha))
                done |= token == EOS
                if done.all():
                    break
        finally:
            self.train(was_training)
        ids = np.stack(out)                               # (steps, B)
        sequences = self._trim(ids, keep_eos)
        if not attention:
            return sequences
        source_lengths = np.full(B, S) if lengths is None else lengths
        maps = []
        for b in range(B):                                # each sequence's steps, </s>'s included
            ends = np.flatnonzero(ids[:, b] == EOS)
            steps = int(ends[0]) + 1 if ends.size else len(ids)
            maps.append(None if self.attention_form is None else
                        np.stack([w[:source_lengths[b], b] for w in weights[:steps]]))
        return sequences, maps

    def beam_search(self, inputs, lengths=None, beam=5, max_length=None, *, keep_eos=False):
        """Beam search of width ``beam`` over a batch: each step extends every live hypothesis of a
        sequence by every token and keeps the ``beam`` best by log-probability; a hypothesis that
        gives </s> is finished, scored by its log-probability over its length (</s> counted:
        length normalisation).  A sequence stops when it has ``beam`` finished hypotheses or at
        ``max_length`` (its live ones then finish as they are).  Returns the best hypothesis of
        each sequence, as :meth:`greedy` does.  ``beam=1`` is greedy decoding."""
        src, lengths, max_length = self._decoding(inputs, lengths, max_length)
        k = check_int("beam", beam, 1)
        S, B = src.shape
        V = self.head.out_features
        xp = self.xp
        was_training = self.training
        self.eval()
        try:
            keys, state = self._encode(src, lengths)
            # every sequence's k hypotheses side by side: row b·k + j is hypothesis j of sequence b
            rows = np.repeat(np.arange(B), k)
            keys = keys[:, xp.asarray(rows)]
            lengths_k = None if lengths is None else lengths[rows]
            state = _rows(state, xp.asarray(rows))
            scores = np.full((B, k), -np.inf)
            scores[:, 0] = 0.0                            # one live hypothesis, <s>, to start
            history = np.zeros((B, k, 0), np.int64)
            token = np.full(B * k, BOS, np.int64)
            finished = [[] for _ in range(B)]             # (normalised score, tokens) per sequence
            active = np.ones(B, bool)
            for t in range(max_length):
                h_t, state = self.decoder.step(self.target_embedding.forward(token), state)
                logp, _ = self._output_step(h_t, keys, lengths_k)
                total = scores[:, :, None] + asnumpy(logp).astype(np.float64).reshape(B, k, V)   # (B, k, V)
                flat = total.reshape(B, k * V)
                # the 2k best extensions: at most k of them end in </s>, so k live ones remain
                best = np.argsort(-flat, axis=1, kind="stable")[:, :2 * k]
                new_scores = np.full((B, k), -np.inf)
                new_history = np.zeros((B, k, t + 1), np.int64)
                parents = np.zeros((B, k), np.int64)
                for b in range(B):
                    if not active[b]:
                        continue
                    live = 0
                    for rank, index in enumerate(best[b]):
                        parent, word = divmod(int(index), V)
                        score = flat[b, index]
                        if not np.isfinite(score):
                            break
                        if word == EOS:
                            if rank < k:                  # only an extension among the k best finishes
                                finished[b].append((score / (t + 1), list(history[b, parent]), True))
                            continue
                        new_scores[b, live], parents[b, live] = score, parent
                        new_history[b, live, :t] = history[b, parent]
                        new_history[b, live, t] = word
                        live += 1
                        if live == k:
                            break
                    if len(finished[b]) >= k or t == max_length - 1:
                        active[b] = False
                        if t == max_length - 1:           # out of steps: the live ones finish as they are
                            finished[b] += [(new_scores[b, j] / (t + 1), list(new_history[b, j]), False)
                                            for j in range(live)]
                if not active.any():
                    break
                scores, history = new_scores, new_history
                order = xp.asarray((np.arange(B)[:, None] * k + parents).reshape(-1))
                state = _rows(state, order)
                token = new_history[:, :, t].reshape(-1)
        finally:
            self.train(was_training)
        out = []
        for b in range(B):                                # the best by normalised score; the first of equals
            _, tokens, ended = max(finished[b], key=lambda f: f[0])
            out.append([int(i) for i in tokens] + ([EOS] if keep_eos and ended else []))
        return out

    def translate(self, sources, *, beam=1, max_length=None):
        """Decode sequences of tokens (strings of the source vocabulary; a ``str`` is its
        characters) into tuples of target tokens: greedy, or a beam of ``beam``.  Needs the
        vocabularies (``source_vocab``, ``target_vocab``: the task sets them, a checkpoint keeps
        them)."""
        if self.source_vocab is None or self.target_vocab is None:
            raise ValueError("translate needs the model's source_vocab and target_vocab (a model from `numpyrnn "
                             "train` has them); without them, give ids to greedy() or beam_search()")
        if isinstance(sources, str):
            raise TypeError("sources must be a list of sequences (a list of words), not one string")
        ids, lengths = encode(sources, self.source_vocab)
        decoded = (self.greedy(ids, lengths, max_length) if beam == 1
                   else self.beam_search(ids, lengths, beam=beam, max_length=max_length))
        return [tuple(self.target_vocab[i] for i in seq) for seq in decoded]

    @staticmethod
    def _trim(ids, keep_eos):
        """(T, B) decoded ids → each sequence's tokens up to its </s> (kept or not)."""
        sequences = []
        for column in ids.T:
            ends = np.flatnonzero(column == EOS)
            stop = int(ends[0]) + 1 if ends.size else len(column)
            seq = [int(i) for i in column[:stop]]
            sequences.append(seq if keep_eos or not ends.size else seq[:-1])
        return sequences

    @staticmethod
    def _pad(sequences, B):
        T = max(1, max(len(s) for s in sequences))
        out = np.zeros((T, B), np.int64)
        for b, s in enumerate(sequences):
            out[:len(s), b] = s
        return out

    def rng_state(self) -> dict:
        return {**super().rng_state(), "output_dropout": self._dropout_rng.bit_generator.state}

    def set_rng_state(self, state: dict):
        super().set_rng_state(state)
        self._dropout_rng.bit_generator.state = state["output_dropout"]


def _rows(state, index):
    """A decoder state (one (L, B, H) array or a tuple of them) at the batch rows ``index``."""
    return tuple(s[:, index] for s in state) if isinstance(state, tuple) else state[:, index]


def encode(sequences, vocab, what="sources"):
    """Sequences of tokens as time-major ids (S, B) padded with 0, and their lengths: each token
    looked up in ``vocab`` (its strings in id order; id 0 pads and is never a token).  An empty
    sequence, or a token outside the vocabulary, is refused naming it."""
    ids = {token: i for i, token in enumerate(vocab) if i != PAD}
    sequences = list(sequences)
    if not sequences:
        raise ValueError(f"{what}: nothing to encode")
    for seq in sequences:
        if isinstance(seq, (str, list, tuple)) and not len(seq):
            raise ValueError(f"{what}: an empty sequence ({seq!r}); each needs at least one token")
        if not isinstance(seq, (str, list, tuple)):
            raise TypeError(f"{what} must be sequences of tokens (a word is its letters), got {seq!r}")
        unknown = [token for token in seq if token not in ids]
        if unknown:
            raise ValueError(f"{what}: {seq!r} holds {unknown[0]!r}, which is not in the model's vocabulary "
                             f"({' '.join(t for t in list(vocab)[1:])})")
    lengths = np.array([len(seq) for seq in sequences], np.int64)
    out = np.zeros((int(lengths.max()), len(sequences)), np.int64)
    for b, seq in enumerate(sequences):
        out[:len(seq), b] = [ids[token] for token in seq]
    return out, lengths
