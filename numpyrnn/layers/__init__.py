"""Layers: modules with parameters, a forward and a hand-written backward."""

from .module import Module
from .recurrent import GRU, LSTM, RNN, Recurrent

__all__ = ["Module", "Recurrent", "RNN", "LSTM", "GRU"]
