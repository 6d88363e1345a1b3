"""Issue 31: the attention exercise (numpyrnn exercise attention; numpyrnn grade FILE --cell attention).

A right answer passes; each mistake of the catalogue, written into an answer, is named with its
section; a mistake the catalogue lacks is localised (the tensor, a scale, the kind of case); the
template as written is refused in one line; the command line prints it and grades a file."""

import subprocess
import sys

import pytest

from numpyrnn.exercises import grade, mistakes, template

ANSWER = '''
import numpy as np


def step_forward(query, keys, weight, lengths):
    u = query @ weight
    scores = np.einsum("sbh,bh->sb", keys, u)
    if lengths is not None:
        scores = np.where(np.arange(keys.shape[0])[:, None] < np.asarray(lengths)[None, :], scores, -np.inf)
    alpha = np.exp(scores - scores.max(axis=0, keepdims=True))
    alpha /= alpha.sum(axis=0, keepdims=True)
    return np.einsum("sb,sbh->bh", alpha, keys), alpha, (query, keys, weight, alpha, u)


def step_backward(dcontext, cache):
    query, keys, weight, alpha, u = cache
    dalpha = np.einsum("bh,sbh->sb", dcontext, keys)
    de = alpha * (dalpha - (alpha * dalpha).sum(axis=0, keepdims=True))
    dkeys = alpha[:, :, None] * dcontext[None] + de[:, :, None] * u[None]
    du = np.einsum("sb,sbh->bh", de, keys)
    return du @ weight.T, dkeys, query.T @ du
'''

#: each catalogued mistake as an edit of the answer: (the line as written, the line with the mistake)
PLANTED = {
    "softmax_not_centred": ("de = alpha * (dalpha - (alpha * dalpha).sum(axis=0, keepdims=True))",
                            "de = alpha * dalpha"),
    "softmax_without_alpha": ("de = alpha * (dalpha - (alpha * dalpha).sum(axis=0, keepdims=True))",
                              "de = dalpha - (alpha * dalpha).sum(axis=0, keepdims=True)"),
    "keys_without_context_path": ("dkeys = alpha[:, :, None] * dcontext[None] + de[:, :, None] * u[None]",
                                  "dkeys = de[:, :, None] * u[None]"),
    "keys_without_score_path": ("dkeys = alpha[:, :, None] * dcontext[None] + de[:, :, None] * u[None]",
                                "dkeys = alpha[:, :, None] * dcontext[None]"),
    "attention_mean_over_batch": ("return du @ weight.T, dkeys, query.T @ du",
                                  "return du @ weight.T, dkeys, query.T @ du / len(query)"),
}


def _write(tmp_path, text, name="my_attention.py"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_right_answer_passes(tmp_path):
    report = grade(_write(tmp_path, ANSWER), "attention")
    assert report.passed, str(report)
    assert "PASSED" in str(report) and "attention (Luong's general score)" in str(report)
    assert [r.name for r in report.rows] == ["context", "alpha", "dquery", "dkeys", "dweight"]


def test_the_catalogue_covers_every_planted_mistake():
    assert set(PLANTED) == set(mistakes.ATTENTION_MISTAKES)


@pytest.mark.parametrize("key", sorted(PLANTED))
def test_each_catalogued_mistake_is_named(tmp_path, key):
    right, wrong = PLANTED[key]
    assert right in ANSWER
    report = grade(_write(tmp_path, ANSWER.replace(right, wrong)), "attention")
    assert not report.passed
    named = [d.mistake.key for d in report.diagnoses if d.mistake is not None]
    assert named == [key], str(report)
    assert mistakes.MISTAKES[key].section_for("attention") in str(report)


def test_an_unseen_mistake_is_localised(tmp_path):
    """dquery doubled: no catalogued mistake, but the scale is found, and the tensor named."""
    text = ANSWER.replace("return du @ weight.T, dkeys, query.T @ du", "return 2 * du @ weight.T, dkeys, query.T @ du")
    report = grade(_write(tmp_path, text), "attention")
    assert not report.passed and not [d for d in report.diagnoses if d.mistake is not None]
    assert "your dquery is twice the right values" in str(report)


def test_a_mistake_only_with_padding_is_traced_to_the_lengths(tmp_path):
    """A forward that ignores the lengths: wrong only in the case with source lengths, and said so."""
    text = ANSWER.replace("    if lengths is not None:\n", "    if False:\n")
    report = grade(_write(tmp_path, text), "attention")
    assert not report.passed
    assert "Your step_forward's context, alpha differ from the reference" in str(report)


def test_the_template_as_written_is_refused_in_one_line(tmp_path):
    report = grade(_write(tmp_path, template("attention")), "attention")
    assert not report.passed and len(report.errors) == 1
    assert "NotImplementedError" in report.errors[0] and "step_forward" in report.errors[0]
    with pytest.raises(ValueError, match="attention has a step exercise only"):
        template("attention", "sequence")


def test_the_command_line_prints_and_grades(tmp_path):
    run = [sys.executable, "-m", "numpyrnn"]
    printed = subprocess.run(run + ["exercise", "attention"], capture_output=True, text=True, check=True).stdout
    assert printed == template("attention")
    graded = subprocess.run(run + ["grade", _write(tmp_path, ANSWER), "--cell", "attention"], capture_output=True,
                            text=True)
    assert graded.returncode == 0 and "PASSED" in graded.stdout
    wrong = ANSWER.replace(*PLANTED["softmax_not_centred"])
    graded = subprocess.run(run + ["grade", _write(tmp_path, wrong, "wrong.py"), "--cell", "attention"],
                            capture_output=True, text=True)
    assert graded.returncode == 1 and "the softmax's backward without its second term" in graded.stdout
