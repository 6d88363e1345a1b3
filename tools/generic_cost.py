"""What the generic loop costs: each built-in cell on its fast path, its own reference loop and the
generic loop over its Cell, timed in one process, taking turns.

    python tools/generic_cost.py [SHAPES=200x16x32x64,100x64x128x256] [DTYPES=float32,float64] [REPEAT=9] [CELLS=lstm,gru,rnn]

A cell of your own runs on the generic loop (numpyrnn.cells.generic), so this is the price of
writing a cell yourself instead of using a built-in one with its fast path; and against the
reference, the price of the one loop that serves every cell against a loop written for one.
Forward+backward of one layer, as `numpyrnn bench` times it (same data, blocks of calls after
a rest, rounds; numpyrnn.bench._times), median ms and the ratios.
"""
import sys

import numpy as np

import numpyrnn
from numpyrnn import bench
from numpyrnn import machine

LAYERS = {"rnn": numpyrnn.RNN, "lstm": numpyrnn.LSTM, "gru": numpyrnn.GRU}
IMPLS = ("fast", "reference", "generic")


def main(argv):
    shapes = [tuple(map(int, s.split("x"))) for s in
              (argv[1] if len(argv) > 1 else "200x16x32x64,100x64x128x256").split(",")]
    dtypes = (argv[2] if len(argv) > 2 else "float32,float64").split(",")
    repeat = int(argv[3]) if len(argv) > 3 else 9
    names = (argv[4] if len(argv) > 4 else "lstm,gru,rnn").split(",")
    m = machine.describe()
    print(f"CPU {m['cpu']}, SIMD {m['simd']}; BLAS {m['blas']}, threads {m['threads']}; numpy {m['numpy']}; "
          f"median of {repeat}")
    print(f"{'cell':<5} {'T x B x I x H':<16} {'dtype':<8} {'fast ms':>9} {'ref ms':>9} {'generic ms':>10} "
          f"{'gen/fast':>9} {'gen/ref':>8} {'us/step gen-ref':>16}")
    for T, B, I, H in shapes:
        for dtype in dtypes:
            for name in names:
                rng = np.random.default_rng(0)
                x = rng.standard_normal((T, B, I)).astype(dtype)
                dy = rng.standard_normal((T, B, H)).astype(dtype)
                candidates = {}
                for impl in IMPLS:
                    layer = LAYERS[name](I, H, dtype=dtype, seed=0, device="cpu", impl=impl)

                    def step(layer=layer):
                        layer.forward(x)
                        layer.backward(dy)

                    candidates[impl] = (step, lambda: None)
                times = bench._times(candidates, repeat, warmup=1)
                ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
                extra = 1e3 * (ms["generic"] - ms["reference"]) / T
                print(f"{name:<5} {f'{T}x{B}x{I}x{H}':<16} {dtype:<8} {ms['fast']:9.1f} {ms['reference']:9.1f} "
                      f"{ms['generic']:10.1f} {ms['generic'] / ms['fast']:9.2f} "
                      f"{ms['generic'] / ms['reference']:8.2f} {extra:16.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
