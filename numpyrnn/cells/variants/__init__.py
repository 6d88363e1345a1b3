"""The gallery: cells that change one thing of the LSTM (Greff et al. 2017), and three cells of
other papers (MGU, JANET, IndRNN), each a :class:`~numpyrnn.cells.Cell` with its equations in
its docstring and its backward derived in docs/derivations.md §14 and §15.  All registered by
name, all run on the generic loop.

    lstm_nig lstm_nfg lstm_nog lstm_niaf lstm_noaf lstm_cifg lstm_peephole    (lstm_family.py)
    mgu janet indrnn                                                          (others.py)
"""

from .lstm_family import CIFG, NFG, NIAF, NIG, NOAF, NOG, LSTMFamily, Peephole
from .others import JANET, MGU, IndRNN

VARIANTS = (NIG, NFG, NOG, NIAF, NOAF, CIFG, Peephole, MGU, JANET, IndRNN)

__all__ = ["LSTMFamily", "NIG", "NFG", "NOG", "NIAF", "NOAF", "CIFG", "Peephole", "MGU", "JANET", "IndRNN",
           "VARIANTS"]
