"""Output folders and files, checked before any work: nothing a user saved is lost.

A command that writes a folder (``train --out``, ``compare --out``, ``sweep --out``,
``gradflow --out``) refuses one that holds a run already, unless told to continue it
(``--resume``, train only) or to replace it (``--overwrite``, which removes only the files the
command itself writes, never anything else in the folder).  Every output path is checked before
any work starts: a folder where a folder is needed, a file where a file is, and somewhere the
user may write (tried: a folder made and a file written, then removed again); the message
names the flag and the path.
"""

from __future__ import annotations

import os
import tempfile

#: the files each command writes in its folder
FILES = {
    "train": ("checkpoint.npz", "history.jsonl", "model.npz", "metrics.json"),
    "compare": ("results.json", "results.md", "compare.png", "detection.png"),   # the last: the anomaly task's
    "sweep": ("sweep.json", "sweep.png"),
    "gradflow": ("gradflow.json", "gradflow.png"),
}


class OutputError(ValueError):
    """An output path that cannot be used, or that holds what the command would overwrite."""


def _probe(folder, flag, path):
    """Make sure ``folder`` exists or can be made, and takes a file: tried for real, then every
    folder the probe made removed again, so that a check leaves nothing behind."""
    folder = os.path.abspath(folder)
    made, probe = [], folder
    while not os.path.exists(probe):
        made.append(probe)
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise OutputError(f"{flag} {path}: {probe} is a file, so no folder can be made under it")
    try:
        for folder_made in reversed(made):
            os.mkdir(folder_made)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    finally:
        for folder_made in made:
            try:
                os.rmdir(folder_made)
            except OSError:
                pass


def check_folder(path, command, *, flag="--out", overwrite=False, resume=False):
    """Check ``path`` as the output folder of ``command`` before any work; returns the files of
    a run already there (which ``overwrite`` means to replace, ``resume`` to continue)."""
    if overwrite and resume:
        raise OutputError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    try:
        path = os.fspath(path)
    except TypeError:
        raise OutputError(f"{flag} must be a folder path, got {type(path).__name__}") from None
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{flag} {path}: a file, not a folder (the command writes several files there)")
    _probe(path, flag, path)
    existing = [name for name in FILES[command] if os.path.exists(os.path.join(path, name))]
    if existing and not (overwrite or resume):
        ways = "pass --resume to continue it, or --overwrite to replace it" if command == "train" else \
            "pass --overwrite to replace it, or give another --out"
        raise OutputError(f"{flag} {path} holds a {command} run already ({', '.join(existing)}): {ways}")
    return existing


def clear(path, command):
    """Remove the files ``command`` writes in ``path`` (for ``--overwrite``), and only those."""
    for name in FILES[command]:
        target = os.path.join(path, name)
        if os.path.isfile(target):
            os.remove(target)


def check_file(path, flag):
    """Check ``path`` as a file a command will write (atomically, beside it): not a folder, in a
    folder that exists or can be made and that the user may write in."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise OutputError(f"{flag} must be a file path, got {type(path).__name__}") from None
    if os.path.isdir(path):
        raise OutputError(f"{flag} {path}: a folder; give the path of the file to write")
    _probe(os.path.dirname(os.path.abspath(path)), flag, path)
    return path
