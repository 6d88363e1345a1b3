"""numpyrnn: recurrent networks in NumPy with hand-derived backpropagation through time.

    >>> import numpy as np, numpyrnn
    >>> m = numpyrnn.LSTM(input_size=3, hidden_size=5, seed=0)
    >>> y, (h, c) = m.forward(np.zeros((7, 2, 3), np.float32))      # (T, B, I) → (T, B, H)
    >>> dx, (dh0, dc0) = m.backward(np.ones_like(y))                  # fills m.grads
    >>> sorted(m.grads)
    ['bias_hh_l0', 'bias_ih_l0', 'weight_hh_l0', 'weight_ih_l0']

Any cell runs the same way: ``numpyrnn.Recurrent(cell, input_size, hidden_size, ...)`` over a
:class:`numpyrnn.cells.Cell` of your own (see the README's "Your own cell").

BLAS threads: numpyrnn runs its loops and small products on one thread (fast on a busy machine);
``numpyrnn.set_threads(n)`` or ``with numpyrnn.threads(n):`` chooses n threads instead.
"""

__version__ = "0.1.0"

from . import cells, gradcheck, losses, models
from .backend import DeviceUnavailableError, asnumpy, set_threads, threads
from .layers import GRU, LSTM, RNN, Embedding, Linear, Module, Recurrent
from .models import CharLM, Seq2Seq, SequenceClassifier, SequenceRegressor
from .checkpoint import CheckpointError, load, save

__all__ = ["Recurrent", "RNN", "LSTM", "GRU", "Linear", "Embedding", "Module", "SequenceClassifier",
           "SequenceRegressor", "CharLM", "Seq2Seq", "cells", "gradcheck", "losses", "models", "asnumpy",
           "save", "load", "CheckpointError", "DeviceUnavailableError", "set_threads", "threads", "__version__"]
