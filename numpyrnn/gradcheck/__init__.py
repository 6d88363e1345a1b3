"""Check backward passes against finite differences (docs/derivations.md §12).

Two rooms: :mod:`~numpyrnn.gradcheck.core`, the NumPy core that checks any forward/backward
pair (``check_fn``, ``numerical_gradient``, the report), which knows nothing of layers or
models; and :mod:`~numpyrnn.gradcheck.suite`, which builds layers, models and cells and checks
them with it (``check``, ``check_model``, ``check_step``, ``check_cells``).  Everything is
importable from here.
"""

from .core import MODES, Report, Row, check_fn, numerical_gradient
from .suite import check, check_cells, check_model, check_step, random_lengths, summary

__all__ = ["check", "check_fn", "check_model", "check_step", "check_cells", "numerical_gradient", "random_lengths",
           "summary", "Report", "Row", "MODES"]
