"""Checks on what users pass in, run before any work.

Every failure names the argument, says what was expected and what was given.  Shapes and
lengths that are wrong raise ``ValueError``; wrong kinds of numbers raise ``TypeError``.
"""

from __future__ import annotations

import numbers

import numpy as np

from .backend import array_module, to_device

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_float_dtype(name, dtype):
    """A parameter dtype numpyrnn computes in: float32 or float64."""
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from exc
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dtype}")
    return dtype


def check_int(name, value, minimum=None):
    """An integer (not a bool) no smaller than ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}, got {value}")
    return int(value)


def check_probability(name, value):
    """A dropout probability: a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)


def check_shape(name, a, shape):
    """Raise ValueError naming ``name`` unless ``a`` has exactly ``shape``."""
    if getattr(a, "shape", None) != tuple(shape):
        got = getattr(a, "shape", type(a).__name__)
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {got}")


def as_float_array(name, a, dtype, device):
    """``a`` as an array of ``dtype`` on ``device``, rejecting what is not real floating point.

    Integers, booleans, complex numbers and objects are refused (a TypeError naming ``name``):
    silently treating token ids or flags as real-valued input hides mistakes.  Floats of the
    other precision are converted.
    """
    if a is None:
        raise TypeError(f"{name} must be an array, got None")
    if array_module(a) is np and device == "gpu" or array_module(a) is not np and device == "cpu":
        a = to_device(a, device)
    xp = array_module(a)
    try:
        a = xp.asarray(a)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of floats, got {type(a).__name__} ({exc})") from exc
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must hold floating-point numbers, got dtype {a.dtype}")
    return a.astype(dtype, copy=False)


def check_finite(name, a):
    """Raise ValueError naming ``name`` and the first bad index if ``a`` holds NaN or Inf."""
    xp = array_module(a)
    finite = xp.isfinite(a)
    if not bool(finite.all()):
        index = tuple(int(i) for i in np.unravel_index(int(xp.argmin(finite)), a.shape))
        raise ValueError(f"{name} contains NaN or Inf (first at index {index}: {a[index]})")


def as_lengths(lengths, T, B):
    """Sequence lengths as a NumPy int64 array (B,), each in 1..T."""
    try:
        arr = np.asarray(lengths if array_module(lengths) is np else array_module(lengths).asnumpy(lengths))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"lengths must be an array of integers, got {type(lengths).__name__}") from exc
    if arr.shape != (B,):
        raise ValueError(f"lengths must have shape ({B},), one length per sequence in the batch, "
                         f"got {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"lengths must be integers, got dtype {arr.dtype}")
    if B and (arr.min() < 1 or arr.max() > T):
        bad = int(np.flatnonzero((arr < 1) | (arr > T))[0])
        raise ValueError(f"lengths must lie in 1..{T} (the padded length T), got lengths[{bad}] = "
                         f"{int(arr[bad])}")
    return arr.astype(np.int64)
