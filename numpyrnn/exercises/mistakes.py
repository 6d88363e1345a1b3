"""The mistakes students make in hand-written BPTT, planted one at a time in the reference.

Each entry of :data:`MISTAKES` names a mistake, says where the derivation of the right line is
(docs/derivations.md), and which cells and which part of the exercise it belongs to.  The
functions below compute a backward pass with one mistake planted: the step backward of each
cell (from the reference step's cache and the step's inputs), and the backward loop through time
(over the reference sequence's cache, with the reference's correct step backward).  With
``mistake=None`` they compute the reference's result exactly (a test holds them to it), so a
student's gradient that equals a planted variant's has made that mistake.

These live here, beside the grader, and nowhere in ``numpyrnn.cells``: the cells know only the
right equations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cells import gru, lstm, rnn
from ..cells.common import add_step, time_steps


@dataclass(frozen=True)
class Mistake:
    key: str
    title: str               # what was done wrong, in a student's words
    section: object          # where in docs/derivations.md the right line is derived (per cell: a dict)
    cells: tuple             # the cells it can happen in
    part: str                # "step" or "sequence"
    forms: tuple = (True, False)   # GRU only: the reset forms it applies to (reset_after)
    places: dict = None      # cell → the places it can be made in, one at a time or together

    def section_for(self, cell):
        return self.section[cell] if isinstance(self.section, dict) else self.section


MISTAKES = {m.key: m for m in (
    Mistake("sigmoid_slope_as_tanh", "σ' written as 1 − σ² (the slope of tanh) for the sigmoid gates, "
            "instead of σ(1 − σ)",
            {"lstm": "§1 fact 2 (σ' = σ(1 − σ)) and §5 step 3", "gru": "§1 fact 2 (σ' = σ(1 − σ)) and §6a step 4"},
            ("lstm", "gru"), "step",
            places={"lstm": ("i", "f", "o"), "gru": ("r", "z")}),
    Mistake("tanh_slope_as_sigmoid", "tanh' written as t(1 − t), the sigmoid's formula, instead of 1 − t² "
            "(t the tanh's output)",
            {"rnn": "§1 fact 2 (tanh' = 1 − tanh²) and §4", "lstm": "§1 fact 2 (tanh' = 1 − tanh²) and §5 steps 1 and 3",
             "gru": "§1 fact 2 (tanh' = 1 − tanh²) and §6a step 2"}, ("rnn", "lstm", "gru"), "step",
            places={"lstm": ("g", "tanh(c)")}),
    Mistake("dW_hh_from_h", "dW_hh built from h_t, the step's new state, instead of h_{t−1}, the state it read",
            "§1 fact 1 (dW = da^T times what W multiplied); §3", ("rnn", "lstm", "gru"), "step"),
    Mistake("no_tanh_c_path", "the path from dh into dc through h = o ⊙ tanh(c) is missing "
            "(dc ← dc + dh ⊙ o ⊙ (1 − tanh²(c)) not done)", "§5 step 1", ("lstm",), "step"),
    Mistake("dc_prev_without_f", "dc_prev not multiplied by the forget gate f (dc_prev = dc)",
            "§5 step 2 (dc_prev = dc ⊙ f)", ("lstm",), "step"),
    Mistake("z_swapped", "the GRU's z and 1 − z swapped: the backward of h = z ⊙ n + (1 − z) ⊙ h_prev",
            "§6a step 1 (h = (1 − z) ⊙ n + z ⊙ h_prev)", ("gru",), "step"),
    Mistake("reset_wrong_side", "the reset gate on the wrong side of W_hn: the backward of the other GRU form",
            "§6a step 3 (reset after) and §6b (reset before)", ("gru",), "step"),
    Mistake("db_hn_is_db_in", "the reset-after GRU's db_hh for the n gate taken equal to db_ih "
            "(b_hn sits inside r ⊙ (h W_hn^T + b_hn): its gradient is Σ da_n ⊙ r)",
            "§6a step 5", ("gru",), "step", forms=(True,)),
    Mistake("mean_over_batch", "gradients averaged over the batch instead of summed",
            "§1 fact 1 (db = Σ_batch da, dW = da^T x sums over the batch)", ("rnn", "lstm", "gru"), "step",
            places={cell: ("biases", "weights") for cell in ("rnn", "lstm", "gru")}),
    Mistake("no_dh_from_next", "the dh from step t+1 not added: each step's backward got dy_t alone",
            "§3 (dh_t + dy_t)", ("rnn", "lstm", "gru"), "sequence"),
    Mistake("no_dc_from_next", "the dc from step t+1 not added: each step's backward got dc = 0",
            "§3 and §5 (the LSTM's loop carries dc beside dh)", ("lstm",), "sequence"),
    Mistake("not_summed_over_time", "weight gradients not summed over time: only one step's kept",
            "§3 (dW = Σ_t dW_t: every step shares the weights)", ("rnn", "lstm", "gru"), "sequence"),
    Mistake("mask_not_applied", "the lengths mask not applied: padded steps went into the cell and "
            "stopped dh instead of passing it back", "§7", ("rnn", "lstm", "gru"), "sequence"),
    # the attention exercise (numpyrnn exercise attention): Luong's general score, §18
    Mistake("softmax_not_centred", "the softmax's backward without its second term: de_s = α_s dα_s, "
            "instead of α_s (dα_s − Σ_r α_r dα_r)", "§18 step 2", ("attention",), "step"),
    Mistake("softmax_without_alpha", "the softmax's backward without the factor α_s: de_s = dα_s − Σ_r α_r dα_r",
            "§18 step 2", ("attention",), "step"),
    Mistake("keys_without_context_path", "dkeys without the context's path α_s dc: the keys' gradient only "
            "through the scores", "§18 step 1 (c = Σ_s α_s k_s) and fact 3", ("attention",), "step"),
    Mistake("keys_without_score_path", "dkeys without the scores' path de_s u: the keys' gradient only "
            "through the context", "§18 step 3 (e_s = u · k_s) and fact 3", ("attention",), "step"),
    Mistake("attention_mean_over_batch", "dW_a averaged over the batch instead of summed",
            "§1 fact 1 and §18 step 3 (dW_a = Σ_b q_b^T du_b)", ("attention",), "step"),
)}

#: the attention exercise's mistakes, each a key of MISTAKES (planted by attention_step_backward)
ATTENTION_MISTAKES = ("softmax_not_centred", "softmax_without_alpha", "keys_without_context_path",
                      "keys_without_score_path", "attention_mean_over_batch")


def applicable(cell, part, reset_after=True):
    """The mistakes a student's ``cell`` file for ``part`` can show."""
    return [m for m in MISTAKES.values()
            if cell in m.cells and m.part == part and (cell != "gru" or reset_after in m.forms)]


# --------------------------------------------------------------------------- slopes, right and wrong

def _planted(mistake, key, place, where):
    """Whether ``mistake`` is ``key``, made at ``place`` (``where``: the places it was made in;
    None: everywhere)."""
    return mistake == key and (where is None or place in where)


def _sigmoid_slope(s, mistake, place=None, where=None):
    """σ' from the gate's output s, s (1 − s); planted: 1 − s², the slope of tanh."""
    return 1 - s * s if _planted(mistake, "sigmoid_slope_as_tanh", place, where) else s * (1 - s)


def _tanh_slope(t, mistake, place=None, where=None):
    """The slope of tanh from its output t, 1 − t²; planted: t (1 − t), the sigmoid's formula."""
    return t * (1 - t) if _planted(mistake, "tanh_slope_as_sigmoid", place, where) else 1 - t * t


def _batch_sum(a, mistake, where=None):
    """Σ_batch a, a bias's gradient; planted: the mean."""
    return a.mean(axis=0) if _planted(mistake, "mean_over_batch", "biases", where) else a.sum(axis=0)


def _weight_gradient(da, inputs, mistake, where=None):
    """da^T inputs (a sum over the batch); planted: averaged over the batch."""
    g = da.T @ inputs
    return g / len(da) if _planted(mistake, "mean_over_batch", "weights", where) else g


# --------------------------------------------------------------------------- one step, each cell

def rnn_step_backward(dh, cache, mistake=None, where=None):
    """:func:`numpyrnn.cells.rnn.step_backward` (tanh) with ``mistake`` planted."""
    x_t, h_prev, w_ih, w_hh, _, _, h, _, *_ = cache      # (no recurrent dropout here)
    da = dh * _tanh_slope(h, mistake)
    h_read = h if mistake == "dW_hh_from_h" else h_prev
    db = _batch_sum(da, mistake, where)
    return (da @ w_ih, da @ w_hh, _weight_gradient(da, x_t, mistake, where),
            _weight_gradient(da, h_read, mistake, where), db, db.copy())


def lstm_step_backward(dh, dc, cache, mistake=None, where=None):
    """:func:`numpyrnn.cells.lstm.step_backward` with ``mistake`` planted (``where``: in which of
    its places, see :data:`MISTAKES`; None: all)."""
    x_t, h_prev, c_prev, w_ih, w_hh, _, _, gates, c, tanh_c, *_ = cache
    H = h_prev.shape[1]
    i, f, g, o = (gates[:, k * H:(k + 1) * H] for k in range(4))
    do = dh * tanh_c
    if mistake != "no_tanh_c_path":
        dc = dc + dh * o * _tanh_slope(tanh_c, mistake, "tanh(c)", where)
    da = np.concatenate([dc * g * _sigmoid_slope(i, mistake, "i", where),
                         dc * c_prev * _sigmoid_slope(f, mistake, "f", where),
                         dc * i * _tanh_slope(g, mistake, "g", where),
                         do * _sigmoid_slope(o, mistake, "o", where)], axis=1)
    dc_prev = dc if mistake == "dc_prev_without_f" else dc * f
    h_new = o * tanh_c
    h_read = h_new if mistake == "dW_hh_from_h" else h_prev
    db = _batch_sum(da, mistake, where)
    return (da @ w_ih, da @ w_hh, dc_prev, _weight_gradient(da, x_t, mistake, where),
            _weight_gradient(da, h_read, mistake, where), db, db.copy())


def gru_step_backward(dh, cache, bias_hh, mistake=None, where=None):
    """:func:`numpyrnn.cells.gru.step_backward` with ``mistake`` planted (``where`` as for
    :func:`lstm_step_backward`; ``bias_hh``: the step's, which the other form's backward needs
    for m)."""
    x_t, h_prev, w_ih, w_hh, _, _, gates, m, rh, h, reset_after, *_ = cache
    H = h_prev.shape[1]
    r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
    as_after = reset_after != (mistake == "reset_wrong_side")     # the form the backward is of
    if mistake == "z_swapped":
        dn, dz, dh_prev = dh * z, dh * (n - h_prev), dh * (1 - z)
    else:
        dn, dz, dh_prev = dh * (1 - z), dh * (h_prev - n), dh * z
    da_n = dn * _tanh_slope(n, mistake)
    w_hn = w_hh[2 * H:]
    if as_after:
        m = h_prev @ w_hn.T + bias_hh[2 * H:] if m is None else m
        dm, dr = da_n * r, da_n * m
    else:
        d_rh = da_n @ w_hn
        dr = d_rh * h_prev
        dh_prev = dh_prev + d_rh * r
    da_r, da_z = dr * _sigmoid_slope(r, mistake, "r", where), dz * _sigmoid_slope(z, mistake, "z", where)
    dax = np.concatenate([da_r, da_z, da_n], axis=1)
    h_read = h if mistake == "dW_hh_from_h" else h_prev
    if as_after:
        dah = np.concatenate([da_r, da_z, dm], axis=1)
        dh_prev = dh_prev + dah @ w_hh
        dw_hh = _weight_gradient(dah, h_read, mistake, where)
        db_hh = _batch_sum(dax if mistake == "db_hn_is_db_in" else dah, mistake, where)
    else:
        dh_prev = dh_prev + dax[:, :2 * H] @ w_hh[:2 * H]
        dw_hh = np.concatenate([_weight_gradient(dax[:, :2 * H], h_read, mistake, where),
                                _weight_gradient(da_n, r * h_read, mistake, where)])
        db_hh = _batch_sum(dax, mistake, where)
    return (dax @ w_ih, dh_prev, _weight_gradient(dax, x_t, mistake, where), dw_hh,
            _batch_sum(dax, mistake, where), db_hh)


# --------------------------------------------------------------------------- the loop through time

def sequence_backward(cell, dy, dstates_n, cache, mistake=None):
    """The reference's backward through time for ``cell`` (its ``backward_reference``) with a
    ``mistake`` of the loop planted; the steps' own backward is the reference's, right.
    ``dstates_n``: [dh_n] or [dh_n, dc_n]."""
    module = {"rnn": rnn, "lstm": lstm, "gru": gru}[cell]
    steps, mask, reverse = cache.steps, cache.mask, cache.reverse   # (the grader's cases have no zoneout)
    T = len(steps)
    mask = np.ones_like(mask) if mistake == "mask_not_applied" else mask
    d = [np.zeros_like(steps[0].h_prev) if s is None else s for s in dstates_n]
    dx = np.empty((T,) + steps[0].x_t.shape)
    dparams = [None] * 4
    for t in reversed(time_steps(T, reverse)):
        arriving = [d[0] + dy[t]] + d[1:]                       # dh_t + dy_t, and dc_t
        if mistake == "no_dh_from_next":
            arriving[0] = dy[t] + 0 * d[0]
        if mistake == "no_dc_from_next":
            arriving[1] = 0 * d[1]
        dx[t], *rest = module.step_backward(*(mask[t] * a for a in arriving), steps[t], check=False)
        back, dparams_t = rest[:len(d)], rest[len(d):]
        d = [b + (1 - mask[t]) * a for b, a in zip(back, d)]
        if mistake == "not_summed_over_time":
            dparams = dparams_t                                 # dW = dW_t, overwritten
        else:
            dparams = [add_step(total, g) for total, g in zip(dparams, dparams_t)]
    return (dx, *d, *dparams)


def attention_step_backward(dcontext, cache, mistake=None):
    """:func:`numpyrnn.layers.attention.step_backward` of the general form (dweights None), written
    again with ``mistake`` (one of :data:`ATTENTION_MISTAKES`) planted.  Returns (dquery, dkeys,
    dweight)."""
    query, keys, alpha, (weight,), u = cache.query, cache.keys, cache.weights, cache.params, cache.u
    dalpha = np.einsum("bh,sbh->sb", dcontext, keys)                       # dα_s = dc · k_s
    centred = dalpha if mistake == "softmax_not_centred" else dalpha - (alpha * dalpha).sum(axis=0, keepdims=True)
    de = centred if mistake == "softmax_without_alpha" else alpha * centred
    dkeys = np.zeros_like(keys) if mistake == "keys_without_context_path" else alpha[:, :, None] * dcontext[None]
    if mistake != "keys_without_score_path":
        dkeys = dkeys + de[:, :, None] * u[None]
    du = np.einsum("sb,sbh->bh", de, keys)
    dweight = query.T @ du
    if mistake == "attention_mean_over_batch":
        dweight = dweight / query.shape[0]
    return du @ weight.T, dkeys, dweight
