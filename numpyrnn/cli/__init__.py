"""The ``numpyrnn`` command: it parses arguments and prints; the work lives in the library.

One module per family of commands, each holding its commands' parsing and printing:
:mod:`.training` (train, sample, predict, export, tasks), :mod:`.comparing` (compare, gradflow,
sweep), :mod:`.checking` (gradcheck, bench), :mod:`.teaching` (exercise, grade); what they share
is in :mod:`.common`.

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

import errno
import os
import shlex
import sys
import warnings

from .. import __version__, backend
from ..backend import DeviceUnavailableError
from .common import UsageError, _cells_with_options, _load_cell_files, _Parser  # noqa: F401  (the API the tests use)
from .checking import _add_bench, _add_gradcheck
from .comparing import _add_compare, _add_gradflow, _add_sweep
from .teaching import _add_exercise, _add_grade
from .training import _add_export, _add_forecast, _add_predict, _add_sample, _add_tasks, _add_train

__all__ = ["main", "build_parser", "plan", "UsageError"]


# --------------------------------------------------------------------------- entry point

def build_parser():
    parser = _Parser(prog="numpyrnn",
                     description="Recurrent networks in NumPy with hand-derived backpropagation.")
    parser.add_argument("--version", action="version", version=f"numpyrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in (_add_compare, _add_train, _add_sample, _add_predict, _add_forecast, _add_tasks, _add_gradflow, _add_sweep, _add_gradcheck,
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
