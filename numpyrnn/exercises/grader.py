"""Grading a student's file: every output and gradient against the reference, the backward
against finite differences of the student's own forward, and where what is wrong lies.

    report = grade("my_lstm.py", "lstm", part="step")
    print(report)            # a row per output and per gradient, then what was found
    report.passed, report.diagnoses

What it grades: the three textbook cells' exercises (``numpyrnn exercise rnn|lstm|gru``, the
step or the loop through time), a registered cell's step (the gallery's variants, graded
against numpyrnn's own), and a cell of the student's own with no reference (its backward
against finite differences of its own forward).

How it cannot be fooled: a file is run in a child process (:mod:`numpyrnn.exercises.sandbox`)
with a time limit, on copies of every array; the cases, the comparisons and the verdict stay
here.  ``sys.exit``, ``os._exit``, a crash or an endless loop is a FAILED report saying so, never
a pass; a NaN, Inf or complex result fails, naming the tensor.  A module object (``grade(module)``,
as the walkthrough does) runs in this process: the same checks, but no time limit and no
protection from ``os._exit``.

How it finds the mistake: the catalogue of known mistakes (:mod:`numpyrnn.exercises.mistakes`),
matched tensor by tensor; then relations that need no catalogue (:mod:`numpyrnn.exercises.diagnosis`):
which gate's rows, which term of the derivation (:mod:`numpyrnn.exercises.terms`), a sign, a
scale or a transpose, which kind of case (the cases differ from the first in one feature each),
which steps.  A finding is stated only when its relation holds exactly.
"""

from __future__ import annotations

import functools
import itertools
import os
import types
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .. import gradcheck
from .. import cells
from ..cells import gru, lstm, rnn
from ..cells.protocol import declared, zeros_for_none
from . import diagnosis, mistakes, terms
from .sandbox import TIMEOUT_S, InProcess, Sandbox, StudentError
from .templates import CELLS, PARTS

#: how close a student's array must be to the reference's: normwise relative error
#: max|yours − expected| / max|expected| (float64 rounding differences are near 1e-15)
TOL = 1e-8

MODULES = {"rnn": rnn, "lstm": lstm, "gru": gru}


@dataclass(frozen=True)
class Case:
    """One graded case: its shapes and what sets it apart from the first (``features``)."""
    B: int
    I: int
    H: int
    features: frozenset = frozenset()
    T: int = None
    lengths: tuple = None
    reverse: bool = False
    none_state: bool = False

    @property
    def label(self):
        head = (f"T={self.T} " if self.T else "") + f"B={self.B} I={self.I} H={self.H}"
        extra = ([f"lengths {list(self.lengths)}"] if self.lengths else []) + (["reverse"] if self.reverse else []) \
            + (["dh_n None"] if self.none_state else [])
        return " ".join([head, *extra])


#: the step cases: the first plain, each other one differing from it in one feature
STEP_CASES = [Case(3, 5, 4), Case(1, 5, 4, frozenset({"B = 1"})), Case(3, 5, 1, frozenset({"H = 1"})),
              Case(3, 4, 4, frozenset({"I = H"}))]
#: the sequence cases likewise, and one with lengths and reversed together
SEQUENCE_CASES = [Case(3, 3, 4, T=5), Case(3, 3, 4, frozenset({"lengths"}), T=5, lengths=(5, 2, 3)),
                  Case(3, 3, 4, frozenset({"reversed"}), T=5, reverse=True),
                  Case(1, 3, 4, frozenset({"B = 1"}), T=5), Case(3, 3, 1, frozenset({"H = 1"}), T=5),
                  Case(3, 4, 4, frozenset({"I = H"}), T=5), Case(3, 3, 4, frozenset({"None"}), T=5, none_state=True),
                  Case(2, 2, 3, frozenset({"lengths", "reversed"}), T=6, lengths=(3, 6), reverse=True)]


class GradeError(Exception):
    """The student's code could not be run or returned the wrong kind of thing: one message."""


@dataclass
class Row:
    name: str
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    passed: bool = True
    first_wrong: str = ""            # where the first wrong entry is, and its values
    wrong_in: list = field(default_factory=list)     # per case: wrong or not


@dataclass
class Diagnosis:
    mistake: object                  # a mistakes.Mistake, or None for a finding without one
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
    reference: str = "the reference"
    _findings: list = field(default_factory=list, repr=False)

    @property
    def passed(self) -> bool:
        return not self.errors and bool(self.rows) and all(r.passed for r in self.rows)

    def __str__(self):
        what = {"rnn": "RNN (tanh)", "lstm": "LSTM", "gru": f"GRU (reset_after={self.reset_after})",
                "attention": "attention (Luong's general score)"}.get(self.cell, f"cell {self.cell!r}")
        part = "step forward and backward" if self.part == "step" else "backward through time"
        lines = [f"grading {self.source}: the {what} {part}, " + (
            f"{len(self.cases)} random float64 cases ({'; '.join(self.cases)})" if self.cases
            else "no case ran (the error below stopped it first)")]
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
        if self.passed:
            lines.append("PASSED: every gradient equals the finite differences of your own step_forward"
                         if self.reference is None else f"PASSED: every output and gradient equals {self.reference}'s")
        else:
            lines.append("FAILED")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the student's results, checked

def _checked(fn_name, result, names, shapes):
    """The student's result: ``len(names)`` arrays of ``shapes`` (None: anything, the cache),
    real and finite.  Returns them as float64; a GradeError says what is wrong."""
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else f"a {type(result).__name__}"
        raise GradeError(f"{fn_name} returned {got}; it must return {len(names)}: ({', '.join(names)})")
    out = []
    for name, value, shape in zip(names, result, shapes):
        if shape is None:
            out.append(value)
            continue
        if not isinstance(value, (np.ndarray, list, tuple, float, int, np.generic)) or isinstance(value, bool):
            raise GradeError(f"{fn_name} returned a {type(value).__name__} for {name}; it must be an array "
                             f"of shape {shape}")
        array = np.asarray(value)
        if array.dtype.kind == "c":
            raise GradeError(f"{fn_name}'s {name} is complex (dtype {array.dtype}); it must be real")
        if array.dtype.kind not in "fiub":
            raise GradeError(f"{fn_name} returned {array.dtype} values for {name}; it must be an array of numbers "
                             f"of shape {shape}")
        array = array.astype(np.float64)
        if array.shape != shape:
            raise GradeError(f"{fn_name}'s {name} has shape {array.shape}; it must have shape {shape}")
        if not np.all(np.isfinite(array)):
            bad = int(np.sum(~np.isfinite(array)))
            raise GradeError(f"{fn_name}'s {name} holds NaN or Inf ({bad} of {array.size} entries); every value "
                             "must be finite")
        out.append(array)
    return out


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
        row.wrong_in.append(rel > TOL)
        if rel > TOL and row.passed:
            row.passed = False
            k = np.unravel_index(int(np.argmax(np.abs(a - b))), b.shape) if b.size else ()
            row.first_wrong = (f"{name}{list(map(int, k))} in case {case}: yours {a[k]:.6g}, expected "
                               f"{b[k]:.6g} (difference {a[k] - b[k]:.3g})")


def _self_check(forward, backward, inputs, full=True):
    """The student's backward against finite differences of a forward, on one case: (agrees,
    failed tensor names, worst relative error).  ``full``: every entry (the first case); else
    3 random directions per tensor (the other cases), which a wrong gradient fails as surely."""
    check = gradcheck.check_fn(forward, backward, dict(inputs), mode="full" if full else "fast", n_directions=3)
    return check.passed, [r.name for r in check.rows if not r.passed], max(r.max_rel_err for r in check.rows)


def _self_check_line(results, what, forward_right, backward_right):
    """One line from the self-checks of every case, saying which to trust when they and the
    reference comparison disagree."""
    failed = sorted({name for ok, names, _ in results for name in names})
    if not failed:
        worst = max(w for *_, w in results)
        line = (f"{what}: they agree in all {len(results)} cases (every entry in the first, random directions in "
                f"the others; worst relative error {worst:.1e})")
        if not backward_right and forward_right is not False:
            line += (". The reference comparison says otherwise, and it is exact to rounding where finite "
                     "differences carry noise: trust it")
        return line
    cases = [k + 1 for k, (ok, _, _) in enumerate(results) if not ok]
    line = (f"{what}: they DISAGREE in {', '.join(failed)} (in case{'s' * (len(cases) > 1)} "
            f"{', '.join(map(str, cases))}): the backward is not the derivative of that forward")
    if backward_right:
        line += "; the reference comparison found every gradient right, and it is exact: trust it"
    return line


# --------------------------------------------------------------------------- the catalogue, tensor by tensor

def _catalogue(report, wrong, student_grads, reference_grads, variants, grad_names):
    """Catalogue mistakes that explain wrong tensors, tensor by tensor: the whole mistake when the
    tensors it changes are exactly the wrong ones, each the student's way; part of it (named
    with the tensors it was made in) when the student's wrong tensors are some of those it
    changes and the others are right."""
    found = []
    for (key, where), per_case in variants.items():
        def agrees(j, other):
            return all(_same(mine[j], v[j]) for mine, v in zip(student_grads, other))
        changes = {n for j, n in enumerate(grad_names)
                   if not all(_same(v[j], r[j]) for v, r in zip(per_case, reference_grads))}
        explained = [n for n in wrong if n in changes and agrees(grad_names.index(n), per_case)]
        if not explained or set(wrong) - set(explained) and set(explained) != set(wrong) & changes:
            continue
        full = set(explained) == set(wrong) == changes
        if not full and set(wrong) != set(explained):
            continue                              # the rest of what is wrong is not this mistake
        found.append((not full, -len(explained), key, where, explained, full))
    messages = []
    covered = set()
    for partial, _, key, where, explained, full in sorted(found, key=lambda f: f[:2]):
        if set(explained) <= covered:
            continue
        m = mistakes.MISTAKES[key]
        at = "" if where is None else f", for {' and '.join(where)} only"
        if full:
            text = (f"Diagnosis: {m.title}{at}. Your {', '.join(explained)} equal{'s' * (len(explained) == 1)} "
                    f"exactly what that mistake gives. Reread docs/derivations.md {m.section_for(report.cell)}.")
        else:
            text = (f"Diagnosis: {m.title}{at}, in {', '.join(explained)} only: "
                    f"your {', '.join(explained)} equal{'s' * (len(explained) == 1)} what that mistake gives there. "
                    f"Reread docs/derivations.md {m.section_for(report.cell)}.")
        messages.append(Diagnosis(m, text))
        covered |= set(explained)
        if full:
            break
    return messages, covered


# --------------------------------------------------------------------------- the cases of each part

def _inputs(rng, G, n_states, B, I, H, prefix=""):
    names = ["h", "c"][:n_states]
    out = {"x_t" if not prefix else "x": rng.standard_normal((B, I))}
    out.update({f"{s}_prev": rng.standard_normal((B, H)) for s in names})
    out.update(weight_ih=rng.uniform(-0.8, 0.8, (G * H, I)), weight_hh=rng.uniform(-0.8, 0.8, (G * H, H)),
               bias_ih=rng.uniform(-0.5, 0.5, G * H), bias_hh=rng.uniform(-0.5, 0.5, G * H))
    return out


def _step_case(cell, k, case, reset_after):
    """Inputs, upstream gradients, the reference's outputs, cache and gradients for case k."""
    module = MODULES[cell]
    rng = np.random.default_rng(100 + k)
    inputs = _inputs(rng, module.GATES, len(module.STATE_NAMES), case.B, case.I, case.H)
    upstream = [rng.standard_normal((case.B, case.H)) for _ in module.STATE_NAMES]
    options = {"reset_after": reset_after} if cell == "gru" else {}
    *outs, cache = module.step_forward(*inputs.values(), **options)
    grads = module.step_backward(*upstream, cache)
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


def _require(runner, names):
    missing = [n for n in names if not runner.call("__has__", n)]
    if missing:
        raise GradeError(f"the file must define {', '.join(names)}; it lacks {', '.join(missing)}")


class StepRun(NamedTuple):
    """One case of a step exercise: what went in, what the file gave, what the reference gives."""
    inputs: dict              # x_t, the states, the weights
    upstream: tuple           # the gradients handed to step_backward
    ref_cache: object         # the reference step's cache
    outs: list                # the file's step_forward outputs (the states)
    grads: list               # the file's gradients, in grad_names order
    want: list                # the reference's


class SequenceRun(NamedTuple):
    """One case of a sequence exercise."""
    inputs: dict              # x, the initial states, the weights
    options: dict             # lengths, reverse
    dy: object
    dstates: list
    cache: object             # the reference forward's cache, handed to the file's backward
    grads: list               # the file's gradients
    want: list                # the reference's


class CellRun(NamedTuple):
    """One case of a Cell's step graded against a registered reference."""
    grads: list
    want: list
    names: list               # the tensors' names, in the order of grads and want


def _step_self_check(report, rows, checks, out_names, grad_names):
    """The self-check line of a step exercise (the file's step_backward against finite
    differences of its own step_forward), onto the report; returns whether the forward's
    outputs were right."""
    forward_right = all(rows[n].passed for n in out_names)
    backward_right = all(rows[n].passed for n in grad_names)
    report.self_check = _self_check_line(checks, "your step_backward against finite differences of your own "
                                                 "step_forward", forward_right, backward_right)
    return forward_right


def _run_cases(report, cases, run_case):
    """The case loop every grader runs: for each case (numbered from 1), ``run_case(k, case,
    rows)`` compares the file's tensors into ``rows`` (name → :class:`Row`) and returns the
    case's record (a StepRun, SequenceRun or CellRun; None when there is nothing to compare it
    with) and its self-check.  Returns (rows, records, self-checks); the report gets the cases'
    labels and the rows."""
    rows, records, checks = {}, [], []
    for k, case in enumerate(cases, 1):
        report.cases.append(case.label)
        record, check = run_case(k, case, rows)
        if record is not None:
            records.append(record)
        checks.append(check)
    report.rows = list(rows.values())
    return rows, records, checks


def _grade_step(runner, report):
    cell = report.cell
    module = MODULES[cell]
    state_names = list(module.STATE_NAMES)
    out_names = state_names + ["cache"]
    grad_names = ["dx_t"] + [f"d{s}_prev" for s in state_names] + ["dweight_ih", "dweight_hh", "dbias_ih",
                                                                     "dbias_hh"]
    _require(runner, ("step_forward", "step_backward"))

    def run_case(k, case, rows):
        inputs, upstream, want_outs, ref_cache, want_grads = _step_case(cell, k, case, report.reset_after)
        B, H = case.B, case.H
        *outs, cache = _checked("step_forward", runner.call("step_forward", *inputs.values()), out_names,
                                [(B, H)] * len(state_names) + [None])
        _compare(rows, state_names, outs, want_outs, k)
        shapes = [inputs["x_t"].shape] + [(B, H)] * len(state_names) + [
            inputs[p].shape for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        grads = _checked("step_backward", runner.call("step_backward", *upstream, cache), grad_names, shapes,)
        _compare(rows, grad_names, grads, want_grads, k)
        return (StepRun(inputs, upstream, ref_cache, outs, grads, want_grads),
                _self_check(lambda *a: runner.call("step_forward", *a),
                            lambda *a: runner.call("step_backward", *a), inputs, k == 1))

    rows, runs, checks = _run_cases(report, STEP_CASES, run_case)
    forward_right = _step_self_check(report, rows, checks, state_names, grad_names)
    if not forward_right:
        _other_form(report, runs, state_names, grad_names)
        _wrong_forward(report, rows, state_names)
        return
    variants = {(m.key, where): [_step_variant(cell, m.key, where, r.upstream, r.ref_cache, r.inputs) for r in runs]
                for m, where in _step_mistakes(cell, report.reset_after)}
    wrong = [n for n in grad_names if not rows[n].passed]
    if not wrong:
        return
    found, covered = _catalogue(report, wrong, [r.grads for r in runs], [r.want for r in runs], variants, grad_names)
    report.diagnoses += found
    if cell == "gru" and not covered:
        _other_form(report, runs, state_names, grad_names)
    step_terms = [terms.step_terms(cell, r.inputs, r.upstream, r.ref_cache) for r in runs]
    made = cells.get(cell, **({"reset_after": report.reset_after} if cell == "gru" else {}))
    section = declared(made, "section")                  # where the step is derived (§6a or §6b)
    blocks = declared(made, "blocks")                    # the rows' blocks, "ifgo", "rzn": where a
    gates = "".join(blocks) if len(blocks) > 1 else None   # wrong gradient's rows can be located
    for name in wrong:
        if name in covered:
            continue
        j = grad_names.index(name)
        yours, right = [r.grads[j] for r in runs], [r.want[j] for r in runs]
        _localise(report, name, yours, right, rows[name], STEP_CASES, gates if name.startswith(("dweight", "dbias"))
                  else None, [t[name] for t in step_terms], section)
    _report_findings(report)


@dataclass(frozen=True)
class AttentionCase:
    """One graded case of the attention exercise."""
    S: int
    B: int
    Hq: int
    Hk: int
    features: frozenset = frozenset()
    lengths: tuple = None
    T = None                                     # no time steps (what _localise reads of a case)

    @property
    def label(self):
        return f"S={self.S} B={self.B} Hq={self.Hq} Hk={self.Hk}" + (
            f" lengths {list(self.lengths)}" if self.lengths else "")


#: the attention cases: the first plain, each other one differing from it in one feature
ATTENTION_CASES = [AttentionCase(5, 3, 4, 6), AttentionCase(5, 3, 4, 6, frozenset({"source lengths"}), (5, 2, 4)),
                   AttentionCase(5, 1, 4, 6, frozenset({"B = 1"})), AttentionCase(1, 3, 4, 6, frozenset({"S = 1"})),
                   AttentionCase(5, 3, 5, 5, frozenset({"Hq = Hk"}))]


def _grade_attention(runner, report):
    """The attention exercise: the file's step_forward and step_backward against
    numpyrnn.layers.attention's general form, case by case; the catalogue of
    :data:`mistakes.ATTENTION_MISTAKES`; the other wrong tensors localised."""
    from ..layers import attention

    out_names, grad_names = ["context", "alpha"], ["dquery", "dkeys", "dweight"]
    _require(runner, ("step_forward", "step_backward"))

    def run_case(k, case, rows):
        rng = np.random.default_rng(300 + k)
        lengths = None if case.lengths is None else np.array(case.lengths)
        inputs = {"query": rng.standard_normal((case.B, case.Hq)),
                  "keys": rng.standard_normal((case.S, case.B, case.Hk)),
                  "weight": rng.uniform(-0.8, 0.8, (case.Hq, case.Hk))}
        dcontext = rng.standard_normal((case.B, case.Hk))
        *want_outs, ref_cache = attention.step_forward(*inputs.values(), form="general", lengths=lengths)
        want = list(attention.step_backward(dcontext, None, ref_cache))
        *outs, cache = _checked("step_forward", runner.call("step_forward", *inputs.values(), lengths),
                                out_names + ["cache"], [(case.B, case.Hk), (case.S, case.B), None])
        _compare(rows, out_names, outs, want_outs, k)
        grads = _checked("step_backward", runner.call("step_backward", dcontext, cache), grad_names,
                         [a.shape for a in inputs.values()])
        _compare(rows, grad_names, grads, want, k)

        def forward(*a):                         # the context and the cache: what the backward reads
            context, _, c = runner.call("step_forward", *a, lengths)
            return context, c

        return (StepRun(inputs, (dcontext,), ref_cache, outs, grads, want),
                _self_check(forward, lambda d, c: runner.call("step_backward", d, c), inputs, k == 1))

    rows, runs, checks = _run_cases(report, ATTENTION_CASES, run_case)
    forward_right = _step_self_check(report, rows, checks, out_names, grad_names)
    if not forward_right:
        _wrong_forward(report, rows, out_names)
        return
    wrong = [n for n in grad_names if not rows[n].passed]
    if not wrong:
        return
    variants = {(key, None): [list(mistakes.attention_step_backward(r.upstream[0], r.ref_cache, key)) for r in runs]
                for key in mistakes.ATTENTION_MISTAKES}
    found, covered = _catalogue(report, wrong, [r.grads for r in runs], [r.want for r in runs], variants, grad_names)
    report.diagnoses += found
    for name in wrong:
        if name not in covered:
            j = grad_names.index(name)
            _localise(report, name, [r.grads[j] for r in runs], [r.want[j] for r in runs], rows[name],
                      ATTENTION_CASES, None, None, "§18")
    _report_findings(report)


def _localise(report, name, yours, right, row, cases, gates, term_sets, section, extra=()):
    """The relations' findings for one wrong tensor, kept on the report until
    :func:`_report_findings` writes them: the tensors located first, then the others together
    with their first wrong entries."""
    findings = []
    said = diagnosis.scale(name, yours, right, [c.B for c in cases], [c.T for c in cases if c.T])
    if said:
        findings.append(said)
    if gates:
        findings += diagnosis.gate_blocks(name, yours, right, gates)
    if term_sets is not None and not said:
        fit = diagnosis.term_fit(name, yours, right, term_sets, section)
        if fit:
            findings.append(fit)
    by_case = diagnosis.case_features(name, row.wrong_in, [c.features for c in cases])
    if by_case:
        findings.append(by_case)
    findings += list(extra)
    report._findings.append((row, findings))


def _report_findings(report):
    """The findings as diagnoses: each located tensor's, then one line for the tensors no
    relation locates."""
    located = [(row, f) for row, f in report._findings if f]
    unlocated = [row for row, f in report._findings if not f]
    for row, findings in located:
        report.diagnoses.append(Diagnosis(None, "Where: " + "; ".join(findings) + f". First wrong entry: "
                                          f"{row.first_wrong}."))
    if unlocated:
        names = ", ".join(row.name for row in unlocated)
        if located or any(d.mistake for d in report.diagnoses):
            text = f"Also wrong, with no known mistake matching and no simple relation to the right values: {names}."
        else:
            text = f"No known mistake matches what is wrong in {names}, and no simple relation to the right values holds."
        report.diagnoses.append(Diagnosis(None, f"{text} First wrong entry: {unlocated[0].first_wrong}."))
    report._findings = []


def _wrong_forward(report, rows, state_names):
    wrong = [n for n in state_names if not rows[n].passed]
    report.diagnoses.append(Diagnosis(None, (
        f"Your step_forward's {', '.join(wrong)} differ from the reference ({rows[wrong[0]].first_wrong}); "
        "the gradients are compared after a forward that is not the reference's. Fix the forward first.")))


def _other_form(report, runs, state_names, grad_names):
    """A GRU file that computes the other reset form exactly: say so, and point at RESET_AFTER."""
    if report.cell != "gru":
        return
    other = not report.reset_after
    for run in runs:
        *want, cache = gru.step_forward(*run.inputs.values(), reset_after=other)
        if not all(_same(a, b) for a, b in zip(run.outs, want)):
            return
        if not all(_same(a, b) for a, b in zip(run.grads, gru.step_backward(*run.upstream, cache))):
            return
    form = "reset-after (PyTorch's)" if other else "reset-before (textbook)"
    report.diagnoses.append(Diagnosis(None, (
        f"Your file computes the {form} GRU exactly, forward and backward, but RESET_AFTER = {report.reset_after} "
        f"declares the other form: set RESET_AFTER = {other}, or write the form it declares (derivations §6a, §6b).")))


def _sequence_case(cell, k, case):
    module = MODULES[cell]
    rng = np.random.default_rng(200 + k)
    G, n = module.GATES, len(module.STATE_NAMES)
    T, B, I, H = case.T, case.B, case.I, case.H
    inputs = {"x": rng.standard_normal((T, B, I))}
    inputs.update({f"{s}0": rng.standard_normal((B, H)) for s in module.STATE_NAMES})
    inputs.update(weight_ih=rng.uniform(-0.8, 0.8, (G * H, I)), weight_hh=rng.uniform(-0.8, 0.8, (G * H, H)),
                  bias_ih=rng.uniform(-0.5, 0.5, G * H), bias_hh=rng.uniform(-0.5, 0.5, G * H))
    dy = rng.standard_normal((T, B, H))
    dstates = [None if case.none_state else rng.standard_normal((B, H)) for _ in range(n)]
    options = dict(lengths=None if case.lengths is None else np.array(case.lengths), reverse=case.reverse)
    *_, cache = module.forward_reference(*inputs.values(), **options)
    want = list(module.backward_reference(dy, *dstates, cache))
    return inputs, options, dy, dstates, cache, want


def _grade_sequence(runner, report):
    cell = report.cell
    module = MODULES[cell]
    state_names = list(module.STATE_NAMES)
    grad_names = ["dx"] + [f"d{s}0" for s in state_names] + ["dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh"]
    _require(runner, ("backward",))

    def run_case(k, case, rows):
        inputs, options, dy, dstates, cache, want = _sequence_case(cell, k, case)
        T, B, I, H = case.T, case.B, case.I, case.H
        shapes = [(T, B, I)] + [(B, H)] * len(state_names) + [
            inputs[p].shape for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        grads = _checked("backward", runner.call("backward", dy, *dstates, cache), grad_names, shapes)
        _compare(rows, grad_names, grads, want, k)
        return (SequenceRun(inputs, options, dy, dstates, cache, grads, want),
                _self_check(functools.partial(module.forward_reference, **options),
                            lambda *a: runner.call("backward", *a), inputs, k == 1))

    rows, runs, checks = _run_cases(report, SEQUENCE_CASES, run_case)
    backward_right = all(r.passed for r in report.rows)
    report.self_check = _self_check_line(checks, "your backward against finite differences of the reference "
                                                 "forward", True, backward_right)
    wrong = [n for n in grad_names if not rows[n].passed]
    if not wrong:
        return
    variants = {(m.key, None): [list(mistakes.sequence_backward(cell, r.dy, r.dstates, r.cache, m.key))
                                for r in runs]
                for m in mistakes.applicable(cell, "sequence")}
    found, covered = _catalogue(report, wrong, [r.grads for r in runs], [r.want for r in runs], variants,
                                grad_names)
    report.diagnoses += found
    steps = _step_findings(runner, cell, runs, rows)
    for name in wrong:
        if name in covered:
            continue
        j = grad_names.index(name)
        _localise(report, name, [r.grads[j] for r in runs], [r.want[j] for r in runs], rows[name], SEQUENCE_CASES,
                  None, None, None, extra=steps if name == "dx" else ())
    _report_findings(report)


def _step_findings(runner, cell, runs, rows):
    """Which steps of dx are wrong in the plain case, and probes with the gradient entering at
    the last step only; where lengths make padded steps, whether dx is wrong only there."""
    module = MODULES[cell]
    out = []
    inputs, options, dy, dstates, cache, grads, want = runs[0]   # the plain case
    T = dy.shape[0]
    wrong_steps = [not _same(grads[0][t], want[0][t]) for t in range(T)]
    said = diagnosis.step_range(wrong_steps, T)
    if said:
        out.append(said)
    probe = np.zeros_like(dy)
    probe[-1] = dy[-1]
    zeros = [np.zeros_like(d) if d is not None else np.zeros_like(dy[0]) for d in dstates]
    try:
        yours = runner.call("backward", probe, *zeros, cache)[0]
    except StudentError:
        yours = None
    if yours is not None and np.shape(yours) == dy.shape[:2] + (inputs["x"].shape[2],):
        right = module.backward_reference(probe, *zeros, cache)[0]
        at_last = _same(np.asarray(yours)[-1], right[-1])
        before = not all(_same(np.asarray(yours)[t], right[t]) for t in range(T - 1))
        if at_last and before:
            out.append("with the gradient entering at the last step only (dy zero elsewhere, no dh_n), your dx "
                       "is right at that step and wrong before it: the gradient carried from a step to the one "
                       "before it is wrong")
        elif not at_last:
            out.append("with the gradient entering at the last step only, your dx is wrong already at that step: "
                       "look at how the step's own backward is called")
    padded = [(case, r) for case, r in zip(SEQUENCE_CASES, runs) if case.lengths]
    if padded and rows["dx"].wrong_in[0] is False:
        only_padding = True
        for case, run in padded:
            g, w = run.grads[0], run.want[0]                # dx, yours and the reference's
            real = np.arange(case.T)[:, None] < np.array(case.lengths)[None, :]
            if not np.allclose(g[real], w[real], rtol=0, atol=TOL * max(np.abs(w).max(), 1e-300)):
                only_padding = False
        if only_padding:
            out.append("dx is wrong only at padded steps, where it must be 0 (§7)")
    return out


# --------------------------------------------------------------------------- a Cell: registered, or the student's own

def _find_cell(runner, name, filename):
    """The name of the class in the student's file that defines the Cell named ``name``."""
    found = runner.call("__cells__", name)
    if not found:
        defined = runner.call("__cells__", None)
        raise GradeError(f"{os.path.basename(filename or 'the file')} defines no Cell named {name!r}"
                         + (f"; it defines {', '.join(map(repr, defined))}" if defined
                            else ": write a subclass of numpyrnn.cells.Cell with name = " + repr(name)))
    return found[0]


def _grade_cell(runner, report, filename):
    """A Cell's step: against the registered cell of that name when there is one (its outputs and
    gradients, every tensor by name), and always against finite differences of the file's own
    step forward; the protocol checked first (in the child, on the student's class)."""
    from .. import cells

    cls_name = _find_cell(runner, report.cell, filename)
    reference = None
    if report.cell in cells.protocol.BUILT_IN:       # numpyrnn's own cell of that name is the answer key
        reference = cells.lookup(report.cell)()
    else:
        report.reference = None
    protocol = runner.call("__protocol__", cls_name)
    if protocol:
        raise GradeError(protocol)
    state_names = list(runner.call(f"{cls_name}.__getattribute__", "state_names"))

    def run_case(k, case, rows):
        rng = np.random.default_rng(100 + k)
        shapes = runner.call(f"{cls_name}.parameters", case.I, case.H)
        params = {n: rng.uniform(-0.8, 0.8, s) for n, s in shapes.items()}
        x_t = rng.standard_normal((case.B, case.I))
        state = tuple(rng.standard_normal((case.B, case.H)) for _ in state_names)
        dstate = tuple(rng.standard_normal((case.B, case.H)) for _ in state_names)
        names = [f"{s}_prev" for s in state_names]

        def forward(x_t, *rest, _n=len(state_names), _names=list(shapes)):
            new_state, cache = runner.call(f"{cls_name}.step_forward", x_t, tuple(rest[:_n]),
                                           dict(zip(_names, rest[_n:])))
            return (*new_state, cache)

        def backward(*args, _names=list(shapes)):
            dstate = tuple(args[:-1])
            dx_t, dprev, grads = runner.call(f"{cls_name}.step_backward", dstate, args[-1])
            return (dx_t, *zeros_for_none(dprev, dstate), *(grads.get(n) for n in _names))

        inputs = {"x_t": x_t, **dict(zip(names, state)), **params}
        if reference is not None:
            out = forward(*inputs.values())
            outs = _checked("step_forward", tuple(out[:-1]), state_names, [(case.B, case.H)] * len(state_names))
            want_state, want_cache = reference.step_forward(x_t, state, params)
            _compare(rows, state_names, outs, list(want_state), k)
            grads = _checked("step_backward", backward(*dstate, out[-1]), ["dx_t", *names, *shapes],
                             [x_t.shape] + [(case.B, case.H)] * len(state_names) + [params[n].shape for n in shapes])
            dx_t, dprev, ref_grads = reference.step_backward(dstate, want_cache)
            want = [dx_t, *dprev, *(ref_grads[n] for n in shapes)]
            _compare(rows, ["dx_t", *names, *shapes], grads, want, k)
            record = CellRun(grads, want, ["dx_t", *names, *shapes])
        else:
            record = None
        check = gradcheck.check_fn(forward, backward, inputs, mode="full" if k == 1 or reference is None else "fast",
                                   n_directions=3)
        self_check = (check.passed, [r.name for r in check.rows if not r.passed],
                      max(r.max_rel_err for r in check.rows))
        if reference is None:
            for r in check.rows:
                row = rows.setdefault(r.name, Row(r.name))
                row.max_abs_err, row.max_rel_err = max(row.max_abs_err, r.max_abs_err), max(row.max_rel_err, r.max_rel_err)
                row.wrong_in.append(not r.passed)
                if not r.passed and row.passed:
                    row.passed = False
                    row.first_wrong = (f"{r.name}{r.worst} in case {k}: yours {r.analytic:.6g}, finite differences "
                                       f"{r.numeric:.6g}" + (f" ({r.note})" if r.note else ""))
        return record, self_check

    rows, runs, checks = _run_cases(report, STEP_CASES, run_case)
    if reference is not None:
        report.reference = f"numpyrnn's {report.cell}"
    backward_right = all(r.passed for r in report.rows)
    forward_right = all(rows[n].passed for n in state_names) if reference is not None else None
    report.self_check = _self_check_line(checks, "your step_backward against finite differences of your own "
                                                 "step_forward", forward_right, backward_right)
    wrong = [r for r in report.rows if not r.passed]
    if not wrong:
        return
    if reference is not None and not forward_right:
        _wrong_forward(report, rows, state_names)
        return
    if reference is None:
        report.diagnoses.append(Diagnosis(None, (
            f"{report.cell} has no reference to compare with; the first wrong entry: {wrong[0].first_wrong}. "
            "Derive the backward line by line from the forward's chain of intermediates (docs/derivations.md §13).")))
        return
    gate_names = "".join(getattr(reference, "blocks", "")) or None
    names = runs[0].names
    for row in wrong:
        j = names.index(row.name) if row.name in names else None
        if j is None:
            continue
        _localise(report, row.name, [r.grads[j] for r in runs], [r.want[j] for r in runs], row, STEP_CASES,
                  gate_names if row.name.startswith(("weight", "bias")) else None, None, None)
    _report_findings(report)


# --------------------------------------------------------------------------- the entry point

def check_file(path):
    """Refuse what is not a Python file the grader can run: a missing path, a folder, another
    kind of file.  Returns the path."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path_or_module must be the path of the file to grade (a str or os.PathLike) or a "
                        f"module already imported, got {type(path).__name__}: {path!r}") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder: give the exercise file (a .py) to grade")
    if not path.endswith(".py"):
        raise ValueError(f"{path} is not a Python file (.py): the grader imports the file it grades")
    return path


def grade(path_or_module, cell, part="step", *, timeout=TIMEOUT_S):
    """Grade a student's file (a path: run in a child process, ``timeout`` seconds a call; or a
    module already imported: run here, unguarded against os._exit and endless loops) as the
    ``cell`` (rnn, lstm, gru) exercise's ``part`` (step or sequence), the attention exercise
    (``cell="attention"``: its step, derivations §18), or, for any other name,
    the step of the Cell of that name the file defines (against numpyrnn's cell of that name,
    where there is one, and against finite differences of its own step forward).  Returns a
    :class:`Report`; ``report.passed``."""
    if not isinstance(cell, str) or not cell.isidentifier():
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, or the name of a Cell the file defines, "
                         f"got {cell!r}")
    if cell not in CELLS and part != "step":   # attention and a file's own Cell: a step each
        raise ValueError(f"a cell other than {', '.join(CELLS)} ({cell!r}) is graded by its step: part must be "
                         f"'step', got {part!r}")
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    if isinstance(path_or_module, types.ModuleType):
        filename = getattr(path_or_module, "__file__", None)
        source = os.path.basename(filename) if filename else path_or_module.__name__
    else:
        filename = check_file(path_or_module)
        source = os.path.basename(filename)
    report = Report(source=source, cell=cell, part=part)
    runner = None
    try:
        runner = (InProcess(path_or_module) if isinstance(path_or_module, types.ModuleType)
                  else Sandbox(filename, timeout))
        if cell == "gru":
            report.reset_after = runner.call("__attribute__", "RESET_AFTER", True)
            if not isinstance(report.reset_after, (bool, np.bool_)):
                raise GradeError(f"RESET_AFTER must be True or False, got {report.reset_after!r}")
            report.reset_after = bool(report.reset_after)
        if cell == "attention":
            _grade_attention(runner, report)
        elif cell not in CELLS:
            _grade_cell(runner, report, filename)
        else:
            (_grade_step if part == "step" else _grade_sequence)(runner, report)
    except (GradeError, StudentError) as exc:
        report.errors.append(str(exc))
    finally:
        if runner is not None:
            runner.close()
    return report


__all__ = ["grade", "check_file", "Report", "Row", "Diagnosis", "GradeError", "TOL", "STEP_CASES",
           "SEQUENCE_CASES"]
