r"""Gated recurrent unit: one step and a whole sequence, forward and backward, in both forms.

Parameters in PyTorch's layout, gate rows in the order r, z, n::

    weight_ih (3H, I)    weight_hh (3H, H)    bias_ih (3H,)    bias_hh (3H,)

Write W_ir, W_iz, W_in for the three row blocks of weight_ih, W_hr, W_hz, W_hn for those of
weight_hh, and likewise for the biases.

Forward, one step, ``reset_after=True`` (PyTorch and cuDNN; Cho et al. 2014 v1)::

    r  = σ(x_t W_ir^T + b_ir + h_prev W_hr^T + b_hr)          reset gate
    z  = σ(x_t W_iz^T + b_iz + h_prev W_hz^T + b_hz)          update gate
    m  = h_prev W_hn^T + b_hn                                 recurrent part of n, before the reset
    n  = tanh(x_t W_in^T + b_in + r ⊙ m)                      candidate state
    h  = (1 − z) ⊙ n + z ⊙ h_prev

Forward, one step, ``reset_after=False`` (Cho et al. 2014 v3, the textbook form)::

    r, z as above
    n  = tanh(x_t W_in^T + b_in + (r ⊙ h_prev) W_hn^T + b_hn)
    h  = (1 − z) ⊙ n + z ⊙ h_prev

Backward, one step, given dh = ∂L/∂h::

    dn = dh ⊙ (1 − z)          dz = dh ⊙ (h_prev − n)          dh_prev ← dh ⊙ z
    da_n = dn ⊙ (1 − n²)                                       ∂L/∂(pre-activation of n)
    reset after:   dm = da_n ⊙ r             dr = da_n ⊙ m
    reset before:  d(r⊙h) = da_n W_hn        dr = d(r⊙h) ⊙ h_prev      dh_prev += d(r⊙h) ⊙ r
    da_r = dr ⊙ r(1 − r)       da_z = dz ⊙ z(1 − z)
    input side:     dax = [da_r | da_z | da_n]       dx_t = dax W_ih    dW_ih = dax^T x_t
    reset after:    dah = [da_r | da_z | dm]         dh_prev += dah W_hh
                    dW_hh = dah^T h_prev             db_hh = Σ_batch dah
    reset before:   dh_prev += [da_r | da_z] W_hh[:2H]
                    dW_hh[:2H] = [da_r | da_z]^T h_prev     dW_hh[2H:] = da_n^T (r ⊙ h_prev)
                    db_hh = Σ_batch dax
    db_ih = Σ_batch dax

Over a sequence, :func:`forward_reference` and :func:`backward_reference` are the textbook loop
over these two step functions (derivations §3, §7); the weight gradients are sums over the
steps.  That loop is the RNN's, written once in rnn.py for every cell whose one state is h.

Read this file top to bottom beside derivations §6: the step forward, the step backward, then
the reference loops.  :func:`forward` and :func:`backward` are the fast path
(:mod:`numpyrnn.cells.fast.gru`): the same functions arranged for speed, held to the reference
by the tests.  What the fast backward keeps per step and sequence: r, z, n (3H), h_t (H, also
the output), and with reset after m = h_prev W_hn^T + b_hn (H), with reset before r ⊙ h_prev
(H): 5H numbers either way.

Recurrent dropout (derivations §16; ``h_mask``, one (B, H) mask per sequence): the h that the
r, z and n products read is h_prev ⊙ mask, written h_in below; the carry z ⊙ h_prev and dz's
(h_prev − n) read h_prev itself.  Backward, what reaches h_prev through the products is
multiplied by the mask, and dW_hh reads h_in where it read h_prev.

Zoneout (derivations §17; ``zoneout``, per step and unit): the loop, not the step, mixes h_t =
k_t h̃_t + (1 − k_t) h_{t−1} with k_t = m_t (1 − δ_t); the step is untouched.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module
from .builtin import BuiltInCell, check_flag, module_loops
from .common import check_cache, check_cell_args, check_grad_arg, check_h_mask, check_zoneout, sigmoid, zeros_if_none
from .fast import gru as fast
from .rnn import loop_backward, loop_forward

GATES = 3
STATE_NAMES = ("h",)
__all__ = ["step_forward", "step_backward", "forward_reference", "backward_reference",
           "forward", "backward", "gate_activations", "CELL"]


def _split(a):
    """[r | z | n] blocks of a (..., 3H) array, as views."""
    H = a.shape[-1] // 3
    return a[..., :H], a[..., H:2 * H], a[..., 2 * H:]


# --------------------------------------------------------------------------- one step

class StepCache(NamedTuple):
    """What :func:`step_forward` keeps for :func:`step_backward`."""
    x_t: object               # (B, I)
    h_prev: object            # (B, H) h_{t−1}
    weight_ih: object
    weight_hh: object
    has_bias_ih: bool
    has_bias_hh: bool
    gates: object             # (B, 3H) [r | z | n], the activations
    m: object                 # reset after: (B, H) h_prev W_hn^T + b_hn; else None
    rh: object                # reset before: (B, H) r ⊙ h_prev; else None
    h: object                 # (B, H) h_t
    reset_after: bool
    h_in: object              # (B, H) the h the recurrent products read: h_prev, or h_prev ⊙ mask
    h_mask: object            # (B, H) recurrent dropout's mask, or None

    MADE_BY = "numpyrnn.cells.gru.step_forward"


def step_forward(x_t, h_prev, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *,
                 reset_after=True, h_mask=None, check=True):
    """One GRU step.  Returns (h, cache).  ``h_mask`` (B, H): recurrent dropout's mask
    (derivations §16), applied to the h that the r, z and n products read, never to the carry
    z ⊙ h_prev; None: no dropout.  ``check=False`` skips the NaN/Inf check of the arrays, for a
    caller that computed or checked them itself."""
    check_cell_args(x_t, {"h_prev": h_prev}, weight_ih, weight_hh, bias_ih, bias_hh, GATES,
                    step=True, finite=check)
    check_h_mask(h_mask, h_prev.shape, x_t.dtype, check)
    xp = array_module(x_t)
    H = h_prev.shape[-1]
    h_in = h_prev if h_mask is None else h_prev * h_mask   # what the products read: §16's h̃_{t−1}
    no_bias = xp.zeros(3 * H, x_t.dtype)                 # a missing bias adds nothing
    b_ir, b_iz, b_in = _split(no_bias if bias_ih is None else bias_ih)
    b_hr, b_hz, b_hn = _split(no_bias if bias_hh is None else bias_hh)
    W_hr, W_hz, W_hn = _split(weight_hh.T)               # W_h{r,z,n}^T, (H, H) each
    x_r, x_z, x_n = _split(x_t @ weight_ih.T)            # x_t W_i{r,z,n}^T, one product
    r = sigmoid(x_r + b_ir + h_in @ W_hr + b_hr)         # r = σ(x W_ir^T + b_ir + h_in W_hr^T + b_hr)
    z = sigmoid(x_z + b_iz + h_in @ W_hz + b_hz)         # z = σ(x W_iz^T + b_iz + h_in W_hz^T + b_hz)
    m = rh = None
    if reset_after:
        m = h_in @ W_hn + b_hn                           # m = h_in W_hn^T + b_hn
        n = xp.tanh(x_n + b_in + r * m)                  # n = tanh(x W_in^T + b_in + r ⊙ m)
    else:
        rh = r * h_in                                    # r ⊙ h_in
        n = xp.tanh(x_n + b_in + rh @ W_hn + b_hn)       # n = tanh(x W_in^T + b_in + (r ⊙ h) W_hn^T + b_hn)
    h = (1 - z) * n + z * h_prev                         # h = (1 − z) ⊙ n + z ⊙ h_prev
    gates = xp.concatenate([r, z, n], axis=1)
    cache = StepCache(x_t, h_prev, weight_ih, weight_hh, bias_ih is not None, bias_hh is not None,
                      gates, m, rh, h, reset_after, h_in, h_mask)
    return h, cache


def step_backward(dh, cache, *, check=True):
    """Backward of :func:`step_forward`.  dh: ∂L/∂h (None means zero; ``check`` as for
    :func:`step_forward`).

    Returns (dx_t, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    (x_t, h_prev, weight_ih, weight_hh, has_bias_ih, has_bias_hh, gates, m, rh, _,
     reset_after, h_in, h_mask) = check_cache(cache, StepCache, "numpyrnn.cells.gru.step_backward")
    xp = array_module(x_t)
    H = h_prev.shape[-1]
    check_grad_arg("dh", dh, h_prev.shape, h_prev.dtype, check)
    dh = zeros_if_none(dh, h_prev.shape, h_prev.dtype, xp)
    r, z, n = _split(gates)
    dn = dh * (1 - z)                                    # dn = dh ⊙ (1 − z)
    dz = dh * (h_prev - n)                               # dz = dh ⊙ (h_prev − n)
    dh_prev = dh * z                                     # dh_prev ← dh ⊙ z
    da_n = dn * (1 - n * n)                              # da_n = dn ⊙ (1 − n²)
    if reset_after:
        dm = da_n * r                                    # dm = da_n ⊙ r
        dr = da_n * m                                    # dr = da_n ⊙ m
    else:
        d_rh = da_n @ weight_hh[2 * H:]                  # d(r ⊙ h) = da_n W_hn
        dr = d_rh * h_in                                 # dr = d(r ⊙ h) ⊙ h_in
        dh_in = d_rh * r                                 # dh_prev += d(r ⊙ h) ⊙ r  (dh_in: what
                                                         # reaches h_prev through the products)
    da_r = dr * r * (1 - r)                              # da_r = dr ⊙ r(1 − r)
    da_z = dz * z * (1 - z)                              # da_z = dz ⊙ z(1 − z)
    dax = xp.concatenate([da_r, da_z, da_n], axis=1)     # dax = [da_r | da_z | da_n]
    dx_t = dax @ weight_ih                               # dx_t = dax W_ih
    dweight_ih = dax.T @ x_t                             # dW_ih = dax^T x_t
    dbias_ih = dax.sum(axis=0) if has_bias_ih else None  # db_ih = Σ_batch dax
    if reset_after:
        dah = xp.concatenate([da_r, da_z, dm], axis=1)   # dah = [da_r | da_z | dm]
        dh_in = dah @ weight_hh                          # dh_prev += dah W_hh  (dh_in: through the products)
        dweight_hh = dah.T @ h_in                        # dW_hh = dah^T h_in
        dbias_hh = dah.sum(axis=0) if has_bias_hh else None   # db_hh = Σ_batch dah
    else:
        dh_in += dax[:, :2 * H] @ weight_hh[:2 * H]      # dh_prev += [da_r | da_z] W_hh[:2H]
        dweight_hh = xp.concatenate([dax[:, :2 * H].T @ h_in,     # dW_hh[:2H] = [da_r | da_z]^T h_in
                                     da_n.T @ rh])                # dW_hh[2H:] = da_n^T (r ⊙ h_in)
        dbias_hh = dax.sum(axis=0) if has_bias_hh else None   # db_hh = Σ_batch dax
    dh_prev += dh_in if h_mask is None else dh_in * h_mask   # with recurrent dropout, ⊙ mask (§16)
    return dx_t, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh


# --------------------------------------------------------------------------- a sequence: the reference
#
# The textbook loop over the two step functions above (derivations §3, §7 and §17).  It is the
# reference: forward and backward below are the definition that the fast path
# (numpyrnn.cells.fast.gru, exported here as forward and backward) is held to.  The loop is the
# RNN's, written once in rnn.py (loop_forward, loop_backward) for every cell whose one state is
# h: read it there; this cell hands it the GRU's step.

class ReferenceCache(NamedTuple):
    """What :func:`forward_reference` keeps for :func:`backward_reference`."""
    steps: list               # each step's StepCache, in time order
    mask: object              # (T, B, 1) m_t: 1 at real steps, 0 at padded ones
    reverse: bool
    zoneout: tuple            # (δ of h,): None, the masks of every step (T, B, H), or the rate p; or None

    MADE_BY = "numpyrnn.cells.gru.forward_reference"


def forward_reference(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *,
                      reset_after=True, lengths=None, reverse=False, workspace=None, h_mask=None,
                      zoneout=None, check=True):
    """GRU over a sequence x (T, B, I) from the initial state h0 (B, H): one
    :func:`step_forward` per step, by the loop of rnn.py (:func:`numpyrnn.cells.rnn.loop_forward`:
    h_t = k_t h̃_t + (1 − k_t) h_{t−1}, y_t = m_t h_t; §7, §17).  Arguments and returns as
    :func:`forward` (``workspace`` is accepted and ignored; ``check`` checks the arguments, not
    the steps again).  Returns (y, h_n, cache), y (T, B, H), h_n (B, H)."""
    T, B, I, H = check_cell_args(x, {"h0": h0}, weight_ih, weight_hh, bias_ih, bias_hh, GATES,
                                 lengths=lengths, finite=check)
    check_h_mask(h_mask, (B, H), x.dtype, check)
    zoneout = check_zoneout(zoneout, STATE_NAMES, (T, B, H), x.dtype, check)

    def step(x_t, h_prev):                       # h̃_t = (1 − z) ⊙ n + z ⊙ h_{t−1} (§6a or §6b)
        return step_forward(x_t, h_prev, weight_ih, weight_hh, bias_ih, bias_hh,
                            reset_after=reset_after, h_mask=h_mask, check=False)

    return loop_forward(step, x, h0, lengths, reverse, zoneout, ReferenceCache)


def backward_reference(dy, dh_n, cache, *, check=True, dh_steps=None):
    """Backward of :func:`forward_reference`: one :func:`step_backward` per step, last step
    first, by the loop of rnn.py (:func:`numpyrnn.cells.rnn.loop_backward`).  Arguments and
    returns as :func:`backward`: (dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    ``dh_steps`` (T, B, H), if given, receives ∂L/∂h_t for every step."""
    check_cache(cache, ReferenceCache, "numpyrnn.cells.gru.backward_reference")
    return loop_backward(step_backward, dy, dh_n, cache, check, dh_steps)


# --------------------------------------------------------------------------- a sequence: fast

#: The fast path (numpyrnn.cells.fast.gru): the same signatures and results as the reference,
#: arranged for speed.  ``GRU(impl="fast")``, the default, runs it.
forward, backward = fast.forward, fast.backward


def gate_activations(cache):
    """The gates a sequence forward (either path) computed, by name, each (T, B, H) in time
    order: r, z, n; 0 at padded steps."""
    if not isinstance(cache, ReferenceCache):
        return fast.gate_activations(cache)
    r, z, n = _split(array_module(cache.mask).stack([s.gates for s in cache.steps]))
    return {"r": r * cache.mask, "z": z * cache.mask, "n": n * cache.mask}


# --------------------------------------------------------------------------- as a Cell

class CELL(BuiltInCell):
    """The GRU as a :class:`~numpyrnn.cells.Cell` (``numpyrnn.cells.get("gru", reset_after=...)``):
    the step functions above behind the protocol, and this module's reference loop and fast path
    for the layer's loop over time.  ``reset_after``: PyTorch's form (True) or the textbook one;
    ``bias``: whether it has ``bias_ih``, ``bias_hh``."""

    name = "gru"
    state_names = STATE_NAMES
    forms = ({"reset_after": True}, {"reset_after": False})
    # what the rest of the house reads (cells.Cell): the functions above, and the facts
    steps = (step_forward, step_backward)
    by_name = True                   # a model's config names it (BuiltInCell.record)
    loops = module_loops(forward_reference, backward_reference, forward, backward, gate_activations)
    blocks, gates = ("r", "z", "n"), ("r", "z")
    title, colour, torch_module = "GRU", "#d62728", "GRU"   # (torch's GRU: the reset-after form only;
                                                            # the export refuses the other, saying why)

    @property
    def section(self):
        return "§6a" if self.reset_after else "§6b"

    def __init__(self, reset_after=True, bias=True):
        check_flag("reset_after", reset_after)
        super().__init__(bias)
        self.reset_after = bool(reset_after)

    def function_options(self):
        return {"reset_after": self.reset_after}

    def gate_activations(self, cache):
        r, z, n = _split(cache.gates)
        return {"r": r, "z": z, "n": n}
