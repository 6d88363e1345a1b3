"""Where one step of the fast path's time goes, piece by piece, in µs per step.

    python tools/step_profile.py [SHAPE=200x16x32x64] [DTYPES=float32,float64] [REPEAT=15]

For each cell, one layer's forward+backward (as `numpyrnn bench` times it) is run with a timer
around each piece that sits outside the loops — the input terms, the backward's factors, the
gradient products after the loop, and the rest of the helpers — and the loops are what is left
of each pass.  The loops' own products and tanh are then timed alone (the same calls on the same
shapes, T times), so that "loop, other" is the time of the loop's remaining NumPy calls and the
Python around them; "calls" is their number per step (`numpyrnn.bench.calls_per_step`), and
"µs/call" their time over that number.  The pieces are medians over REPEAT runs, each piece's
own; they add up to the median total only roughly.
"""
import statistics
import sys
import time
from collections import defaultdict

import numpy as np

import numpyrnn
from numpyrnn import bench
from numpyrnn import machine
from numpyrnn import cells
from numpyrnn.cells import fast

#: the helpers timed as pieces of their own, per cell module
PIECES = {
    "input terms": ("input_terms", "step_major_input_terms"),
    "factors": ("_factors", "_factors_after", "_factors_before", "_slopes"),
    "gradient products": ("weight_gradients", "input_gradient", "bias_gradient"),
    "other helpers": ("_forward_weights", "masked_output_grad", "outputs", "final_state", "length_mask",
                      "_public_rows", "_internal_rows", "_rzn_rows", "_nrz_rows"),
}


def profile(cell, shape, dtype, repeat):
    T, B, I, H = shape
    module = {"rnn": fast.rnn, "lstm": fast.lstm, "gru": fast.gru}[cell]
    layer = {"rnn": numpyrnn.RNN, "lstm": numpyrnn.LSTM, "gru": numpyrnn.GRU}[cell](I, H, dtype=dtype, seed=0, device="cpu")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    spent = defaultdict(float)
    originals = {}
    loops = type(layer.cell).loops               # the cell's loops, which the layer calls
    fast_loop = loops["fast"]
    wrapped = [(module, name, piece) for piece, names in PIECES.items() for name in names if hasattr(module, name)]
    wrapped += [(fast_loop, "forward", "cell"), (fast_loop, "backward", "cell")]
    timed_loop = {}
    for owner, name, piece in wrapped:
        originals[owner, name] = getattr(owner, name)

        def timed(*args, _f=originals[owner, name], _piece=piece, **kwargs):
            start = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                spent[_piece] += time.perf_counter() - start

        if owner is fast_loop:
            timed_loop[name] = timed
        else:
            setattr(owner, name, timed)
    loops["fast"] = fast_loop._replace(**timed_loop)
    runs = defaultdict(list)
    try:
        for r in range(repeat + 2):
            spent.clear()
            start = time.perf_counter()
            layer.forward(x)
            middle = time.perf_counter()
            forward_pieces = dict(spent)
            layer.backward(dy)
            end = time.perf_counter()
            if r < 2:
                continue                         # warm-up
            backward_pieces = {k: v - forward_pieces.get(k, 0) for k, v in spent.items()}
            runs["total"].append(end - start)
            runs["forward"].append(middle - start)
            runs["backward"].append(end - middle)
            for k, v in forward_pieces.items():
                runs["forward " + k].append(v)
            for k, v in backward_pieces.items():
                runs["backward " + k].append(v)
    finally:
        loops["fast"] = fast_loop
        for (owner, name), f in originals.items():
            if owner is not fast_loop:
                setattr(owner, name, f)
    us = {k: 1e6 * statistics.median(v) / T for k, v in runs.items()}
    products, tanh = _loop_products(cell, shape, dtype, repeat)
    calls = bench.calls_per_step(cell)
    rows = []
    for direction, loop_products, loop_tanh in (("forward", products[0], tanh), ("backward", products[1], 0.0)):
        pieces = {k[len(direction) + 1:]: v for k, v in us.items() if k.startswith(direction + " ")}
        pieces["layer"] = us[direction] - pieces.pop("cell")     # the layer's own work around the cell
        loop = us[direction] - sum(pieces.values())
        n = sum(calls[direction].values()) - calls[direction].get("matmul", 0) - calls[direction].get("tanh", 0)
        other = loop - loop_products - loop_tanh
        rows.append((direction, pieces, loop, loop_products, loop_tanh, other, n))
    return us["total"], rows


def _loop_products(cell, shape, dtype, repeat):
    """µs per step of the loops' recurrent products (forward, backward) and tanh calls alone."""
    T, B, I, H = shape
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    rng = np.random.default_rng(1)
    h = rng.standard_normal((B, H)).astype(dtype)
    w_gates = rng.standard_normal((G, H, H)).astype(dtype)
    w_rows = rng.standard_normal((G * H, H)).astype(dtype)
    da = rng.standard_normal((B, G * H)).astype(dtype)
    out_gates, out = np.empty((G, B, H), dtype), np.empty((B, H), dtype)
    # the gate block one tanh covers: all gates (RNN, LSTM), r and z (GRU, whose n has its own)
    a = rng.standard_normal((G - 1 if cell == "gru" else G, B, H)).astype(dtype)
    forward_product = (lambda: np.matmul(h, w_gates, out=out_gates)) if G > 1 else (lambda: np.matmul(h, w_rows, out=out))
    calls = {
        "forward": forward_product,
        "backward": lambda: np.matmul(da, w_rows, out=out),
        "tanh": lambda: np.tanh(a, out=a),
        "tanh of one (B, H) block": lambda: np.tanh(h, out=out),
    }
    us = {}
    for name, call in calls.items():
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(T):
                call()
            times.append(time.perf_counter() - start)
        us[name] = 1e6 * statistics.median(times) / T
    second_tanh = us["tanh of one (B, H) block"] if cell in ("lstm", "gru") else 0.0   # tanh(c), or n
    return (us["forward"], us["backward"]), us["tanh"] + second_tanh


def main(argv):
    shape = tuple(int(v) for v in (argv[1] if len(argv) > 1 else "200x16x32x64").split("x"))
    dtypes = (argv[2] if len(argv) > 2 else "float32,float64").split(",")
    repeat = int(argv[3]) if len(argv) > 3 else 15
    print("machine:", machine.describe())
    print(f"µs per step at {'x'.join(map(str, shape))}; the loops' products and tanh timed alone")
    header = (f"{'cell':<5} {'dtype':<8} {'pass':<9} {'total':>7} {'layer':>6} {'input':>7} {'factors':>8} {'grads':>7} "
              f"{'helpers':>8} {'loop':>7} {'matmul':>7} {'tanh':>6} {'other':>7} {'calls':>6} {'µs/call':>8}")
    print(header)
    for dtype in dtypes:
        for cell in ("rnn", "lstm", "gru"):
            total, rows = profile(cell, shape, np.dtype(dtype), repeat)
            for direction, pieces, loop, products, tanh, other, n in rows:
                print(f"{cell:<5} {dtype:<8} {direction:<9} {'':>7} {pieces['layer']:6.2f} {pieces.get('input terms', 0):7.2f} "
                      f"{pieces.get('factors', 0):8.2f} {pieces.get('gradient products', 0):7.2f} "
                      f"{pieces.get('other helpers', 0):8.2f} {loop:7.2f} {products:7.2f} {tanh:6.2f} "
                      f"{other:7.2f} {n:6d} {other / n:8.2f}")
            print(f"{cell:<5} {dtype:<8} {'both':<9} {total:7.2f}")


if __name__ == "__main__":
    main(sys.argv)
