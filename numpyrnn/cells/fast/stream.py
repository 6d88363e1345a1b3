"""The built-in cells' step for a stream, arranged for speed: a step of
:meth:`numpyrnn.Recurrent.step` as data arrives (``model.stream()``), at evaluation.

The reference step (``rnn.step_forward``, ``lstm.step_forward``, ``gru.step_forward``) checks its
arguments and keeps a cache for its backward.  A stream needs neither: the layer has checked
x_t, the weights and state are its own, and nothing goes backward.  These are the same
equations (derivations §4, §5, §6) without the checks and the cache, through the reference's own
gate math (``rnn._activate``, ``lstm._gates_forward``) where it has a helper; at batch 1 and
H = 64 a step is a handful of small products, so what is left out is most of its time
(docs/benchmarks.md, "Real-time: one step at a time").  Each takes x_t (B, I), the state tuple
of one layer (B, H) each, that layer's weights (weight_ih, weight_hh, bias_ih, bias_hh; a bias
may be None) and the cell's options, and returns the new state tuple.
"""

from __future__ import annotations

from ...backend import array_module
from .. import gru as _gru
from .. import lstm as _lstm
from .. import rnn as _rnn
from ..common import sigmoid


def _input_terms(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """a = x W_ih^T + h W_hh^T + b_ih + b_hh (§3), every gate's pre-activation."""
    a = x @ weight_ih.T
    a += h @ weight_hh.T
    if bias_ih is not None:
        a += bias_ih
    if bias_hh is not None:
        a += bias_hh
    return a


def rnn(x, state, weight_ih, weight_hh, bias_ih, bias_hh, *, nonlinearity="tanh"):
    (h_prev,) = state
    a = _input_terms(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
    _rnn._activate(a, nonlinearity, a)               # h = tanh(a) or relu(a), in place
    return (a,)


def lstm(x, state, weight_ih, weight_hh, bias_ih, bias_hh):
    h_prev, c_prev = state
    xp = array_module(x)
    a = _input_terms(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
    c, tanh_c, h = (xp.empty_like(c_prev) for _ in range(3))
    _lstm._gates_forward(a, c_prev, c, tanh_c, h)    # c = f ⊙ c_prev + i ⊙ g, h = o ⊙ tanh(c)
    return h, c


def gru(x, state, weight_ih, weight_hh, bias_ih, bias_hh, *, reset_after=True):
    (h_prev,) = state
    xp = array_module(x)
    H = h_prev.shape[-1]
    a_x = x @ weight_ih.T                            # x W_i{r,z,n}^T
    if bias_ih is not None:
        a_x += bias_ih
    w_hh_t = weight_hh.T
    if reset_after:
        a_h = h_prev @ w_hh_t                        # h W_h{r,z,n}^T, the three at once
        if bias_hh is not None:
            a_h += bias_hh
        rz = sigmoid(a_x[:, :2 * H] + a_h[:, :2 * H])              # r, z = σ(x W_i^T + b_i + h W_h^T + b_h)
        n = xp.tanh(a_x[:, 2 * H:] + rz[:, :H] * a_h[:, 2 * H:])   # n = tanh(x W_in^T + b_in + r ⊙ (h W_hn^T + b_hn))
    else:
        a_h = h_prev @ w_hh_t[:, :2 * H]
        if bias_hh is not None:
            a_h += bias_hh[:2 * H]
        rz = sigmoid(a_x[:, :2 * H] + a_h)
        rh = (rz[:, :H] * h_prev) @ w_hh_t[:, 2 * H:]              # (r ⊙ h) W_hn^T
        if bias_hh is not None:
            rh += bias_hh[2 * H:]
        n = xp.tanh(a_x[:, 2 * H:] + rh)                           # n = tanh(x W_in^T + b_in + (r ⊙ h) W_hn^T + b_hn)
    z = rz[:, H:]
    return (n + z * (h_prev - n),)                   # h = (1 − z) ⊙ n + z ⊙ h_prev


#: the step of each built-in cell's own class (a subclass, whose math may differ, has none)
STEPS = {_rnn.CELL: rnn, _lstm.CELL: lstm, _gru.CELL: gru}
