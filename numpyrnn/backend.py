"""Array backend: NumPy on the CPU, CuPy on a GPU.

The cells never name NumPy or CuPy directly for arrays that may live on a GPU: they ask
:func:`array_module` which module their inputs belong to and call that.  This is the only module
of the package that imports CuPy, and it imports it only when a GPU is asked for or probed,
never when numpyrnn itself is imported.

Device names:

``"cpu"``   NumPy.
``"gpu"``   CuPy; an error that says why when CuPy is missing or sees no GPU.
``"auto"``  the environment variable ``NUMPYRNN_DEVICE`` (``cpu``, ``gpu`` or ``auto``) when it
            is set, else ``"gpu"`` when CuPy imports and sees a GPU, else ``"cpu"``.
"""

from __future__ import annotations

import os
import sys

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
