"""The files a student fills in: signatures, shapes and equations, bodies that raise.

``template(cell, part)`` returns the text of one; ``numpyrnn exercise lstm > my_lstm.py`` writes it.
"""

from __future__ import annotations

import sys

CELLS = ("rnn", "lstm", "gru")
PARTS = ("step", "sequence")

_HEADER = '''"""Exercise: the {title} {what}, by hand, in NumPy.

Fill in the functions below (keep their names and what they return), then grade them:

    numpyrnn grade {filename} --cell {cell} --part {part}

The grader runs them on random float64 cases, compares every output and gradient with
numpyrnn's reference, checks your backward against finite differences of your own forward, and
names the mistake it recognises, with the section of docs/derivations.md to reread ({sections}).
Shapes: B sequences in the batch, I input features, H hidden units{extra_shapes}.
"""

import numpy as np
'''

_STEP = {
    "rnn": '''

def step_forward(x_t, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """One step of the Elman RNN with tanh.

    x_t (B, I), h_prev (B, H), weight_ih (H, I), weight_hh (H, H), bias_ih (H,), bias_hh (H,).

        a = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh
        h = tanh(a)

    Returns (h, cache): h (B, H); cache holds whatever your step_backward needs.
    """
    raise NotImplementedError("step_forward")


def step_backward(dh, cache):
    """Backward of step_forward.  dh (B, H) = dL/dh.

        da      = dh * (1 - h^2)            (tanh'(a) = 1 - tanh(a)^2, read off h)
        dx_t    = da W_ih                   dh_prev = da W_hh
        dW_ih   = da^T x_t                  dW_hh   = da^T h_prev
        db_ih   = db_hh = sum over the batch of da

    Returns (dx_t, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh), shaped like x_t, h_prev,
    weight_ih, weight_hh, bias_ih, bias_hh.
    """
    raise NotImplementedError("step_backward")
''',
    "lstm": '''

def step_forward(x_t, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """One LSTM step, PyTorch's gate order i, f, g, o in the rows of the weights.

    x_t (B, I), h_prev and c_prev (B, H), weight_ih (4H, I), weight_hh (4H, H), biases (4H,).

        a = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh          (B, 4H) = [a_i | a_f | a_g | a_o]
        i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
        c = f * c_prev + i * g
        h = o * tanh(c)

    Returns (h, c, cache): h and c (B, H); cache holds whatever your step_backward needs.
    """
    raise NotImplementedError("step_forward")


def step_backward(dh, dc, cache):
    """Backward of step_forward.  dh, dc (B, H): dL/dh and dL/dc (from the next step).

        do      = dh * tanh(c)
        dc     <- dc + dh * o * (1 - tanh(c)^2)        every path into c
        di = dc * g    df = dc * c_prev    dg = dc * i    dc_prev = dc * f
        da = [di * i(1-i) | df * f(1-f) | dg * (1-g^2) | do * o(1-o)]
        dx_t = da W_ih     dh_prev = da W_hh     dW_ih = da^T x_t     dW_hh = da^T h_prev
        db_ih = db_hh = sum over the batch of da

    Returns (dx_t, dh_prev, dc_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh), shaped like
    x_t, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh.
    """
    raise NotImplementedError("step_backward")
''',
    "gru": '''
#: which GRU you implement: True is PyTorch's (the reset gate after the product with W_hn),
#: False the textbook form of Cho et al. (2014, v3), the reset gate before it.  The grader
#: checks the form you declare here.
RESET_AFTER = True


def step_forward(x_t, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """One GRU step, PyTorch's gate order r, z, n in the rows of the weights.

    x_t (B, I), h_prev (B, H), weight_ih (3H, I), weight_hh (3H, H), biases (3H,); write W_ir,
    W_iz, W_in for the row blocks of weight_ih, W_hr, W_hz, W_hn for those of weight_hh.

        r = sigmoid(x_t W_ir^T + b_ir + h_prev W_hr^T + b_hr)
        z = sigmoid(x_t W_iz^T + b_iz + h_prev W_hz^T + b_hz)
        RESET_AFTER:      n = tanh(x_t W_in^T + b_in + r * (h_prev W_hn^T + b_hn))
        not RESET_AFTER:  n = tanh(x_t W_in^T + b_in + (r * h_prev) W_hn^T + b_hn)
        h = (1 - z) * n + z * h_prev

    Returns (h, cache): h (B, H); cache holds whatever your step_backward needs.
    """
    raise NotImplementedError("step_forward")


def step_backward(dh, cache):
    """Backward of step_forward.  dh (B, H) = dL/dh.

        dn = dh * (1 - z)     dz = dh * (h_prev - n)     dh_prev <- dh * z
        da_n = dn * (1 - n^2)
        RESET_AFTER, m = h_prev W_hn^T + b_hn:  dm = da_n * r,  dr = da_n * m
        not RESET_AFTER:  d(r*h) = da_n W_hn,  dr = d(r*h) * h_prev,  dh_prev += d(r*h) * r
        da_r = dr * r(1-r)    da_z = dz * z(1-z)
        dax = [da_r | da_z | da_n]:   dx_t = dax W_ih,   dW_ih = dax^T x_t,   db_ih = sum dax
        RESET_AFTER, dah = [da_r | da_z | dm]:
            dh_prev += dah W_hh,   dW_hh = dah^T h_prev,   db_hh = sum dah
        not RESET_AFTER:
            dh_prev += [da_r | da_z] W_hh[:2H],   dW_hh = [[da_r | da_z]^T h_prev ; da_n^T (r * h_prev)],
            db_hh = sum dax

    Returns (dx_t, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh), shaped like x_t, h_prev,
    weight_ih, weight_hh, bias_ih, bias_hh.
    """
    raise NotImplementedError("step_backward")
''',
}

_SEQUENCE = {
    "rnn": ('step_backward(dh, step_cache)', 'dx_t, dh_prev, dW_ih, dW_hh, db_ih, db_hh',
            'dy, dh_n, cache', '(dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh)', ''),
    "lstm": ('step_backward(dh, dc, step_cache)', 'dx_t, dh_prev, dc_prev, dW_ih, dW_hh, db_ih, db_hh',
             'dy, dh_n, dc_n, cache', '(dx, dh0, dc0, dweight_ih, dweight_hh, dbias_ih, dbias_hh)',
             '\n    The LSTM carries c_t beside h_t: dc_n starts the loop as dh_n does; dc~_t = m_t dc_t, and\n'
             '    dc_{t-1} = dc_prev + (1 - m_t) dc_t.\n'),
    "gru": ('step_backward(dh, step_cache)', 'dx_t, dh_prev, dW_ih, dW_hh, db_ih, db_hh',
            'dy, dh_n, cache', '(dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh)', ''),
}

_SEQUENCE_BODY = '''
# Given: numpyrnn's reference step functions and sequence forward.  forward(x, h0, ...) runs
# step_forward at every step and keeps each step's cache; you write the backward through time.
from numpyrnn.cells.{cell} import forward_reference as forward  # noqa: F401  (the grader uses it)
from numpyrnn.cells.{cell} import step_backward, step_forward  # noqa: F401


def backward({args}):
    """Backpropagation through time over the cache of forward (docs/derivations.md §3, §7).

    dy (T, B, H): dL/dy_t at every step; {state_args} (B, H): dL/d(final state) (each may be
    None, meaning zero).  cache has three fields:

        cache.steps    list of T step caches in time order: {step_call}
                       returns ({step_returns})
        cache.mask     (T, B, 1) array m_t: 1 at sequence b's real steps, 0 past its end
        cache.reverse  True when the forward ran from t = T-1 down to 0

    The loop, from the forward's last step to its first (reversed order when cache.reverse):

        dh~_t    = m_t (dh_t + dy_t)           the gradient reaching h_t: from step t+1, and from y_t
        dx_t, dh_prev, ... = step_backward(dh~_t, ..., cache.steps[t])
        dh_{{t-1}} = dh_prev + (1 - m_t) dh_t    a padded step passes dh_t back unchanged
        dW       = sum over the steps of each step's dW (and db)
{extra}
    Returns {returns}:
    dx (T, B, I) and the gradients of the initial state(s) and of the four parameters.
    """
    raise NotImplementedError("backward")
'''


_CELL_TEMPLATE = '''"""Exercise: the {name} cell's step, forward and backward, by hand, in NumPy.

The cell (numpyrnn's {qualname}; docs/derivations.md {section}), and its family:

{doc}
Write step_forward and step_backward below; the class inherits everything else from numpyrnn's
(its options, its parameters and how they are drawn).  Keep the names and what they return:

    step_forward(x_t, state, params)  -> (new_state tuple, cache)
    step_backward(dstate, cache)      -> (dx_t, dstate_prev tuple, {{name: gradient}})

state and dstate are tuples in the order of state_names, {states}, each (B, H); params maps each
parameter's name to its array: {params}.  Then grade it:

    numpyrnn grade {filename} --cell {name}

The grader runs it on random float64 cases, compares every output and gradient with numpyrnn's
{name}, checks your backward against finite differences of your own forward, and says where
what is wrong lies.
"""

import numpy as np

from numpyrnn.cells.common import sigmoid  # noqa: F401  (σ, overflow-free)
from {module} import {classname}


class My{classname}({classname}):
    def step_forward(self, x_t, state, params):
        raise NotImplementedError("step_forward")

    def step_backward(self, dstate, cache):
        raise NotImplementedError("step_backward")
'''


def cell_template(name):
    """The exercise file for a registered cell other than the three with exercises of their own:
    a subclass of numpyrnn's cell whose step forward and backward the student writes."""
    import inspect
    import textwrap

    from .. import cells

    cls = cells.lookup(name)
    section = {"numpyrnn.cells.variants.lstm_family": "§14", "numpyrnn.cells.variants.others": "§15"}.get(
        cls.__module__, "§13")
    family = inspect.getdoc(sys.modules[cls.__module__]) or ""
    doc = textwrap.indent(f"{inspect.getdoc(cls)}\n\n{family}", "    ")
    shapes = cls().parameters(4, 5)
    return _CELL_TEMPLATE.format(name=name, qualname=f"{cls.__module__}.{cls.__qualname__}", section=section,
                                 doc=doc + "\n", states=", ".join(cls.state_names),
                                 params=", ".join(f"{k} {v}" for k, v in shapes.items()) + " (for I = 4, H = 5)",
                                 filename=f"my_{name}.py", module=cls.__module__, classname=cls.__name__)


#: the exercises that are not a cell's: attention's step (derivations §18)
OTHER = ("attention",)

_ATTENTION = '''"""Exercise: attention's step forward and backward (Luong's general score), by hand, in NumPy.

Fill in the functions below (keep their names and what they return), then grade them:

    numpyrnn grade my_attention.py --cell attention

The grader runs them on random float64 cases, compares every output and gradient with
numpyrnn's reference (numpyrnn.layers.attention, form="general"), checks your backward against
finite differences of your own forward, and names the mistake it recognises, with the section of
docs/derivations.md to reread (§18).  Shapes: B sequences in the batch, S source positions (the
keys: the encoder's outputs), Hq the query's size (the decoder's state), Hk the keys' size.
"""

import numpy as np


def step_forward(query, keys, weight, lengths):
    """One decoder step's attention over the encoder's outputs.

    query (B, Hq), keys (S, B, Hk) time-major, weight W_a (Hq, Hk), lengths (B,) integers: the
    real source positions of each sequence are s < lengths[b] (None: all S are real).

        u     = query W_a                     (B, Hk)
        e_s   = u · k_s                       (S, B)    the scores
        e_s   = -inf where s >= lengths[b]    padding takes no weight
        alpha = softmax of e over s           (S, B)    (subtract the max over s before exp)
        c     = sum over s of alpha_s k_s     (B, Hk)   the context

    Returns (context, alpha, cache): cache holds whatever your step_backward needs.
    """
    raise NotImplementedError("step_forward")


def step_backward(dcontext, cache):
    """Backward of step_forward.  dcontext (B, Hk) = dL/dc (the loss reads the context only).

        dalpha_s = dcontext · k_s                                  (S, B)
        de_s     = alpha_s (dalpha_s - sum over r of alpha_r dalpha_r)
        dkeys_s  = alpha_s dcontext + de_s u                       (S, B, Hk): both paths into k_s
        du       = sum over s of de_s k_s                          (B, Hk)
        dquery   = du W_a^T                                        (B, Hq)
        dweight  = query^T du                                      (Hq, Hk): summed over the batch

    Returns (dquery, dkeys, dweight), shaped like query, keys, weight.
    """
    raise NotImplementedError("step_backward")
'''


def template(cell, part="step"):
    """The text of the exercise file for ``cell`` and ``part``.  The three textbook cells (rnn,
    lstm, gru) have two parts: step (the step forward and backward) and sequence (the backward
    loop through time over the reference's cache); every other registered cell (the gallery's
    variants) has its step, as a subclass of numpyrnn's cell to fill in; "attention" is attention's
    step (Luong's general score, derivations §18)."""
    if cell in OTHER:
        if part != "step":
            raise ValueError(f"{cell} has a step exercise only: part must be 'step', got {part!r}")
        return _ATTENTION
    if cell not in CELLS:
        from .. import cells

        if not isinstance(cell, str) or cell not in cells.names():
            raise ValueError(f"cell must be one of {', '.join(CELLS)} or a registered cell's name, got {cell!r}")
        if part != "step":
            raise ValueError(f"{cell} has a step exercise only: part must be 'step', got {part!r}")
        return cell_template(cell)
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    title = {"rnn": "RNN (tanh)", "lstm": "LSTM", "gru": "GRU"}[cell]
    section = {"rnn": "§4", "lstm": "§5", "gru": "§6"}[cell]
    head = _HEADER.format(title=title, cell=cell, part=part, filename=f"my_{cell}.py",
                          what="step forward and backward" if part == "step" else "backward through time",
                          sections=f"{section}" if part == "step" else f"§3, §7 and {section}",
                          extra_shapes="" if part == "step" else ", T time steps")
    if part == "step":
        return head + _STEP[cell]
    step_call, step_returns, args, returns, extra = _SEQUENCE[cell]
    state_args = ", ".join(a for a in args.split(", ") if a.startswith("d") and a != "dy")
    return head + _SEQUENCE_BODY.format(cell=cell, args=args, state_args=state_args, step_call=step_call,
                                        step_returns=step_returns, returns=returns, extra=extra)
