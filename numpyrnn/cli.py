"""The ``numpyrnn`` command: it parses arguments and prints; the work lives in the modules below.

    numpyrnn compare --task sentiment --cells lstm,gru,rnn --seeds 3 [--match-params] --out DIR
    numpyrnn gradflow [--seq-len 100] [--steps 2000] --out DIR
    numpyrnn sweep [--lengths 10,25,50,100,200] [--steps 1500] --out DIR
    numpyrnn train --task adding|copy|sentiment|charlm|series --cell rnn|lstm|gru [...]
    numpyrnn sample --checkpoint PATH [--length 300] [--temperature 0.8]
    numpyrnn predict MODEL "a text" ["another" ...]   (or lines on stdin)
    numpyrnn tasks
    numpyrnn gradcheck [--cell rnn|lstm|gru|all] [--mode full|fast] ...
    numpyrnn bench [--cells ...] [--shape TxBxIxH] ...
    numpyrnn exercise rnn|lstm|gru [--part step|sequence] > my_lstm.py
    numpyrnn grade my_lstm.py --cell lstm [--part step|sequence]

User errors (bad arguments, impossible configurations) print one line on stderr and exit with
status 2; a gradient check or a graded exercise that fails exits with status 1.  Every command that computes takes
``--device`` (default auto: the GPU if CuPy sees one, else the CPU; NUMPYRNN_DEVICE overrides
auto) and ``--impl`` (fast or reference).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shlex
import sys
import warnings

import numpy as np

from . import __version__
from . import backend
from .backend import DeviceUnavailableError


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (the help then says
    where the value comes from, e.g. "the task's")."""

    def _get_help_string(self, action):
        if action.default is None or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


# --------------------------------------------------------------------------- argument types

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


# --------------------------------------------------------------------------- options shared by commands

# The choices of every flag are the library's own lists, read here, never copied.
from . import exercises, optim, runs, tasks, train   # noqa: E402
from .cells.common import NONLINEARITIES  # noqa: E402
from .experiments import sweep as _sweep  # noqa: E402
from .layers.pooling import POOLINGS  # noqa: E402
from .layers.recurrent import IMPLS  # noqa: E402
from .settings import SPEC  # noqa: E402
from .tasks.series import SOURCES  # noqa: E402

TASK_CHOICES = list(tasks.TASKS)
#: the settings train takes as flags: every one numpyrnn.settings declares
TRAIN_SETTINGS = tuple(dict.fromkeys(flag.field for flag in SPEC))
#: the settings compare takes as flags (each cell, each seed: compare's own --cells and --seeds)
COMPARE_SETTINGS = ("hidden", "layers", "bidirectional", "dropout", "input_dropout", "embedding_dropout",
                    "recurrent_dropout", "zoneout", "zoneout_c", "lr", "weight_decay", "batch_size", "steps", "epochs", "patience",
                    "min_delta", "impl")


def _add_device(p, what="where to run"):
    """The one rule for every command: the library's default, auto; and the BLAS threads."""
    p.add_argument("--device", choices=backend.DEVICES, default="auto",
                   help=f"{what}; auto: the GPU if CuPy sees one (or NUMPYRNN_DEVICE), else the CPU")
    p.add_argument("--threads", type=_threads, default=None, metavar="N|auto",
                   help="BLAS threads on the CPU: auto (default) is numpyrnn's policy, one thread for the "
                        "recurrent loops and small products (fast on a busy machine too) and every core for a "
                        "product of at least 1e9 operations; N: N threads for everything. A BLAS variable in "
                        "the environment (OPENBLAS_NUM_THREADS, ...) is kept when this is not given")


def _threads(text):
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number ≥ 1, got {text!r}")
    return n


def _add_impl(p, what="the recurrent layers"):
    p.add_argument("--impl", choices=IMPLS, default="fast",
                   help=f"how {what} run each cell over the sequence: the fast path; the reference (the "
                        "textbook loop over the step functions; several times slower); or the generic loop "
                        "written once for any cell (a cell of your own always runs on it)")


def _names_list(text):
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of cell names, got {text!r}")
    return items


def _add_cell_file(p):
    p.add_argument("--cell-file", metavar="FILE", action="append", default=[],
                   help="a Python file defining cells of your own (subclasses of numpyrnn.cells.Cell): "
                        "imported, and its cells registered by name (repeatable)")


def _add_cells(p, default, help="comma-separated cells: rnn, lstm, gru, or a name from --cell-file"):
    p.add_argument("--cells", type=_names_list, default=default, help=help)
    _add_cell_file(p)


def _add_forget_bias(p):
    p.add_argument("--forget-bias", type=float, metavar="B",
                   help="start the forget gate's bias at B (Jozefowicz et al. 2015: 1), for the cells that have "
                        "one (lstm and the lstm_* variants with a forget gate); an initialisation option")


def _cells_with_options(args, names):
    """The cells a command runs: names, or with --forget-bias the cells that take it made with it
    (the others by name); a usage error when none of them takes it."""
    from . import cells

    forget_bias = getattr(args, "forget_bias", None)
    if forget_bias is None:
        return list(names)
    import inspect

    takes = [n for n in names if "forget_bias" in inspect.signature(cells.lookup(n).__init__).parameters
             and getattr(cells.lookup(n), "has_forget_rows", True) is not False]
    if not takes:
        raise UsageError(f"numpyrnn {args.command}: --forget-bias applies to cells with a forget gate of their own "
                         f"(lstm, lstm_fb1 and the lstm_* variants but nfg and cifg); got {', '.join(names)}")
    try:
        return [cells.get(n, forget_bias=forget_bias) if n in takes else n for n in names]
    except ValueError as exc:
        raise UsageError(f"numpyrnn {args.command}: --forget-bias: {exc}") from None


def _load_cell_files(args):
    """Import the --cell-file files (registering their cells), then check every cell the command
    names: a usage error for a name no cell has."""
    from . import cells

    for path in getattr(args, "cell_file", None) or []:
        try:
            cells.protocol.register_file(path)
        except FileNotFoundError:
            raise UsageError(f"numpyrnn {args.command}: --cell-file {path}: no such file") from None
        except Exception as exc:                  # the user's file: anything can happen in it
            raise UsageError(f"numpyrnn {args.command}: --cell-file {path}: {type(exc).__name__}: {exc}") from None
    named = list(getattr(args, "cells", None) or [])
    if isinstance(getattr(args, "cell", None), str) and args.command != "exercise" and args.cell != "all":
        named.append(args.cell)
    unknown = [n for n in named if n not in cells.names()]
    if unknown:
        hint = "" if getattr(args, "cell_file", None) else "; a cell of your own needs --cell-file FILE"
        raise UsageError(f"numpyrnn {args.command}: unknown cell {', '.join(map(repr, unknown))}: the registered "
                         f"cells are {', '.join(cells.names())}{hint}")


def _add_settings(p, fields, helps=None):
    """The flags of the run settings ``fields``, as numpyrnn.settings.SPEC declares them (flag,
    type, choices, help, group), each None when not given: "the task's" for a new run, the
    saved run's on --resume.  ``helps``: a command's own help for a field (its own default)."""
    from .settings import SPEC, flag_dest

    groups, exclusive = {}, {}
    for flag in SPEC:
        if flag.field not in fields:
            continue
        group = groups.get(flag.group) or groups.setdefault(flag.group, p.add_argument_group(flag.group))
        target = group
        if flag.field in ("steps", "epochs", "clip"):      # one of them at a time
            key = "clip" if flag.field == "clip" else "budget"
            target = exclusive.get(key) or exclusive.setdefault(key, group.add_mutually_exclusive_group())
        kwargs = {"dest": flag_dest(flag), "help": (helps or {}).get(flag.field, flag.help)}
        if flag.switch:
            kwargs["action"] = "store_true"
        else:
            kwargs.update({k: v for k, v in (("type", flag.type), ("metavar", flag.metavar),
                                             ("choices", flag.choices() if flag.choices else None)) if v})
        target.add_argument(flag.flag, **kwargs)


def _add_data_options(p):
    """The data options of the sentiment and charlm tasks (declared once, for train and compare)."""
    p.add_argument("--data", metavar="NAME_OR_FILE",
                   help="sentiment: a named data set (rotten-tomatoes; see `numpyrnn tasks`) or a CSV/TSV of "
                        "text,label, instead of the built-in reviews")
    p.add_argument("--text", metavar="NAME_OR_FILE",
                   help="charlm: a named text (hamlet) or a text file, instead of the built-in stories")
    p.add_argument("--embedding-dim", type=_positive_int,
                   help="sentiment: the word embedding's size (default: the data set's)")
    p.add_argument("--pooling", choices=POOLINGS,
                   help="sentiment: pooling over time (default: the data set's)")


def _task_options(args):
    """The task options given on the command line, checked to apply to the task."""
    for flag, task in (("data", "sentiment"), ("text", "charlm"), ("embedding_dim", "sentiment"),
                       ("pooling", "sentiment")):
        if getattr(args, flag, None) and args.task != task:
            raise UsageError(f"numpyrnn {args.command}: --{flag.replace('_', '-')} applies to --task {task}, "
                             f"not {args.task}")
    options = {k: getattr(args, k) for k in ("seq_len", "data", "text", "embedding_dim", "pooling")
               if getattr(args, k, None) is not None}
    if args.task == "series" and getattr(args, "series", None):
        options["source"] = args.series
    return options


def _add_task_options(p):
    g = p.add_argument_group("task")
    g.add_argument("--seq-len", type=_positive_int, help="sequence length T (default: the task's)")
    _add_data_options(g)
    g.add_argument("--series", choices=SOURCES, default="sines", help="series: the source")


def _check_out(args, command):
    """The output folder, checked before any work (runs.check_folder); with --overwrite, the
    files of the run there removed now, and only those."""
    from . import runs

    try:
        existing = runs.check_folder(args.out, command, overwrite=getattr(args, "overwrite", False),
                                     resume=getattr(args, "resume", False))
    except runs.OutputError as exc:
        raise UsageError(f"numpyrnn {args.command}: {exc}") from None
    if existing and getattr(args, "overwrite", False):
        runs.clear(args.out, command)


def _check_output_file(args, path, flag):
    from . import runs

    try:
        runs.check_file(path, flag)
    except runs.OutputError as exc:
        raise UsageError(f"numpyrnn {args.command}: {exc}") from None


def _add_overwrite(p, what):
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} in --out (only the files this command writes there are removed)")


def _progress(args):
    """A progress bar on a terminal, unless --quiet (None: the library decides by the terminal)."""
    return False if getattr(args, "quiet", False) else None


def _write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


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
    from . import cells, gradcheck

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
    from .bench import DEFAULT_SHAPES

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
    from . import bench, machine

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


# --------------------------------------------------------------------------- train, sample, tasks

def _add_train(sub):
    p = sub.add_parser(
        "train", help="train a model on a task",
        description="Train a recurrent model on one of the built-in tasks (see `numpyrnn tasks`), "
                    "evaluating on the validation split as it goes and on the test split at the end.",
        formatter_class=_Help)
    p.add_argument("--task", choices=TASK_CHOICES,
                   help="what to train on (see `numpyrnn tasks`); with --resume, the saved run's")
    _add_settings(p, TRAIN_SETTINGS)
    _add_cell_file(p)
    _add_device(p)
    _add_task_options(p)
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", help="write checkpoint.npz, history.jsonl, model.npz and metrics.json here")
    again = g.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the run in --out (only the files train writes there are removed)")
    g.add_argument("--quiet", action="store_true", help="no progress bar, no per-evaluation lines")
    p.set_defaults(run=_run_train)


def _saved_run(args, given, options):
    """--resume: the task and the settings of the run saved in --out, with the settings given
    laid over them (numpyrnn.settings.Settings.resume says which may change); a usage error for
    a task, a task option or a setting given that differs from the run's."""
    from . import checkpoint, tasks
    from .settings import saved
    from .train import CHECKPOINT

    path = os.path.join(args.out, CHECKPOINT)
    if not os.path.exists(path):
        raise UsageError(f"numpyrnn train: --resume: {path} does not exist")
    try:
        arrays = checkpoint.read(path)
        if "trainer" not in arrays:
            raise checkpoint.CheckpointError(f"{path}: a saved model, not a training checkpoint (no trainer state)")
        state = checkpoint.from_json_array(arrays["trainer"])
        settings, recorded = saved(state, checkpoint.config_of(arrays, path))
    except (checkpoint.CheckpointError, ValueError, TypeError) as exc:
        raise UsageError(f"numpyrnn train: --resume: {exc}") from None
    config = tasks.upgrade_config(state["task"])
    name, saved_options = config["name"], {k: v for k, v in config.items() if k not in ("name", "seed")}
    if args.task is not None and args.task != name:
        raise UsageError(f"numpyrnn train: --resume: the run in {args.out} trains on --task {name}, not {args.task}")
    for key, value in options.items():
        if saved_options.get(key) != value:
            raise UsageError(f"numpyrnn train: --resume: the run in {args.out} has {key} "
                             f"{saved_options.get(key)!r}, not {value!r}")
    try:
        return tasks.make(name, seed=config["seed"], **saved_options), settings.resume(given, recorded)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"numpyrnn train: --resume: {exc}") from None


def _run_train(args):
    from . import checkpoint, tasks
    from .settings import Settings
    from .settings import given as given_settings
    from .train import Interrupted, TrainingError, setup

    if args.resume and not args.out:
        raise UsageError("numpyrnn train: --resume needs --out DIR (the run to continue)")
    if args.overwrite and not args.out:
        raise UsageError("numpyrnn train: --overwrite needs --out DIR (the run to replace)")
    if args.task is None and not args.resume:
        raise UsageError("numpyrnn train: the following arguments are required: --task (or --resume, which "
                         "continues the run saved in --out)")
    if args.out:
        _check_out(args, "train")
    options = _task_options(args)
    given = {**given_settings(args), "device": args.device}
    try:
        if args.resume:
            task, settings = _saved_run(args, given, options)
        else:
            settings = Settings(**given)
            task = tasks.make(args.task, seed=settings.seed, **options)
        trainer, budget = setup(task, settings, out_dir=args.out, progress=_progress(args),
                                log=None if args.quiet else print)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"numpyrnn train: {exc}") from None
    if args.resume:
        path = trainer.checkpoint_path
        try:
            trainer.resume(path)
        except checkpoint.CheckpointError as exc:
            raise UsageError(f"numpyrnn train: --resume: {exc}") from None
    model, optimizer = trainer.model, trainer.optimizer
    if not args.quiet:
        print(f"{task.name}: {model!r}, {model.num_parameters()} parameters, {optimizer!r}, batch {trainer.batch_size}"
              + (f", resuming at step {trainer.step}" if args.resume else ""))
    try:
        metrics = trainer.fit(**budget)
    except TrainingError as exc:
        print(f"numpyrnn train: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        resume = " (continue with the same command and --resume)" if exc.checkpoint else " (no --out: nothing kept)"
        print(f"numpyrnn train: {exc}{resume}", file=sys.stderr)
        return 130
    if args.out:
        trainer.write_results(metrics)
    baseline, how = task.baseline()
    metric = task.metric
    others = "".join(f"; {k} {v:.4f}" for k, v in metrics.items() if k.startswith("test_") and k != f"test_{metric}")
    print(f"test_{metric} {metrics[f'test_{metric}']:.4f} (baseline {baseline:.4f}: {how}){others}; "
          f"{metrics['steps']} steps, {metrics['epochs']} epochs, {metrics['train_seconds']:.1f} s of training")
    return 0


def _add_sample(sub):
    p = sub.add_parser("sample", help="generate text from a trained character-level model",
                       description="Generate text from a model trained with `numpyrnn train --task charlm`.",
                       formatter_class=_Help)
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="model.npz or checkpoint.npz of a charlm run")
    p.add_argument("--length", type=_positive_int, default=300, help="characters to generate")
    p.add_argument("--temperature", type=_positive_float, default=0.8, help="below 1: safer; above 1: wilder")
    p.add_argument("--prime", default="", help="text to start from (its characters must be in the vocabulary)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random draws")
    _add_device(p, "where the model runs")
    _add_cell_file(p)
    p.set_defaults(run=_run_sample)


def _run_sample(args):
    from . import checkpoint
    from .models import CharLM

    try:
        model = checkpoint.load(args.checkpoint, device=args.device)
    except checkpoint.CheckpointError as exc:
        raise UsageError(f"numpyrnn sample: {exc}") from None
    if not isinstance(model, CharLM) or model.vocab is None:
        raise UsageError(f"numpyrnn sample: {args.checkpoint} holds a {type(model).__name__} without a "
                         "character vocabulary; sample needs a charlm model")
    index = {ch: i for i, ch in enumerate(model.vocab)}
    unknown = sorted({ch for ch in args.prime if ch not in index})
    if unknown:
        raise UsageError(f"numpyrnn sample: --prime has characters the model never saw: {unknown!r}")
    ids = model.sample(args.length, prime=[index[ch] for ch in args.prime], temperature=args.temperature,
                       seed=args.seed)
    print(args.prime + "".join(model.vocab[i] for i in ids))
    return 0


def _add_predict(sub):
    p = sub.add_parser(
        "predict", help="classify texts with a trained sentiment model",
        description="Print the class and its probability for each text, with a model trained by `numpyrnn train "
                    "--task sentiment` (its model.npz or checkpoint.npz): the texts given, or one per line of "
                    "standard input.", formatter_class=_Help)
    p.add_argument("model", metavar="MODEL", help="the model file (.npz)")
    p.add_argument("texts", metavar="TEXT", nargs="*", help="texts to classify (none: read lines from stdin)")
    _add_cell_file(p)
    p.set_defaults(run=_run_predict)


def _run_predict(args):
    from . import checkpoint
    from .models import SequenceClassifier

    try:
        model = checkpoint.load(args.model, device="cpu")
    except checkpoint.CheckpointError as exc:
        raise UsageError(f"numpyrnn predict: {exc}") from None
    if not isinstance(model, SequenceClassifier) or model.vocab is None or model.tokenizer is None:
        raise UsageError(f"numpyrnn predict: {args.model} holds a {type(model).__name__} that does not read text; "
                         "predict needs a classifier trained on text (numpyrnn train --task sentiment)")
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    note = getattr(model, "class_note", None)
    if note:
        print(f"note: {note}", file=sys.stderr)
    for text, (name, p) in zip(texts, model.classify(texts)):
        print(f"{name}\t{p:.3f}\t{text}")
    return 0


def _add_export(sub):
    p = sub.add_parser(
        "export", help="write a saved model as a file PyTorch loads",
        description="Write a model saved by numpyrnn (model.npz, or a run's checkpoint.npz) as a "
                    "PyTorch file: a dict with its config, state dict and vocabulary, read by "
                    "torch.load(path, weights_only=True); numpyrnn.export.torch_modules.load(path) "
                    "gives the torch.nn.Module. The module written is checked on a random batch: the "
                    "largest difference between the two models' outputs is printed. Needs PyTorch "
                    "(pip install numpyrnn[torch]).",
        formatter_class=_Help)
    p.add_argument("checkpoint", metavar="MODEL", help="a .npz written by numpyrnn.save or numpyrnn train")
    p.add_argument("--to", required=True, choices=["torch"], help="the framework to write for")
    p.add_argument("output", metavar="OUT", help="the file to write (e.g. model.pt)")
    _add_cell_file(p)
    p.set_defaults(run=_run_export)


def _run_export(args):
    import os

    from . import checkpoint, export

    if os.path.abspath(args.output) == os.path.abspath(args.checkpoint):
        raise UsageError(f"numpyrnn export: {args.output} is the model being read; write elsewhere")
    _check_output_file(args, args.output, "OUT")
    try:
        model = checkpoint.load(args.checkpoint, device="cpu")
        module = export.save_torch(model, args.output)       # the module written is the one checked
        inputs, lengths = export.example_inputs(model)
        difference = export.max_difference(model, module, inputs, lengths)
    except (checkpoint.CheckpointError, export.TorchUnavailable, ValueError, OSError) as exc:
        raise UsageError(f"numpyrnn export: {exc}") from None
    config = model.config()
    layers = config.get("num_layers")
    described = ", ".join([config["cell"]] * ("cell" in config)
                          + [f"{layers} layer{'s' * (layers > 1)}"] * (layers is not None)
                          + ["bidirectional"] * bool(config.get("bidirectional")) + [config["dtype"]])
    print(f"{config['type']}({described}) -> {args.output} (PyTorch, {model.num_parameters():,} parameters"
          + (f", vocabulary of {len(model.vocab)}" if getattr(model, "vocab", None) else "") + ")")
    print(f"checked on a random batch ({inputs.shape[0 if not config.get('batch_first') else 1]} steps): "
          f"largest difference {difference:.3g} between numpyrnn's outputs and torch's")
    print("load it in PyTorch:\n"
          "    from numpyrnn.export import torch_modules   # or a copy of that file: it needs only torch\n"
          f"    module = torch_modules.load({args.output!r})")
    return 0


def _add_tasks(sub):
    p = sub.add_parser("tasks", help="list the tasks with their baselines and default settings",
                       formatter_class=_Help)
    p.add_argument("--seq-len", type=_positive_int, help="baselines at this sequence length")
    p.set_defaults(run=_run_tasks)


def _run_tasks(args):
    from . import tasks
    from .tasks import datasets

    for name in tasks.TASKS:
        task = tasks.make(name, seed=0, **({} if args.seq_len is None else {"seq_len": args.seq_len}))
        value, how = task.baseline()
        defaults = ", ".join(f"{k} {v}" for k, v in task.defaults.items())
        print(f"{name:<10} {task.title}\n{'':<10} metric {task.metric} ({'higher' if task.higher_is_better else 'lower'} "
              f"is better); baseline {value:.4g}: {how}\n{'':<10} defaults: {defaults}")
    print("\nnamed data sets (--data NAME for sentiment, --text NAME for charlm):")
    for line in datasets.describe():
        print(f"  {line}")
    return 0


# --------------------------------------------------------------------------- experiments

def _add_compare(sub):
    p = sub.add_parser(
        "compare", help="LSTM vs GRU vs RNN on the same task: accuracy, training time, memory",
        description="Train each cell on the same data, splits, optimizer, budget and seeds; print a table "
                    "(test metric and training time, mean ± std over seeds; time per epoch; activation "
                    "memory per batch) and write results.json, results.md and compare.png to --out.",
        formatter_class=_Help)
    p.add_argument("--task", choices=TASK_CHOICES, default="sentiment", help="the task")
    _add_cells(p, ["lstm", "gru", "rnn"])
    p.add_argument("--seeds", type=_positive_int, help="runs per cell (seeds 0..N-1; default 3, or what --quick sets)")
    p.add_argument("--match-params", action="store_true",
                   help="size each cell to the parameter count of the LSTM (or first cell) at --hidden")
    p.add_argument("--quick", action="store_true", help="small data and budget: well under a minute")
    p.add_argument("--seq-len", type=_positive_int, help="sequence length (default: the task's)")
    _add_data_options(p)
    p.add_argument("--data-seed", type=int, default=0, help="seed of the data, the same for every run")
    _add_settings(p, COMPARE_SETTINGS)
    _add_device(p, "where to train")
    p.add_argument("--out", metavar="DIR", help="write results.json, results.md and compare.png here")
    _add_overwrite(p, "a comparison")
    p.add_argument("--quiet", action="store_true", help="only the table")
    p.set_defaults(run=_run_compare, plan=_plan_compare)


def _given_settings(args):
    """The settings given on the command line, as one object (the device too)."""
    from .settings import Settings, given

    return Settings(**given(args), device=args.device)


def _compare_arguments(args):
    """compare's arguments from the command line's (the run's and the plan's): the settings
    given, as one object."""
    return dict(task_name=args.task, cells=args.cells, seeds=args.seeds,
                settings=_given_settings(args), match_params=args.match_params,
                quick=args.quick, data_seed=args.data_seed, task_options=_task_options(args))


def _plan_compare(args):
    from .experiments.compare import plan

    return plan(**_compare_arguments(args))


def _run_compare(args):
    from .experiments.compare import compare, load_note, quick_note, table, write

    if args.out:
        _check_out(args, "compare")
    try:
        results = compare(**_compare_arguments(args), log=None if args.quiet else print, progress=_progress(args))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"numpyrnn compare: {exc}") from None
    results["command"] = args.invocation
    note = quick_note(results)
    if note:
        print(note + "\n")
    print(table(results))
    print("\n" + load_note(results))
    if results.get("claims"):
        from .experiments.claims import table as claims_table

        print("\nLSTM vs GRU: the claims, measured (95 % intervals: a bootstrap over seeds and test items)")
        print(claims_table(results["claims"]))
    if args.out:
        write(results, args.out)
        print(f"wrote {args.out}/results.json, results.md, compare.png")
    return 0


def _add_gradflow(sub):
    p = sub.add_parser(
        "gradflow", help="the gradient reaching each step, at initialisation and after training",
        description="On the adding problem, measure ‖∂L/∂h_t‖ against t for each cell at initialisation "
                    "and after training with the same budget, and the LSTM's forget gate over time; "
                    "write gradflow.png and gradflow.json to --out.",
        formatter_class=_Help)
    _add_cells(p, ["rnn", "lstm", "gru"])
    p.add_argument("--seq-len", type=_positive_int, default=100, help="sequence length T")
    p.add_argument("--batch", type=_positive_int, default=64, help="test sequences measured")
    _add_settings(p, ("steps", "hidden", "seed", "impl"),
                  helps={"steps": "training steps per cell (default: the adding task's, 2000)",
                         "hidden": "hidden units (default: the adding task's, 64)",
                         "seed": "seed of the data and the weights (default: 0)"})
    _add_device(p, "where to train and measure")
    p.add_argument("--out", metavar="DIR", default="gradflow", help="where the figure and numbers go")
    _add_overwrite(p, "the measurements")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_gradflow, plan=_plan_gradflow)


def _gradflow_arguments(args):
    return dict(cells=args.cells, seq_len=args.seq_len, settings=_given_settings(args), batch=args.batch)


def _plan_gradflow(args):
    from .experiments.gradflow import plan

    return plan(**_gradflow_arguments(args))


def _run_gradflow(args):
    from . import plots
    from .experiments.gradflow import gradflow

    _check_out(args, "gradflow")
    data = gradflow(**_gradflow_arguments(args), log=print, progress=_progress(args))
    data["command"] = args.invocation
    os.makedirs(args.out, exist_ok=True)
    _write_json(os.path.join(args.out, "gradflow.json"), data)
    plots.gradflow(data, os.path.join(args.out, "gradflow.png"))
    print(f"wrote {args.out}/gradflow.png, gradflow.json")
    return 0


def _add_sweep(sub):
    from .experiments.sweep import default_jobs

    p = sub.add_parser(
        "sweep", help="success against sequence length (adding or copy), every cell with the same budget",
        description="Train each cell on the adding problem (or the copy task) at each length with the same "
                    "budget and seeds, in parallel worker processes of one BLAS thread each (the numbers are the "
                    "same whatever --jobs is); plot the final test metric against T with the baseline; on the "
                    "adding problem also record the gradient-flow ratio ‖∂L/∂h_0‖/‖∂L/∂h_T-1‖ at initialisation "
                    "and after training; write sweep.png and sweep.json to --out.",
        formatter_class=_Help)
    p.add_argument("--task", choices=_sweep.TASKS, default="adding", help="the task")
    p.add_argument("--lengths", default="10,25,50,100,200", help="comma-separated sequence lengths")
    _add_cells(p, ["lstm", "gru", "rnn"])
    p.add_argument("--seeds", type=_positive_int, default=1, help="runs per cell and length")
    p.add_argument("--train-size", type=_positive_int, default=5000, help="training sequences")
    _add_settings(p, ("steps", "hidden", "batch_size", "lr", "zoneout", "zoneout_c", "impl"),
                  helps={"steps": f"training steps for every cell and length (default: {_sweep.STEPS})",
                         "hidden": f"hidden units (default: {_sweep.HIDDEN})"})
    _add_forget_bias(p)
    p.add_argument("--jobs", type=_positive_int, default=default_jobs(),
                   help="runs at a time, each in a worker process with one BLAS thread (1 on the GPU)")
    p.add_argument("--quick", action="store_true", help="tiny data and budget: checks that it runs, in seconds")
    p.add_argument("--from-json", metavar="FILE", help="draw the figure of a sweep.json already made, training nothing")
    _add_device(p, "where to train")
    p.add_argument("--out", metavar="DIR", default="sweep", help="where the figure and numbers go")
    _add_overwrite(p, "a sweep (with --from-json: its figure)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_sweep)


def _run_sweep(args):
    from . import plots
    from .experiments.sweep import sweep

    if args.from_json:
        figure = os.path.join(args.out, "sweep.png")
        _check_output_file(args, figure, "--out")
        if os.path.exists(figure) and not args.overwrite:
            raise UsageError(f"numpyrnn sweep: --out {args.out} holds sweep.png already: pass --overwrite to redraw it")
        try:
            with open(args.from_json) as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError(f"numpyrnn sweep: --from-json {args.from_json}: {exc}") from None
    else:
        try:
            lengths = [int(t) for t in args.lengths.split(",")]
        except ValueError:
            raise UsageError(f"numpyrnn sweep: --lengths must be comma-separated integers, got {args.lengths!r}") from None
        if not lengths or min(lengths) < 2:
            raise UsageError("numpyrnn sweep: every length must be at least 2")
        _check_out(args, "sweep")
        try:
            data = sweep(lengths, _cells_with_options(args, args.cells), _given_settings(args),
                         seeds=args.seeds, train_size=args.train_size, task=args.task, jobs=args.jobs,
                         quick=args.quick, log=print, progress=_progress(args))
        except ValueError as exc:
            raise UsageError(f"numpyrnn sweep: {exc}") from None
    os.makedirs(args.out, exist_ok=True)
    if not args.from_json:
        _write_json(os.path.join(args.out, "sweep.json"), data)
    plots.sweep(data, os.path.join(args.out, "sweep.png"))
    print(f"wrote {args.out}/sweep.png" + ("" if args.from_json else ", sweep.json"))
    return 0


# --------------------------------------------------------------------------- exercises

def _add_exercise(sub):
    p = sub.add_parser(
        "exercise", help="write a file to fill in: a cell's backward pass, by hand",
        description="Print an exercise file for a cell: the signatures, docstrings with every shape, "
                    "the equations to implement, and bodies that raise NotImplementedError. Fill it in, "
                    "then run `numpyrnn grade FILE --cell CELL`.",
        formatter_class=_Help)
    p.add_argument("cell", metavar="CELL", help="the cell: rnn, lstm, gru (step or sequence), or any other built-in "
                                                "cell (lstm_peephole, mgu, janet, ...: its step, as a subclass to fill in)")
    p.add_argument("--part", choices=exercises.PARTS, default="step",
                   help="step: the step forward and backward; sequence: the backward loop through time "
                        "over the reference's cache")
    p.set_defaults(run=_run_exercise)


def _run_exercise(args):
    from .exercises import template

    try:
        text = template(args.cell, args.part)
    except ValueError as exc:
        raise UsageError(f"numpyrnn exercise: {exc}") from None
    print(text, end="")
    return 0


def _add_grade(sub):
    p = sub.add_parser(
        "grade", help="grade an exercise file: every output and gradient, and the mistake named",
        description="Run the functions of an exercise file on random float64 cases, compare every output "
                    "and gradient with numpyrnn's reference, check the backward against finite differences "
                    "of the file's own forward, and name the known mistake that matches. Exits 0 when "
                    "everything is right, 1 when something is not.",
        formatter_class=_Help)
    p.add_argument("file", help="the exercise file (from `numpyrnn exercise`)")
    p.add_argument("--cell", required=True, metavar="NAME",
                   help="the cell it implements: rnn, lstm or gru (an exercise), or the name of a Cell the "
                        "file defines (checked against finite differences of its own step forward)")
    p.add_argument("--part", choices=exercises.PARTS, default="step", help="the part it implements")
    p.set_defaults(run=_run_grade)


def _run_grade(args):
    from .exercises import grade
    from .exercises.grader import check_file

    try:
        check_file(args.file)
        report = grade(args.file, args.cell, args.part)
    except (OSError, ValueError) as exc:
        raise UsageError(f"numpyrnn grade: {exc}") from None
    print(report)
    return 0 if report.passed else 1


# --------------------------------------------------------------------------- entry point

def build_parser():
    parser = _Parser(prog="numpyrnn",
                     description="Recurrent networks in NumPy with hand-derived backpropagation.")
    parser.add_argument("--version", action="version", version=f"numpyrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in (_add_compare, _add_train, _add_sample, _add_predict, _add_tasks, _add_gradflow, _add_sweep, _add_gradcheck,
                _add_bench, _add_exercise, _add_grade, _add_export):
        add(sub)
    return parser


def plan(command):
    """What ``command`` (a command line, "numpyrnn compare ...") would run today, without running
    it: the task and settings its results and figure record.  For compare and gradflow, the
    commands that draw the README's figures (tests/test_figures.py holds them to this)."""
    argv = shlex.split(command)
    if argv[:1] == ["numpyrnn"]:
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if not hasattr(args, "plan"):
        raise ValueError(f"numpyrnn {args.command} has no plan to compare a figure's with")
    _load_cell_files(args)
    return args.plan(args)


def main(argv=None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if sys.stdout is None:                    # started with its standard output closed (>&-)
        print("numpyrnn: standard output is closed, so nothing numpyrnn prints could be read: run it with "
              "standard output open (or > FILE)", file=sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
        args.invocation = shlex.join(["numpyrnn", *argv])     # what a run's results and figure record
        if args.command != "grade":           # grade imports its file itself, with safeguards
            _load_cell_files(args)
        with warnings.catch_warnings(), backend.threads(getattr(args, "threads", None)):
            warnings.simplefilter("default")
            code = args.run(args)
        sys.stdout.flush()                    # a full disk or a closed pipe says so here, not at exit
        return code
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except DeviceUnavailableError as exc:
        print(f"numpyrnn: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:                    # writing what it prints or saves failed (a full disk, ...)
        if exc.errno in (errno.EPIPE, errno.ENOSPC, errno.EIO, errno.EDQUOT) or isinstance(exc, BrokenPipeError):
            _drop_stdout()
            where = f" ({exc.filename})" if exc.filename else ""
            print(f"numpyrnn: could not write{where}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        raise


def _drop_stdout():
    """After a failed write to standard output: send what is left in its buffer nowhere, so that
    the interpreter's flush at exit does not fail again with a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
