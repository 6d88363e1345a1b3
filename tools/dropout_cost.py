"""What recurrent dropout or zoneout costs: each built-in cell's layer with and without it, on
the fast path and the reference loop (and, for zoneout, the generic loop), timed in one process,
taking turns (numpyrnn.bench._times).

    python tools/dropout_cost.py [SHAPES=200x16x32x64,100x64x128x256] [DTYPE=float32] [REPEAT=9] [P=0.25]
                                 [REGULARISER=recurrent_dropout|zoneout]

Forward+backward of one layer in training mode (the masks are drawn at every forward, as in
training), median ms, and the ratio with ÷ without (for zoneout, with on each loop ÷ without on
the fast path, and the LSTM's c at the same rate).  Derivations §16 says what the fast path does
for recurrent dropout: one (B, H) product per step each way and one (T, B, H) product for dW_hh;
the fast paths' docstrings (trick "Zoneout") what they do for zoneout.
"""
import sys

import numpy as np

import numpyrnn
from numpyrnn import bench
from numpyrnn import machine

LAYERS = {"rnn": numpyrnn.RNN, "lstm": numpyrnn.LSTM, "gru": numpyrnn.GRU}


def main(argv):
    shapes = [tuple(map(int, s.split("x"))) for s in
              (argv[1] if len(argv) > 1 else "200x16x32x64,100x64x128x256").split(",")]
    dtype = argv[2] if len(argv) > 2 else "float32"
    repeat = int(argv[3]) if len(argv) > 3 else 9
    p = float(argv[4]) if len(argv) > 4 else 0.25
    regulariser = argv[5] if len(argv) > 5 else "recurrent_dropout"
    impls = ("fast", "reference", "generic") if regulariser == "zoneout" else ("fast", "reference")
    m = machine.describe()
    print(f"CPU {m['cpu']}, SIMD {m['simd']}; BLAS {m['blas']}, threads {m['threads']}; numpy {m['numpy']}; "
          f"{dtype}, median of {repeat}, {regulariser}={p}")
    print(f"{'cell':<5} {'impl':<10} {'T x B x I x H':<16} {'without ms':>11} {'with ms':>9} {'with/without':>13}")
    for T, B, I, H in shapes:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((T, B, I)).astype(dtype)
        dy = rng.standard_normal((T, B, H)).astype(dtype)
        for name, layer_class in LAYERS.items():
            for impl in impls:
                candidates = {}
                for label, rate in (("without", 0.0), ("with", p)):
                    options = {regulariser: rate, **({"zoneout_c": rate} if regulariser == "zoneout" and name == "lstm"
                                                     else {})}
                    plain = regulariser == "zoneout" and label == "without"        # zoneout's base: the fast path
                    layer = layer_class(I, H, dtype=dtype, seed=0, device="cpu", impl="fast" if plain else impl,
                                        **options)

                    def step(layer=layer):
                        layer.forward(x)
                        layer.backward(dy)

                    candidates[label] = (step, lambda: None)
                ms = {k: 1e3 * float(np.median(v)) for k, v in bench._times(candidates, repeat, warmup=1).items()}
                print(f"{name:<5} {impl:<10} {f'{T}x{B}x{I}x{H}':<16} {ms['without']:11.1f} {ms['with']:9.1f} "
                      f"{ms['with'] / ms['without']:13.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
