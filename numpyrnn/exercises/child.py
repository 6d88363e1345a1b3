"""The grader's child process: ``python -m numpyrnn.exercises.child FD PATH PARENT`` imports the
student's file at PATH and answers the grader's calls on the socket FD (see
:mod:`numpyrnn.exercises.sandbox`).  A module of its own, which the package does not import, so
that running it does not import it twice.

It ends with its parent (process PARENT), however the parent ends — killed, timed out by a
script, stopped by an editor — even while the student's code loops: on Linux the kernel kills
it (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), and everywhere a watchdog thread ends it when it
finds itself orphaned."""

import os
import sys
import threading
import time
from multiprocessing.connection import Connection


def _die_with(parent):
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass                                  # the watchdog below still stands
    if os.getppid() != parent:                    # the parent ended before this could be arranged
        os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)                               # orphaned: the grader is gone

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    _die_with(int(sys.argv[3]))
    from numpyrnn.exercises.sandbox import serve

    serve(Connection(int(sys.argv[1])), sys.argv[2])
