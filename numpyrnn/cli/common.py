"""What the commands share: the parser's classes, argument types, the options several commands
take (device, threads, impl, cells, the run settings from numpyrnn.settings.SPEC, the data),
and the output folders' checks."""

from __future__ import annotations

import argparse
import json

from .. import backend, runs, tasks
from ..layers.pooling import POOLINGS
from ..layers.recurrent import IMPLS
from ..settings import SPEC
from ..settings import positive_float as _positive_float, positive_int as _positive_int  # the argument types
from ..tasks.series import SOURCES


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")

    def parse_known_args(self, args=None, namespace=None):
        """A command's options may come between its positional arguments (``numpyrnn predict MODEL
        --beam 5 WORD...`` as well as ``numpyrnn predict --beam 5 MODEL WORD...``): argparse's
        intermixed parsing, for every command; the top level, whose command takes the rest of the
        line, parses as argparse does (the intermixed parse calls back here for its two passes)."""
        if self._subparsers is not None or getattr(self, "_intermixing", False):
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (the help then says
    where the value comes from, e.g. "the task's")."""

    def _get_help_string(self, action):
        if action.default is None or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


# --------------------------------------------------------------------------- argument types

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

# The choices of every flag are the library's own lists, read here, never copied (the run
# settings' flags, theirs, from numpyrnn.settings.SPEC).
TASK_CHOICES = list(tasks.TASKS)
#: the settings train takes as flags: every one numpyrnn.settings declares
TRAIN_SETTINGS = tuple(dict.fromkeys(flag.field for flag in SPEC))
#: the settings compare takes as flags (each cell, each seed: compare's own --cells and --seeds)
COMPARE_SETTINGS = ("hidden", "layers", "bidirectional", "dropout", "input_dropout", "embedding_dropout",
                    "recurrent_dropout", "zoneout", "zoneout_c", "lr", "weight_decay", "batch_size", "steps", "epochs",
                    "patience", "min_delta", "impl")


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
    (the others by name, numpyrnn.cells.with_options); a usage error when none of them takes it."""
    from .. import cells

    try:
        return cells.with_options(names, forget_bias=getattr(args, "forget_bias", None))
    except ValueError as exc:
        raise UsageError(f"numpyrnn {args.command}: --forget-bias: {exc}") from None


def _load_cell_files(args):
    """Import the --cell-file files (registering their cells), then check every cell the command
    names: a usage error for a name no cell has."""
    from .. import cells

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


def _given_settings(args) -> dict:
    """The run settings given on the command line, by field (numpyrnn.settings.given), and the
    device."""
    from ..settings import given

    return {**given(args), "device": args.device}


def _add_settings(p, fields, helps=None):
    """The flags of the run settings ``fields``, as numpyrnn.settings.SPEC declares them (flag,
    type, choices, help, group), each None when not given: "the task's" for a new run, the
    saved run's on --resume.  ``helps``: a command's own help for a field (its own default)."""
    from ..settings import SPEC, flag_dest

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
    """The data options of the tasks on real data (declared once, for train and compare)."""
    p.add_argument("--data", metavar="NAME_OR_FILE",
                   help="sentiment: a named data set (rotten-tomatoes; see `numpyrnn tasks`) or a CSV/TSV of "
                        "text,label, instead of the built-in reviews; speech: japanese-vowels (the default) or "
                        "a UEA/UCR X_TRAIN.ts file with X_TEST.ts beside it; demand: taylor (the default); "
                        "anomaly: internal-bleeding (the default) or a UCR anomaly X_TRAIN.csv "
                        "(timestamp,value,is_anomaly) with the whole series as X_TEST.csv beside it; g2p: cmudict "
                        "(the default) or a dictionary file in its format (word PH1 PH2 ...)")
    p.add_argument("--text", metavar="NAME_OR_FILE",
                   help="charlm: a named text (hamlet) or a text file, instead of the built-in stories")
    p.add_argument("--embedding-dim", type=_positive_int,
                   help="sentiment, g2p: the embedding's size (default: the data set's; g2p 64)")
    p.add_argument("--pooling", choices=POOLINGS,
                   help="sentiment, speech: pooling over time (default: the data set's; speech: mean)")
    p.add_argument("--smooth", type=_positive_int, metavar="N",
                   help="anomaly: the anomaly score averages the forecast error over the last N values (default 10)")
    p.add_argument("--attention", choices=("dot", "general", "additive", "none"),
                   help="g2p: the decoder's attention (Luong's dot or general, Bahdanau's additive) or none, the "
                        "plain encoder-decoder (default: general)")
    p.add_argument("--full", action="store_true", default=None,
                   help="g2p: train on every dictionary word outside validation and test (about 113 000), not "
                        "the first 20 000")


#: the task options' flags: (dest on the command line, the tasks' option)
TASK_FLAGS = (("seq_len", "seq_len"), ("data", "data"), ("text", "text"), ("embedding_dim", "embedding_dim"),
              ("pooling", "pooling"), ("series", "source"), ("smooth", "smooth"), ("attention", "attention"),
              ("full", "full"))


def _task_options(args):
    """The task options given on the command line, each checked to be one the task takes
    (numpyrnn.tasks.options_of: the task's own keywords)."""
    from .. import tasks

    options = {}
    for dest, option in TASK_FLAGS:
        value = getattr(args, dest, None)
        if value is None:
            continue
        if args.task is not None and option not in tasks.options_of(args.task):
            raise UsageError(f"numpyrnn {args.command}: --{dest.replace('_', '-')} applies to --task "
                             f"{' or '.join(tasks.taking(option))}, not {args.task}")
        options[option] = value
    return options


def _add_task_options(p):
    g = p.add_argument_group("task")
    g.add_argument("--seq-len", type=_positive_int, help="sequence length T (default: the task's)")
    _add_data_options(g)
    g.add_argument("--series", choices=SOURCES, help="series: the source (default: sines)")


def _check_out(args, command):
    """The output folder, checked before any work (runs.check_folder); with --overwrite, the
    files of the run there removed now, and only those."""

    try:
        existing = runs.check_folder(args.out, command, overwrite=getattr(args, "overwrite", False),
                                     resume=getattr(args, "resume", False))
    except runs.OutputError as exc:
        raise UsageError(f"numpyrnn {args.command}: {exc}") from None
    if existing and getattr(args, "overwrite", False):
        runs.clear(args.out, command)


def _check_output_file(args, path, flag):

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
