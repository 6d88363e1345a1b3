"""Zoneout (Krueger et al. 2017; issue 30's proof, derivations §17): each unit of a state keeps
its previous value with probability p in training and takes the expectation at evaluation; its
backward, with the masks replayed, agrees with finite differences for every cell, with lengths,
both directions, stacks and recurrent dropout, on the generic loop and on the three cells'
reference loops and fast paths (NumPy and fused bodies), which compute what the generic loop
computes; and it lands where it acts."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpyrnn
from conftest import RECURRENT_CASES, RECURRENT_IDS, rel_err
from numpyrnn import backend, cells, cli, gradcheck
from numpyrnn.cells import generic, gru, lstm, rnn
from numpyrnn.cells.fast import fused
from numpyrnn.settings import Settings

RNG = np.random.default_rng(0)


def _layer(cell, **kw):
    return numpyrnn.Recurrent(cell, 3, 4, impl="generic", dtype=np.float64, seed=0, **kw)


@pytest.mark.parametrize("cell, zoneout_c, recurrent_dropout, training", [
    ("rnn", 0.0, 0.3, True), ("lstm", 0.4, 0.0, True), ("lstm", 0.4, 0.3, True), ("gru", 0.0, 0.0, True),
    ("lstm_peephole", 0.4, 0.3, True), ("mgu", 0.0, 0.0, True), ("janet", 0.0, 0.0, True),
    ("lstm_cifg", 0.4, 0.3, True), ("rnn", 0.0, 0.0, False), ("lstm", 0.4, 0.3, False), ("gru", 0.0, 0.0, False)])
def test_the_backward_agrees_with_finite_differences(cell, zoneout_c, recurrent_dropout, training):
    layer = _layer(cell, num_layers=2, bidirectional=True, zoneout=0.3, zoneout_c=zoneout_c,
                   recurrent_dropout=recurrent_dropout)
    layer.train(training)
    x = RNG.standard_normal((5, 3, 3))
    report = gradcheck.check(layer, x, lengths=np.array([5, 2, 4]))
    assert report.passed, str(report)


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("cell, options", [("rnn", {"nonlinearity": "relu", "recurrent_dropout": 0.3}),
                                           ("lstm", {"zoneout_c": 0.4, "recurrent_dropout": 0.3}),
                                           ("gru", {"reset_after": False, "recurrent_dropout": 0.3}),
                                           ("gru", {})])
def test_the_cells_own_loops_agree_with_finite_differences(impl, cell, options):
    layer = getattr(numpyrnn, cell.upper())(3, 4, num_layers=2, bidirectional=True, impl=impl, dtype=np.float64,
                                            seed=0, zoneout=0.3, **options)
    report = gradcheck.check(layer, RNG.standard_normal((5, 3, 3)), lengths=np.array([5, 2, 4]))
    assert report.passed, str(report)


ZONED = {"RNN": {"zoneout": 0.3}, "GRU": {"zoneout": 0.3}, "LSTM": {"zoneout": 0.3, "zoneout_c": 0.5}}


def _run(cls_name, options, impl, training, lengths, recurrent_dropout=0.0):
    """A 2-layer bidirectional layer with zoneout forward and backward on ``impl``: every output,
    state, gradient, ∂L/∂s_t and gate, as NumPy arrays by name (the same seed draws the same
    masks whatever the loop)."""
    rng = np.random.default_rng(1)
    m = getattr(numpyrnn, cls_name)(5, 8, num_layers=2, bidirectional=True, dtype=np.float64, seed=0, impl=impl,
                                    recurrent_dropout=recurrent_dropout, **ZONED[cls_name], **options)
    m.train(training)
    n = len(m.cell.state_names)
    state = tuple(rng.standard_normal((4, 4, 8)) for _ in range(n))
    x, dy = rng.standard_normal((9, 4, 5)), rng.standard_normal((9, 4, 16))
    dstate = tuple(rng.standard_normal((4, 4, 8)) for _ in range(n))
    y, state_n = m.forward(x, state if n > 1 else state[0], lengths=lengths)
    dx, dstate0 = m.backward(dy, dstate if n > 1 else dstate[0], keep_state_grads=True)
    pack = (lambda s: s if isinstance(s, tuple) else (s,))
    out = {"y": y, "dx": dx, **{f"state_n {i}": s for i, s in enumerate(pack(state_n))},
           **{f"dstate0 {i}": s for i, s in enumerate(pack(dstate0))}, **m.grads}
    for layer in range(2):
        for direction in range(2):
            out.update({f"∂L/∂{k}_t {layer}{direction}": v for k, v in m.state_grads(layer, direction).items()})
            out.update({f"gate {k} {layer}{direction}": v for k, v in m.gate_activations(layer, direction).items()})
    return out


@pytest.mark.parametrize("cls_name, options", RECURRENT_CASES, ids=RECURRENT_IDS)
@pytest.mark.parametrize("training, use_lengths, recurrent_dropout", [
    (True, True, 0.0), (True, False, 0.4), (False, True, 0.4), (False, False, 0.0)])
def test_the_cells_own_loops_compute_what_the_generic_loop_computes(cls_name, options, training, use_lengths,
                                                                    recurrent_dropout):
    """The reference loop and the fast path of each cell against the generic loop over its steps
    (derivations §17), stacked, both directions, with lengths, recurrent dropout and evaluation's
    expectation: to 1e-12 in float64.  (The GRU takes recurrent dropout on its own loops only,
    which keep its carry z ⊙ h_{t−1} unmasked: there the fast path is held to the reference.)"""
    lengths = np.array([9, 3, 1, 6]) if use_lengths else None
    own_only = cls_name == "GRU" and recurrent_dropout
    want = _run(cls_name, options, "reference" if own_only else "generic", training, lengths, recurrent_dropout)
    for impl in ("fast",) if own_only else ("reference", "fast"):
        got = _run(cls_name, options, impl, training, lengths, recurrent_dropout)
        assert got.keys() == want.keys()
        for name in want:
            assert rel_err(got[name], want[name]) < 1e-12, (impl, name)


@pytest.mark.parametrize("cls_name, options", RECURRENT_CASES, ids=RECURRENT_IDS)
def test_the_fused_bodies_take_it(monkeypatch, cls_name, options):
    """Zoneout mixes outside the per-step bodies, so the fused kernels (emulated here, as in
    tests/test_fused_on_cpu.py) run under it and give the NumPy bodies' results."""
    from test_fused_on_cpu import EmulatedKernel
    lengths = np.array([9, 3, 1, 6])
    want = _run(cls_name, options, "fast", True, lengths)
    monkeypatch.setattr(backend, "fused_enabled", lambda xp: True)
    monkeypatch.setattr(backend, "elementwise_kernel", EmulatedKernel)
    monkeypatch.setattr(fused, "_kernels", {})
    EmulatedKernel.calls.clear()
    got = _run(cls_name, options, "fast", True, lengths)
    assert EmulatedKernel.calls, "the fused bodies did not run"
    for name in want:
        assert rel_err(got[name], want[name]) < 1e-12, name


MODULES = {"rnn": (rnn, {"nonlinearity": "tanh"}), "rnn_relu": (rnn, {"nonlinearity": "relu"}), "lstm": (lstm, {}),
           "gru": (gru, {"reset_after": True}), "gru_textbook": (gru, {"reset_after": False})}


@settings(max_examples=60, deadline=None)
@given(cell=st.sampled_from(sorted(MODULES)), T=st.integers(1, 6), B=st.integers(1, 4), H=st.integers(1, 5),
       rates=st.tuples(st.sampled_from([None, 0.0, 0.3, 0.9, "masks"]), st.sampled_from([None, 0.5, "masks"])),
       use_lengths=st.booleans(), reverse=st.booleans(), h_mask=st.booleans(), final_grads=st.booleans(),
       seed=st.integers(0, 2**16))
def test_fast_path_equals_the_reference_loop(cell, T, B, H, rates, use_lengths, reverse, h_mask, final_grads, seed):
    """The module functions themselves, any shape and any mix of rates, masks, padding and
    direction: the fast path equals the textbook loop over the steps to 1e-12."""
    module, options = MODULES[cell]
    rng = np.random.default_rng(seed)
    G, n = {rnn: (1, 1), gru: (3, 1), lstm: (4, 2)}[module]
    I = 3
    x = rng.standard_normal((T, B, I))
    weights = [rng.standard_normal(s) for s in ((G * H, I), (G * H, H), (G * H,), (G * H,))]
    state = [rng.standard_normal((B, H)) for _ in range(n)]
    zoneout = tuple((rng.random((T, B, H)) < 0.4).astype(float) if r == "masks" else r for r in rates[:n])
    if all(z is None for z in zoneout):
        zoneout = None
    lengths = rng.integers(1, T + 1, B) if use_lengths else None
    mask = (rng.random((B, H)) > 0.3) / 0.7 if h_mask else None
    dy = rng.standard_normal((T, B, H))
    dstate = [rng.standard_normal((B, H)) if final_grads else None for _ in range(n)]
    results = []
    for forward, backward in ((module.forward_reference, module.backward_reference), (module.forward, module.backward)):
        *outs, cache = forward(x, *state, *weights, lengths=lengths, reverse=reverse, h_mask=mask, zoneout=zoneout,
                               **options)
        kept = {f"d{s}_steps": np.zeros((T, B, H)) for s in ("h", "c")[:n]}
        grads = backward(dy, *dstate, cache, **kept)
        results.append([np.array(o) for o in outs] + [g for g in grads if g is not None] + list(kept.values()))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * max(1.0, np.abs(want).max()))


def test_training_keeps_units_and_evaluation_takes_the_expectation():
    layer = _layer("lstm", zoneout=0.3, zoneout_c=0.6)
    params = layer._cell_params(0)
    x, h0, c0 = RNG.standard_normal((1, 2, 3)), RNG.standard_normal((1, 2, 4)), RNG.standard_normal((1, 2, 4))
    (h1, c1), _ = layer.cell.step_forward(x[0], (h0[0], c0[0]), params)      # s̃_1
    layer.eval()
    y, (h, c) = layer.forward(x, (h0, c0))
    np.testing.assert_allclose(h[0], 0.3 * h0[0] + 0.7 * h1, rtol=0, atol=1e-15)
    np.testing.assert_allclose(c[0], 0.6 * c0[0] + 0.4 * c1, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(y[0], h[0])                                # y_t = h_t, after zoneout
    layer.train()
    _, (h, c) = layer.forward(x, (h0, c0))
    kept_h, kept_c = h[0] == h0[0], c[0] == c0[0]
    assert np.all(kept_h | (h[0] == h1)) and np.all(kept_c | (c[0] == c1))   # each unit: old or new
    full = numpyrnn.Recurrent("gru", 2, 50, impl="generic", seed=1, zoneout=0.25)
    _, state = full.forward(np.zeros((40, 30, 2), np.float32))
    deltas = full._cache[0][0].zoneout[0]                                    # the δ_t the forward drew
    assert deltas.shape == (40, 30, 50) and abs(deltas.mean() - 0.25) < 0.01
    assert not np.array_equal(deltas[0], deltas[1])                          # a fresh mask every step


def test_padded_steps_keep_the_state_whatever_the_mask():
    """k_t = m_t (1 − δ_t): a sequence's final state is the one after its own last step, the same
    as that sequence alone with the masks of its steps."""
    layer = _layer("lstm", zoneout=0.5, zoneout_c=0.5)
    x = RNG.standard_normal((6, 2, 3))
    y, (h, c) = layer.forward(x, lengths=np.array([6, 2]))
    assert np.all(y[2:, 1] == 0)                                  # y_t = m_t h_t
    deltas = layer._cache[0][0].zoneout
    alone = numpyrnn.cells.generic.forward(layer.cell, x[:2, 1:], (np.zeros((1, 4)), np.zeros((1, 4))),
                                            layer._cell_params(0),
                                            zoneout=tuple(d[:2, 1:] for d in deltas))
    for got, want in ((h[0, 1], alone[1][0][0]), (c[0, 1], alone[1][1][0]), (y[:2, 1], alone[0][:, 0])):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)   # a batch of 1 rounds its products apart


def test_zero_zoneout_is_the_loop_without_it():
    x = RNG.standard_normal((4, 2, 3))
    a, b = _layer("gru"), _layer("gru", zoneout=0.0)
    ya, _ = a.forward(x)
    yb, _ = b.forward(x)
    np.testing.assert_array_equal(ya, yb)
    assert b._cache[0][0].zoneout is None and "zoneout" not in b.config()


def test_what_cannot_take_it_is_refused_saying_why():
    class OwnLoop(cells.get("mgu").__class__):
        name = "mgu_own_loop"                    # a cell with a loop of its own that applies no zoneout
        loops = {"fast": generic.LOOP._replace(kind="fast", takes=("recurrent_dropout",))}

    with pytest.raises(ValueError, match="the mgu_own_loop cell's fast loop does not take it; impl='generic'"):
        numpyrnn.Recurrent(OwnLoop(), 3, 4, zoneout=0.1)
    layer = numpyrnn.Recurrent(OwnLoop(), 3, 4, impl="generic", zoneout=0.1)
    with pytest.raises(ValueError, match="fast loop does not take it"):
        layer.impl = "fast"
    for cls in (numpyrnn.RNN, numpyrnn.LSTM, numpyrnn.GRU):     # the three cells' own loops take it
        for impl in ("fast", "reference"):
            assert cls(3, 4, impl=impl, zoneout=0.1).loop.kind == impl
    with pytest.raises(ValueError, match="the cell 'gru' has no state c"):
        _layer("gru", zoneout_c=0.1)
    class HOnly(cells.get("mgu").__class__):
        name = "mgu_h_fixed"
        zoneout_states = ()

    with pytest.raises(ValueError, match="does not let its state h be zoned out"):
        _layer(HOnly(), zoneout=0.1)
    with pytest.raises(ValueError, match="zoneout must be"):
        _layer("gru", zoneout=1.5)
    x, h0, w = RNG.standard_normal((2, 1, 3)), np.zeros((1, 4)), [RNG.standard_normal((4, 3)), RNG.standard_normal((4, 4))]
    for forward in (rnn.forward, rnn.forward_reference):
        with pytest.raises(ValueError, match=r"zoneout must be None or a tuple with an entry per state \(h\)"):
            forward(x, h0, *w, zoneout=0.1)
        with pytest.raises(ValueError, match=r"zoneout's entry for h must have shape \(2, 1, 4\)"):
            forward(x, h0, *w, zoneout=(np.zeros((2, 1, 3)),))
        with pytest.raises(ValueError, match=r"zoneout's entry for h must be a rate in \[0, 1\)"):
            forward(x, h0, *w, zoneout=(1.0,))
        with pytest.raises(ValueError, match="zoneout's entry for h contains NaN"):
            forward(x, h0, *w, zoneout=(np.full((2, 1, 4), np.nan),))


def test_it_is_a_setting_a_flag_and_a_saved_option(tmp_path, capsys):
    run = tmp_path / "run"
    common = ["train", "--task", "adding", "--seq-len", "5", "--hidden", "3", "--batch-size", "8", "--eval-every", "2",
              "--cell", "lstm", "--impl", "generic", "--quiet", "--out", str(run)]
    assert cli.main([*common, "--steps", "2", "--zoneout", "0.2", "--zoneout-c", "0.5"]) == 0
    model = numpyrnn.load(run / "model.npz")
    assert model.config()["zoneout"] == 0.2 and model.config()["zoneout_c"] == 0.5
    assert model.rnn.zoneout == 0.2 and model.rnn.zoneout_c == 0.5
    assert cli.main(["train", "--out", str(run), "--resume", "--steps", "4", "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--out", str(run), "--resume", "--steps", "6", "--zoneout", "0.3"]) == 2
    assert "zoneout was 0.2 in the saved run" in capsys.readouterr().err
    assert cli.main(["export", "--to", "torch", str(run / "model.npz"), str(tmp_path / "m.pt")]) == 2
    assert "torch.nn has no zoneout" in capsys.readouterr().err
    for command in ("compare", "sweep"):
        args = cli.build_parser().parse_args([command, "--zoneout", "0.1", "--zoneout-c", "0.2"])
        assert (args.zoneout, args.zoneout_c) == (0.1, 0.2)
    s = Settings(zoneout=0.1).resolved(numpyrnn.tasks.make("adding", seq_len=5))
    assert s.regularisers == {"zoneout": 0.1} and s.model_options()["zoneout"] == 0.1
