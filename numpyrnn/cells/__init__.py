"""The math of each recurrent cell: step and sequence, forward and backward.

One file per cell, each read top to bottom as the equations, the step forward, the step backward,
the sequence forward and the sequence backward.  Nothing here knows about layers or training.

Every cell module has the same shape of interface:

``forward(x, *state0, weight_ih, weight_hh, bias_ih, bias_hh, *, lengths, reverse, **options)``
    → ``(y, *state_n, cache)``
``backward(dy, *dstate_n, cache)``
    → ``(dx, *dstate0, dweight_ih, dweight_hh, dbias_ih, dbias_hh)``

with ``STATE_NAMES`` naming the states (``("h",)`` or ``("h", "c")``) and ``GATES`` the number of
gate blocks in the weight rows.
"""

from . import gru, lstm, rnn

__all__ = ["rnn", "lstm", "gru"]
