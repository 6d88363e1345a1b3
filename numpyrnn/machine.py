"""The machine a number was measured on, and how busy it was.

:func:`describe` says what a timing depends on (CPU, SIMD level, BLAS, threads, NumPy), so that
runs on different machines can be read side by side.  :class:`Meter` records what a piece of
work met: the load average before and after it, the seconds it took, and the CPU seconds its
thread got in that time.  A single-threaded piece of work that had a core to itself gets the CPU
for all of its wall time; when it shares a core it gets less, and its times say as much about the
other work as about its own (``compare`` withholds a speed verdict then: see
:func:`busy_reason`).
"""

from __future__ import annotations

import ctypes
import glob
import os
import platform
import time

import numpy as np

from . import backend

#: a run whose thread had the CPU for less than this share of its wall time waited for a core
#: (quiet, a run gets 0.89-1.0 of it on the 2-core machine of docs/benchmarks.md; beside two busy
#: processes on its 2 cores, about 2/3)
MIN_CPU_SHARE = 0.8


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_average():
    """The 1-minute load average (runnable and waiting threads, this process's included), or
    None where the system does not tell it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def cpu_name() -> str:
    """The CPU's model name, with its family and model numbers where Linux tells them."""
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        family = f" (family {fields['cpu family']}, model {fields['model']})" if "cpu family" in fields else ""
        return fields.get("model name", platform.processor() or platform.machine()) + family
    except (OSError, KeyError, ValueError):
        return platform.processor() or platform.machine()


def simd_level() -> str:
    """The widest vector instructions NumPy finds on this CPU (what its tanh and exp use)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:                          # NumPy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    for flag, name in (("AVX512_SKX", "AVX-512"), ("AVX512F", "AVX-512F"), ("AVX2", "AVX2"),
                       ("AVX", "AVX"), ("SVE", "SVE"), ("ASIMD", "NEON"), ("SSE2", "SSE2")):
        if features.get(flag):
            return name
    return "none found"


def blas_info() -> str:
    """NumPy's BLAS: name, version and (OpenBLAS) the kernels it chose for this CPU."""
    name = "unknown BLAS"
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{blas['name']} {blas.get('version', '')}".strip()
    except (TypeError, KeyError):               # NumPy < 1.26 has no mode="dicts"
        pass
    libs = sorted(glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*")))
    for lib in libs[:1]:
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            break
        for symbol in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
            get = getattr(handle, symbol, None)
            if get is not None:
                get.restype = ctypes.c_char_p
                name = "OpenBLAS" if name == "unknown BLAS" else name
                return f"{name} ({get().decode()} kernels)"
    return name


def threads_text(setting=None) -> str:
    """numpyrnn's BLAS threads in words, from :func:`numpyrnn.backend.thread_setting`."""
    s = setting or backend.thread_setting()
    if s["wide_flop"] is None or s["wide"] == s["loop"]:
        return f"{s['loop']} ({s['source']})"
    return f"{s['loop']}, {s['wide']} for products of ≥ {s['wide_flop']:.0e} flop ({s['source']})"


def describe() -> dict:
    """What the numbers depend on: CPU, SIMD level, BLAS, numpyrnn's BLAS threads, cores, NumPy."""
    return {"cpu": cpu_name(), "simd": simd_level(), "blas": blas_info(), "threads": threads_text(),
            "cores": usable_cores(), "numpy": np.__version__}


class Meter:
    """``with Meter() as m:`` records what the work inside met: ``m.record()`` gives the load
    average before and after, the wall seconds, and the CPU seconds of the calling thread (the
    one that runs numpyrnn's steps: BLAS helper threads are not counted, so a share below 1
    means that thread waited for a core, whatever the thread setting)."""

    def __enter__(self):
        self.load_before = load_average()
        self._wall, self._cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.thread_time() - self._cpu
        self.load_after = load_average()
        return False

    def record(self) -> dict:
        return {"load_before": self.load_before, "load_after": self.load_after, "wall_seconds": self.wall,
                "cpu_seconds": self.cpu, "cpu_share": self.cpu / self.wall if self.wall > 0 else 1.0,
                "cores": usable_cores()}


def busy_reason(records) -> str | None:
    """Why the machine was too busy for the timings of these runs (each a :meth:`Meter.record`)
    to decide a speed claim, or None when it was not:

    * a run whose thread had the CPU for less than :data:`MIN_CPU_SHARE` of its wall time: it
      waited for a core;
    * a load average after a run above the cores by more than half a thread: more threads
      wanted to run than there were cores, so some waited (the 1-minute average covers a long
      run; for short ones it also remembers the minute before).
    """
    records = [r for r in records if r]
    if not records:
        return None
    cores = records[0]["cores"]
    loads = [r["load_after"] for r in records if r.get("load_after") is not None]
    # on a GPU the thread waits for the device by design: its share says nothing of the load
    shares = [r["cpu_share"] for r in records if r.get("device", "cpu") == "cpu"]
    reasons = []
    if loads and max(loads) > cores + 0.5:
        reasons.append(f"load {max(loads):.1f} on {cores} core{'s' if cores > 1 else ''}")
    if shares and min(shares) < MIN_CPU_SHARE:
        reasons.append(f"a run had the CPU {100 * min(shares):.0f} % of its time")
    return ", ".join(reasons) or None
