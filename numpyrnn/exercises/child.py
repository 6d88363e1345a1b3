"""The grader's child process: ``python -m numpyrnn.exercises.child FD PATH`` imports the
student's file at PATH and answers the grader's calls on the socket FD (see
:mod:`numpyrnn.exercises.sandbox`).  A module of its own, which the package does not import, so
that running it does not import it twice."""

import sys
from multiprocessing.connection import Connection

from numpyrnn.exercises.sandbox import serve

if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])), sys.argv[2])
