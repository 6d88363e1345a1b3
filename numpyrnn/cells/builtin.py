"""What the three textbook cells share as :class:`~numpyrnn.cells.Cell` objects.

Each of ``rnn.CELL``, ``lstm.CELL`` and ``gru.CELL`` wraps its module's functions: the step
functions for the protocol (``steps``), and for the loop over time (``loops``) the module's own
reference loop (``impl="reference"``) and fast path (``impl="fast"``), with the same results as
the generic loop over the step functions (``impl="generic"``; the tests hold all three together).  Their
parameters are PyTorch's, ``weight_ih`` (G·H, I), ``weight_hh`` (G·H, H) and, with ``bias``,
``bias_ih`` and ``bias_hh`` (G·H,), drawn in that order as PyTorch draws them.
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from .generic import Loop
from .protocol import Cell

#: the names of a textbook cell's parameters, in the order its functions take them
WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


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


def _sequence_forward(forward, cell, x, state0, params, *, lengths=None, reverse=False, workspace=None,
                      h_mask=None, zoneout=None):
    y, *state_n, cache = forward(x, *state0, *cell.weights(params), lengths=lengths, reverse=reverse,
                                 workspace=workspace, h_mask=h_mask, zoneout=zoneout, check=False,
                                 **cell.function_options())
    return y, tuple(state_n), cache


def _sequence_backward(backward, cell, dy, dstate_n, cache, *, state_grads=None):
    kept = {} if state_grads is None else {f"d{s}_steps": state_grads[s] for s in cell.state_names}
    dstate_n = (None,) * len(cell.state_names) if dstate_n is None else dstate_n
    dx, *rest = backward(dy, *dstate_n, cache, check=False, **kept)
    n = len(cell.state_names)
    return dx, tuple(rest[:n]), {k: g for k, g in zip(WEIGHTS, rest[n:]) if g is not None}


def module_loops(forward_reference, backward_reference, forward, backward, gate_activations):
    """A textbook cell's ``loops``: its module's reference loop and fast path, each pair with
    the module's positional weights, behind the :class:`~numpyrnn.cells.generic.Loop` interface."""
    def loop(kind, forward, backward):
        return Loop(functools.partial(_sequence_forward, forward), functools.partial(_sequence_backward, backward),
                    lambda cell, cache: gate_activations(cache), kind, takes=("recurrent_dropout", "zoneout"))

    return {"reference": loop("reference", forward_reference, backward_reference),
            "fast": loop("fast", forward, backward)}


class BuiltInCell(Cell):
    """A textbook cell: its module's step functions (``steps``: step_forward, step_backward,
    with positional weights) behind the Cell protocol; its class declares ``loops`` (above)."""

    #: the module's (step_forward, step_backward), set by each cell's class
    steps: tuple = ()

    def __init__(self, bias=True):
        check_flag("bias", bias)
        self.bias = bool(bias)

    def __repr__(self):
        return self.short_repr()

    def function_options(self) -> dict:
        """The options the module's forward functions take (nonlinearity, reset_after)."""
        return {}

    def record(self):
        """A model's config records the RNN, the LSTM and the GRU by name ("gru"), their function
        options beside it (``nonlinearity``, ``reset_after``): the form every model of theirs
        has had.  Only the class that declares ``by_name`` itself (rnn.CELL, lstm.CELL,
        gru.CELL; not a subclass such as lstm_fb1), and only at the defaults of every other
        option; any other cell by its config."""
        if type(self).__dict__.get("by_name") and self == type(self)(**self.function_options()):
            return self.name
        return self.config()

    def weights(self, params):
        """(weight_ih, weight_hh, bias_ih, bias_hh) from a parameter dict, None for no bias."""
        return tuple(params.get(k) for k in WEIGHTS)

    def parameters(self, input_size, hidden_size):
        G, H = len(self.blocks), hidden_size
        shapes = {"weight_ih": (G * H, input_size), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        return shapes

    def step_forward(self, x_t, state, params):
        step_forward = self.steps[0]
        *new_state, cache = step_forward(x_t, *state, *self.weights(params), check=False, **self.function_options())
        return tuple(new_state), cache

    def step_backward(self, dstate, cache):
        step_backward = self.steps[1]
        dx_t, *rest = step_backward(*dstate, cache, check=False)
        n = len(self.state_names)
        return dx_t, tuple(rest[:n]), {k: g for k, g in zip(WEIGHTS, rest[n:]) if g is not None}
