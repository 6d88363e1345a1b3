r"""Each gradient of a step as a sum of named terms, the lines of its derivation.

For a tensor the student got wrong, (student − reference) is tested against small integer
combinations of these terms: −1 × a term is a term left out, +1 a term counted twice, −2 a term
with its sign flipped.  The terms are the reference's own quantities (from the reference step's
cache and the upstream gradients), split where the derivation adds paths (fact 3): the LSTM's
dc = dc_next + dh ⊙ o ⊙ (1 − tanh²(c)) splits every gate gradient in two, by the path it came
along; a recurrent gradient is one term per gate block it went through.  The terms of a tensor
sum to the reference's gradient exactly (a test holds them to it).

These live beside the grader; the cells know only the right equations.
"""

from __future__ import annotations

import numpy as np


def _blocks(a, G):
    H = a.shape[-1] // G
    return [a[..., k * H:(k + 1) * H] for k in range(G)]


def _embed(block_rows, k, G):
    """A (H, K) or (H,) array placed as block k of a (G·H, K) or (G·H,) array of zeros."""
    H = block_rows.shape[0]
    out = np.zeros((G * H,) + block_rows.shape[1:])
    out[k * H:(k + 1) * H] = block_rows
    return out


def _linear_terms(pieces, w_ih, w_hh, x_t, h_prev, G, gate_of, hh_pieces=None):
    """The terms of dx_t, dh_prev (the linear part), dW_ih, dW_hh and the biases, one per piece:
    ``pieces`` label → (gate index, da block (B, H)); ``hh_pieces``, where the recurrent side
    saw other blocks (the reset-after GRU's dm), label → (gate index, block)."""
    hh_pieces = pieces if hh_pieces is None else hh_pieces
    out = {"dx": {}, "dh": {}, "dW_ih": {}, "dW_hh": {}, "db_ih": {}, "db_hh": {}}
    for label, (k, da) in pieces.items():
        H = da.shape[1]
        out["dx"][f"{label} W_i{gate_of[k]}"] = da @ w_ih[k * H:(k + 1) * H]
        out["dW_ih"][f"{label}^T x_t"] = _embed(da.T @ x_t, k, G)
        out["db_ih"][f"Σ_batch {label}"] = _embed(da.sum(axis=0), k, G)
    for label, (k, da) in hh_pieces.items():
        H = da.shape[1]
        out["dh"][f"{label} W_h{gate_of[k]}"] = da @ w_hh[k * H:(k + 1) * H]
        out["dW_hh"][f"{label}^T h_prev"] = _embed(da.T @ h_prev, k, G)
        out["db_hh"][f"Σ_batch {label}"] = _embed(da.sum(axis=0), k, G)
    return out


def lstm(inputs, upstream, cache):
    """The LSTM step's gradients as terms (derivations §5).  Paths: "via dc" is the dc from
    step t+1, "via dh" the path dh ⊙ o ⊙ (1 − tanh²(c)) into c."""
    x_t, h_prev, c_prev = inputs["x_t"], inputs["h_prev"], inputs["c_prev"]
    w_ih, w_hh = inputs["weight_ih"], inputs["weight_hh"]
    dh, dc = upstream
    i, f, g, o = _blocks(cache.gates, 4)
    tanh_c = cache.tanh_c
    via_h = dh * o * (1 - tanh_c ** 2)                     # dh's path into c
    pieces = {"da_o": (3, dh * tanh_c * o * (1 - o))}
    for path, dc_path in (("via dc", dc), ("via dh", via_h)):
        pieces[f"da_i ({path})"] = (0, dc_path * g * i * (1 - i))
        pieces[f"da_f ({path})"] = (1, dc_path * c_prev * f * (1 - f))
        pieces[f"da_g ({path})"] = (2, dc_path * i * (1 - g ** 2))
    t = _linear_terms(pieces, w_ih, w_hh, x_t, h_prev, 4, "ifgo")
    return {"dx_t": t["dx"], "dh_prev": t["dh"],
            "dc_prev": {"dc ⊙ f": dc * f, "dh ⊙ o ⊙ (1 − tanh²(c)) ⊙ f": via_h * f},
            "dweight_ih": t["dW_ih"], "dweight_hh": t["dW_hh"], "dbias_ih": t["db_ih"], "dbias_hh": t["db_hh"]}


def gru(inputs, upstream, cache, bias_hh):
    """The GRU step's gradients as terms (derivations §6a, §6b)."""
    x_t, h_prev = inputs["x_t"], inputs["h_prev"]
    w_ih, w_hh = inputs["weight_ih"], inputs["weight_hh"]
    (dh,) = upstream
    r, z, n = _blocks(cache.gates, 3)
    H = h_prev.shape[1]
    da_n = dh * (1 - z) * (1 - n ** 2)
    dz = dh * (h_prev - n)
    da_z = dz * z * (1 - z)
    pieces = {"da_z": (1, da_z), "da_n": (2, da_n)}
    if cache.reset_after:
        m = h_prev @ w_hh[2 * H:].T + bias_hh[2 * H:]
        da_r = da_n * m * r * (1 - r)
        pieces["da_r"] = (0, da_r)
        hh = {"da_r": (0, da_r), "da_z": (1, da_z), "da_n ⊙ r": (2, da_n * r)}
        t = _linear_terms(pieces, w_ih, w_hh, x_t, h_prev, 3, "rzn", hh)
        dh_terms = {"z ⊙ dh": dh * z, **t["dh"]}
        dw_hh = t["dW_hh"]
    else:
        d_rh = da_n @ w_hh[2 * H:]
        da_r = d_rh * h_prev * r * (1 - r)
        pieces["da_r"] = (0, da_r)
        hh = {"da_r": (0, da_r), "da_z": (1, da_z)}
        t = _linear_terms(pieces, w_ih, w_hh, x_t, h_prev, 3, "rzn", hh)
        dh_terms = {"z ⊙ dh": dh * z, **t["dh"], "(da_n W_hn) ⊙ r": d_rh * r}
        dw_hh = {**t["dW_hh"], "da_n^T (r ⊙ h_prev)": _embed(da_n.T @ (r * h_prev), 2, 3)}
        t["db_hh"] = {**t["db_hh"], "Σ_batch da_n": _embed(da_n.sum(axis=0), 2, 3)}
    return {"dx_t": t["dx"], "dh_prev": dh_terms, "dweight_ih": t["dW_ih"], "dweight_hh": dw_hh,
            "dbias_ih": t["db_ih"], "dbias_hh": t["db_hh"]}


def rnn(inputs, upstream, cache):
    """The RNN step's gradients (one term each: every tensor is one line of §4)."""
    x_t, h_prev = inputs["x_t"], inputs["h_prev"]
    (dh,) = upstream
    da = dh * (1 - cache.h ** 2)
    return {"dx_t": {"da W_ih": da @ inputs["weight_ih"]}, "dh_prev": {"da W_hh": da @ inputs["weight_hh"]},
            "dweight_ih": {"da^T x_t": da.T @ x_t}, "dweight_hh": {"da^T h_prev": da.T @ h_prev},
            "dbias_ih": {"Σ_batch da": da.sum(axis=0)}, "dbias_hh": {"Σ_batch da": da.sum(axis=0)}}


def step_terms(cell, inputs, upstream, cache):
    """{tensor name: {term label: array}} of one step of the textbook ``cell``."""
    if cell == "lstm":
        return lstm(inputs, upstream, cache)
    if cell == "gru":
        return gru(inputs, upstream, cache, inputs["bias_hh"])
    return rnn(inputs, upstream, cache)

