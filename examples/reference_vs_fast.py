"""The textbook loop and the fast path: how closely they agree, and what each costs.

    python examples/reference_vs_fast.py [--seeds 5] [--seq-len 20] [--batch 4] [--input-size 5] [--hidden 8]

Every layer runs its cell over the sequence either as the reference (``impl="reference"``: the
loop over ``step_forward`` / ``step_backward`` in numpyrnn/cells/*.py, an equation a line) or as
the fast path (``impl="fast"``, the default: numpyrnn/cells/fast/, the same equations arranged
for speed).  For each cell and form, over every stack depth 1-3 x direction x layout x with and
without lengths, this runs both on the same weights and data in float64 and prints the largest
normwise relative error max|fast - reference| / max|reference| over everything observable:
outputs, final states, and the gradients of the input, of the initial states and of every
parameter.  Then it times one forward+backward of each path at the given shape.
"""

import argparse
import itertools
import sys
import time

import numpy as np

import numpyrnn

FORMS = [("RNN tanh", numpyrnn.RNN, {"nonlinearity": "tanh"}),
         ("RNN relu", numpyrnn.RNN, {"nonlinearity": "relu"}),
         ("LSTM", numpyrnn.LSTM, {}),
         ("GRU", numpyrnn.GRU, {}),
         ("GRU textbook", numpyrnn.GRU, {"reset_after": False})]

CONFIGS = [dict(num_layers=layers, bidirectional=bi, batch_first=bf, lengths=lengths)
           for layers, bi, bf, lengths in itertools.product((1, 2, 3), (False, True), (False, True), (False, True))]


def run(cls, options, impl, config, T, B, I, H, seed):
    """Everything observable of one forward and backward, as a list of arrays."""
    kw = {k: v for k, v in config.items() if k != "lengths"}
    m = cls(I, H, dtype=np.float64, seed=seed, impl=impl, **kw, **options)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, I) if config["batch_first"] else (T, B, I))
    lengths = rng.integers(1, T + 1, size=B) if config["lengths"] else None
    y, state = m.forward(x, lengths=lengths)
    finals = list(state) if isinstance(state, tuple) else [state]
    dfinals = [rng.standard_normal(s.shape) for s in finals]
    dx, dstate0 = m.backward(rng.standard_normal(y.shape), tuple(dfinals) if len(dfinals) == 2 else dfinals[0])
    dstate0 = list(dstate0) if isinstance(dstate0, tuple) else [dstate0]
    return [y, dx, *finals, *dstate0, *m.grads.values()]


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def seconds_per_call(cls, options, impl, T, B, I, H, repeat=5):
    m = cls(I, H, dtype=np.float32, seed=0, impl=impl, **options)
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))
    m.forward(x)
    m.backward(dy)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        m.forward(x)
        m.backward(dy)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="random models and batches per form and configuration")
    parser.add_argument("--seq-len", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--input-size", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=8)
    args = parser.parse_args()
    shape = (args.seq_len, args.batch, args.input_size, args.hidden)
    print(f"float64, T={shape[0]} B={shape[1]} I={shape[2]} H={shape[3]}, {len(CONFIGS)} configurations "
          f"(layers 1-3 x uni/bi x time-major/batch-first x lengths or not) x {args.seeds} seeds each")
    print(f"{'cell':<14}{'worst |fast - reference|':>26}{'fast ms':>10}{'reference ms':>14}{'ratio':>8}")
    worst = 0.0
    for label, cls, options in FORMS:
        err = max(rel_err(a, b)
                  for config in CONFIGS for seed in range(args.seeds)
                  for a, b in zip(run(cls, options, "fast", config, *shape, seed),
                                  run(cls, options, "reference", config, *shape, seed)))
        fast, ref = (seconds_per_call(cls, options, impl, *shape) for impl in ("fast", "reference"))
        print(f"{label:<14}{err:>26.2e}{1e3 * fast:>10.2f}{1e3 * ref:>14.2f}{ref / fast:>8.1f}")
        worst = max(worst, err)
    print(f"worst: {worst:.2e} (timed in float32, one layer, median of 5 forward+backward)")
    return 0 if worst < 1e-12 else 1


if __name__ == "__main__":
    sys.exit(main())
