"""The math of each recurrent cell: step and sequence, forward and backward.

One file per cell, each read top to bottom as the equations, the step forward, the step backward,
then the reference sequence forward and backward: the textbook loop over the step functions
(``forward_reference``, ``backward_reference``), an equation a line, with the section of
docs/derivations.md it comes from.  Nothing here knows about layers or training.

``forward`` and ``backward`` of each cell module are its fast path (:mod:`numpyrnn.cells.fast`):
the same functions arranged for speed, with the same signatures and results (the tests hold the
two together to 1e-12 in float64).  Either pair can stand in for the other; each reads only its
own cache.

Every cell module has the same shape of interface:

``forward(x, *state0, weight_ih, weight_hh, bias_ih, bias_hh, *, lengths, reverse, workspace, **options)``
    → ``(y, *state_n, cache)``   (likewise ``forward_reference``)
``backward(dy, *dstate_n, cache)``
    → ``(dx, *dstate0, dweight_ih, dweight_hh, dbias_ih, dbias_hh)``   (likewise ``backward_reference``)
``step_forward(x_t, *state_prev, weight_ih, weight_hh, bias_ih, bias_hh, **options)``
    → ``(*state, cache)``;  ``step_backward(*dstate, cache)`` → ``(dx_t, *dstate_prev, dweights...)``

with ``STATE_NAMES`` naming the states (``("h",)`` or ``("h", "c")``) and ``GATES`` the number of
gate blocks in the weight rows.

A cell is also an object, :class:`Cell` (:mod:`numpyrnn.cells.protocol`): the step forward and
backward over state tuples and a parameter dict, which :class:`numpyrnn.Recurrent` runs over
sequences with :mod:`numpyrnn.cells.generic`, the loop written once for any cell.  The three
cells are ``rnn.CELL``, ``lstm.CELL`` and ``gru.CELL``; :func:`register` and :func:`get` are the
one place where cell names live.
"""

from . import generic, protocol
from .protocol import (
    Cell, CellError, for_length, from_config, from_record, get, label, lookup, names, register, resolve, takes,
    with_options,
)
from . import gru, lstm, rnn  # noqa: E402  (the cells subclass Cell)
from . import variants  # noqa: E402

for _cell in (rnn.CELL, lstm.CELL, gru.CELL, lstm.FORGET_BIAS_1, *variants.VARIANTS):
    register(_cell)
protocol.BUILT_IN = tuple(protocol._REGISTRY)

__all__ = ["rnn", "lstm", "gru", "variants", "generic", "Cell", "CellError", "register", "get", "names", "lookup", "for_length",
           "resolve", "from_config", "from_record", "label", "takes", "with_options"]
