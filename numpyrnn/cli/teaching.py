"""numpyrnn exercise and grade: the backward passes to write by hand, and their grader."""

from __future__ import annotations

from .. import exercises
from .common import (  # the shared options and checks
    _Help, UsageError,
)


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
    from ..exercises import template

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
    from ..exercises import grade
    from ..exercises.grader import check_file

    try:
        check_file(args.file)
        report = grade(args.file, args.cell, args.part)
    except (OSError, ValueError) as exc:
        raise UsageError(f"numpyrnn grade: {exc}") from None
    print(report)
    return 0 if report.passed else 1
