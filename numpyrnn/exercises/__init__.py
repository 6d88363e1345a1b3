"""Learn by doing: write a backward pass yourself, and have it graded with the mistake named.

    numpyrnn exercise lstm > my_lstm.py              # the step forward and backward to fill in
    numpyrnn exercise gru --part sequence > my_bptt.py   # the loop through time, over the reference's cache
    numpyrnn grade my_lstm.py --cell lstm            # every output and gradient checked, mistakes named

From Python: ``template(cell, part)`` gives the file's text, ``grade(path_or_module, cell,
part)`` a :class:`~numpyrnn.exercises.grader.Report`.  The answer key is the reference in
:mod:`numpyrnn.cells`; nothing below this package knows it exists.
"""

from .grader import Diagnosis, GradeError, Report, grade
from .mistakes import MISTAKES
from .templates import CELLS, PARTS, template

__all__ = ["template", "grade", "Report", "Diagnosis", "GradeError", "MISTAKES", "CELLS", "PARTS"]
