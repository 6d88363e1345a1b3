"""Issue 32, part 3 in part: a regressor fed one step at a time as data arrives
(SequenceRegressor.stream, Recurrent.step) computes what its forward computes over the whole
sequence at evaluation, to 1e-12 in float64, for any cell, stacked, with zoneout; it carries its
state and refuses what cannot stream (its threads: tests/test_threads.py)."""

import numpy as np
import pytest

import numpyrnn

RNG = np.random.default_rng(0)


def _model(cell, **kw):
    return numpyrnn.SequenceRegressor(cell, input_size=3, hidden_size=5, output_size=2, num_layers=2,
                                      dtype=np.float64, seed=0, **kw)


@pytest.mark.parametrize("cell, options", [("rnn", {"nonlinearity": "relu"}), ("lstm", {"zoneout": 0.2, "zoneout_c": 0.3}),
                                           ("gru", {"zoneout": 0.2, "reset_after": False}), ("mgu", {}),
                                           ("rnn", {}), ("lstm", {}), ("gru", {}), ("gru", {"impl": "reference"}),
                                           ("lstm_peephole", {"recurrent_dropout": 0.3, "dropout": 0.5})])
def test_a_stream_predicts_what_the_whole_sequence_predicts(cell, options):
    model = _model(cell, per_step=True, **options)               # left in training mode: a stream evaluates
    x = RNG.standard_normal((7, 2, 3))
    model.eval()
    _, want = model.forward(x)
    _, (want_state) = model.rnn.forward(x)
    model.train()
    stream = model.stream()
    got = np.stack([stream.step(x[t]) for t in range(7)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    for a, b in zip(stream.state if isinstance(stream.state, tuple) else (stream.state,),
                    want_state if isinstance(want_state, tuple) else (want_state,)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert stream.steps == 7 and model.training


def test_one_sequence_one_value_and_the_last_step_pooling():
    model = numpyrnn.SequenceRegressor("gru", input_size=1, hidden_size=4, dtype=np.float64, seed=1)  # pooling "last"
    model.eval()
    values = RNG.standard_normal(6)
    stream = model.stream()
    for t, v in enumerate(values):
        prediction = stream.step(float(v))                      # a number in, (O,) out
        _, want = model.forward(values[:t + 1, None, None])
        assert prediction.shape == (1,)
        np.testing.assert_allclose(prediction, want[0], rtol=0, atol=1e-12)
    stream.reset()
    assert stream.steps == 0 and stream.state is None
    np.testing.assert_allclose(stream.step(values[0]), model.forward(values[:1, None, None])[1][0], atol=1e-12)


def test_a_given_initial_state_is_where_the_stream_starts():
    model = _model("lstm", per_step=True)
    model.eval()
    x = RNG.standard_normal((4, 2, 3))
    h0, c0 = RNG.standard_normal((2, 2, 5)), RNG.standard_normal((2, 2, 5))
    y, _ = model.rnn.forward(x, (h0, c0))
    want = model.head.forward(y)
    stream = model.stream((h0, c0))
    np.testing.assert_allclose(np.stack([stream.step(x[t]) for t in range(4)]), want, rtol=0, atol=1e-12)


def test_what_cannot_stream_is_refused_saying_why():
    with pytest.raises(ValueError, match="pooled by 'mean' reads every step"):
        _model("gru", pooling="mean").stream()
    with pytest.raises(ValueError, match="bidirectional model reads each sequence from its end too"):
        _model("gru", per_step=True, bidirectional=True).stream()
    with pytest.raises(ValueError, match="step\\(\\) needs bidirectional=False"):
        numpyrnn.GRU(3, 4, bidirectional=True).step(np.zeros(3))
    stream = _model("rnn", per_step=True).stream()
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, 3\) or \(3,\), got \(4,\)"):
        stream.step(np.zeros(4))
    with pytest.raises(ValueError, match="x_t contains NaN or Inf"):
        stream.step(np.array([0.0, np.nan, 1.0]))
    stream.step(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="the stream carries the state of a batch of 2: feed it steps of the same shape"):
        stream.step(np.zeros(3))
    assert stream.steps == 1


def test_the_forecast_command_reads_values_as_they_arrive(tmp_path, monkeypatch, capsys):
    """numpyrnn forecast: one value a line on stdin, the forecast of the next printed after each,
    in the series' own units (the task's normalisation, read from the file's record of its task)."""
    import io

    from numpyrnn import cli, tasks

    run = tmp_path / "run"
    assert cli.main(["train", "--task", "series", "--cell", "gru", "--hidden", "6", "--steps", "6", "--seq-len", "12",
                     "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    values = [0.25, -0.5, 1.75, 0.0]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(map(str, values)) + "\n\n"))
    assert cli.main(["forecast", str(run / "model.npz")]) == 0
    printed = [float(line) for line in capsys.readouterr().out.split()]
    model = numpyrnn.load(run / "model.npz")
    model.eval()
    mean, std = tasks.make("series", seq_len=12).scale
    stream = model.stream()
    want = [float(stream.step((v - mean) / std)[0]) * std + mean for v in values]
    np.testing.assert_allclose(printed, want, rtol=1e-5)          # printed to 6 significant digits
    monkeypatch.setattr("sys.stdin", io.StringIO("0.5\n1 2\n"))
    assert cli.main(["forecast", str(run / "model.npz")]) == 2
    captured = capsys.readouterr()
    assert len(captured.out.split()) == 1                          # the first forecast went out before the error
    assert captured.err.strip() == "numpyrnn forecast: line 2: the model reads 1 finite value a step, got '1 2'"
    numpyrnn.save(numpyrnn.SequenceClassifier("gru", input_size=2, num_classes=2, seed=0), tmp_path / "c.npz")
    assert cli.main(["forecast", str(tmp_path / "c.npz")]) == 2
    assert "holds a SequenceClassifier; forecast needs a SequenceRegressor" in capsys.readouterr().err


@pytest.mark.parametrize("cell, options", [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}),
                                           ("gru", {}), ("gru", {"reset_after": False})])
def test_the_built_in_cells_stream_on_the_fast_step_and_it_is_the_reference_step(cell, options):
    """cells/fast/stream.py: the built-in cells' stream step skips the reference step's checks
    and cache; the same numbers as the reference step to 1e-12, and it reads the weights as
    they are at each step (an optimizer's update is seen at once)."""
    fast, reference = _model(cell, **options), _model(cell, impl="reference", **options)
    assert fast.rnn._stream_step() is not None and reference.rnn._stream_step() is None
    assert _model("lstm_peephole").rnn._stream_step() is None            # a variant: its own step
    for m in (fast, reference):
        m.eval()
    x = RNG.standard_normal((6, 2, 3))
    streams = fast.stream(), reference.stream()
    for t in range(6):
        a, b = (s.step(x[t]) for s in streams)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    for m in (fast, reference):
        for name in m.params:
            m.params[name] *= 1.5                                         # as an optimizer would: in place
    a, b = (s.step(x[0]) for s in streams)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    fresh = fast.stream(state=streams[1].state)
    np.testing.assert_allclose(fresh.step(x[1]), streams[0].step(x[1]), rtol=0, atol=1e-12)

