"""Fused GPU kernels: each cell's per-step gate math as one CuPy elementwise kernel.

On CuPy the generic cell code (the same code as on NumPy) launches one kernel per array
operation, a dozen or so per step.  These kernels do a step's whole gate math in one launch,
forward and backward, with exactly the generic path's arithmetic (the same halved-row sigmoid,
the same order of operations), so the two agree to rounding; the backward kernels also write the
step's gate gradients straight into the row-layout buffer the products read.

They are opt-in, ``NUMPYRNN_FUSED=1``, until a run on a GPU has checked them against the generic
path (tests/test_gpu.py does, where a GPU is present).  Nothing here runs on NumPy; on a machine
without a GPU, tests/test_fused_on_cpu.py runs these bodies through an emulation of
ElementwiseKernel on NumPy arrays, which checks their arithmetic and how the cells call them —
everything but CUDA's compilation and its rounding.
"""

from __future__ import annotations

from .. import backend

_kernels = {}


def _kernel(name, in_params, out_params, operation):
    if name not in _kernels:
        _kernels[name] = backend.elementwise_kernel(in_params, out_params, operation, f"numpyrnn_{name}")
    return _kernels[name]


def kernels_for(xp):
    """This module when the fused kernels are to be used on ``xp``'s arrays, else None."""
    import sys

    return sys.modules[__name__] if backend.fused_enabled(xp) else None


# --------------------------------------------------------------------------- LSTM

def lstm_forward(recurrent, c_prev, gates, c, tanh_c, h):
    """gates (4, B, H) = [o, i, f, g] pre-activations without the recurrent term (sigmoid rows
    halved) → activations, in place; writes c, tanh(c), h.  recurrent: (4, B, H)."""
    _kernel("lstm_forward", "T ro, T ri, T rf, T rg, T c_prev", "T o, T i, T f, T g, T c, T tc, T h", """
        o = tanh(o + ro) * 0.5 + 0.5;
        i = tanh(i + ri) * 0.5 + 0.5;
        f = tanh(f + rf) * 0.5 + 0.5;
        g = tanh(g + rg);
        c = f * c_prev + i * g;
        tc = tanh(c);
        h = o * tc;
    """)(recurrent[0], recurrent[1], recurrent[2], recurrent[3], c_prev, gates[0], gates[1], gates[2], gates[3],
         c, tanh_c, h)


def lstm_backward(dy, m, to_c, forget, factors, dh, dc, rows):
    """One backward step: dh += dy ⊙ m; dc += dh ⊙ to_c; the gate gradients (factors ⊙ dh or dc)
    into ``rows`` (4 views (B, H) of the step's row of da); dc ← dc ⊙ forget."""
    _kernel("lstm_backward", "T dy, T m, T toc, T fgt, T fo, T fi, T ff, T fg",
            "T dh, T dc, T ro, T ri, T rf, T rg", """
        dh = dh + dy * m;
        T dct = dc + dh * toc;
        ro = fo * dh;
        ri = fi * dct;
        rf = ff * dct;
        rg = fg * dct;
        dc = dct * fgt;
    """)(dy, m, to_c, forget, factors[0], factors[1], factors[2], factors[3], dh, dc,
         rows[0], rows[1], rows[2], rows[3])


# --------------------------------------------------------------------------- GRU

def gru_forward_after(recurrent, bias_hn, h_prev, gates, m, h):
    """Reset after the product: gates (3, B, H) = [r, z, n] input terms (r, z halved) →
    activations in place; m = h W_hn^T + b_hn; h.  recurrent: (3, B, H); bias_hn: (H,) or 0."""
    _kernel("gru_forward_after", "T rr, T rz, T rn, T bhn, T h_prev", "T r, T z, T n, T m, T h", """
        r = tanh(r + rr) * 0.5 + 0.5;
        z = tanh(z + rz) * 0.5 + 0.5;
        m = rn + bhn;
        n = tanh(n + r * m);
        h = n + z * (h_prev - n);
    """)(recurrent[0], recurrent[1], recurrent[2], bias_hn, h_prev, gates[0], gates[1], gates[2], m, h)


def gru_forward_before_gates(recurrent, h_prev, gates, rh):
    """Reset before the product, first half: r, z (in place) and r ⊙ h_prev into rh.
    recurrent: (2, B, H), the r and z rows of h W_hh^T."""
    _kernel("gru_forward_before_gates", "T rr, T rz, T h_prev", "T r, T z, T rh", """
        r = tanh(r + rr) * 0.5 + 0.5;
        z = tanh(z + rz) * 0.5 + 0.5;
        rh = r * h_prev;
    """)(recurrent[0], recurrent[1], h_prev, gates[0], gates[1], rh)


def gru_forward_before_state(rec_n, z, h_prev, n, h):
    """Reset before the product, second half: n = tanh(n + (r ⊙ h) W_hn^T) in place, and h."""
    _kernel("gru_forward_before_state", "T rn, T z, T h_prev", "T n, T h", """
        n = tanh(n + rn);
        h = n + z * (h_prev - n);
    """)(rec_n, z, h_prev, n, h)


def gru_backward_after(dy, m, z, r, factors, dh, dh_prev, x_rows, h_rows):
    """One backward step, reset after: dh += dy ⊙ m; the input-side [da_r, da_z, da_n] and
    recurrent-side [da_r, da_z, da_n ⊙ r] gradients into their rows; dh_prev = dh ⊙ z."""
    _kernel("gru_backward_after", "T dy, T m, T z, T r, T fr, T fz, T fn",
            "T dh, T dhp, T xr, T xz, T xn, T hr, T hz, T hn", """
        dh = dh + dy * m;
        T dz = fz * dh;
        T dn = fn * dh;
        T dr = fr * dn;
        xr = dr; xz = dz; xn = dn;
        hr = dr; hz = dz; hn = dn * r;
        dhp = dh * z;
    """)(dy, m, z, r, factors[0], factors[1], factors[2], dh, dh_prev, x_rows[0], x_rows[1], x_rows[2],
         h_rows[0], h_rows[1], h_rows[2])


def gru_backward_before_first(dy, m, z, factors, dh, dh_prev, x_rows):
    """Reset before, first half: dh += dy ⊙ m; da_z, da_n into their rows; dh_prev = dh ⊙ z."""
    _kernel("gru_backward_before_first", "T dy, T m, T z, T fz, T fn", "T dh, T dhp, T xz, T xn", """
        dh = dh + dy * m;
        xz = fz * dh;
        xn = fn * dh;
        dhp = dh * z;
    """)(dy, m, z, factors[1], factors[2], dh, dh_prev, x_rows[1], x_rows[2])


def gru_backward_before_second(d_rh, r, factors, dh_prev, x_row_r):
    """Reset before, second half: da_r = d(r ⊙ h) ⊙ F_r into its row; dh_prev += d(r ⊙ h) ⊙ r."""
    _kernel("gru_backward_before_second", "T drh, T r, T fr", "T dhp, T xr", """
        xr = fr * drh;
        dhp = dhp + drh * r;
    """)(d_rh, r, factors[0], dh_prev, x_row_r)


# --------------------------------------------------------------------------- RNN

def rnn_forward(a, recurrent, h, relu):
    """h = tanh(a + recurrent) or relu(a + recurrent)."""
    if relu:
        _kernel("rnn_forward_relu", "T a, T rec", "T h", "h = max(a + rec, (T)0);")(a, recurrent, h)
    else:
        _kernel("rnn_forward_tanh", "T a, T rec", "T h", "h = tanh(a + rec);")(a, recurrent, h)


def rnn_backward(dy, m, dh, da):
    """dh += dy ⊙ m; da (holding the slopes) ← da ⊙ dh."""
    _kernel("rnn_backward", "T dy, T m", "T dh, T da", """
        dh = dh + dy * m;
        da = da * dh;
    """)(dy, m, dh, da)
