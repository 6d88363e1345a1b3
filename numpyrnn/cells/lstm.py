r"""Long short-term memory: one step and a whole sequence, forward and backward.

Parameters in PyTorch's layout, gate rows in the order i, f, g, o::

    weight_ih (4H, I)    weight_hh (4H, H)    bias_ih (4H,)    bias_hh (4H,)

Forward, one step (x_t: (B, I); h_prev, c_prev: (B, H))::

    a  = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh      (B, 4H) = [a_i | a_f | a_g | a_o]
    i  = σ(a_i)                                         input gate
    f  = σ(a_f)                                         forget gate
    g  = tanh(a_g)                                      candidate cell
    o  = σ(a_o)                                         output gate
    c  = f ⊙ c_prev + i ⊙ g
    h  = o ⊙ tanh(c)

Backward, one step, given dh = ∂L/∂h (from the output at t and from step t+1) and
dc = ∂L/∂c (from step t+1)::

    do      = dh ⊙ tanh(c)
    dc     ← dc + dh ⊙ o ⊙ (1 − tanh²(c))       every path into c
    di      = dc ⊙ g
    df      = dc ⊙ c_prev
    dg      = dc ⊙ i
    dc_prev = dc ⊙ f
    da      = [di ⊙ i(1−i) | df ⊙ f(1−f) | dg ⊙ (1−g²) | do ⊙ o(1−o)]
    dx_t    = da W_ih          dh_prev = da W_hh
    dW_ih   = da^T x_t         dW_hh   = da^T h_prev       db_ih = db_hh = Σ_batch da

Over a sequence, :func:`forward_reference` and :func:`backward_reference` are the textbook loop
over these two step functions (derivations §3, §7): the gradients arriving at h_t (from the
output and from step t+1) and at c_t (from step t+1) add, and the weight gradients are sums over
the steps.  The derivation is in docs/derivations.md §5, with the same names.

Read this file top to bottom beside derivations §5: the step forward, the step backward, then
the reference loops.  :func:`forward` and :func:`backward` are the fast path
(:mod:`numpyrnn.cells.fast.lstm`): the same functions arranged for speed, held to the reference
by the tests.  What the fast backward keeps per step and sequence: the four gate activations
(4H), c_t (H), tanh(c_t) (H) and h_t (H, which is also the output): 7H numbers.

Recurrent dropout (derivations §16; ``h_mask``, one (B, H) mask per sequence): W_hh reads
h_prev ⊙ mask, written h_in, for all four gates; backward, dh_prev = (da W_hh) ⊙ mask and
dW_hh = da^T h_in.  dc_prev = dc ⊙ f is untouched: the cell state is never dropped.

Zoneout (derivations §17; ``zoneout``, per step and unit, a rate for h and one for c): the loop,
not the step, mixes h_t = k_t h̃_t + (1 − k_t) h_{t−1} and c_t likewise, k_t = m_t (1 − δ_t);
h̃_t = o ⊙ tanh(c̃_t) reads the new cell state before its zoneout, as in the paper.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module
from .builtin import BuiltInCell, check_forget_bias, module_loops, set_forget_bias
from .common import (
    add_step, check_cache, check_cell_args, check_grad_arg, check_h_mask, check_zoneout, fold_biases, new_share,
    real_steps, sigmoid, time_steps, zeros_if_none,
)
from .fast import lstm as fast

GATES = 4
STATE_NAMES = ("h", "c")
__all__ = ["step_forward", "step_backward", "forward_reference", "backward_reference",
           "forward", "backward", "gate_activations", "CELL", "FORGET_BIAS_1"]


def _split(a):
    """[i | f | g | o] blocks of a (B, 4H) array, as views."""
    H = a.shape[-1] // 4
    return a[..., :H], a[..., H:2 * H], a[..., 2 * H:3 * H], a[..., 3 * H:]


def _gates_forward(a, c_prev, c, tanh_c, h):
    """The gate math of one step.  In place: a (B, 4H) goes from pre-activations to [i|f|g|o];
    c, tanh_c and h (B, H) are written."""
    xp = array_module(a)
    H = c_prev.shape[-1]
    sigmoid(a[:, :2 * H], out=a[:, :2 * H])             # i = σ(a_i), f = σ(a_f)
    xp.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])   # g = tanh(a_g)
    sigmoid(a[:, 3 * H:], out=a[:, 3 * H:])             # o = σ(a_o)
    i, f, g, o = _split(a)
    xp.multiply(f, c_prev, out=c)                       # c = f ⊙ c_prev + i ⊙ g
    c += i * g
    xp.tanh(c, out=tanh_c)
    xp.multiply(o, tanh_c, out=h)                       # h = o ⊙ tanh(c)


def _gates_backward(dh, dc, gates, c_prev, tanh_c, da):
    """Backward through the gate math of one step: writes da (B, 4H), returns dc_prev.
    dh and dc are read, never written."""
    xp = array_module(dh)
    i, f, g, o = _split(gates)
    da_i, da_f, da_g, da_o = _split(da)
    xp.multiply(dh, tanh_c, out=da_o)                   # do = dh ⊙ tanh(c)
    dc = dc + dh * o * (1 - tanh_c * tanh_c)            # dc ← dc + dh ⊙ o ⊙ (1 − tanh²(c))
    xp.multiply(dc, g, out=da_i)                        # di = dc ⊙ g
    xp.multiply(dc, c_prev, out=da_f)                   # df = dc ⊙ c_prev
    xp.multiply(dc, i, out=da_g)                        # dg = dc ⊙ i
    da_i *= i * (1 - i)                                 # da_i = di ⊙ i(1 − i)
    da_f *= f * (1 - f)                                 # da_f = df ⊙ f(1 − f)
    da_g *= 1 - g * g                                   # da_g = dg ⊙ (1 − g²)
    da_o *= o * (1 - o)                                 # da_o = do ⊙ o(1 − o)
    return dc * f                                       # dc_prev = dc ⊙ f


# --------------------------------------------------------------------------- one step

class StepCache(NamedTuple):
    """What :func:`step_forward` keeps for :func:`step_backward`."""
    x_t: object               # (B, I)
    h_prev: object            # (B, H) h_{t−1}
    c_prev: object            # (B, H) c_{t−1}
    weight_ih: object
    weight_hh: object
    has_bias_ih: bool
    has_bias_hh: bool
    gates: object             # (B, 4H) [i | f | g | o], the activations
    c: object                 # (B, H) c_t
    tanh_c: object            # (B, H) tanh(c_t)
    h_in: object              # (B, H) the h that W_hh reads: h_prev, or h_prev ⊙ mask
    h_mask: object            # (B, H) recurrent dropout's mask, or None

    MADE_BY = "numpyrnn.cells.lstm.step_forward"


def step_forward(x_t, h_prev, c_prev, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *,
                 h_mask=None, check=True):
    """One LSTM step.  Returns (h, c, cache).  ``h_mask`` (B, H): recurrent dropout's mask on
    the h that W_hh reads, for all four gates (derivations §16); None: no dropout.
    ``check=False`` skips the NaN/Inf check of the arrays, for a caller that computed or
    checked them itself."""
    check_cell_args(x_t, {"h_prev": h_prev, "c_prev": c_prev}, weight_ih, weight_hh, bias_ih,
                    bias_hh, GATES, step=True, finite=check)
    check_h_mask(h_mask, h_prev.shape, x_t.dtype, check)
    xp = array_module(x_t)
    h_in = h_prev if h_mask is None else h_prev * h_mask   # what W_hh reads: §16's h̃_{t−1}
    a = x_t @ weight_ih.T + h_in @ weight_hh.T         # a = x_t W_ih^T + h_in W_hh^T (+ biases)
    bias = fold_biases(bias_ih, bias_hh)
    if bias is not None:
        a += bias
    c, tanh_c, h = (xp.empty_like(c_prev) for _ in range(3))
    _gates_forward(a, c_prev, c, tanh_c, h)
    cache = StepCache(x_t, h_prev, c_prev, weight_ih, weight_hh, bias_ih is not None,
                      bias_hh is not None, a, c, tanh_c, h_in, h_mask)
    return h, c, cache


def step_backward(dh, dc, cache, *, check=True):
    """Backward of :func:`step_forward`.  dh, dc: ∂L/∂h, ∂L/∂c (None means zero; ``check`` as
    for :func:`step_forward`).

    Returns (dx_t, dh_prev, dc_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh); a bias
    gradient is None when that bias was None.
    """
    (x_t, h_prev, c_prev, weight_ih, weight_hh, has_bias_ih, has_bias_hh, gates, _,
     tanh_c, h_in, h_mask) = check_cache(cache, StepCache, "numpyrnn.cells.lstm.step_backward")
    xp = array_module(x_t)
    for name, d in (("dh", dh), ("dc", dc)):
        check_grad_arg(name, d, c_prev.shape, c_prev.dtype, check)
    dh = zeros_if_none(dh, c_prev.shape, c_prev.dtype, xp)
    dc = zeros_if_none(dc, c_prev.shape, c_prev.dtype, xp)
    da = xp.empty_like(gates)
    dc_prev = _gates_backward(dh, dc, gates, c_prev, tanh_c, da)
    dx_t = da @ weight_ih                               # dx_t = da W_ih
    dh_prev = da @ weight_hh                            # dh_prev = da W_hh
    if h_mask is not None:
        dh_prev *= h_mask                               # with recurrent dropout, ⊙ mask (§16)
    dweight_ih = da.T @ x_t                             # dW_ih = da^T x_t
    dweight_hh = da.T @ h_in                            # dW_hh = da^T h_in
    db = da.sum(axis=0)                                 # db = Σ_batch da
    return (dx_t, dh_prev, dc_prev, dweight_ih, dweight_hh,
            db if has_bias_ih else None, db.copy() if has_bias_hh else None)


# --------------------------------------------------------------------------- a sequence: the reference
#
# The textbook loop over the two step functions above (derivations §3 and §7).  It is the
# reference: forward and backward below are the definition that the fast path
# (numpyrnn.cells.fast.lstm, exported here as forward and backward) is held to.

class ReferenceCache(NamedTuple):
    """What :func:`forward_reference` keeps for :func:`backward_reference`."""
    steps: list               # each step's StepCache, in time order
    mask: object              # (T, B, 1) m_t: 1 at real steps, 0 at padded ones
    reverse: bool
    zoneout: tuple            # (δ of h, δ of c): each None, the masks of every step (T, B, H), or the rate p; or None

    MADE_BY = "numpyrnn.cells.lstm.forward_reference"


def forward_reference(x, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *,
                      lengths=None, reverse=False, workspace=None, h_mask=None, zoneout=None,
                      check=True):
    """LSTM over a sequence x (T, B, I) from the initial state h0, c0 (B, H): one
    :func:`step_forward` per step.  Arguments and returns as :func:`forward` (``workspace`` is
    accepted and ignored; ``check`` checks the arguments, not the steps again).
    Returns (y, h_n, c_n, cache), y (T, B, H), h_n, c_n (B, H)::

        h̃_t, c̃_t = step_forward(x_t, h_{t−1}, c_{t−1})              (§5; h_{−1}, c_{−1} = h0, c0)
        k_t = m_t (1 − δ_t)     per state: the share of the new value, m_t without zoneout (§7, §17)
        h_t = k_t h̃_t + (1 − k_t) h_{t−1},  c_t likewise with c's k_t,  y_t = m_t h_t    (§7, §17)
    """
    T, B, I, H = check_cell_args(x, {"h0": h0, "c0": c0}, weight_ih, weight_hh, bias_ih,
                                 bias_hh, GATES, lengths=lengths, finite=check)
    check_h_mask(h_mask, (B, H), x.dtype, check)
    zoneout = check_zoneout(zoneout, STATE_NAMES, (T, B, H), x.dtype, check)
    delta_h, delta_c = (None, None) if zoneout is None else zoneout   # δ_t of h and of c (§17)
    xp = array_module(x)
    mask = real_steps(lengths, T, B, x.dtype, xp)   # m_t (§7)
    y = xp.empty((T, B, H), x.dtype)
    steps = [None] * T                           # each step's cache, in time order
    h, c = h0, c0                                # h_{−1}, c_{−1} = h0, c0 (§3)
    for t in time_steps(T, reverse):             # t = 0, ..., T−1; reversed: T−1, ..., 0 (§8)
        h_tilde, c_tilde, steps[t] = step_forward(x[t], h, c, weight_ih, weight_hh, bias_ih,
                                                  bias_hh, h_mask=h_mask, check=False)   # h̃_t = o ⊙ tanh(c̃_t) (§5)
        k_h, k_c = new_share(mask[t], delta_h, t), new_share(mask[t], delta_c, t)   # k_t = m_t (1 − δ_t) (§17)
        h = k_h * h_tilde + (1 - k_h) * h        # h_t = k_t h̃_t + (1 − k_t) h_{t−1} (§7, §17)
        c = k_c * c_tilde + (1 - k_c) * c        # c_t = k_t c̃_t + (1 − k_t) c_{t−1} (§7, §17)
        y[t] = mask[t] * h                       # y_t = m_t h_t (§7)
    return y, h, c, ReferenceCache(steps, mask, reverse, zoneout)


def backward_reference(dy, dh_n, dc_n, cache, *, check=True, dh_steps=None, dc_steps=None):
    """Backward of :func:`forward_reference`: one :func:`step_backward` per step, last step
    first.  Arguments and returns as :func:`backward`: (dx, dh0, dc0, dweight_ih, dweight_hh,
    dbias_ih, dbias_hh)::

        g_t = dh_t + m_t dy_t,   dc_t                   ∂L/∂h_t, ∂L/∂c_t (§3, §7; dh_{T−1}, dc_{T−1} = dh_n, dc_n)
        dh̃_t = k_t g_t,   dc̃_t = k_t dc_t               each with its state's k_t (§7, §17)
        dh_{t−1} = (step t's dh_prev) + (1 − k_t) g_t,   dc_{t−1} = (step t's dc_prev) + (1 − k_t) dc_t
        dW       = Σ_t (step t's dW)                                          (§3)

    ``dh_steps``, ``dc_steps`` (T, B, H), if given, receive ∂L/∂h_t and ∂L/∂c_t for every step,
    (h_t, c_t) taken as the two inputs of step t+1.
    """
    steps, mask, reverse, zoneout = check_cache(cache, ReferenceCache, "numpyrnn.cells.lstm.backward_reference")
    T, (B, H), dtype = len(steps), steps[0].c.shape, steps[0].c.dtype
    xp = array_module(steps[0].c)
    check_grad_arg("dy", dy, (T, B, H), dtype, check)
    check_grad_arg("dh_n", dh_n, (B, H), dtype, check)
    check_grad_arg("dc_n", dc_n, (B, H), dtype, check)
    dy = zeros_if_none(dy, (T, B, H), dtype, xp)   # None: the outputs did not reach the loss
    dh = zeros_if_none(dh_n, (B, H), dtype, xp)    # dh_{T−1} = dh_n (§3)
    dc = zeros_if_none(dc_n, (B, H), dtype, xp)    # dc_{T−1} = dc_n (§3)
    delta_h, delta_c = (None, None) if zoneout is None else zoneout
    dx = xp.empty((T, B, steps[0].x_t.shape[1]), dtype)
    dparams = [None] * 4                         # Σ_t of dW_ih, dW_hh, db_ih, db_hh (§3)
    for t in reversed(time_steps(T, reverse)):   # the forward's steps, last first (§3)
        g = dh + mask[t] * dy[t]                 # g_t = ∂L/∂h_t = dh_t + m_t dy_t (§3, §7)
        if dh_steps is not None:                 # kept if asked
            dh_steps[t] = g
        if dc_steps is not None:                 # ∂L/∂c_t = dc_t: c_t reaches only step t+1 (§3, §5)
            dc_steps[t] = dc
        k_h, k_c = new_share(mask[t], delta_h, t), new_share(mask[t], delta_c, t)   # k_t = m_t (1 − δ_t) (§17)
        dx[t], dh_prev, dc_prev, *dparams_t = step_backward(k_h * g, k_c * dc, steps[t],
                                                            check=False)   # through the step, from dh̃_t, dc̃_t (§5)
        dh = dh_prev + (1 - k_h) * g             # dh_{t−1} = dh_prev + (1 − k_t) g_t (§7, §17)
        dc = dc_prev + (1 - k_c) * dc            # dc_{t−1} = dc̃_t ⊙ f + (1 − k_t) dc_t (§5, §7, §17)
        dparams = [add_step(total, d) for total, d in zip(dparams, dparams_t)]   # dW += dW_t (§3)
    return (dx, dh, dc, *dparams)                # dh, dc are now ∂L/∂h0, ∂L/∂c0


# --------------------------------------------------------------------------- a sequence: fast

#: The fast path (numpyrnn.cells.fast.lstm): the same signatures and results as the reference,
#: arranged for speed.  ``LSTM(impl="fast")``, the default, runs it.
forward, backward = fast.forward, fast.backward


def gate_activations(cache):
    """The gates a sequence forward (either path) computed, by name, each (T, B, H) in time
    order: i, f, g, o, and the cell state c; 0 at padded steps."""
    if not isinstance(cache, ReferenceCache):
        return fast.gate_activations(cache)
    xp = array_module(cache.mask)
    gates = xp.stack([s.gates for s in cache.steps])             # (T, B, 4H) [i | f | g | o]
    i, f, g, o = _split(gates)
    c = xp.stack([s.c for s in cache.steps])
    return {name: v * cache.mask for name, v in (("i", i), ("f", f), ("g", g), ("o", o), ("c", c))}


# --------------------------------------------------------------------------- as a Cell

class CELL(BuiltInCell):
    """The LSTM as a :class:`~numpyrnn.cells.Cell` (``numpyrnn.cells.get("lstm")``): the step
    functions above behind the protocol, state (h, c), and this module's reference loop and
    fast path for the layer's loop over time.  ``bias``: whether it has ``bias_ih``, ``bias_hh``;
    ``forget_bias``: None for PyTorch's initialisation, or the value the forget gate's slice of
    ``bias_ih`` starts at (its slice of ``bias_hh`` then starts at 0; Jozefowicz et al. 2015
    found 1 closes the gap to the GRU), an option of the initialisation only."""

    name = "lstm"
    state_names = STATE_NAMES
    h_prev_only_in_products = True   # h_{t−1} enters only h_{t−1} W_hh^T: recurrent dropout may mask it
    init_options = ("forget_bias",)
    # what the rest of the house reads (cells.Cell): the functions above, and the facts
    steps = (step_forward, step_backward)
    by_name = True                   # a model's config names it (BuiltInCell.record)
    loops = module_loops(forward_reference, backward_reference, forward, backward, gate_activations)
    blocks, gates = ("i", "f", "g", "o"), ("i", "f", "o")
    title, section, colour, torch_module = "LSTM", "§5", "#1f77b4", "LSTM"

    def __init__(self, bias=True, forget_bias=None):
        super().__init__(bias)
        self.forget_bias = check_forget_bias(forget_bias, bias)

    def initialize(self, params, hidden_size, rng):
        super().initialize(params, hidden_size, rng)
        set_forget_bias(params, slice(hidden_size, 2 * hidden_size), self.forget_bias)   # rows [i | f | g | o]

    def gate_activations(self, cache):
        i, f, g, o = _split(cache.gates)
        return {"i": i, "f": f, "g": g, "o": o, "c": cache.c}


class FORGET_BIAS_1(CELL):
    """``lstm_fb1``: the LSTM with its forget gate's bias started at 1 (Jozefowicz et al. 2015),
    under a name of its own so that one sweep can hold both; the same cell, with the same fast
    path, as ``cells.get("lstm", forget_bias=1.0)``."""

    name = "lstm_fb1"          # the LSTM's math (its loops, its export), another initialisation

    def __init__(self, bias=True, forget_bias=1.0):
        super().__init__(bias, forget_bias)
