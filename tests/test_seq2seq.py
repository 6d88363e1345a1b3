"""Issue 31, the model: the encoder–decoder with attention (numpyrnn/seq2seq.py, derivations §19).

The whole model against the same model written in torch (nn.LSTM/GRU/RNN encoder over packed
sources, the decoder over the teacher-forced targets, the attention and the attentional layer
in torch's operations), loss and every gradient by name to 1e-10 in float64, for each
attention form and none, stacked and bidirectional encoders, and differing cells on the two
sides; finite differences over every tensor by name with variable lengths on both sides;
greedy decoding equals a beam of one; a wide beam equals the exhaustive search; bad input
refused naming the argument."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numpyrnn
from numpyrnn import gradcheck
from numpyrnn.models import build
from numpyrnn.seq2seq import BOS, EOS, PAD, Seq2Seq


def _batch(seed=0, S=5, B=3, T=4, source_vocab=9, target_vocab=8, lengths=(5, 2, 3), target_lengths=(4, 1, 3)):
    """Source ids padded after each length; targets: tokens, </s>, then padding."""
    rng = np.random.default_rng(seed)
    src = rng.integers(1, source_vocab, (S, B))
    for b, n in enumerate(lengths):
        src[n:, b] = PAD
    tgt = rng.integers(3, target_vocab, (T, B))
    for b, n in enumerate(target_lengths):
        tgt[n - 1, b] = EOS
        tgt[n:, b] = PAD
    return src, tgt, np.array(lengths)


def _model(cell="lstm", decoder_cell=None, attention="general", bidirectional=True, num_layers=2, **kw):
    return Seq2Seq(cell, decoder_cell=decoder_cell, source_vocab_size=9, target_vocab_size=8, hidden_size=4,
                   embedding_dim=3, num_layers=num_layers, bidirectional=bidirectional, attention=attention,
                   dtype=np.float64, seed=3, **kw)


def _torch_loss(torch, model, src, tgt, lengths):
    """The same model in torch, its parameters loaded by name from ``model``: returns (loss, {name: leaf})."""
    nn, F = torch.nn, torch.nn.functional
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    params = {name: torch.tensor(np.array(v), requires_grad=True) for name, v in model.params.items()}
    enc, dec = model.encoder, model.decoder
    E = model.source_embedding.embedding_dim

    def layer(recurrent, prefix, input_size):
        kind = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[type(recurrent).__name__]
        extra = {"nonlinearity": recurrent.cell.options["nonlinearity"]} if kind is nn.RNN else {}
        module = kind(input_size, recurrent.hidden_size, recurrent.num_layers,
                      bidirectional=recurrent.bidirectional, **extra).double()
        for name in dict(module.named_parameters()):
            delattr(module, name)                                   # the leaves above take their place
            setattr(module, name, params[f"{prefix}.{name}"])
        module._flat_weights = [getattr(module, n) for n in module._flat_weights_names]
        return module

    encoder, decoder = layer(enc, "encoder", E), layer(dec, "decoder", E)
    S, B = src.shape
    L, D, H = enc.num_layers, enc.num_directions, enc.hidden_size
    x = F.embedding(torch.tensor(src), params["source_embedding.weight"], padding_idx=PAD)
    packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
    out, state = encoder(packed)
    keys, _ = pad_packed_sequence(out, total_length=S)
    state = state if isinstance(state, tuple) else (state,)
    by_name = dict(zip(enc.cell.state_names, state))
    state0 = tuple(by_name[n].reshape(L, D, B, H).permute(0, 2, 1, 3).reshape(L, B, D * H) if n in by_name
                   else torch.zeros(L, B, D * H, dtype=torch.float64) for n in dec.cell.state_names)
    previous = torch.cat([torch.full((1, B), BOS), torch.tensor(tgt[:-1])])
    h, _ = decoder(F.embedding(previous, params["target_embedding.weight"], padding_idx=PAD),
                   state0 if len(state0) > 1 else state0[0])
    form = model.attention_form
    if form is None:
        out = h
    else:
        if form == "dot":
            scores = torch.einsum("tbh,sbh->tsb", h, keys)
        elif form == "general":
            scores = torch.einsum("tbh,hk,sbk->tsb", h, params["attention.weight"], keys)
        else:
            z = (h @ params["attention.weight_query"].T)[:, None] + (keys @ params["attention.weight_key"].T)[None]
            scores = torch.tanh(z) @ params["attention.v"]
        padding = torch.arange(S)[:, None] >= torch.tensor(lengths)[None, :]
        alpha = torch.softmax(scores.masked_fill(padding[None], float("-inf")), dim=1)
        contexts = torch.einsum("tsb,sbh->tbh", alpha, keys)
        out = torch.tanh(torch.cat([contexts, h], dim=2) @ params["combine.weight"].T)
    logits = out @ params["head.weight"].T + params["head.bias"]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.tensor(tgt).reshape(-1), ignore_index=PAD)
    return loss, params


CONFIGS = [("lstm", None, "general", True, 2), ("gru", None, "dot", True, 1), ("rnn", None, "additive", False, 2),
           ("lstm", "gru", "general", True, 2), ("gru", "lstm", "additive", True, 1), ("lstm", None, None, True, 1),
           ("gru", "rnn", "dot", False, 1)]


@pytest.mark.parametrize("cell, decoder_cell, form, bidirectional, layers", CONFIGS)
def test_the_model_equals_torch(cell, decoder_cell, form, bidirectional, layers):
    torch = pytest.importorskip("torch", reason="torch is the independent reference for these tests")
    model = _model(cell, decoder_cell, form, bidirectional, layers)
    src, tgt, lengths = _batch()
    loss, logits = model.forward(src, tgt, lengths)
    model.zero_grad()
    model.backward()
    t_loss, leaves = _torch_loss(torch, model, src, tgt, lengths)
    t_loss.backward()
    assert abs(loss - t_loss.item()) < 1e-12
    for name, g in model.grads.items():
        reference = leaves[name].grad
        reference = np.zeros_like(g) if reference is None else reference.numpy()
        np.testing.assert_allclose(g, reference, rtol=0, atol=1e-10, err_msg=name)
    assert any(np.abs(g).max() > 1e-6 for name, g in model.grads.items() if name.startswith("encoder."))


@pytest.mark.parametrize("cell, decoder_cell, form", [("lstm", "gru", "general"), ("gru", "lstm", "additive"),
                                                      ("rnn", None, "dot"), ("lstm", None, None)])
def test_every_tensor_by_name_against_finite_differences(cell, decoder_cell, form):
    """Variable lengths on both sides (sources 5, 2, 3; targets 4, 1, 3 with padding), every
    tensor by name, the encoder's through the attention and the bridge."""
    model = Seq2Seq(cell, decoder_cell=decoder_cell, source_vocab_size=6, target_vocab_size=5, hidden_size=2,
                    embedding_dim=2, num_layers=2 if form == "general" else 1, attention=form, attention_size=2,
                    dtype=np.float64, seed=3)
    report = gradcheck.check_model(model, _batch(S=4, T=3, source_vocab=6, target_vocab=5, lengths=(4, 2, 3),
                                                 target_lengths=(3, 1, 2)))
    assert report.passed, str(report)
    names = {row.name for row in report.rows}
    assert names == set(model.params) and any(n.startswith("encoder.") for n in names)


def test_dropout_is_replayed_and_checked():
    model = _model(dropout=0.5)
    model.train()
    report = gradcheck.check_model(model, _batch(), mode="fast", n_directions=2)
    assert report.passed, str(report)
    src, tgt, lengths = _batch()
    first, _ = model.forward(src, tgt, lengths)
    second, _ = model.forward(src, tgt, lengths)
    assert first != second                       # a fresh mask each training forward
    model.eval()
    assert model.forward(src, tgt, lengths)[0] == model.forward(src, tgt, lengths)[0]


def test_padding_changes_nothing_real():
    """A longer padded target, or a padded source position holding another id, gives the same
    loss: only the real tokens count, and the source's padding takes no attention."""
    model = _model()
    src, tgt, lengths = _batch()
    loss, _ = model.forward(src, tgt, lengths)
    longer = np.concatenate([tgt, np.zeros((2, tgt.shape[1]), tgt.dtype)])
    assert model.forward(src, longer, lengths)[0] == pytest.approx(loss, abs=1e-14)
    other = src.copy()
    other[3:, 1] = 5                                  # sequence 1 has length 2
    assert model.forward(other, tgt, lengths)[0] == pytest.approx(loss, abs=1e-14)


def test_the_bridge_sends_each_direction_back():
    """Encoder's final states → the decoder's initial one and back: the halves of each layer
    go to their own direction; a state the encoder lacks starts at zero."""
    model = _model("gru", "lstm", bidirectional=True, num_layers=2)
    rng = np.random.default_rng(0)
    h = rng.standard_normal((4, 3, 4))                # (L·D, B, H)
    h0, c0 = model._bridge(h)
    np.testing.assert_array_equal(h0[1, :, :4], h[2])    # layer 1, forward
    np.testing.assert_array_equal(h0[1, :, 4:], h[3])    # layer 1, reverse
    assert not c0.any()
    back = model._bridge_backward((h0, c0))
    np.testing.assert_array_equal(back, h)


def _tiny():
    return Seq2Seq("gru", source_vocab_size=6, target_vocab_size=5, hidden_size=3, embedding_dim=2,
                   dtype=np.float64, seed=1, max_length=3)


def test_greedy_is_a_beam_of_one_and_the_forward_without_targets():
    model = _model()
    src, _, lengths = _batch()
    greedy = model.greedy(src, lengths, max_length=6)
    assert greedy == model.beam_search(src, lengths, beam=1, max_length=6)
    _, ids = model.forward(src, None, lengths)
    assert [list(c[:len(g)]) for c, g in zip(ids.T, greedy)] == greedy


def test_a_wide_beam_is_the_exhaustive_search():
    """With a beam wider than every hypothesis there is, beam search finds the sequence of best
    log-probability per token (</s> counted) among all of up to max_length steps."""
    model = _tiny()
    src, greedy_missed = np.array([[3], [4]]), 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        for name, p in model.params.items():          # weights large enough that the history matters
            model.params[name] = rng.normal(0, 1.5, p.shape)
        best = _exhaustive(model, src, 3)
        assert model.beam_search(src, beam=32, max_length=3) == [best], seed
        greedy_missed += model.greedy(src, max_length=3) != [best]
    assert greedy_missed                              # cases where the search is needed


def _exhaustive(model, src, max_length):
    """Every token sequence over the two real tokens of up to max_length steps, scored by
    teacher forcing: the best by mean log-probability (ended by </s>, or cut at max_length)."""
    candidates = []
    for n in range(max_length + 1):
        for tokens in itertools.product([3, 4], repeat=n):
            ended = n < max_length
            target = np.array([*tokens, EOS] if ended else list(tokens))[:, None]
            if not len(target):
                continue
            model.eval()
            _, logits = model.forward(src, target)
            logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
                - logits.max(-1, keepdims=True)
            score = sum(logp[t, 0, target[t, 0]] for t in range(len(target)))
            candidates.append((score / len(target), list(tokens)))
    return max(candidates, key=lambda c: c[0])[1]


def test_attention_weights_of_decoding():
    model = _model()
    src, _, lengths = _batch()
    sequences, maps = model.greedy(src, lengths, max_length=4, attention=True)
    for seq, weights, n in zip(sequences, maps, lengths):
        assert weights.shape[1] == n and weights.shape[0] in (len(seq), len(seq) + 1)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    assert _model(attention=None).greedy(src, lengths, max_length=4, attention=True)[1] == [None] * 3


def test_saved_and_built_again(tmp_path):
    model = _model("lstm", "gru", "additive")
    src, tgt, lengths = _batch()
    path = tmp_path / "s2s.npz"
    numpyrnn.save(model, path)
    again = numpyrnn.load(path)
    assert again.config() == model.config()
    assert again.forward(src, tgt, lengths)[0] == model.forward(src, tgt, lengths)[0]
    assert type(build(model.config())) is Seq2Seq


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["rnn", "lstm", "gru"]), st.sampled_from(["rnn", "lstm", "gru"]),
       st.sampled_from([None, "dot", "general", "additive"]), st.booleans(), st.integers(1, 2),
       st.integers(1, 4), st.data())
def test_shapes_and_configurations(cell, decoder_cell, form, bidirectional, layers, B, data):
    """Any pairing of cells, form, direction and depth: a forward over random lengths gives
    (T, B, V) logits and a finite loss, a backward fills every gradient's shape."""
    S, T = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))
    lengths = data.draw(st.lists(st.integers(1, S), min_size=B, max_size=B))
    target_lengths = data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    target_lengths[0] = T
    model = _model(cell, decoder_cell, form, bidirectional, layers)
    src, tgt, lengths = _batch(S=S, B=B, T=T, lengths=lengths, target_lengths=target_lengths)
    loss, logits = model.forward(src, tgt, lengths)
    assert logits.shape == (T, B, 8) and np.isfinite(loss)
    model.backward()
    assert all(model.grads[n].shape == p.shape for n, p in model.params.items())


@pytest.mark.parametrize("call, message", [
    (lambda m, s, t, n: m.forward(s, t[:, :2], n), "targets must be a 2-d array of target ids (T, B) with the "
                                                    "inputs' batch B = 3"),
    (lambda m, s, t, n: m.forward(s, np.concatenate([np.zeros((1, 3), int), t]), n), "targets: sequence 0 has "
                                                                                     "padding"),
    (lambda m, s, t, n: m.forward(s, np.ones((51, 3), int), n), "targets must have 1..max_length=50 steps, got 51"),
    (lambda m, s, t, n: m.forward(s, t + 20, n), "targets must lie in 0..7"),
    (lambda m, s, t, n: m.forward(s[:0], t, n), "inputs must be a 2-d array of source ids (S, B) with S, B ≥ 1"),
    (lambda m, s, t, n: m.forward(s.astype(float), t, n), "inputs must hold integer ids"),
    (lambda m, s, t, n: m.forward(s, t, n[:2]), "lengths must have shape (3,)"),
    (lambda m, s, t, n: m.beam_search(s, n, beam=0), "beam must be"),
    (lambda m, s, t, n: m.greedy(s, n, max_length=0), "max_length must be"),
])
def test_bad_input_is_refused_naming_it(call, message):
    model = _model()
    src, tgt, lengths = _batch()
    with pytest.raises((ValueError, TypeError)) as info:
        call(model, src, tgt, lengths)
    assert message in str(info.value)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="attention must be one of dot, general, additive or None"):
        _model(attention="luong")
    with pytest.raises(ValueError, match="batch_first"):
        _model(batch_first=True)
    with pytest.raises(ValueError, match="target_vocab_size"):
        Seq2Seq(source_vocab_size=5, target_vocab_size=3)


def test_a_batch_decodes_as_its_sequences_alone():
    model = _model()
    src, _, lengths = _batch()
    together = model.beam_search(src, lengths, beam=3, max_length=5)
    alone = [model.beam_search(src[:n, b:b + 1], None, beam=3, max_length=5)[0] for b, n in enumerate(lengths)]
    assert together == alone
    assert model.greedy(src, lengths, max_length=5) == [model.greedy(src[:n, b:b + 1], max_length=5)[0]
                                                        for b, n in enumerate(lengths)]


@pytest.mark.parametrize("cell, decoder_cell, form", [("lstm", None, "general"), ("gru", "lstm", "additive"),
                                                      ("lstm", "gru", "dot"), ("rnn", None, None)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_the_export_to_torch_computes_the_same_and_comes_back(tmp_path, cell, decoder_cell, form, dtype):
    """A trained encoder-decoder and its torch module: the same teacher-forced logits (called as
    a torch user calls it) and the same greedy decoding; back from torch, and through the file
    plain torch loads, the same weights and vocabularies."""
    pytest.importorskip("torch", reason="the export needs torch")
    import torch

    from numpyrnn import export, optim

    model = Seq2Seq(cell, decoder_cell=decoder_cell, attention=form, source_vocab_size=9, target_vocab_size=8,
                    hidden_size=5, embedding_dim=4, num_layers=2, dtype=dtype, seed=2)
    model.source_vocab = ("<pad>", *"abcdefgh")
    model.target_vocab = ("<pad>", "<s>", "</s>", *"VWXYZ")
    opt = optim.Adam(model, lr=0.05)
    for step in range(3):
        model.zero_grad()
        model.forward(*_batch(step)[:2], _batch(step)[2])
        model.backward()
        opt.step()
    module = export.to_torch(model)
    src, tgt, lengths = _batch(7)
    model.eval()
    _, ours = model.forward(src, tgt, lengths)
    with torch.no_grad():
        theirs = module(torch.from_numpy(src), torch.from_numpy(tgt), torch.from_numpy(lengths)).numpy()
    tolerance = {np.float32: 1e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tolerance)
    decoded = module.greedy(torch.from_numpy(src), torch.from_numpy(lengths), max_length=6).numpy()
    assert model._trim(decoded, False) == model.greedy(src, lengths, max_length=6)
    assert export.max_difference(model, module, src, lengths) <= tolerance
    for back in (export.from_torch(module), export.load_torch(_saved(export, model, tmp_path))):
        back = back if isinstance(back, Seq2Seq) else export.from_torch(back)
        assert back.config() == model.config()
        for name, value in model.state_dict().items():
            assert np.array_equal(back.state_dict()[name], value), name
        assert back.source_vocab == model.source_vocab and back.target_vocab == model.target_vocab


def _saved(export, model, tmp_path):
    path = tmp_path / "s2s.pt"
    export.save_torch(model, path)
    return path
