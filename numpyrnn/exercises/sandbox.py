"""Running a student's code where it cannot touch the verdict.

A :class:`Sandbox` imports the student's file in a child process and runs its functions there,
one call at a time, with a time limit: the cases, the comparisons, the report and the exit code
stay in the parent, so nothing in the file can change a tolerance or a verdict.  ``sys.exit`` or
an exception becomes a :class:`StudentError` saying what the file did; ``os._exit``, a crash, a
segfault or an endless loop ends the child, and the parent says so.  Every array is sent as a
copy, so a function that writes into its arguments changes only its own copies.  What a function
returns that is not data (a cache) stays in the child, and the parent holds a :class:`Handle`
to pass back.

:class:`InProcess` runs a module already imported, in this process (``grade(module)``, as the
walkthrough does): no time limit and no protection from ``os._exit``, but the same copies and
the same errors.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import socket
import subprocess
import sys
import traceback
import types
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

#: seconds one call of the student's code may take
TIMEOUT_S = 60.0
#: seconds for the child's start (a fresh interpreter importing NumPy), before the file is read
STARTUP_S = 30.0
#: seconds the student's file may take to import: a file of functions imports in well under a
#: second, so more is an endless loop (or work) at its top level
IMPORT_S = 10.0


class StudentError(Exception):
    """What the student's code did instead of returning: ``kind`` is "raised", "exited",
    "timeout" or "import"; the message says it in a sentence."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Handle:
    """Something the student's code returned that stays where it was made (a cache)."""
    key: int


def _where(exc, filename):
    """" (line N of the file)" for the deepest frame in the student's file, if any."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" (line {exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if filename and os.path.abspath(f.filename) == os.path.abspath(filename)]
    return f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""


def _describe(exc, filename):
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r}){_where(exc, filename)}"
    if isinstance(exc, NotImplementedError):
        return "is not written yet (it raises NotImplementedError)"
    return f"raised {type(exc).__name__}: {exc}{_where(exc, filename)}"


def import_file(path, name=None):
    """The student's module, imported from ``path`` (exceptions and SystemExit become
    StudentError)."""
    name = name or "numpyrnn_exercise_" + "".join(c if c.isalnum() else "_" for c in os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:        # the student's file: anything can happen in it
        if isinstance(exc, SystemExit):
            what = f"it called sys.exit({exc.code!r}){_where(exc, path)}"
        elif isinstance(exc, SyntaxError):
            what = f"SyntaxError: {exc.msg}{_where(exc, path)}"
        else:
            what = f"{type(exc).__name__}: {exc}{_where(exc, path)}"
        raise StudentError("import", f"{os.path.basename(path)} could not be imported: {what}") from None
    return module


def _has(calls, name):
    """Whether the file defines a function ``name``."""
    return callable(getattr(calls.module, name, None))


def _attribute(calls, name, default):
    """A plain value the file sets (RESET_AFTER), or ``default``."""
    value = getattr(calls.module, name, default)
    return value if isinstance(value, (bool, int, float, str, type(None), np.bool_)) else repr(value)


def _cells(calls, name):
    """The names of the file's own Cell classes whose ``name`` is ``name`` (all of them: None)."""
    from ..cells import Cell

    own = [obj for obj in vars(calls.module).values() if isinstance(obj, type) and issubclass(obj, Cell)
           and obj.__module__ == calls.module.__name__ and isinstance(getattr(obj, "name", None), str)]
    if name is None:
        return sorted(obj.name for obj in own)
    return [obj.__name__ for obj in own if obj.name == name]


def _protocol(calls, cls_name):
    """None when the file's Cell keeps the protocol (numpyrnn's probe, as a layer runs it), else
    what is wrong, in a sentence."""
    from ..cells import CellError, generic

    cell = calls.target(f"{cls_name}.__class__")()
    try:
        shapes = generic.check_parameters(cell, 4, 5)
        params = {n: np.zeros(shape) for n, shape in shapes.items()}
        with generic.calling(cell, "initialize"):
            cell.initialize(params, 5, np.random.default_rng(0))
        generic.check_cell(cell, params, 4, 5, np, np.float64)
    except CellError as exc:
        cause = exc.__cause__
        if isinstance(cause, NotImplementedError):
            return f"{cls_name} is not written yet ({cls_name}.{str(exc).split('.', 1)[1].split(' ')[0]} raises NotImplementedError)"
        return str(exc)
    return None


QUESTIONS = {"__has__": _has, "__attribute__": _attribute, "__cells__": _cells, "__protocol__": _protocol}


class _Calls:
    """The student's side: look a function up, call it on the arguments, keep what is not data."""

    def __init__(self, module, filename):
        self.module, self.filename = module, filename
        self.kept, self.objects = {}, {}

    def target(self, name):
        """``"step_forward"`` (a function of the module) or ``"MyCell.step_forward"`` (a method
        of an instance of the module's class MyCell, made once); or one of the grader's
        questions about the file (:data:`QUESTIONS`)."""
        if name in QUESTIONS:
            return functools.partial(QUESTIONS[name], self)
        if "." not in name:
            return getattr(self.module, name)
        cls_name, method = name.split(".", 1)
        if cls_name not in self.objects:
            self.objects[cls_name] = getattr(self.module, cls_name)()
        return getattr(self.objects[cls_name], method)

    def unwrap(self, value):
        if isinstance(value, Handle):
            return self.kept[value.key]
        if isinstance(value, tuple) and hasattr(value, "_fields"):          # a NamedTuple (a cache)
            return type(value)(*(self.unwrap(v) for v in value))
        if isinstance(value, (tuple, list)):
            return type(value)(self.unwrap(v) for v in value)
        if isinstance(value, dict):
            return {k: self.unwrap(v) for k, v in value.items()}
        return value

    def wrap(self, value, depth=0):
        """Data back to the parent as data (arrays as arrays, of any dtype, to be judged there);
        anything else as a Handle."""
        if value is None or isinstance(value, (bool, int, float, complex, str, np.ndarray, np.generic)):
            return value
        if depth < 2 and type(value) in (tuple, list):
            return type(value)(self.wrap(v, depth + 1) for v in value)
        if depth < 2 and type(value) is dict and all(isinstance(k, str) for k in value):
            return {k: self.wrap(v, depth + 1) for k, v in value.items()}
        key = len(self.kept)
        self.kept[key] = value
        return Handle(key)

    def call(self, name, args):
        try:
            result = self.target(name)(*self.unwrap(args))
        except (Exception, SystemExit) as exc:    # the student's code: anything can happen in it
            raise StudentError("raised", f"{name} {_describe(exc, self.filename)}") from None
        return self.wrap(result)


def serve(conn, path):
    """The child process: say it has started, import the file, then answer calls until told to
    stop."""
    conn.send(("started", None))
    try:
        module = import_file(path)
        conn.send(("ready", None))
    except StudentError as exc:
        conn.send(("error", (exc.kind, str(exc))))
        return
    calls = _Calls(module, path)
    while True:
        request = conn.recv()
        if request is None:
            return
        name, args = request
        try:
            reply = ("ok", calls.call(name, args))
        except StudentError as exc:
            reply = ("error", (exc.kind, str(exc)))
        try:
            conn.send(reply)
        except Exception as exc:                  # what it returned cannot cross to the parent
            conn.send(("error", ("raised", f"{name} returned something that cannot be sent back ({exc})")))


class Sandbox:
    """The student's file in a child process; ``call(name, *args)`` runs one of its functions.

    The child is a fresh interpreter (``python -m numpyrnn.exercises.child``) joined by a
    socket pair, not a multiprocessing child: those re-run the parent's main script, which a
    script that calls ``grade`` at its top level would not survive.  The child's standard output
    goes to this process's standard error, so that a student's prints do not mix with the report.
    """

    def __init__(self, path, timeout=TIMEOUT_S):
        self.path, self.timeout = os.fspath(path), float(timeout)
        mine, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "numpyrnn.exercises.child", str(theirs.fileno()), self.path, str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno()
                if hasattr(sys.stderr, "fileno") and _has_fileno(sys.stderr) else subprocess.DEVNULL, env=env)
        finally:
            theirs.close()
        self._conn = Connection(mine.detach())
        try:
            self._receive("starting Python to run it", STARTUP_S, "a busy machine?")
            self._receive("importing it", min(IMPORT_S, self.timeout), "an endless loop at its top level?")
        except StudentError:
            self.close()
            raise

    def _receive(self, doing, limit=None, why="an endless loop?"):
        name = os.path.basename(self.path)
        limit = self.timeout if limit is None else limit
        try:
            ready = self._conn.poll(limit)
        except (OSError, ValueError):
            ready = True                          # a closed pipe: recv says so
        if not ready:
            self.close(stuck=True)
            raise StudentError("timeout", f"{name} did not finish {doing} within {limit:g} s ({why}); the "
                                          "grader stopped it")
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError):
            try:
                code = self._process.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            self.close()
            raise StudentError("exited", f"{name} ended the process running it while {doing} (exit status "
                                         f"{code}: os._exit, a crash or a signal); it must return instead") from None
        if status == "error":
            raise StudentError(*value)
        return value

    def call(self, name, *args):
        if self._process is None:
            raise StudentError("exited", f"{os.path.basename(self.path)} is no longer running")
        try:
            self._conn.send((name, args))
        except (OSError, ValueError):
            self.close()
            raise StudentError("exited", f"{os.path.basename(self.path)} is no longer running") from None
        return self._receive(f"running {name}")

    def close(self, stuck=False):
        """End the child: asked to stop, and killed if it has not within 2 s (at once when it is
        ``stuck`` in the student's code)."""
        if self._process is not None:
            try:
                self._conn.send(None)
            except (OSError, ValueError):
                pass
            try:
                self._process.wait(0 if stuck else 2)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._conn.close()
            self._process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _has_fileno(stream):
    try:
        stream.fileno()
        return True
    except (OSError, ValueError, AttributeError):
        return False


class InProcess:
    """A module already imported, run in this process, every argument a copy.  Unguarded
    against os._exit and endless loops: grade a file to have those caught."""

    def __init__(self, module):
        if not isinstance(module, types.ModuleType):
            raise TypeError(f"InProcess runs a module, got {type(module).__name__}")
        self._calls = _Calls(module, getattr(module, "__file__", None))

    def call(self, name, *args):
        return self._calls.call(name, copy.deepcopy(args))

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

