"""Array backend: NumPy on the CPU, CuPy on a GPU.

The cells never name NumPy or CuPy directly for arrays that may live on a GPU: they ask
:func:`array_module` which module their inputs belong to and call that.  This is the only module
of the package that imports CuPy, and it imports it only when a GPU is asked for or probed,
never when numpyrnn itself is imported.

It also decides how many threads NumPy's BLAS uses for numpyrnn's work (:func:`thread_policy`,
:func:`set_threads`, :func:`matmul`).

Device names:

``"cpu"``   NumPy.
``"gpu"``   CuPy; an error that says why when CuPy is missing or sees no GPU.
``"auto"``  the environment variable ``NUMPYRNN_DEVICE`` (``cpu``, ``gpu`` or ``auto``) when it
            is set, else ``"gpu"`` when CuPy imports and sees a GPU, else ``"cpu"``.
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

DEVICES = ("auto", "cpu", "gpu")
ENV_VAR = "NUMPYRNN_DEVICE"


class DeviceUnavailableError(RuntimeError):
    """A GPU was asked for and none can be used."""


def array_module(*arrays):
    """The array module (numpy or cupy) that ``arrays`` belong to.

    CuPy arrays can exist only once CuPy has been imported, so while it is absent from
    ``sys.modules`` the answer is NumPy without importing anything.
    """
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        for a in arrays:
            if isinstance(a, cupy.ndarray):
                return cupy
    return np


_gpu_probe: tuple[bool, str] | None = None


def gpu_status() -> tuple[bool, str]:
    """``(True, "")`` when CuPy imports and sees a GPU, else ``(False, reason)``.

    The probe runs once per process; its answer is cached.
    """
    global _gpu_probe
    if _gpu_probe is None:
        _gpu_probe = _probe_gpu()
    return _gpu_probe


def _probe_gpu() -> tuple[bool, str]:
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        return False, f"CuPy is not importable ({type(exc).__name__}: {exc}); install it with `pip install numpyrnn[gpu]`"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device
        return False, f"CuPy is installed but finds no usable GPU ({type(exc).__name__}: {exc})"
    if count < 1:
        return False, "CuPy is installed but sees no GPU"
    return True, ""


def resolve_device(device: str = "auto") -> str:
    """Turn ``"auto" | "cpu" | "gpu"`` into ``"cpu"`` or ``"gpu"``, checking that it exists.

    ``NUMPYRNN_DEVICE`` is consulted when ``device`` is ``"auto"``; an explicit argument wins.
    """
    if not isinstance(device, str) or device.lower() not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(map(repr, DEVICES))}, got {device!r}")
    device = device.lower()
    source = "device argument"
    if device == "auto":
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env:
            if env not in DEVICES:
                raise ValueError(f"{ENV_VAR} must be one of {', '.join(DEVICES)}, got {env!r}")
            device, source = env, f"{ENV_VAR}={env}"
    if device == "auto":
        return "gpu" if gpu_status()[0] else "cpu"
    if device == "gpu":
        ok, why = gpu_status()
        if not ok:
            raise DeviceUnavailableError(f"a GPU was requested ({source}) but cannot be used: {why}")
    return device


def module_for(device: str):
    """The array module of a resolved device name (``"cpu"`` or ``"gpu"``)."""
    if device == "gpu":
        import cupy

        return cupy
    return np


def device_of(array) -> str:
    """``"gpu"`` for a CuPy array, ``"cpu"`` for anything else."""
    return "gpu" if array_module(array) is not np else "cpu"


def asnumpy(array):
    """A NumPy array with the contents of ``array`` (copied from the GPU if it lives there)."""
    xp = array_module(array)
    if xp is np:
        return np.asarray(array)
    return xp.asnumpy(array)


def to_device(array, device: str):
    """``array`` on ``device`` (``"cpu"`` or ``"gpu"``); returned as is when already there."""
    if device == "gpu":
        return module_for("gpu").asarray(array)
    return asnumpy(array)


def scatter_add(target, indices, values):
    """In place: target[indices[k]] += values[k] for every k, repeated indices accumulating.

    (``target[indices] += values`` would keep only one of the repeated additions.)
    """
    xp = array_module(target)
    if xp is np:
        # As a product with the (rows of target) × (len(indices)) matrix that has a 1 at
        # (indices[k], k): SciPy's sparse product sums the repeats, 3-7× faster than
        # np.add.at at an embedding's sizes.
        import scipy.sparse

        n, rows = len(indices), target.shape[0]
        if n:
            picks = scipy.sparse.csr_matrix((np.ones(n, values.dtype), (indices, np.arange(n))),
                                            shape=(rows, n))
            target += (picks @ values.reshape(n, -1)).reshape(target.shape)
    else:
        import cupyx

        cupyx.scatter_add(target, indices, values)


FUSED_ENV_VAR = "NUMPYRNN_FUSED"


def fused_enabled(xp) -> bool:
    """Whether the cells should use fused GPU kernels: only on CuPy, and only when
    ``NUMPYRNN_FUSED=1`` (opt-in until a GPU run has checked them against the generic path)."""
    return xp is not np and os.environ.get(FUSED_ENV_VAR, "").strip() == "1"


def elementwise_kernel(in_params, out_params, operation, name):
    """A ``cupy.ElementwiseKernel`` (CuPy is imported here, on first use)."""
    import cupy

    return cupy.ElementwiseKernel(in_params, out_params, operation, name)


# --------------------------------------------------------------------------- BLAS threads
#
# The thread policy (docs/benchmarks.md, "Threads", holds the measurements behind it).  At the
# recurrent step's shapes a matrix product takes microseconds, and BLAS threads that split it
# spend that time waiting for each other; when another process holds a core they wait for it,
# for up to a scheduler's time slice, at every step.  So numpyrnn's work runs with NumPy's BLAS
# on one thread (the loops, the small products, the elementwise math between them), and only a
# product of at least WIDE_FLOP floating-point operations, which the loop never is at numpyrnn's
# shapes, gets the threads the BLAS would use by itself (:func:`matmul`).
#
# A user's own setting wins wherever numpyrnn can see it: set_threads(n) (the command line's
# --threads n) runs everything on n threads; a BLAS variable in the environment
# (OPENBLAS_NUM_THREADS=..., MKL_NUM_THREADS=..., ...) or a limit set at run time (threadpoolctl's
# threadpool_limits around a call) is left as it is.
#
# Entering and leaving a limit costs microseconds (threadpoolctl's controller is cached), so the
# limit is set once around a piece of work — a layer's forward, a training run, a command —
# and never around a step's product.

#: products of at least this many floating-point operations (2·m·k·n) run on every BLAS thread
WIDE_FLOP = 1e9
#: the environment variables through which a user sets BLAS threads (OpenBLAS reads the first
#: three, MKL, BLIS and Apple's Accelerate theirs)
BLAS_ENV_VARS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                 "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


class _BlasThreads:
    """The process's one record of the policy: what the user asked for, and the region in force."""

    def __init__(self):
        self.lock = threading.RLock()
        self.setting = "auto"          # "auto" (the policy) or a number of threads the user chose
        self.depth = 0                 # how deep in thread_policy regions the process is
        self.inside = None             # threads set for the region (None: left as they were)
        self.restore = ()              # (library, threads) to put back when the region ends
        self.controller = None         # threadpoolctl's, for the BLAS libraries loaded
        self.modules = -1              # len(sys.modules) when the controller was made
        self.full = None               # each library's threads when numpyrnn first looked


_blas = _BlasThreads()


def _libraries():
    """The BLAS libraries loaded in the process (NumPy's, and SciPy's own copy once it is loaded),
    as threadpoolctl's controllers; looked up again only after new modules were imported."""
    if len(sys.modules) != _blas.modules:
        from threadpoolctl import ThreadpoolController

        _blas.controller = ThreadpoolController().select(user_api="blas")
        _blas.modules = len(sys.modules)
        full = dict(_blas.full or {})
        for lib in _blas.controller.lib_controllers:
            full.setdefault(lib.filepath, lib.num_threads)     # the library's own choice, untouched
        _blas.full = full
    return _blas.controller.lib_controllers


def blas_env_setting():
    """``"NAME=value"`` of the first BLAS thread variable set in the environment, else None."""
    for name in BLAS_ENV_VARS:
        if os.environ.get(name, "").strip():
            return f"{name}={os.environ[name].strip()}"
    return None


def set_threads(threads="auto"):
    """How many BLAS threads numpyrnn's work uses: ``"auto"`` (the default), the policy — one
    thread, and every core for a product of at least :data:`WIDE_FLOP` — or a number ≥ 1, used
    for everything (the user's choice wins over the policy and over the environment).  Takes
    effect at the next piece of work.  Returns the previous setting."""
    if threads != "auto":
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be 'auto' or a whole number ≥ 1, got {threads!r}")
        threads = int(threads)
    with _blas.lock:
        previous, _blas.setting = _blas.setting, threads
    return previous


class threads:
    """``with threads(n):`` the work inside under ``set_threads(n)`` (None: the setting as it
    is) and the thread policy; the setting before comes back after it."""

    def __init__(self, setting=None):
        self.setting = setting

    def __enter__(self):
        self.previous = None if self.setting is None else set_threads(self.setting)
        self.region = thread_policy()
        self.region.__enter__()
        return self

    def __exit__(self, *exc):
        self.region.__exit__(*exc)
        if self.previous is not None:
            set_threads(self.previous)
        return False


def thread_setting() -> dict:
    """What the policy does now, for a run's records: ``{"setting", "loop", "wide", "wide_flop",
    "source"}`` — the threads of the loops and small products, of the products of at least
    ``wide_flop``, and who decided ("numpyrnn's policy", "set_threads", an environment variable,
    or "left as found")."""
    libs = _libraries()
    full = max((_blas.full[lib.filepath] for lib in libs), default=1)
    if _blas.setting != "auto":
        n = _blas.setting
        return {"setting": n, "loop": n, "wide": n, "wide_flop": None, "source": "set_threads / --threads"}
    env = blas_env_setting()
    if env is not None:
        n = max((lib.num_threads for lib in libs), default=1)
        return {"setting": "auto", "loop": n, "wide": n, "wide_flop": None, "source": f"{env} (left as set)"}
    return {"setting": "auto", "loop": 1, "wide": full, "wide_flop": WIDE_FLOP, "source": "numpyrnn's policy"}


class thread_policy:
    """``with thread_policy():`` runs a piece of numpyrnn's work under the thread policy (see
    above); also a decorator.  Regions nest: only the outermost sets and restores the threads,
    so entering one inside another costs a lock and a counter."""

    def __enter__(self):
        with _blas.lock:
            _blas.depth += 1
            if _blas.depth == 1:
                _enter_region()
        return self

    def __exit__(self, *exc):
        with _blas.lock:
            _blas.depth -= 1
            if _blas.depth == 0:
                for lib, n in _blas.restore:
                    lib.set_num_threads(n)
                _blas.restore, _blas.inside = (), None
        return False

    def __call__(self, function):
        import functools

        @functools.wraps(function)
        def under_thread_policy(*args, **kwargs):
            with thread_policy():
                return function(*args, **kwargs)

        under_thread_policy.thread_policy = True
        return under_thread_policy


def _enter_region():
    """The outermost region begins: set the threads the setting asks for, remembering what to
    restore — unless the user set them (environment, or a run-time limit numpyrnn did not set)."""
    libs = _libraries()
    found = [(lib, lib.num_threads) for lib in libs]
    if _blas.setting != "auto":
        target = _blas.setting
    elif blas_env_setting() is not None or any(n != _blas.full[lib.filepath] for lib, n in found):
        target = None                                   # the user's own setting stands
    else:
        target = 1
    _blas.inside = target
    _blas.restore = tuple((lib, n) for lib, n in found if target is not None and n != target)
    for lib, _ in _blas.restore:
        lib.set_num_threads(target)


def region_threads():
    """The BLAS threads set by the region in force (None outside one, or where the user's own
    setting stands); for tests and records."""
    return _blas.inside


def blas_threads_now() -> int:
    """The threads NumPy's BLAS would use for a product right now (the most over its libraries)."""
    return max((lib.num_threads for lib in _libraries()), default=1)


def matmul(a, b, out=None):
    """``a @ b`` (into ``out``) for the cells' products outside the loops — input projections,
    weight and input gradients: on the threads the BLAS had before the region when the product
    has at least :data:`WIDE_FLOP` operations and the policy set one thread around it, otherwise
    as any product.  CuPy arrays go straight to CuPy."""
    xp = array_module(a)
    if xp is np and _blas.inside == 1 and _blas.restore:
        batch = max(math.prod(a.shape[:-2]), math.prod(b.shape[:-2]))
        if 2.0 * batch * a.shape[-2] * a.shape[-1] * b.shape[-1] >= WIDE_FLOP:
            with _blas.lock:                    # the libraries the region set to 1, back for this product
                for lib, n in _blas.restore:
                    lib.set_num_threads(n)
                try:
                    return np.matmul(a, b, out=out)
                finally:
                    for lib, _ in _blas.restore:
                        lib.set_num_threads(1)
    return xp.matmul(a, b, out=out)
