"""The ``numpyrnn`` command.

    numpyrnn gradcheck [--cell rnn|lstm|gru|all] [--mode full|fast] ...

User errors (bad arguments, impossible configurations) print one line on stderr and exit with
status 2; a gradient check that fails exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

from . import __version__
from .backend import DeviceUnavailableError


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


# --------------------------------------------------------------------------- gradcheck

#: the cell variants ``--cell`` selects: name → (layer class name, options)
GRADCHECK_VARIANTS = {
    "rnn": [("RNN", {"nonlinearity": "tanh"}), ("RNN", {"nonlinearity": "relu"})],
    "lstm": [("LSTM", {})],
    "gru": [("GRU", {"reset_after": True}), ("GRU", {"reset_after": False})],
}


def _add_gradcheck(sub):
    p = sub.add_parser(
        "gradcheck", help="check every cell's backward pass against finite differences",
        description="Check each cell's hand-derived backward pass (every parameter, the input and "
                    "the initial state) against central finite differences in float64, and print "
                    "a table per cell. Exits with status 1 if any tensor fails.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cell", choices=["rnn", "lstm", "gru", "all"], default="all",
                   help="which cell; rnn checks tanh and relu, gru both reset forms")
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
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                   help="where to run (the check is float64 on either)")
    p.set_defaults(run=_run_gradcheck)


def _run_gradcheck(args):
    from . import gradcheck, layers

    rng = np.random.default_rng(args.seed)
    T, B = args.seq_len, args.batch
    x = rng.standard_normal((T, B, args.input_size))
    lengths = None
    if args.lengths:                     # random, but always one full-length and one length-1 sequence
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0], lengths[-1] = T, (1 if B > 1 else T)
    names = ["rnn", "lstm", "gru"] if args.cell == "all" else [args.cell]
    summary = []
    for name in names:
        for cls_name, options in GRADCHECK_VARIANTS[name]:
            module = getattr(layers, cls_name)(
                args.input_size, args.hidden, num_layers=args.layers,
                bidirectional=args.bidirectional, dtype=np.float64, seed=args.seed,
                device=args.device, **options)
            report = gradcheck.check(module, x, lengths=lengths, eps=args.eps, tol=args.tol,
                                     mode=args.mode, seed=args.seed, n_directions=args.directions)
            print(report, end="\n\n")
            summary.append(_summary_row(repr(module).split(", dtype")[0] + ")", report))
        if args.models:
            for label, model, batch in _gradcheck_models(name, args, rng, lengths):
                report = gradcheck.check_model(model, batch, eps=args.eps, tol=args.tol, mode=args.mode,
                                               seed=args.seed, n_directions=args.directions)
                print(report, end="\n\n")
                summary.append(_summary_row(label, report))
    width = max(len("layer"), *(len(label) for label, *_ in summary))
    where_width = max(len("in"), *(len(where) for _, _, _, where, _ in summary))
    print(f"{'layer':<{width}}  {'tensors':>7}  {'worst rel err':>13}  {'in':<{where_width}}  result")
    for label, count, err, where, ok in summary:
        print(f"{label:<{width}}  {count:>7}  {err:>13.2e}  {where:<{where_width}}  {'ok' if ok else 'FAIL'}")
    failed = sum(not ok for *_, ok in summary)
    print(f"\n{len(summary) - failed}/{len(summary)} passed (T={T}, B={B}, "
          f"I={args.input_size}, H={args.hidden}, layers={args.layers}"
          f"{', bidirectional' if args.bidirectional else ''}"
          f"{', lengths ' + str(lengths.tolist()) if lengths is not None else ''})")
    return 1 if failed else 0


def _summary_row(label, report):
    worst = max(report.rows, key=lambda r: r.max_rel_err)
    return label, len(report.rows), worst.max_rel_err, worst.name, report.passed


def _gradcheck_models(cell, args, rng, lengths):
    """The three models on ``cell``, each with a random batch of the command's shape."""
    from . import models

    T, B, I, H = args.seq_len, args.batch, args.input_size, args.hidden
    common = dict(hidden_size=H, num_layers=args.layers, dtype=np.float64, seed=args.seed,
                  device=args.device)
    vocab = 7
    classifier = models.SequenceClassifier(cell, vocab_size=vocab, embedding_dim=I, num_classes=3,
                                           bidirectional=args.bidirectional, pooling="mean", **common)
    regressor = models.SequenceRegressor(cell, input_size=I, per_step=True,
                                         bidirectional=args.bidirectional, **common)
    charlm = models.CharLM(cell, vocab_size=vocab, embedding_dim=I, **common)
    ids = rng.integers(0, vocab, (T + 1, B))
    yield (f"SequenceClassifier({cell}, pooling='mean')", classifier,
           (ids[:-1], rng.integers(0, 3, B), lengths))
    yield (f"SequenceRegressor({cell}, per_step=True)", regressor,
           (rng.standard_normal((T, B, I)), rng.standard_normal((T, B, 1)), lengths))
    yield f"CharLM({cell})", charlm, (ids[:-1], ids[1:], lengths)


# --------------------------------------------------------------------------- bench

def _shape(text):
    parts = text.lower().split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected TxBxIxH with four positive integers, got {text!r}")
    return values


def _choices_list(allowed):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(allowed)}, got {text!r}")
        return items
    return parse


def _add_bench(sub):
    from .bench import DEFAULT_SHAPES

    p = sub.add_parser(
        "bench", help="time forward+backward of each cell against the matrix-product floor and torch",
        description="Time forward+backward of a single-layer RNN, LSTM and GRU at fixed shapes, beside "
                    "the same matrix products alone (the floor) and, where installed, torch.nn with the "
                    "same thread count; print the ratios, activation memory and peak memory.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cells", type=_choices_list(["rnn", "lstm", "gru"]), default=["rnn", "lstm", "gru"],
                   help="comma-separated cells")
    p.add_argument("--shape", type=_shape, action="append", dest="shapes",
                   help="TxBxIxH (repeatable); default: " + " and ".join("x".join(map(str, s)) for s in DEFAULT_SHAPES))
    p.add_argument("--dtypes", type=_choices_list(["float32", "float64"]), default=["float32", "float64"],
                   help="comma-separated dtypes")
    p.add_argument("--repeat", type=_positive_int, default=7, help="timed repetitions (median and min reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed repetitions first")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default="cpu", help="where numpyrnn runs")
    p.add_argument("--no-torch", action="store_true", help="skip the torch.nn comparison")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE ('-' for stdout)")
    p.set_defaults(run=_run_bench)


def _run_bench(args):
    import json
    import platform

    from . import bench

    shapes = args.shapes or list(bench.DEFAULT_SHAPES)
    quiet = args.json == "-"
    if not quiet:
        print(f"numpyrnn {__version__}, numpy {np.__version__}, {platform.processor() or platform.machine()}, "
              f"{bench.blas_threads()} BLAS threads; median of {args.repeat} after {args.warmup} warm-up")
        print(bench.HEADER)
    results = bench.run(args.cells, shapes, args.dtypes, repeat=args.repeat, warmup=max(args.warmup, 0),
                        device=args.device, with_torch=not args.no_torch,
                        progress=None if quiet else lambda row: print(bench.format_row(row), flush=True))
    if args.json:
        text = json.dumps({"version": __version__, "numpy": np.__version__, "results": results}, indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0


# --------------------------------------------------------------------------- entry point

def build_parser():
    parser = _Parser(prog="numpyrnn",
                     description="Recurrent networks in NumPy with hand-derived backpropagation.")
    parser.add_argument("--version", action="version", version=f"numpyrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_gradcheck(sub)
    _add_bench(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return args.run(args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except DeviceUnavailableError as exc:
        print(f"numpyrnn: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
