"""Timing forward+backward of each cell, against two floors and torch.nn.

For each cell, shape (T, B, I, H) and dtype, these are timed in one process, after a
warm-up, taking turns in rounds (see :func:`_times`), reporting the median and the minimum:

``numpyrnn``  a single-layer ``RNN``/``LSTM``/``GRU``: forward, then backward of a fixed dy (a
              registered cell of the user's: a ``Recurrent`` over it, on the generic loop,
              timed alone: it has no floors and no torch twin).
``floor``     the same matrix products alone, with preallocated outputs: the input projection
              of all steps, T recurrent products forward, T backward, and the three products
              after the loop (dx, dW_ih, dW_hh), on the BLAS threads numpyrnn's layer gets
              (its thread policy: :mod:`numpyrnn.backend`).  No implementation of the cell can take less
              time than its products, so numpyrnn / floor measures everything else.
``honest``    the floor plus the transcendental functions no implementation can skip, called
              as the fast path calls them: per step, one tanh over the (B, G·H) block of gate
              pre-activations (tanh standing in for σ, which NumPy computes no faster) and,
              for the LSTM, one over the (B, H) cell state for tanh(c).  On a CPU without
              AVX-512, NumPy's tanh over a block costs about half the product that made it,
              so the products alone are out of reach there; numpyrnn / honest is the ratio to
              read across machines.
``torch``     ``torch.nn.<cell>`` on the same shapes and dtype, on every core (torch's own
              default, or the BLAS environment variable a user set), forward then
              ``y.backward(dy)`` with the input requiring grad (so it computes dx too), as a
              user gets it.  On the CPU, torch runs a float32 LSTM as one fused oneDNN
              primitive (JIT-compiled kernels, not separate matrix products), and that can
              beat even numpyrnn's floor.
``aten``      the same with oneDNN switched off (``torch.backends.mkldnn.enabled = False``,
              CPU only): torch's own, unfused path — a matrix product per step and separate
              elementwise kernels, the algorithm numpyrnn runs.  For every cell but the float32
              LSTM it is the same code as ``torch``.
              Both only when torch is installed; they are timed, never used for any result.

Memory, for numpyrnn: the bytes the forward leaves for the backward (everything in the cache but
the parameters), the bytes the layer holds between calls in its reused buffers (that cache plus
the backward's scratch), and the peak traced allocation of a fresh layer's first
forward+backward (tracemalloc, CPU).
"""

from __future__ import annotations

import importlib
import os
import statistics
import time
import tracemalloc

import numpy as np

from . import backend, machine
from .cells.common import Workspace

from . import cells
from .cells.protocol import declared
from .layers import Recurrent

DEFAULT_SHAPES = ((100, 64, 128, 256), (200, 16, 32, 64))


def torch_twin(cell) -> str | None:
    """The torch.nn module ``cell`` (a registered name) has a twin in (its ``torch_module``): the
    cells whose products the floors model and which torch is timed against; None for the rest."""
    return declared(cells.get(cell), "torch_module")


def _blocks(cell) -> int:
    """G, the blocks of rows in the cell's weights (4 for the LSTM)."""
    return len(declared(cells.get(cell), "blocks"))


def blas_threads() -> int:
    """Threads torch gets in the bench, as a user's torch would: the BLAS environment variables
    if set, else every usable core."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


#: seconds of idleness before each block of calls: OpenBLAS's and OpenMP's worker threads
#: spin-wait for a while after their last work, and a block that starts while the other
#: library's threads still spin shares the cores with them (measured on 2 cores: torch's
#: float32 LSTM at 200×16×32×64 took 6.6 ms right after NumPy's products, 2.8 ms alone, and
#: 2.9–3.1 ms after 0.1–0.3 s of idleness)
IDLE_S = 0.25


def _times(candidates, repeat, warmup, rounds=3, idle=IDLE_S):
    """Seconds per call of each (fn, sync) in ``candidates``.

    The candidates take turns in ``rounds`` rounds; in each, a candidate runs as a block (``idle``
    seconds of sleep, one untimed call, then its share of the timed ones).  Rounds spread a
    noisy machine's drift over all candidates; blocks keep them from alternating call by call,
    and the sleep lets the previous block's spinning threads go to rest (see :data:`IDLE_S`).
    """
    for fn, sync in candidates.values():
        for _ in range(warmup):
            fn()
        sync()
    rounds = max(1, min(rounds, repeat))
    out = {name: [] for name in candidates}
    for r in range(rounds):
        share = repeat // rounds + (r < repeat % rounds)
        for name, (fn, sync) in candidates.items():
            time.sleep(idle)                     # the other library's threads stop spinning
            fn()                                 # untimed: the switch from another library
            sync()
            for _ in range(share):
                start = time.perf_counter()
                fn()
                sync()
                out[name].append(time.perf_counter() - start)
    return out


def _summary(times):
    return {"median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times)}


def activation_bytes(module) -> int:
    """Bytes of the arrays the last forward left for the backward, parameters excluded.

    Views are counted once, through the array that owns the memory.
    """
    params = {id(p) for p in module.params.values()}
    owners = {}

    def walk(obj):
        if isinstance(obj, (tuple, list)):
            for item in obj:
                walk(item)
        elif hasattr(obj, "nbytes") and hasattr(obj, "shape"):
            owner = obj
            while getattr(owner, "base", None) is not None:
                owner = owner.base
            if id(obj) not in params and id(owner) not in params:
                owners[id(owner)] = owner.nbytes

    walk(module._cache)
    return int(sum(owners.values()))


def _numpyrnn_case(cell, shape, dtype, device, seed=0, impl="fast"):
    T, B, I, H = shape
    layer = Recurrent(cells.get(cell), I, H, dtype=dtype, seed=seed, device=device, impl=impl)
    xp = layer.xp
    rng = np.random.default_rng(seed)
    x = xp.asarray(rng.standard_normal((T, B, I)).astype(dtype))
    dy = xp.asarray(rng.standard_normal((T, B, H)).astype(dtype))

    def step():
        layer.forward(x)
        layer.backward(dy)

    return layer, step


def _floor_case(cell, shape, dtype, xp, seed=0):
    """The cell's matrix products alone, with preallocated outputs and each operand in its
    fastest layout (weights pre-transposed where the product wants them so: a product with a
    transposed view can be several times slower), so that no arrangement of the same products
    beats it."""
    G = _blocks(cell)
    T, B, I, H = shape
    rng = np.random.default_rng(seed)

    def rand(*s):
        return xp.asarray(rng.standard_normal(s).astype(dtype))

    x2, w_ih_t, w_hh_t = rand(T * B, I), rand(I, G * H), rand(H, G * H)
    w_ih, w_hh = rand(G * H, I), rand(G * H, H)
    h_prev2, da2 = rand(T * B, H), rand(T * B, G * H)
    xw, rec, dh = xp.empty((T * B, G * H), dtype), xp.empty((B, G * H), dtype), xp.empty((B, H), dtype)
    dx, dw_ih, dw_hh = xp.empty((T * B, I), dtype), xp.empty((G * H, I), dtype), xp.empty((G * H, H), dtype)
    h_steps, da_steps = h_prev2.reshape(T, B, H), da2.reshape(T, B, G * H)

    outside = backend.matmul if xp is np else xp.matmul     # the products outside the loop, as the layer's

    @backend.thread_policy()                                 # the threads the layer gets
    def step():
        outside(x2, w_ih_t, out=xw)                          # input projection, all steps
        for t in range(T):
            xp.matmul(h_steps[t], w_hh_t, out=rec)           # recurrent product, forward
        for t in range(T):
            xp.matmul(da_steps[t], w_hh, out=dh)             # recurrent product, backward
        outside(da2, w_ih, out=dx)                           # dx
        outside(da2.T, x2, out=dw_ih)                        # dW_ih
        outside(da2.T, h_prev2, out=dw_hh)                   # dW_hh

    return step


def _honest_floor_case(cell, shape, dtype, xp, seed=0):
    """The floor's products, then the transcendentals every implementation computes, per step as
    the fast path calls them: tanh over the (B, G·H) gate block (standing in for σ), and over the
    (B, H) cell state for the LSTM's tanh(c)."""
    G = _blocks(cell)
    T, B, _, H = shape
    products = _floor_case(cell, shape, dtype, xp, seed)
    rng = np.random.default_rng(seed + 1)
    gates = xp.asarray(rng.standard_normal((T, B, G * H)).astype(dtype))
    states_c = xp.asarray(rng.standard_normal((T, B, H)).astype(dtype))
    gates_out, cell_out = xp.empty((B, G * H), dtype), xp.empty((B, H), dtype)
    lstm = "c" in cells.get(cell).state_names   # the LSTM's tanh(c) too

    @backend.thread_policy()
    def step():
        products()
        for t in range(T):
            xp.tanh(gates[t], out=gates_out)                 # σ or tanh of every gate element
            if lstm:
                xp.tanh(states_c[t], out=cell_out)           # tanh(c_t)

    return step


class _Counted(np.ndarray):
    """An ndarray that writes down every NumPy call it takes part in (ufuncs, matmul included,
    and array functions such as copyto), for :func:`calls_per_step`."""

    log: list = []

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _Counted.log.append(ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}")
        plain = tuple(a.view(np.ndarray) if isinstance(a, _Counted) else a for a in inputs)
        if out is not None:
            kwargs["out"] = tuple(a.view(np.ndarray) if isinstance(a, _Counted) else a for a in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result.view(_Counted) if isinstance(result, np.ndarray) else result

    def __array_function__(self, func, types, args, kwargs):
        _Counted.log.append(func.__name__)
        return super().__array_function__(func, types, args, kwargs)


class _CountedWorkspace:
    """A workspace whose buffers count the calls they take part in."""

    def __init__(self):
        self._inner = Workspace()

    def get(self, name, shape, dtype, xp):
        return self._inner.get(name, shape, dtype, xp).view(_Counted)

    def nbytes(self):
        return self._inner.nbytes()


def calls_per_step(cell, *, B=3, I=2, H=4, lengths=False, reverse=False, state_grads=False,
                   dtype=np.float64, **options):
    """NumPy calls per step of the fast path's loop, forward and backward, with every optional
    output off: {"forward": {name: count}, "backward": {name: count}}.

    Counted by running 4 and 8 steps with arrays that write down each call and taking the
    difference over 4, so the work before and after the loop (and a block of steps at a time,
    for the backward's factors) cancels out.  With ``lengths`` every sequence but the first is
    one step long, so that every step after the first pads some sequence; ``state_grads``
    passes gradients of the final state to the backward.  ``options``: the cell's
    (nonlinearity, reset_after).
    """
    from collections import Counter

    from .cells import fast

    module = {"rnn": fast.rnn, "lstm": fast.lstm, "gru": fast.gru}[cell]
    G = _blocks(cell)
    rng = np.random.default_rng(0)

    def counted(*shape):
        return rng.standard_normal(shape).astype(dtype).view(_Counted)

    def run(T):
        states = [counted(B, H) for _ in range(2 if cell == "lstm" else 1)]
        weights = [counted(G * H, I), counted(G * H, H), counted(G * H), counted(G * H)]
        steps = np.array([T] + [1] * (B - 1)) if lengths else None
        _Counted.log = []
        make_mask = module.length_mask           # the mask, too, counts the calls it is in
        module.length_mask = lambda *a: None if a[0] is None else make_mask(*a).view(_Counted)
        try:
            *_, cache = module.forward(counted(T, B, I), *states, *weights, lengths=steps, reverse=reverse,
                                       workspace=_CountedWorkspace(), check=False, **options)
        finally:
            module.length_mask = make_mask
        forward_log = _Counted.log
        _Counted.log = []
        make_zeros = module.zeros_if_none        # and so do the zeros that stand in for None
        module.zeros_if_none = lambda *a: make_zeros(*a).view(_Counted)
        try:
            module.backward(counted(T, B, H), *[counted(B, H) if state_grads else None for _ in states],
                            cache, check=False)
        finally:
            module.zeros_if_none = make_zeros
        return Counter(forward_log), Counter(_Counted.log)

    (f4, b4), (f8, b8) = run(4), run(8)
    per_step = {}
    for name, (short, long) in (("forward", (f4, f8)), ("backward", (b4, b8))):
        difference = {k: (long[k] - short[k]) / 4 for k in set(long) | set(short)}
        per_step[name] = {k: int(v) if float(v).is_integer() else v for k, v in sorted(difference.items()) if v}
    return per_step


def _torch_case(cell, shape, dtype, device, threads, seed=0, onednn=True):
    """torch.nn's layer on the same problem, or (None, None) when torch is not installed.
    ``onednn=False`` switches torch's oneDNN (mkldnn) kernels off around each call."""
    try:
        # torch is imported only here, only to be timed as the reference DESIGN §6 names.
        torch = importlib.import_module("torch")
    except ImportError:
        return None, None
    torch.set_num_threads(threads)
    T, B, I, H = shape
    tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]
    tdevice = "cuda" if device == "gpu" else "cpu"
    layer = getattr(torch.nn, torch_twin(cell))(I, H, dtype=tdtype, device=tdevice)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, I, generator=gen, dtype=tdtype).to(tdevice).requires_grad_()
    dy = torch.randn(T, B, H, generator=gen, dtype=tdtype).to(tdevice)

    def step():
        before = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = onednn
        try:
            y, _ = layer(x)
            y.backward(dy)
        finally:
            torch.backends.mkldnn.enabled = before

    sync = torch.cuda.synchronize if tdevice == "cuda" else (lambda: None)
    return step, sync


def run(cells=("rnn", "lstm", "gru"), shapes=DEFAULT_SHAPES, dtypes=("float32", "float64"),
        repeat=7, warmup=2, device="cpu", with_torch=True, progress=None, idle=IDLE_S, impl="fast"):
    """Measure every combination; returns a list of result dicts (see :func:`format_row`).
    ``idle``: seconds of sleep before each block of calls (see :data:`IDLE_S`); ``impl``: which
    of numpyrnn's paths is timed ("fast" or "reference")."""
    device = backend.resolve_device(device)
    threads = blas_threads()
    xp = backend.module_for(device)
    sync = (lambda: xp.cuda.Stream.null.synchronize()) if device == "gpu" else (lambda: None)
    results = []
    for shape in shapes:
        for dtype in dtypes:
            for cell in cells:
                dtype_ = np.dtype(dtype)
                layer, step = _numpyrnn_case(cell, shape, dtype_, device, impl=impl)
                candidates = {"numpyrnn": (step, sync)}
                if torch_twin(cell):                 # floors and torch: for the cells torch has
                    candidates.update(floor=(_floor_case(cell, shape, dtype_, xp), sync),
                                      honest=(_honest_floor_case(cell, shape, dtype_, xp), sync))
                if with_torch and torch_twin(cell):
                    torch_step, torch_sync = _torch_case(cell, shape, dtype_, device, threads)
                    if torch_step is not None:
                        candidates["torch"] = (torch_step, torch_sync)
                        if device == "cpu":
                            candidates["aten"] = _torch_case(cell, shape, dtype_, device, threads,
                                                             onednn=False)
                times = _times(candidates, repeat, warmup, idle=idle)
                row = {"cell": cell, "T": shape[0], "B": shape[1], "I": shape[2], "H": shape[3],
                       "dtype": dtype_.name, "device": device, "threads": machine.threads_text(),
                       "torch_threads": threads, "impl": impl,
                       **{name: _summary(t) for name, t in times.items()}}
                row["activation_bytes"] = activation_bytes(layer)
                row["held_bytes"] = layer.workspace_bytes()
                if device == "cpu":                  # a fresh layer: its buffers are allocated too
                    _, first_step = _numpyrnn_case(cell, shape, dtype_, device, impl=impl)
                    tracemalloc.start()
                    first_step()
                    row["peak_bytes"] = tracemalloc.get_traced_memory()[1]
                    tracemalloc.stop()
                for ref in ("floor", "honest", "torch", "aten"):
                    if ref in row:
                        row[f"vs_{ref}"] = row["numpyrnn"]["median_ms"] / row[ref]["median_ms"]
                results.append(row)
                if progress:
                    progress(row)
    return results


def per_step(row) -> dict:
    """Where one step's time goes (forward and backward together), from a row of :func:`run`:
    the products (the floor's share), the transcendentals (honest − floor), and the rest, over
    the NumPy calls of the loop that are neither (from :func:`calls_per_step`)."""
    T = row["T"]
    options = {"reset_after": True} if row["cell"] == "gru" else {}
    calls = calls_per_step(row["cell"], **options)
    total = {k: sum(v.values()) for k, v in calls.items()}
    named = sum(calls[d].get(k, 0) for d in calls for k in ("matmul", "tanh"))
    ours, floor, honest = (1e3 * row[k]["median_ms"] / T for k in ("numpyrnn", "floor", "honest"))
    other_calls = total["forward"] + total["backward"] - named
    rest = ours - honest
    return {"us": ours, "products_us": floor, "tanh_us": honest - floor, "rest_us": rest,
            "calls": total["forward"] + total["backward"], "other_calls": other_calls,
            "us_per_other_call": rest / other_calls if other_calls else float("nan")}


PER_STEP_HEADER = (f"{'cell':<5} {'T x B x I x H':<16} {'dtype':<8} {'us/step':>8} {'products':>9} {'tanh':>6} "
                   f"{'rest':>7} {'calls':>6} {'others':>7} {'us each':>8}")


def format_per_step(row) -> str:
    p = per_step(row)
    shape = f"{row['T']}x{row['B']}x{row['I']}x{row['H']}"
    return (f"{row['cell']:<5} {shape:<16} {row['dtype']:<8} {p['us']:8.1f} {p['products_us']:9.1f} "
            f"{p['tanh_us']:6.1f} {p['rest_us']:7.1f} {p['calls']:6d} {p['other_calls']:7d} "
            f"{p['us_per_other_call']:8.2f}")


def format_row(row) -> str:
    shape = f"{row['T']}x{row['B']}x{row['I']}x{row['H']}"

    def column(value, fmt):                      # "-" where there is no value, in the same width
        return f"{value:{fmt}}" if value is not None else f"{'-':>{fmt.split('.')[0]}}"

    def ms(name):
        return column(row[name]["median_ms"] if name in row else None, "9.1f")

    def ratio(name):
        return column(row.get(name), "8.2f")

    peak = column(row["peak_bytes"] / 2**20 if "peak_bytes" in row else None, "8.1f")
    return (f"{row['cell']:<5} {shape:<16} {row['dtype']:<8} {row['numpyrnn']['median_ms']:9.1f} "
            f"{row['numpyrnn']['min_ms']:9.1f} {ms('floor')} {ms('honest')} {ms('torch')} {ms('aten')} "
            f"{ratio('vs_floor')} {ratio('vs_honest')} {ratio('vs_torch')} {ratio('vs_aten')} "
            f"{row['activation_bytes'] / 2**20:8.1f} {row['held_bytes'] / 2**20:8.1f} {peak}")


HEADER = (f"{'cell':<5} {'T x B x I x H':<16} {'dtype':<8} {'ours ms':>9} {'ours min':>9} {'floor ms':>9} "
          f"{'honest ms':>9} {'torch ms':>9} {'aten ms':>9} {'/floor':>8} {'/honest':>8} {'/torch':>8} "
          f"{'/aten':>8} {'act MiB':>8} "
          f"{'held MiB':>8} {'peak MiB':>8}")
