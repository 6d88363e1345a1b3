"""Grading a student's file: every output and gradient against the reference, the backward
against finite differences of the student's own forward, and the mistake named.

    report = grade("my_lstm.py", "lstm", part="step")
    print(report)            # a row per output and per gradient, then what was found
    report.passed, report.diagnoses

The answer key is numpyrnn's reference (:mod:`numpyrnn.cells`); the planted mistakes are in
:mod:`numpyrnn.exercises.mistakes`.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import os
import traceback
import types
from dataclasses import dataclass, field

import numpy as np

from .. import gradcheck
from ..cells import gru, lstm, rnn
from . import mistakes
from .templates import CELLS, PARTS

#: how close a student's array must be to the reference's: normwise relative error
#: max|yours − expected| / max|expected| (float64 rounding differences are near 1e-15)
TOL = 1e-8

MODULES = {"rnn": rnn, "lstm": lstm, "gru": gru}
STEP_CASES = [(3, 4, 5), (1, 2, 3), (2, 3, 1), (4, 1, 2)]                      # (B, I, H)
SEQUENCE_CASES = [(5, 3, 2, 4, (5, 2, 1), False), (4, 1, 3, 2, None, True),    # (T, B, I, H, lengths, reverse)
                  (6, 2, 2, 1, (3, 6), True), (3, 3, 1, 3, None, False)]


class GradeError(Exception):
    """The student's code could not be run or returned the wrong kind of thing: one message."""


@dataclass
class Row:
    name: str
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    passed: bool = True
    first_wrong: str = ""            # where the first wrong entry is, and its values


@dataclass
class Diagnosis:
    mistake: object                  # a mistakes.Mistake, or None when no known mistake matches
    message: str


@dataclass
class Report:
    source: str
    cell: str
    part: str
    reset_after: bool = True
    cases: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    diagnoses: list = field(default_factory=list)
    self_check: str = ""
    errors: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors and bool(self.rows) and all(r.passed for r in self.rows)

    def __str__(self):
        what = {"rnn": "RNN (tanh)", "lstm": "LSTM", "gru": f"GRU (reset_after={self.reset_after})"}.get(
            self.cell, f"cell {self.cell!r}")
        part = "step forward and backward" if self.part == "step" else "backward through time"
        lines = [f"grading {self.source}: the {what} {part}, {len(self.cases)} random float64 cases "
                 f"({'; '.join(self.cases)})"]
        if self.rows:
            width = max(len("tensor"), *(len(r.name) for r in self.rows))
            lines.append(f"{'tensor':<{width}}  {'max abs err':>11}  {'max rel err':>11}  result")
            for r in self.rows:
                lines.append(f"{r.name:<{width}}  {r.max_abs_err:>11.2e}  {r.max_rel_err:>11.2e}  "
                             f"{'ok' if r.passed else 'WRONG'}")
        lines += [f"error: {e}" for e in self.errors]
        if self.self_check:
            lines.append(self.self_check)
        lines += [d.message for d in self.diagnoses]
        if self.cell in CELLS:
            verdict = "PASSED: every output and gradient equals the reference's"
        else:
            verdict = "PASSED: every gradient equals the finite differences of your own step_forward"
        lines.append(verdict if self.passed else "FAILED")
        return "\n".join(lines)


# --------------------------------------------------------------------------- running the student's code

def load(path_or_module):
    """The student's module: imported from a path, or given."""
    if isinstance(path_or_module, types.ModuleType):
        return path_or_module
    path = os.fspath(path_or_module)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    name = "numpyrnn_exercise_" + "".join(c if c.isalnum() else "_" for c in os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:                     # the student's file: anything can happen in it
        raise GradeError(f"{path} could not be imported: {type(exc).__name__}: {exc}{_where(exc, path)}") from None
    return module


def _where(exc, filename):
    """" (line N of the student's file)" for the deepest frame in it, if any."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if filename and
              os.path.abspath(f.filename) == os.path.abspath(filename)]
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" (line {exc.lineno})"
    return f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""


def _call(fn_name, fn, args, names, shapes, filename):
    """Call the student's ``fn``; its result must be ``len(names)`` arrays of ``shapes`` (None in
    shapes: anything, the cache).  Returns them; a GradeError says what went wrong."""
    try:
        result = fn(*args)
    except NotImplementedError:
        raise GradeError(f"{fn_name} is not written yet (it raises NotImplementedError)") from None
    except Exception as exc:                     # the student's code: anything can happen in it
        raise GradeError(f"{fn_name} raised {type(exc).__name__}: {exc}{_where(exc, filename)}") from None
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else f"a {type(result).__name__}"
        raise GradeError(f"{fn_name} returned {got}; it must return {len(names)}: ({', '.join(names)})")
    out = []
    for name, value, shape in zip(names, result, shapes):
        if shape is None:
            out.append(value)
            continue
        try:
            if value is None:
                raise TypeError
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise GradeError(f"{fn_name} returned a {type(value).__name__} for {name}; it must be an array "
                             f"of shape {shape}") from None
        if array.shape != shape:
            raise GradeError(f"{fn_name}'s {name} has shape {array.shape}; it must have shape {shape}")
        out.append(array)
    return out


# --------------------------------------------------------------------------- comparing

def _rel_err(a, b):
    scale = float(np.abs(b).max(initial=0.0))
    diff = float(np.abs(a - b).max(initial=0.0))
    return diff / scale if scale > 0 else diff, diff


def _same(a, b):
    return _rel_err(a, b)[0] <= TOL


def _compare(rows, names, got, want, case):
    for name, a, b in zip(names, got, want):
        row = rows.setdefault(name, Row(name))
        rel, diff = _rel_err(a, b)
        row.max_rel_err, row.max_abs_err = max(row.max_rel_err, rel), max(row.max_abs_err, diff)
        if rel > TOL and row.passed:
            row.passed = False
            k = np.unravel_index(int(np.argmax(np.abs(a - b))), b.shape) if b.size else ()
            row.first_wrong = (f"{name}{list(map(int, k))} in case {case}: yours {a[k]:.6g}, expected "
                               f"{b[k]:.6g} (difference {a[k] - b[k]:.3g})")


# --------------------------------------------------------------------------- the two parts

def _step_case(cell, k, B, I, H, reset_after):
    """Inputs, upstream gradients, the reference's outputs, cache and gradients for case k."""
    rng = np.random.default_rng(100 + k)
    G = MODULES[cell].GATES
    n = len(MODULES[cell].STATE_NAMES)
    inputs = {"x_t": rng.standard_normal((B, I)), "h_prev": rng.standard_normal((B, H))}
    if n == 2:
        inputs["c_prev"] = rng.standard_normal((B, H))
    inputs.update(weight_ih=rng.uniform(-0.8, 0.8, (G * H, I)), weight_hh=rng.uniform(-0.8, 0.8, (G * H, H)),
                  bias_ih=rng.uniform(-0.5, 0.5, G * H), bias_hh=rng.uniform(-0.5, 0.5, G * H))
    upstream = [rng.standard_normal((B, H)) for _ in range(n)]
    options = {"reset_after": reset_after} if cell == "gru" else {}
    *outs, cache = MODULES[cell].step_forward(*inputs.values(), **options)
    grads = MODULES[cell].step_backward(*upstream, cache)
    return inputs, upstream, outs, cache, list(grads)


def _step_variant(cell, mistake, where, upstream, cache, inputs):
    if cell == "rnn":
        return list(mistakes.rnn_step_backward(*upstream, cache, mistake, where))
    if cell == "lstm":
        return list(mistakes.lstm_step_backward(*upstream, cache, mistake, where))
    return list(mistakes.gru_step_backward(*upstream, cache, inputs["bias_hh"], mistake, where))


def _step_mistakes(cell, reset_after):
    """(mistake, where) for every planted variant of the step: each mistake everywhere, and each
    one that has places in every non-empty subset of them."""
    for m in mistakes.applicable(cell, "step", reset_after):
        places = (m.places or {}).get(cell, ())
        yield m, None
        for n in range(1, len(places)):
            for where in itertools.combinations(places, n):
                yield m, where


def _grade_step(student, report, filename):
    cell = report.cell
    module = MODULES[cell]
    state_names = list(module.STATE_NAMES)
    out_names = state_names + ["cache"]
    grad_names = ["dx_t"] + [f"d{s}_prev" for s in state_names] + ["dweight_ih", "dweight_hh", "dbias_ih",
                                                                     "dbias_hh"]
    forward, backward = _functions(student, ("step_forward", "step_backward"))
    rows, runs = {}, []
    for k, (B, I, H) in enumerate(STEP_CASES, 1):
        report.cases.append(f"B={B} I={I} H={H}")
        inputs, upstream, want_outs, ref_cache, want_grads = _step_case(cell, k, B, I, H, report.reset_after)
        *outs, cache = _call("step_forward", forward, list(inputs.values()), out_names,
                             [(B, H)] * len(state_names) + [None], filename)
        _compare(rows, state_names, outs, want_outs, k)
        shapes = [inputs["x_t"].shape] + [(B, H)] * len(state_names) + [
            inputs[p].shape for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        grads = _call("step_backward", backward, [*upstream, cache], grad_names, shapes, filename)
        _compare(rows, grad_names, grads, want_grads, k)
        runs.append((inputs, upstream, ref_cache, grads))
    report.rows = list(rows.values())
    report.self_check = _self_check(forward, backward, runs[0][0], "your step_backward against finite differences "
                                    "of your own step_forward")
    variants = {(m.key, where): [_step_variant(cell, m.key, where, upstream, ref_cache, inputs)
                             for inputs, upstream, ref_cache, _ in runs]
                for m, where in _step_mistakes(cell, report.reset_after)}
    _diagnose(report, state_names, grad_names, [g for *_, g in runs], variants)


def _sequence_case(cell, k, T, B, I, H, lengths, reverse):
    rng = np.random.default_rng(200 + k)
    module = MODULES[cell]
    G, n = module.GATES, len(module.STATE_NAMES)
    inputs = {"x": rng.standard_normal((T, B, I))}
    inputs.update({f"{s}0": rng.standard_normal((B, H)) for s in module.STATE_NAMES})
    inputs.update(weight_ih=rng.uniform(-0.8, 0.8, (G * H, I)), weight_hh=rng.uniform(-0.8, 0.8, (G * H, H)),
                  bias_ih=rng.uniform(-0.5, 0.5, G * H), bias_hh=rng.uniform(-0.5, 0.5, G * H))
    dy = rng.standard_normal((T, B, H))
    dstates = [rng.standard_normal((B, H)) for _ in range(n)]
    options = dict(lengths=None if lengths is None else np.array(lengths), reverse=reverse)
    *_, cache = module.forward_reference(*inputs.values(), **options)
    want = list(module.backward_reference(dy, *dstates, cache))
    return inputs, options, dy, dstates, cache, want


def _grade_sequence(student, report, filename):
    cell = report.cell
    module = MODULES[cell]
    state_names = list(module.STATE_NAMES)
    grad_names = ["dx"] + [f"d{s}0" for s in state_names] + ["dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh"]
    (backward,) = _functions(student, ("backward",))
    rows, runs = {}, []
    for k, (T, B, I, H, lengths, reverse) in enumerate(SEQUENCE_CASES, 1):
        report.cases.append(f"T={T} B={B} I={I} H={H}" + (f" lengths {list(lengths)}" if lengths else "")
                            + (" reverse" if reverse else ""))
        inputs, options, dy, dstates, cache, want = _sequence_case(cell, k, T, B, I, H, lengths, reverse)
        shapes = [(T, B, I)] + [(B, H)] * len(state_names) + [
            inputs[p].shape for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        grads = _call("backward", backward, [dy, *dstates, cache], grad_names, shapes, filename)
        _compare(rows, grad_names, grads, want, k)
        runs.append((inputs, options, dy, dstates, cache, grads))
    report.rows = list(rows.values())
    inputs, options = runs[0][0], runs[0][1]
    report.self_check = _self_check(functools.partial(module.forward_reference, **options), backward, inputs,
                                    "your backward against finite differences of the reference forward")
    variants = {(m.key, None): [list(mistakes.sequence_backward(cell, dy, dstates, cache, m.key))
                            for _, _, dy, dstates, cache, _ in runs]
                for m in mistakes.applicable(cell, "sequence")}
    _diagnose(report, [], grad_names, [g for *_, g in runs], variants)


def _functions(student, names):
    missing = [n for n in names if not callable(getattr(student, n, None))]
    if missing:
        raise GradeError(f"the file must define {', '.join(names)}; it lacks {', '.join(missing)}")
    return [getattr(student, n) for n in names]


def _self_check(forward, backward, inputs, what):
    """One line: the student's backward against finite differences of a forward."""
    try:
        check = gradcheck.check_fn(forward, backward, dict(inputs))
    except Exception as exc:                     # the student's code again
        return f"{what}: could not run ({type(exc).__name__}: {exc})"
    if check.passed:
        worst = max(r.max_rel_err for r in check.rows)
        return f"{what}: they agree (worst relative error {worst:.1e})"
    failed = ", ".join(r.name for r in check.rows if not r.passed)
    return (f"{what}: they DISAGREE in {failed}: the backward is not the derivative of that forward")


def _diagnose(report, output_names, grad_names, student_grads, variants):
    rows = {r.name: r for r in report.rows}
    if any(not rows[n].passed for n in output_names):
        wrong = [n for n in output_names if not rows[n].passed]
        report.diagnoses.append(Diagnosis(None, (
            f"Your step_forward's {', '.join(wrong)} differ from the reference ({rows[wrong[0]].first_wrong}); "
            "the gradients are compared after a forward that is not the reference's. Fix the forward first.")))
        return
    wrong = [n for n in grad_names if not rows[n].passed]
    if not wrong:
        return
    for (key, where), per_case in variants.items():
        m = mistakes.MISTAKES[key]
        if all(_same(np.asarray(g, np.float64), np.asarray(v, np.float64))
               for mine, variant in zip(student_grads, per_case) for g, v in zip(mine, variant)):
            at = "" if where is None else f", for {' and '.join(where)} only"
            report.diagnoses.append(Diagnosis(m, (
                f"Diagnosis: {m.title}{at}. Your {', '.join(wrong)} equal{'s' if len(wrong) == 1 else ''} "
                f"exactly what that mistake gives. Reread docs/derivations.md {m.section_for(report.cell)}.")))
    if not report.diagnoses:
        report.diagnoses.append(Diagnosis(None, (
            f"No known mistake matches what is wrong in {', '.join(wrong)}. First wrong entry: "
            f"{rows[wrong[0]].first_wrong}.")))


# --------------------------------------------------------------------------- a cell with no reference

def _find_cell(student, name, filename):
    """The Cell subclass named ``name`` that the student's module defines."""
    from ..cells import Cell

    found = [obj for obj in vars(student).values()
             if isinstance(obj, type) and issubclass(obj, Cell) and obj is not Cell
             and getattr(obj, "name", None) == name and obj.__module__ == student.__name__]
    if not found:
        defined = sorted(obj.name for obj in vars(student).values()
                         if isinstance(obj, type) and issubclass(obj, Cell) and obj.__module__ == student.__name__
                         and isinstance(getattr(obj, "name", None), str))
        raise GradeError(f"{os.path.basename(filename or '')} defines no Cell named {name!r}"
                         + (f"; it defines {', '.join(map(repr, defined))}" if defined
                            else ": write a subclass of numpyrnn.cells.Cell with name = " + repr(name)))
    return found[0]


def _grade_cell(student, report, filename):
    """A cell of the student's own, with no reference: every tensor of its step backward against
    finite differences of its own step forward, on the step cases; the protocol checked first."""
    from ..cells import CellError, generic

    cls = _find_cell(student, report.cell, filename)
    try:
        cell = cls()
    except Exception as exc:                     # the student's code: anything can happen in it
        raise GradeError(f"{cls.__name__}() raised {type(exc).__name__}: {exc}{_where(exc, filename)}") from None
    rows, worst = {}, 0.0
    for k, (B, I, H) in enumerate(STEP_CASES, 1):
        report.cases.append(f"B={B} I={I} H={H}")
        try:
            if k == 1:                           # the protocol, once: states, shapes, dtypes, in-place changes
                shapes = generic.check_parameters(cell, I, H)
                params = {n: np.zeros(shape) for n, shape in shapes.items()}
                cell.initialize(params, H, np.random.default_rng(0))
                generic.check_cell(cell, params, I, H, np, np.float64)
            check = gradcheck.check_step(cell, batch=B, input_size=I, hidden=H, seed=100 + k)
        except NotImplementedError as exc:
            raise GradeError(f"{cls.__name__} is not written yet ({exc})") from None
        except CellError as exc:
            raise GradeError(str(exc)) from None
        except Exception as exc:                 # the student's code: anything can happen in it
            raise GradeError(f"{cls.__name__} raised {type(exc).__name__}: {exc}{_where(exc, filename)}") from None
        for r in check.rows:
            row = rows.setdefault(r.name, Row(r.name))
            row.max_abs_err = max(row.max_abs_err, r.max_abs_err)
            row.max_rel_err = max(row.max_rel_err, r.max_rel_err)
            worst = max(worst, r.max_rel_err)
            if not r.passed and row.passed:
                row.passed = False
                row.first_wrong = (f"{r.name}{r.worst} in case {k}: yours {r.analytic:.6g}, finite differences "
                                   f"{r.numeric:.6g}" + (f" ({r.note})" if r.note else ""))
    report.rows = list(rows.values())
    what = "your step_backward against finite differences of your own step_forward"
    wrong = [r for r in report.rows if not r.passed]
    if not wrong:
        report.self_check = f"{what}: they agree (worst relative error {worst:.1e})"
    else:
        report.self_check = f"{what}: they DISAGREE in {', '.join(r.name for r in wrong)}"
        report.diagnoses.append(Diagnosis(None, (
            f"{cls.__name__} has no reference to name a mistake by; the first wrong entry: {wrong[0].first_wrong}. "
            "Derive the backward line by line from the forward's chain of intermediates (docs/derivations.md §13).")))


# --------------------------------------------------------------------------- the entry point

def grade(path_or_module, cell, part="step"):
    """Grade a student's file (a path, or a module already imported) as the ``cell`` (rnn, lstm,
    gru) exercise's ``part`` (step or sequence), or, for any other name, the step of the Cell of
    that name the file defines, against finite differences of its own step forward.  Returns a
    :class:`Report`; ``report.passed``."""
    if not isinstance(cell, str) or not cell.isidentifier():
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, or the name of a Cell the file defines, "
                         f"got {cell!r}")
    if cell not in CELLS and part != "step":
        raise ValueError(f"a cell of your own ({cell!r}) is graded by its step: part must be 'step', got {part!r}")
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    filename = getattr(path_or_module, "__file__", None) if isinstance(path_or_module, types.ModuleType) \
        else os.fspath(path_or_module)
    source = os.path.basename(filename) if filename else getattr(path_or_module, "__name__", str(path_or_module))
    report = Report(source=source, cell=cell, part=part)
    try:
        student = load(path_or_module)
        if cell == "gru":
            report.reset_after = getattr(student, "RESET_AFTER", True)
            if not isinstance(report.reset_after, bool):
                raise GradeError(f"RESET_AFTER must be True or False, got {report.reset_after!r}")
        if cell not in CELLS:
            _grade_cell(student, report, filename)
        else:
            (_grade_step if part == "step" else _grade_sequence)(student, report, filename)
    except GradeError as exc:
        report.errors.append(str(exc))
    return report


__all__ = ["grade", "Report", "Row", "Diagnosis", "GradeError", "TOL"]
