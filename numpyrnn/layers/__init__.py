"""Layers: modules with parameters, a forward and a hand-written backward; pooling over time."""

from .attention import Attention
from .linear import Embedding, Linear
from .module import Module, ParameterDict
from .pooling import POOLINGS, pool_backward, pool_forward
from .recurrent import GRU, LSTM, RNN, Recurrent

__all__ = ["Module", "ParameterDict", "Recurrent", "RNN", "LSTM", "GRU", "Linear", "Embedding", "Attention",
           "POOLINGS", "pool_forward", "pool_backward"]
