"""Exercises and their grader: the reference passes, every planted mistake is named, anything
else is "no known mistake", and a student's broken code gets one clear message."""

import functools
import os
import re
import types

import numpy as np
import pytest

from numpyrnn import cli, exercises
from numpyrnn.cells import gru, lstm, rnn
from numpyrnn.exercises import mistakes

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "exercises")
MODULES = {"rnn": rnn, "lstm": lstm, "gru": gru}
FORMS = [("rnn", True), ("lstm", True), ("gru", True), ("gru", False)]


def student(name="student", **functions):
    module = types.ModuleType(name)
    module.__dict__.update(functions)
    return module


def reference_step(cell, reset_after=True, backward=None):
    """The reference's step functions as a student's module (``backward``: another backward
    over the reference's cache, which also receives the step's bias_hh for the GRU)."""
    cells = MODULES[cell]
    forward = functools.partial(cells.step_forward, reset_after=reset_after) if cell == "gru" else cells.step_forward
    if backward is None:
        return student(step_forward=forward, step_backward=cells.step_backward, RESET_AFTER=reset_after)

    def step_forward(*args):                 # keeps bias_hh beside the cache for the GRU's variant
        *outs, cache = forward(*args)
        return (*outs, (cache, args[-1]))

    def step_backward(*args):
        *grads, (cache, bias_hh) = args
        return backward(*grads, cache, bias_hh)

    return student(step_forward=step_forward, step_backward=step_backward, RESET_AFTER=reset_after)


def planted_step(cell, reset_after, key):
    if cell == "rnn":
        return reference_step(cell, backward=lambda dh, cache, b: mistakes.rnn_step_backward(dh, cache, key))
    if cell == "lstm":
        return reference_step(cell, backward=lambda dh, dc, cache, b: mistakes.lstm_step_backward(dh, dc, cache, key))
    return reference_step(cell, reset_after, lambda dh, cache, b: mistakes.gru_step_backward(dh, cache, b, key))


def planted_sequence(cell, key):
    """A student's backward through time with the loop's mistake ``key`` planted."""
    def backward(dy, *rest):
        return mistakes.sequence_backward(cell, dy, list(rest[:-1]), rest[-1], key)
    return backward


# --------------------------------------------------------------------------- templates

@pytest.mark.parametrize("cell", exercises.CELLS)
@pytest.mark.parametrize("part", exercises.PARTS)
def test_templates_compile_raise_and_grade_as_not_written(cell, part, tmp_path, capsys):
    text = exercises.template(cell, part)
    assert cli.main(["exercise", cell, "--part", part]) == 0
    assert capsys.readouterr().out == text
    path = tmp_path / f"my_{cell}.py"
    path.write_text(text)
    names = ["step_forward", "step_backward"] if part == "step" else ["backward"]
    for name in names:
        assert f"def {name}(" in text and f'raise NotImplementedError("{name}")' in text
    assert "Returns" in text and ("(B, H)" in text)
    report = exercises.grade(path, cell, part)
    assert not report.passed and report.errors == [f"{names[0]} is not written yet (it raises NotImplementedError)"]
    assert cli.main(["grade", str(path), "--cell", cell, "--part", part]) == 1
    assert "is not written yet" in capsys.readouterr().out


def test_template_errors_name_the_argument():
    with pytest.raises(ValueError, match="cell must be one of rnn, lstm, gru or a registered cell's name, got 'transformer'"):
        exercises.template("transformer")
    with pytest.raises(ValueError, match="part must be one of step, sequence, got 'all'"):
        exercises.template("lstm", "all")


# --------------------------------------------------------------------------- the reference passes

@pytest.mark.parametrize("cell,reset_after", FORMS)
def test_the_reference_step_passes(cell, reset_after):
    report = exercises.grade(reference_step(cell, reset_after), cell, "step")
    assert report.passed, str(report)
    assert report.reset_after == reset_after and len(report.cases) == 4
    assert "they agree" in report.self_check and report.diagnoses == []
    assert [r.name for r in report.rows][:1] == ["h"] and all(r.max_rel_err < 1e-14 for r in report.rows)


@pytest.mark.parametrize("cell", exercises.CELLS)
def test_the_reference_sequence_passes(cell):
    module = MODULES[cell]
    report = exercises.grade(student(backward=module.backward_reference), cell, "sequence")
    assert report.passed, str(report)
    assert any("lengths" in c for c in report.cases) and any("reverse" in c for c in report.cases)
    assert all(r.max_abs_err == 0 for r in report.rows)


def test_a_filled_in_file_passes_from_the_command_line(capsys):
    assert cli.main(["grade", os.path.join(FIXTURES, "lstm_step_solution.py"), "--cell", "lstm"]) == 0
    out = capsys.readouterr().out
    assert "PASSED: every output and gradient equals the reference's" in out
    assert cli.main(["grade", os.path.join(FIXTURES, "gru_sequence_solution.py"), "--cell", "gru",
                     "--part", "sequence"]) == 0


# --------------------------------------------------------------------------- every planted mistake is named

@pytest.mark.parametrize("cell,reset_after", FORMS)
def test_the_planted_variants_without_a_mistake_are_the_reference(cell, reset_after):
    """mistake=None reproduces the reference bit for bit up to rounding: a match means the
    mistake, not a difference in the variant's arithmetic."""
    report = exercises.grade(planted_step(cell, reset_after, None), cell, "step")
    assert report.passed and all(r.max_rel_err < 1e-14 for r in report.rows), str(report)
    report = exercises.grade(student(backward=planted_sequence(cell, None)), cell, "sequence")
    assert report.passed, str(report)


STEP_MISTAKES = [(cell, ra, m.key) for cell, ra in FORMS for m in mistakes.applicable(cell, "step", ra)]
SEQUENCE_MISTAKES = [(cell, m.key) for cell in exercises.CELLS for m in mistakes.applicable(cell, "sequence")]


@pytest.mark.parametrize("cell,reset_after,key", STEP_MISTAKES)
def test_each_step_mistake_is_named(cell, reset_after, key):
    report = exercises.grade(planted_step(cell, reset_after, key), cell, "step")
    assert not report.passed
    assert [d.mistake.key for d in report.diagnoses if d.mistake] == [key], str(report)
    message = report.diagnoses[0].message
    assert message.startswith(f"Diagnosis: {mistakes.MISTAKES[key].title}")
    assert "Reread docs/derivations.md §" in message
    assert "they DISAGREE" in report.self_check      # the backward no longer matches its forward


@pytest.mark.parametrize("cell,key", SEQUENCE_MISTAKES)
def test_each_sequence_mistake_is_named(cell, key):
    report = exercises.grade(student(backward=planted_sequence(cell, key)), cell, "sequence")
    assert not report.passed
    assert [d.mistake.key for d in report.diagnoses if d.mistake] == [key], str(report)


def test_every_catalogued_mistake_is_planted_somewhere():
    planted = {key for *_, key in STEP_MISTAKES} | {key for _, key in SEQUENCE_MISTAKES}
    attention = set(mistakes.ATTENTION_MISTAKES)      # planted in tests/test_attention_exercise.py
    assert planted | attention == set(mistakes.MISTAKES) and not planted & attention
    assert len(planted) >= 13


@pytest.mark.parametrize("edit,key,where", [
    (("dc_prev = dc * f", "dc_prev = dc"), "dc_prev_without_f", "dc_prev"),
    (("da.T @ x_t, da.T @ h_prev", "da.T @ x_t, da.T @ (o * np.tanh(c))"), "dW_hh_from_h", "dweight_hh"),
    (("df * f * (1 - f)", "df * (1 - f ** 2)"), "sigmoid_slope_as_tanh", "for f only"),
    (("dc = dc + dh * o * (1 - tanh_c ** 2)", "dc = dc"), "no_tanh_c_path", "dx_t"),
    (("db = da.sum(axis=0)", "db = da.mean(axis=0)"), "mean_over_batch", "dbias_ih"),
])
def test_mistakes_edited_into_a_real_file_are_named(tmp_path, edit, key, where):
    source = open(os.path.join(FIXTURES, "lstm_step_solution.py")).read()
    assert edit[0] in source
    path = tmp_path / "my_lstm.py"
    path.write_text(source.replace(*edit))
    report = exercises.grade(path, "lstm")
    assert [d.mistake.key for d in report.diagnoses if d.mistake] == [key], str(report)
    assert where in report.diagnoses[0].message


def test_an_unknown_error_is_called_so_with_the_first_wrong_entry():
    def step_backward(dh, cache):
        grads = list(rnn.step_backward(dh, cache))
        grads[3] = grads[3] + np.eye(*grads[3].shape)[::-1] * 0.1    # dW_hh off along a diagonal: no relation
        return tuple(grads)

    report = exercises.grade(student(step_forward=rnn.step_forward, step_backward=step_backward), "rnn")
    assert [r.name for r in report.rows if not r.passed] == ["dweight_hh"]
    assert report.diagnoses[0].mistake is None
    assert report.diagnoses[0].message.startswith("No known mistake matches what is wrong in dweight_hh, and no "
                                                  "simple relation to the right values holds. First wrong entry: "
                                                  "dweight_hh[")
    assert "yours" in report.diagnoses[0].message and "expected" in report.diagnoses[0].message


def test_a_wrong_forward_is_told_apart_from_a_wrong_backward():
    def step_forward(x_t, h_prev, w_ih, w_hh, b_ih, b_hh):
        return rnn.step_forward(x_t, h_prev, w_ih, w_hh, b_ih, 0 * b_hh)   # forgot b_hh

    report = exercises.grade(student(step_forward=step_forward, step_backward=rnn.step_backward), "rnn")
    assert not report.passed and not report.rows[0].passed
    assert "Your step_forward's h differ from the reference" in report.diagnoses[0].message
    assert "Fix the forward first" in report.diagnoses[0].message
    # and the finite differences see that this forward ignores b_hh while its backward does not
    assert "they DISAGREE in bias_hh" in report.self_check


# --------------------------------------------------------------------------- broken code: one message

STUB = "def step_backward(dh, c):\n    raise NotImplementedError\n"

@pytest.mark.parametrize("body,message", [
    ("def step_forward(*a):\n    return 1 / 0\n" + STUB, r"step_forward raised ZeroDivisionError: division by zero \(line 2"),
    ("def step_forward(*a):\n    return (a[1], None, 3)\n" + STUB,
     r"step_forward returned 3 values; it must return 2: \(h, cache\)"),
    ("import numpy as np\ndef step_forward(*a):\n    return np.zeros((2, 2)), None\n" + STUB,
     r"step_forward's h has shape \(2, 2\); it must have shape \(3, 4\)"),
    ("def step_forward(*a):\n    return a[1], None\ndef step_backward(dh, c):\n    return 'no'\n",
     r"step_backward returned a str; it must return 6: \(dx_t, dh_prev, dweight_ih"),
    ("def step_forward(*a):\n    return a[1], None\ndef step_backward(dh, c):\n    return [None] * 6\n",
     r"step_backward returned a NoneType for dx_t; it must be an array of shape \(3, 5\)"),
    ("def step_forward(:\n", r"could not be imported: SyntaxError: .* \(line 1\)"),
    ("x = 1\n", r"the file must define step_forward, step_backward; it lacks step_forward, step_backward"),
])
def test_broken_student_code_gets_one_clear_message(tmp_path, body, message):
    path = tmp_path / "mine.py"
    path.write_text(body)
    report = exercises.grade(path, "rnn")
    assert not report.passed and len(report.errors) == 1
    assert re.search(message, report.errors[0]), report.errors[0]
    assert "Traceback" not in str(report)


def test_grade_errors_and_exit_codes(tmp_path, capsys):
    with pytest.raises(ValueError, match="cell must be one of rnn, lstm, gru, or the name of a Cell the file"):
        exercises.grade(tmp_path / "x.py", "an elman")
    assert cli.main(["grade", str(tmp_path / "missing.py"), "--cell", "lstm"]) == 2
    assert "no such file" in capsys.readouterr().err
    path = tmp_path / "g.py"
    path.write_text("RESET_AFTER = 'yes'\n")
    report = exercises.grade(path, "gru")
    assert report.errors == ["RESET_AFTER must be True or False, got 'yes'"]
