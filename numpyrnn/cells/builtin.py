"""What the three textbook cells share as :class:`~numpyrnn.cells.Cell` objects.

Each of ``rnn.CELL``, ``lstm.CELL`` and ``gru.CELL`` wraps its module's functions: the step
functions for the protocol, and for the loop over time the module's own reference loop
(``impl="reference"``) and fast path (``impl="fast"``), with the same results as the generic
loop over the step functions (``impl="generic"``; the tests hold all three together).  Their
parameters are PyTorch's, ``weight_ih`` (G·H, I), ``weight_hh`` (G·H, H) and, with ``bias``,
``bias_ih`` and ``bias_hh`` (G·H,), drawn in that order as PyTorch draws them.
"""

from __future__ import annotations

import functools
import math
import numbers
import sys

import numpy as np

from .generic import LOOP, Loop
from .protocol import Cell

#: the names of a textbook cell's parameters, in the order its functions take them
WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def is_textbook(cell) -> bool:
    """Whether ``cell`` is one of the three textbook cells itself (not a subclass of one, whose
    changed steps only the generic loop runs): tested code, with loops of its own.  Each of the
    three says so in its own class body (``textbook = True``), which a subclass does not inherit
    into its own."""
    return bool(type(cell).__dict__.get("textbook", False))


def check_flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def check_forget_bias(forget_bias, bias):
    """None (PyTorch's draw, U(−1/√H, 1/√H) like every bias) or a finite number; refused
    without biases, since it initialises the forget gate's bias."""
    if forget_bias is None:
        return None
    if isinstance(forget_bias, bool) or not isinstance(forget_bias, numbers.Real) \
            or not math.isfinite(forget_bias):
        raise ValueError(f"forget_bias must be a finite number (or None for PyTorch's draw), got {forget_bias!r}")
    if not bias:
        raise ValueError("forget_bias initialises the forget gate's bias, so it needs bias=True; got bias=False")
    return float(forget_bias)


def set_forget_bias(params, rows, forget_bias):
    """Jozefowicz et al. (2015): the forget gate's slice of bias_ih set to ``forget_bias``, the
    same slice of bias_hh to 0, so that f = σ(forget_bias + ...) starts near σ(forget_bias).
    Called after every parameter was drawn: no other draw moves."""
    if forget_bias is not None:
        params["bias_ih"][rows] = forget_bias
        params["bias_hh"][rows] = 0.0


def _sequence_forward(module, function, cell, x, state0, params, *, lengths=None, reverse=False,
                      workspace=None, h_mask=None):
    y, *state_n, cache = getattr(module, function)(x, *state0, *cell.weights(params), lengths=lengths, reverse=reverse,
                                 workspace=workspace, h_mask=h_mask, check=False, **cell.function_options())
    return y, tuple(state_n), cache


def _sequence_backward(module, function, cell, dy, dstate_n, cache, *, state_grads=None):
    kept = {} if state_grads is None else {f"d{s}_steps": state_grads[s] for s in cell.state_names}
    dstate_n = (None,) * len(cell.state_names) if dstate_n is None else dstate_n
    dx, *rest = getattr(module, function)(dy, *dstate_n, cache, check=False, **kept)
    n = len(cell.state_names)
    return dx, tuple(rest[:n]), {k: g for k, g in zip(WEIGHTS, rest[n:]) if g is not None}


class BuiltInCell(Cell):
    """A textbook cell: its module's functions behind the Cell protocol."""

    gates = 1                 # G, the gate blocks in the weights' rows

    def __init__(self, bias=True):
        check_flag("bias", bias)
        self.bias = bool(bias)

    @property
    def module(self):
        """The cell's module (numpyrnn.cells.rnn, lstm or gru)."""
        return next(sys.modules[c.__module__] for c in type(self).__mro__ if c.__dict__.get("textbook"))

    def __repr__(self):
        return self.short_repr()

    def function_options(self) -> dict:
        """The options the module's forward functions take (nonlinearity, reset_after)."""
        return {}

    def weights(self, params):
        """(weight_ih, weight_hh, bias_ih, bias_hh) from a parameter dict, None for no bias."""
        return tuple(params.get(k) for k in WEIGHTS)

    def parameters(self, input_size, hidden_size):
        G, H = self.gates, hidden_size
        shapes = {"weight_ih": (G * H, input_size), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        return shapes

    def step_forward(self, x_t, state, params):
        *new_state, cache = self.module.step_forward(x_t, *state, *self.weights(params), check=False,
                                                     **self.function_options())
        return tuple(new_state), cache

    def step_backward(self, dstate, cache):
        dx_t, *rest = self.module.step_backward(*dstate, cache, check=False)
        n = len(self.state_names)
        return dx_t, tuple(rest[:n]), {k: g for k, g in zip(WEIGHTS, rest[n:]) if g is not None}

    def sequence(self, impl="fast"):
        """The module's fast path or textbook reference loop; the generic loop for "generic" (and
        for a subclass, whose steps may differ from the module's)."""
        if impl == "generic" or not is_textbook(self):
            return LOOP
        return _loops(type(self), impl)


@functools.lru_cache(maxsize=None)
def _loops(cls, impl):
    module = sys.modules[cls.__module__]
    suffix = "" if impl == "fast" else "_reference"
    # the module's functions are looked up at each call (a profiler may wrap them)
    return Loop(functools.partial(_sequence_forward, module, "forward" + suffix),
                functools.partial(_sequence_backward, module, "backward" + suffix),
                lambda cell, cache: module.gate_activations(cache), impl)
