"""numpyrnn gradcheck and numpyrnn bench: checking and timing the cells."""

from __future__ import annotations

import json

import numpy as np

from .. import __version__
from .common import (  # the shared options and checks
    _add_cell_file, _add_cells, _add_device, _add_impl, _check_output_file, _choices_list, _Help, _positive_float,
    _positive_int, _shape, UsageError,
)


# --------------------------------------------------------------------------- gradcheck

def _add_gradcheck(sub):
    p = sub.add_parser(
        "gradcheck", help="check every cell's backward pass against finite differences",
        description="Check each cell's hand-derived backward pass (every parameter, the input and "
                    "the initial state) against central finite differences in float64, and print "
                    "a table per cell. Exits with status 1 if any tensor fails.",
        formatter_class=_Help)
    p.add_argument("--cell", default="all", metavar="NAME",
                   help="which cell (all: every registered one); rnn checks tanh and relu, gru both reset "
                        "forms; a cell of your own needs --cell-file")
    _add_cell_file(p)
    p.add_argument("--mode", choices=["full", "fast"], default="full",
                   help="full: every entry; fast: random directions per tensor")
    p.add_argument("--seq-len", type=_positive_int, default=5, help="time steps T")
    p.add_argument("--batch", type=_positive_int, default=3, help="sequences B")
    p.add_argument("--input-size", type=_positive_int, default=4, help="input features I")
    p.add_argument("--hidden", type=_positive_int, default=5, help="hidden units H")
    p.add_argument("--layers", type=_positive_int, default=1, help="stacked layers")
    p.add_argument("--bidirectional", action="store_true", help="check both directions")
    p.add_argument("--lengths", action="store_true",
                   help="give the sequences lengths in 1..T: the first T, the last 1, the rest random")
    p.add_argument("--models", action="store_true",
                   help="also check whole models (classifier, regressor, char LM) built on each cell")
    p.add_argument("--eps", type=_positive_float, default=1e-6, help="finite-difference step")
    p.add_argument("--tol", type=_positive_float, default=1e-7, help="relative error tolerance")
    p.add_argument("--directions", type=_positive_int, default=8,
                   help="random directions per tensor in fast mode")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, data and projections")
    _add_device(p, "where to run (the check is float64 on either)")
    _add_impl(p, "the checked layers and models")
    p.set_defaults(run=_run_gradcheck)


def _run_gradcheck(args):
    from .. import cells, gradcheck

    try:
        results, lengths = gradcheck.check_cells(
            cells.names() if args.cell == "all" else [args.cell], seq_len=args.seq_len, batch=args.batch,
            input_size=args.input_size, hidden=args.hidden, num_layers=args.layers, bidirectional=args.bidirectional,
            lengths=args.lengths, models=args.models, impl=args.impl, device=args.device, eps=args.eps,
            tol=args.tol, mode=args.mode, seed=args.seed, n_directions=args.directions)
    except cells.CellError as exc:               # a cell that breaks the protocol: no verdict to give
        raise UsageError(f"numpyrnn gradcheck: {exc}") from None
    for _, report in results:
        print(report, end="\n\n")
    print(gradcheck.summary(results, f"{args.impl} path, T={args.seq_len}, B={args.batch}, I={args.input_size}, "
                                     f"H={args.hidden}, layers={args.layers}"
                                     + (", bidirectional" if args.bidirectional else "")
                                     + (f", lengths {lengths.tolist()}" if lengths is not None else "")))
    return 0 if all(report.passed for _, report in results) else 1


# --------------------------------------------------------------------------- bench

def _add_bench(sub):
    from ..bench import DEFAULT_SHAPES

    p = sub.add_parser(
        "bench", help="time forward+backward of each cell against the matrix-product floor and torch",
        description="Time forward+backward of a single-layer RNN, LSTM and GRU at fixed shapes, beside "
                    "the same matrix products alone (the floor) and, where installed, torch.nn with the "
                    "same thread count; print the ratios, activation memory and peak memory.",
        formatter_class=_Help)
    _add_cells(p, ["rnn", "lstm", "gru"], help="comma-separated cells: rnn, lstm, gru, or a name from "
                                             "--cell-file (timed on the generic loop, without floors or torch)")
    p.add_argument("--shape", type=_shape, action="append", dest="shapes",
                   help="TxBxIxH (repeatable); default: " + " and ".join("x".join(map(str, s)) for s in DEFAULT_SHAPES))
    p.add_argument("--dtypes", type=_choices_list(["float32", "float64"]), default=["float32", "float64"],
                   help="comma-separated dtypes")
    p.add_argument("--repeat", type=_positive_int, default=7, help="timed repetitions (median and min reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed repetitions first")
    _add_device(p, "where numpyrnn runs")
    p.add_argument("--no-torch", action="store_true", help="skip the torch.nn comparison")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE ('-' for stdout)")
    p.add_argument("--per-step", action="store_true",
                   help="also show where one step's time goes: the products, the tanh, and the rest "
                        "over the loop's other NumPy calls (the fast path's)")
    _add_impl(p, "the timed numpyrnn layers")
    p.set_defaults(run=_run_bench)


def _run_bench(args):
    from .. import bench, machine

    shapes = args.shapes or list(bench.DEFAULT_SHAPES)
    quiet = args.json == "-"
    if args.json and not quiet:
        _check_output_file(args, args.json, "--json")
    if not quiet:
        m = machine.describe()
        print(f"numpyrnn {__version__}, numpy {m['numpy']}; CPU {m['cpu']}, SIMD {m['simd']}; BLAS {m['blas']}, "
              f"threads {m['threads']}; median of {args.repeat} after {args.warmup} warm-up"
              + ("; numpyrnn on its reference path" if args.impl == "reference" else ""))
        print(bench.HEADER)
    results = bench.run(args.cells, shapes, args.dtypes, repeat=args.repeat, warmup=max(args.warmup, 0),
                        device=args.device, with_torch=not args.no_torch, impl=args.impl,
                        progress=None if quiet else lambda row: print(bench.format_row(row), flush=True))
    if args.per_step and not quiet:
        print("\nper step, forward and backward (us): the products' share of the floor, the tanh (honest "
              "- floor), the rest;\nthe loop's NumPy calls, those neither matmul nor tanh, and the rest "
              "per such call")
        print(bench.PER_STEP_HEADER)
        for row in results:
            if "floor" in row:                   # a cell of the user's has no floor to split by
                print(bench.format_per_step(row))
    if args.json:
        text = json.dumps({"version": __version__, "numpy": np.__version__, "machine": machine.describe(),
                           "results": results}, indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0
