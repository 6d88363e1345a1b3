"""The fast sequence paths: each cell's sequence forward and backward, arranged for speed.

``numpyrnn.cells.rnn``, ``.lstm`` and ``.gru`` hold the math as a student reads it: the step
functions and the textbook loop over them (``forward_reference``, ``backward_reference``).  The
modules here compute exactly the same functions (the tests hold them to the reference to 1e-12
in float64); each states its tricks at its top, mapped to the equations they rearrange.  The
cell modules export these as their ``forward`` and ``backward``, the layers' default
(``impl="fast"``).

``fused`` holds the same per-step bodies as single CuPy kernels, for a GPU.
"""

from . import gru, lstm, rnn

__all__ = ["rnn", "lstm", "gru"]
