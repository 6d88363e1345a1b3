"""A/B timing of two versions of numpyrnn's layers, in one process, on the CPU.

    git worktree add /tmp/before <commit>
    python tools/ab_bench.py /tmp/before [ROUNDS=15] [SHAPES=100x64x128x256,200x16x32x64] [DTYPES=float32,float64]

The installed numpyrnn ("after") and the one in the given checkout ("before", loaded under
another name) time forward+backward of one RNN, LSTM and GRU layer on the same data, taking
turns in blocks of calls (the order swapped every round), so that a noisy machine's drift hits
both alike; it prints the medians and their ratio.  On a shared machine the ratio to the
matrix-product floor of `numpyrnn bench` moves by over 10 % between runs of the same code; this
ratio moves by a few per cent.
"""
import importlib.util
import statistics
import sys
import time

import numpy as np


def load(name, path):
    """The numpyrnn package in ``path`` under the module name ``name``."""
    spec = importlib.util.spec_from_file_location(name, f"{path}/numpyrnn/__init__.py",
                                                  submodule_search_locations=[f"{path}/numpyrnn"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv):
    import numpyrnn as after

    before = load("numpyrnn_before", argv[1])
    rounds = int(argv[2]) if len(argv) > 2 else 15
    shapes = [tuple(map(int, s.split("x"))) for s in
              (argv[3] if len(argv) > 3 else "100x64x128x256,200x16x32x64").split(",")]
    dtypes = (argv[4] if len(argv) > 4 else "float32,float64").split(",")
    print(f"{'cell':<5} {'shape':<16} {'dtype':<8} {'before ms':>9} {'after ms':>9} {'after/before':>12}")
    for T, B, I, H in shapes:
        calls = 3 if T * B * H > 10**6 else 10
        for dtype in dtypes:
            for cell in ("RNN", "LSTM", "GRU"):
                rng = np.random.default_rng(0)
                x = rng.standard_normal((T, B, I)).astype(dtype)
                dy = rng.standard_normal((T, B, H)).astype(dtype)
                steps = {}
                for label, package in (("before", before), ("after", after)):
                    layer = getattr(package, cell)(I, H, dtype=dtype, seed=0, device="cpu")

                    def step(layer=layer):
                        layer.forward(x)
                        layer.backward(dy)

                    step()
                    steps[label] = step
                times = {"before": [], "after": []}
                for r in range(rounds):
                    for label in (("before", "after") if r % 2 == 0 else ("after", "before")):
                        steps[label]()                   # untimed: the switch from the other
                        start = time.perf_counter()
                        for _ in range(calls):
                            steps[label]()
                        times[label].append((time.perf_counter() - start) / calls)
                b, a = (1e3 * statistics.median(times[k]) for k in ("before", "after"))
                print(f"{cell.lower():<5} {f'{T}x{B}x{I}x{H}':<16} {dtype:<8} {b:9.2f} {a:9.2f} {a / b:12.3f}",
                      flush=True)


if __name__ == "__main__":
    main(sys.argv)
