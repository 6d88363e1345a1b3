"""Zoneout (Krueger et al. 2017; issue 30's proof, derivations §17): each unit of a state keeps
its previous value with probability p in training and takes the expectation at evaluation; its
backward, with the masks replayed, agrees with finite differences for every cell, with lengths,
both directions, stacks and recurrent dropout; and it lands where it acts."""

import numpy as np
import pytest

import numpyrnn
from numpyrnn import cells, cli, gradcheck
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
    with pytest.raises(ValueError, match="the lstm cell's fast loop does not take it yet; impl='generic'"):
        numpyrnn.LSTM(3, 4, zoneout=0.1)
    with pytest.raises(ValueError, match="the cell 'gru' has no state c"):
        _layer("gru", zoneout_c=0.1)
    layer = _layer("lstm", zoneout=0.1)
    with pytest.raises(ValueError, match="reference loop does not take it yet"):
        layer.impl = "reference"

    class HOnly(cells.get("mgu").__class__):
        name = "mgu_h_fixed"
        zoneout_states = ()

    with pytest.raises(ValueError, match="does not let its state h be zoned out"):
        _layer(HOnly(), zoneout=0.1)
    with pytest.raises(ValueError, match="zoneout must be"):
        _layer("gru", zoneout=1.5)


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
