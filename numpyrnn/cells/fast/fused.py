"""Fused GPU kernels: each fast path's per-step body as one CuPy elementwise kernel.

On CuPy the generic cell code (the same code as on NumPy) launches one kernel per array
operation, a dozen or so per step.  The functions here do a step's gate math in one launch,
forward and backward, with exactly the NumPy body's arithmetic (the same halved-row sigmoid, the
same order of operations), so the two agree to rounding; the backward kernels also write the
step's gate gradients straight into the row-layout buffer the products read.

Each function has the signature of the NumPy body it replaces (``_forward_body`` and
``_backward_body`` in the fast module of its cell), so a fast path picks one of the two once,
before its loop (:func:`choose`), and calls it the same way.  A scratch argument that only the
NumPy body needs is accepted and unused here.

They are opt-in, ``NUMPYRNN_FUSED=1``, until a run on a GPU has checked them against the NumPy
bodies (tests/test_gpu.py does, where a GPU is present).  Nothing here runs on NumPy; on a
machine without a GPU, tests/test_fused_on_cpu.py runs these bodies through an emulation of
ElementwiseKernel on NumPy arrays, which checks their arithmetic and how the cells call them —
everything but CUDA's compilation and its rounding.  Literals are cast to the kernel's type,
``(T)0.5``: a bare ``0.5`` is a double in CUDA C and would make a float32 kernel compute in
double.
"""

from __future__ import annotations

import sys

from ... import backend
from ...backend import array_module

_kernels = {}


def _kernel(name, in_params, out_params, operation):
    if name not in _kernels:
        _kernels[name] = backend.elementwise_kernel(in_params, out_params, operation, f"numpyrnn_{name}")
    return _kernels[name]


def choose(xp, body, name):
    """The per-step body a fast path runs on ``xp``'s arrays: the fused function ``name`` (same
    signature as ``body``) on a GPU with fusion on, else the NumPy ``body`` itself."""
    return getattr(sys.modules[__name__], name) if backend.fused_enabled(xp) else body


def _zero_if_none(dy):
    return 0 if dy is None else dy


# --------------------------------------------------------------------------- RNN

def rnn_forward(a, recurrent, h, nonlinearity):
    """h = tanh(a + recurrent) or relu(a + recurrent)."""
    if nonlinearity == "relu":
        _kernel("rnn_forward_relu", "T a, T rec", "T h", "h = max(a + rec, (T)0);")(a, recurrent, h)
    else:
        _kernel("rnn_forward_tanh", "T a, T rec", "T h", "h = tanh(a + rec);")(a, recurrent, h)


def rnn_backward(dy, dh, da):
    """dh += dy; da (holding the slopes) ← da ⊙ dh."""
    _kernel("rnn_backward", "T dy", "T dh, T da", """
        dh = dh + dy;
        da = da * dh;
    """)(_zero_if_none(dy), dh, da)


# --------------------------------------------------------------------------- LSTM

def lstm_forward(recurrent, c_prev, gates, c, tanh_c, h):
    """gates (4, B, H) = [o, i, f, g] pre-activations without the recurrent term (sigmoid rows
    halved) → activations, in place; writes c, tanh(c), h.  recurrent: (4, B, H)."""
    _kernel("lstm_forward", "T ro, T ri, T rf, T rg, T c_prev", "T o, T i, T f, T g, T c, T tc, T h", """
        o = tanh(o + ro) * (T)0.5 + (T)0.5;
        i = tanh(i + ri) * (T)0.5 + (T)0.5;
        f = tanh(f + rf) * (T)0.5 + (T)0.5;
        g = tanh(g + rg);
        c = f * c_prev + i * g;
        tc = tanh(c);
        h = o * tc;
    """)(recurrent[0], recurrent[1], recurrent[2], recurrent[3], c_prev, gates[0], gates[1], gates[2], gates[3],
         c, tanh_c, h)


def lstm_backward(dy, to_c, forget, factors, dh, dc, rows, tmp):
    """One backward step: dh += dy; dc += dh ⊙ to_c; the gate gradients (factors ⊙ dh or dc)
    into ``rows`` (4 views (B, H) of the step's row of da); dc ← dc ⊙ forget.  (tmp: unused.)"""
    _kernel("lstm_backward", "T dy, T toc, T fgt, T fo, T fi, T ff, T fg",
            "T dh, T dc, T ro, T ri, T rf, T rg", """
        dh = dh + dy;
        T dct = dc + dh * toc;
        ro = fo * dh;
        ri = fi * dct;
        rf = ff * dct;
        rg = fg * dct;
        dc = dct * fgt;
    """)(_zero_if_none(dy), to_c, forget, factors[0], factors[1], factors[2], factors[3], dh, dc,
         rows[0], rows[1], rows[2], rows[3])


# --------------------------------------------------------------------------- GRU

def gru_forward_after(w_hh_t, bias_hn, recurrent, tmp, m, h_prev, gates, h):
    """Reset after the product: the recurrent product, then gates (3, B, H) = [r, z, n] input
    terms (r, z halved) → activations in place; m = h W_hn^T + b_hn; h.  (tmp: unused.)"""
    array_module(h_prev).matmul(h_prev, w_hh_t, out=recurrent)
    _kernel("gru_forward_after", "T rr, T rz, T rn, T bhn, T h_prev", "T r, T z, T n, T m, T h", """
        r = tanh(r + rr) * (T)0.5 + (T)0.5;
        z = tanh(z + rz) * (T)0.5 + (T)0.5;
        m = rn + bhn;
        n = tanh(n + r * m);
        h = n + z * (h_prev - n);
    """)(recurrent[0], recurrent[1], recurrent[2], bias_hn, h_prev,
         gates[0], gates[1], gates[2], m, h)


def gru_forward_before(w_hh_t, w_hn_t, recurrent, tmp, rh, h_prev, gates, h):
    """Reset before the product: r, z and rh = r ⊙ h_prev in one kernel, the product
    (r ⊙ h_prev) W_hn^T into tmp, then n and h in a second kernel."""
    xp = array_module(h_prev)
    xp.matmul(h_prev, w_hh_t, out=recurrent)
    _kernel("gru_forward_before_gates", "T rr, T rz, T h_prev", "T r, T z, T rh", """
        r = tanh(r + rr) * (T)0.5 + (T)0.5;
        z = tanh(z + rz) * (T)0.5 + (T)0.5;
        rh = r * h_prev;
    """)(recurrent[0], recurrent[1], h_prev, gates[0], gates[1], rh)
    xp.matmul(rh, w_hn_t, out=tmp)
    _kernel("gru_forward_before_state", "T rn, T z, T h_prev", "T n, T h", """
        n = tanh(n + rn);
        h = n + z * (h_prev - n);
    """)(tmp, gates[1], h_prev, gates[2], h)


def gru_backward_after(weight_hh, tmp, rows, dah_t, dy, factors, dh, dh_prev):
    """One backward step, reset after: dh += dy; [da_n, da_r, da_z, dm] = factors[:4] ⊙ dh into
    the step's row of d (``rows``, 4 views (B, H)); dh_prev = dh ⊙ z, then dh_prev += dah_t W_hh."""
    _kernel("gru_backward_after", "T dy, T fn, T fr, T fz, T fm, T z",
            "T dh, T dhp, T dn, T dr, T dz, T dm", """
        dh = dh + dy;
        dn = fn * dh;
        dr = fr * dh;
        dz = fz * dh;
        dm = fm * dh;
        dhp = z * dh;
    """)(_zero_if_none(dy), factors[0], factors[1], factors[2], factors[3], factors[4], dh, dh_prev,
         rows[0], rows[1], rows[2], rows[3])
    array_module(dh).matmul(dah_t, weight_hh, out=tmp)
    dh_prev += tmp


def gru_backward_before(w_hn, w_hh_rz, tmp, d_rh, rows, dax_rz_t, dy, r, z, factors, dh, dh_prev):
    """One backward step, reset before: dh += dy, da_z and da_n into the step's rows and
    dh_prev = dh ⊙ z in one kernel; d(r ⊙ h) = da_n W_hn; then da_r into its row and
    dh_prev += d(r ⊙ h) ⊙ r in a second kernel; dh_prev += [da_r | da_z] W_h{r,z}."""
    xp = array_module(dh)
    _kernel("gru_backward_before_first", "T dy, T z, T fz, T fn", "T dh, T dhp, T xz, T xn", """
        dh = dh + dy;
        xz = fz * dh;
        xn = fn * dh;
        dhp = dh * z;
    """)(_zero_if_none(dy), z, factors[1], factors[2], dh, dh_prev, rows[1], rows[2])
    xp.matmul(rows[2], w_hn, out=d_rh)
    _kernel("gru_backward_before_second", "T drh, T r, T fr", "T dhp, T xr", """
        xr = fr * drh;
        dhp = dhp + drh * r;
    """)(d_rh, r, factors[0], dh_prev, rows[0])
    xp.matmul(dax_rz_t, w_hh_rz, out=tmp)
    dh_prev += tmp
