"""The experiments numpyrnn's users come for, one module each:

``compare``   LSTM vs GRU vs RNN on one task: accuracy, training time, memory, learning curves
              (``from numpyrnn.experiments.compare import compare, table, write``)
``gradflow``  the gradient reaching each step, and the LSTM's forget gate, before and after
              training (``from numpyrnn.experiments.gradflow import gradflow``)
``sweep``     success on the adding problem against sequence length
              (``from numpyrnn.experiments.sweep import sweep``)

The figures are drawn by :mod:`numpyrnn.plots`.
"""
