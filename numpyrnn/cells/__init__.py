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
"""

from . import gru, lstm, rnn

__all__ = ["rnn", "lstm", "gru"]
