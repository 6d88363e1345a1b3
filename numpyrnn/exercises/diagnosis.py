r"""Where a wrong gradient goes wrong, found by relations the grader tests without knowing the
mistake in advance.  Every function here states a finding only when the relation holds exactly
(to rounding) on every case it was given, and says nothing otherwise.

* :func:`scale`: the tensor is the right one times a constant (−1: sign; 1/B: a batch mean);
  or transposed.
* :func:`gate_blocks`: which gates' rows of a weight or bias are wrong, which are right, and
  whether two gates' rows are swapped.
* :func:`term_fit`: (yours − right) as a small integer combination of the derivation's terms
  (:mod:`numpyrnn.exercises.terms`): a term left out, counted twice, or with its sign flipped.
* :func:`case_features`: which kinds of case the failures follow (lengths, reversed, B = 1, ...).
* :func:`step_range`: which steps of dx are wrong, counted from the end.
"""

from __future__ import annotations

import numpy as np

#: rounding-level agreement, relative to the size of the arrays compared
EXACT = 1e-9


def _size(*arrays):
    return max([float(np.abs(a).max(initial=0.0)) for a in arrays] + [1e-300])


def close(a, b):
    """Equal to rounding (normwise, relative to the larger of the two)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and float(np.abs(a - b).max(initial=0.0)) <= EXACT * _size(a, b)


def _describe_factor(k, plural=False):
    have, are, its = ("have", "are", "their") if plural else ("has", "is", "its")
    if np.isclose(k, -1):
        return f"{have} {its} sign flipped (−1 × the right values)"
    if np.isclose(k, 0):
        return f"{are} zero where the right values are not (the whole term is missing)"
    if np.isclose(k, 2):
        return f"{are} twice the right values (counted twice)"
    return f"{are} {k:.4g} × the right values"


def scale(name, yours, right, batch_sizes, steps=()):
    """One sentence if ``yours`` is the right tensor times one constant in every case (or times
    1/B, B the case's batch size, or 1/T, T its steps: a mean where a sum belongs), or its
    transpose; else None."""
    factors = []
    for y, r in zip(yours, right):
        denom = float((r * r).sum())
        if denom == 0:
            if not close(y, r):
                return None
            continue
        k = float((y * r).sum()) / denom
        if not close(y, k * r):
            factors = None
            break
        factors.append(k)
    if factors:
        if all(np.isclose(k, factors[0], rtol=1e-9, atol=1e-12) for k in factors):
            return f"your {name} {_describe_factor(factors[0])}"
        if len(set(batch_sizes)) > 1 and all(np.isclose(k, 1 / b) for k, b in zip(factors, batch_sizes)):
            return (f"your {name} is the right values divided by the batch size B in every case: a mean over "
                    "the batch where a sum belongs (fact 1: a gradient sums over the batch)")
        if len(set(steps)) > 1 and len(factors) == len(steps) and all(np.isclose(k, 1 / T) for k, T in zip(factors, steps)):
            return (f"your {name} is the right values divided by the number of steps T in every case: a mean "
                    "over time where a sum belongs (§3: the weights are shared, their gradient sums over the steps)")
    if all(y.ndim == 2 and y.shape[0] == y.shape[1] and close(y, r.T) for y, r in zip(yours, right)) \
            and not all(close(y, r) for y, r in zip(yours, right)):
        return f"your {name} is the right one transposed"
    return None


def gate_blocks(name, yours, right, gates):
    """Sentences on which gates' rows of ``name`` are wrong (``gates``: the block names in row
    order, e.g. "ifgo"), when some are right; swapped blocks; each wrong block's own scale."""
    G = len(gates)
    if any(r.shape[0] % G for r in right):
        return []

    def block(a, k):
        H = a.shape[0] // G
        return a[k * H:(k + 1) * H]

    wrong = [k for k in range(G) if not all(close(block(y, k), block(r, k)) for y, r in zip(yours, right))]
    if not wrong:
        return []
    out = []
    if len(wrong) < G:
        ok = [gates[k] for k in range(G) if k not in wrong]
        out.append(f"only the rows of the {_gates([gates[k] for k in wrong])} in your {name} are wrong; the "
                   f"{', '.join(ok)} rows are right")
    for k in wrong:
        for j in range(G):
            if j != k and all(close(block(y, k), block(r, j)) for y, r in zip(yours, right)):
                out.append(f"your {name}'s {gates[k]} rows hold the {gates[j]} gate's gradient: the blocks of "
                           "rows are in the wrong order (PyTorch's order is " + ", ".join(gates) + ")")
                break
        else:
            if len(wrong) < G:
                factor = _block_factor([block(y, k) for y in yours], [block(r, k) for r in right])
                if factor is not None:
                    out.append(f"the {gates[k]} rows of your {name} {_describe_factor(factor, plural=True)}")
    return out


def _block_factor(yours, right):
    """k when yours = k · right in every case, one k for all; else None."""
    ks = []
    for y, r in zip(yours, right):
        denom = float((r * r).sum())
        if denom == 0:
            continue
        k = float((y * r).sum()) / denom
        if not close(y, k * r):
            return None
        ks.append(k)
    return ks[0] if ks and all(np.isclose(k, ks[0], rtol=1e-9, atol=1e-12) for k in ks) else None


def _gates(names):
    return f"{names[0]} gate" if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]} gates"


def term_fit(name, yours, right, terms, section):
    """A sentence naming the terms (yours − right) is made of, with integer coefficients, when
    the fit over all the stacked cases is exact and unique; else None.  ``terms``: per case, a
    dict label → array of the tensor's shape."""
    labels = list(terms[0])
    if not labels:
        return None
    d = np.concatenate([(y - r).ravel() for y, r in zip(yours, right)])
    A = np.stack([np.concatenate([t[label].ravel() for t in terms]) for label in labels], axis=1)
    used = np.abs(A).max(axis=0) > 0
    A, labels = A[:, used], [lab for lab, u in zip(labels, used) if u]
    if not labels or np.linalg.matrix_rank(A) < len(labels):
        return None                              # collinear over these cases: no unique fit
    c, *_ = np.linalg.lstsq(A, d, rcond=None)
    residual = float(np.abs(A @ c - d).max(initial=0.0))
    size = max(float(np.abs(d).max(initial=0.0)), _size(*right))
    if residual > EXACT * size or np.any(np.abs(c - np.round(c)) > 1e-6) or np.all(np.round(c) == 0):
        return None
    c = np.round(c).astype(int)
    if np.any(np.abs(c) > 3):
        return None
    parts = []
    for label, k in zip(labels, c):
        if k == -1:
            parts.append(f"lacks the term {label}")
        elif k == 1:
            parts.append(f"counts the term {label} twice")
        elif k == -2:
            parts.append(f"has the term {label} with its sign flipped")
        elif k != 0:
            parts.append(f"has {k:+d} × the term {label} too many")
    return f"your {name} " + "; ".join(parts) + f" (derivations {section})"


#: what a failure that follows a kind of case points at
FEATURE_HINTS = {
    "lengths": "look at the masks of §7: padded steps pass dh (and dc) back unchanged and get no gradient",
    "reversed": "look at §8: a reversed sequence is visited T−1, ..., 0 forward, so 0, ..., T−1 backward",
    "B = 1": "look at the sums over the batch (axis 0), and at anything that drops a dimension of size 1",
    "H = 1": "look at anything that treats an (B, 1) array as (B,), or drops a dimension of size 1",
    "I = H": "x_t and h_prev (or W_ih and W_hh) have the same shape only when I = H",
    "None": "dh_n (and dc_n) may be None, meaning zero: the template says so",
    "source lengths": "look at §18: a padded source position takes no weight (its score is −∞ before the "
                      "softmax, so α = 0 there) and so no gradient",
    "S = 1": "with one source position α = 1 and de = 0, so du, dquery and dweight are 0 and the keys' "
             "score path vanishes whatever their formulas: the mistake is in a term that multiplies de",
    "Hq = Hk": "the query and the keys (and W_a and its transpose) have the same shape only when Hq = Hk",
}


def case_features(name, wrong_in, cases):
    """A sentence saying which kind of case the failures of ``name`` follow: ``wrong_in`` one
    bool per case, ``cases`` their feature sets (the first case has none, each other one
    feature).  Only the cases that differ from the first in one feature are read."""
    if len(cases) < 2:
        return None
    base_wrong = wrong_in[0]
    single = [(next(iter(c)), w) for c, w in zip(cases[1:], wrong_in[1:]) if len(c) == 1]
    differing = [f for f, w in single if w != base_wrong]
    if not differing or len(differing) == len(single):
        return None
    if base_wrong:
        return (f"your {name} is wrong in the other cases but right when {_and(differing)}: "
                + "; ".join(FEATURE_HINTS[f] for f in differing))
    right = [f for f, w in single if not w]
    return (f"your {name} is right " + (f"with {_and(right)} and " if right else "") +
            f"in the plain case, wrong with {_and(differing)}: " + "; ".join(FEATURE_HINTS[f] for f in differing))


def _and(items):
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def step_range(wrong_steps, T):
    """A sentence on which steps of dx are wrong (a bool per step, in time order, the backward
    visiting T−1 first), counted from the end: "right at the last 2 steps, wrong before"."""
    wrong_steps = list(map(bool, wrong_steps))
    if not any(wrong_steps) or all(wrong_steps):
        return None
    last_right = 0
    for w in reversed(wrong_steps):
        if w:
            break
        last_right += 1
    if last_right and all(wrong_steps[:T - last_right]):
        return (f"dx is right at the last {last_right} step{'s' * (last_right > 1)} and wrong at every step "
                "before: what is carried back from a step to the one before it is wrong")
    if wrong_steps[-1] and not any(wrong_steps[:-1]):
        return "dx is wrong at the last step only: look at what the loop starts from (dh_n, dc_n, dy at T−1)"
    where = [t for t, w in enumerate(wrong_steps) if w]
    return f"dx is wrong at steps {where} (of 0..{T - 1}) and right at the others"
