"""Pooling a recurrent output over time, for one vector per sequence.

y is time-major (T, B, D·H) and ``lengths`` (B,) gives each sequence's real steps; padded steps
never contribute.

``"last"``  the output at each sequence's last real step, t = lengths[b] − 1.  With two
            directions the reverse half is taken at t = 0, where the reverse pass ends; the
            result then equals the last layer's final states [h_n forward | h_n reverse].
``"mean"``  the average over real steps:  p = Σ_{t < L} y_t / L.
``"max"``   the maximum over real steps, per feature.  Its gradient goes to the step that won
            (the first one on a tie), as in PyTorch.

Backward of each: dy is zero except where the forward read y — at the chosen step (last, max)
or spread as dp / L over the real steps (mean).
"""

from __future__ import annotations

import numpy as np

from ..backend import array_module
from ..validation import as_lengths, check_int

POOLINGS = ("last", "mean", "max")


def check_pooling(mode):
    if mode not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(map(repr, POOLINGS))}, got {mode!r}")
    return mode


def pool_forward(y, lengths=None, mode="last", num_directions=1):
    """Pool y (T, B, F) over time.  Returns (pooled (B, F), cache)."""
    check_pooling(mode)
    num_directions = check_int("num_directions", num_directions, 1)
    xp = array_module(y)
    if getattr(y, "ndim", None) != 3:
        raise ValueError(f"y must be a 3-d array (T, B, features), got shape {getattr(y, 'shape', None)}")
    T, B, F = y.shape
    if F % num_directions:
        raise ValueError(f"y's {F} features do not split into {num_directions} directions")
    lengths = np.full(B, T) if lengths is None else as_lengths(lengths, T, B)
    lengths_xp = xp.asarray(lengths)
    batch = xp.arange(B)
    if mode == "last":
        steps = xp.stack([lengths_xp - 1] + [xp.zeros_like(lengths_xp)] * (num_directions - 1))
        H = F // num_directions
        pooled = xp.concatenate([y[steps[d], batch, d * H:(d + 1) * H] for d in range(num_directions)],
                                axis=1)
        cache = (mode, y.shape, steps, H)
    else:
        real = (xp.arange(T)[:, None] < lengths_xp[None, :])[:, :, None]       # (T, B, 1)
        if mode == "mean":
            counts = lengths_xp.astype(y.dtype)[:, None]                        # in y's dtype: float32 stays
            pooled = (y * real).sum(axis=0) / counts                            # p = Σ_{t<L} y_t / L
            cache = (mode, y.shape, real, counts)
        else:
            masked = xp.where(real, y, -xp.inf)
            winners = masked.argmax(axis=0)                                     # (B, F): the step that won
            pooled = xp.take_along_axis(y, winners[None], axis=0)[0]
            cache = (mode, y.shape, winners, None)
    return pooled, cache


def pool_backward(dpooled, cache):
    """dpooled (B, F) → dy (T, B, F)."""
    mode, shape, index, extra = cache
    xp = array_module(dpooled)
    T, B, F = shape
    if dpooled.shape != (B, F):
        raise ValueError(f"dpooled must have shape {(B, F)}, got {dpooled.shape}")
    dy = xp.zeros(shape, dpooled.dtype)
    batch = xp.arange(B)
    if mode == "last":
        H = extra
        for d in range(index.shape[0]):                  # dy[t_b, b] = dp[b] at the step read
            dy[index[d], batch, d * H:(d + 1) * H] = dpooled[:, d * H:(d + 1) * H]
    elif mode == "mean":
        dy += index * (dpooled / extra)[None]            # dy_t = dp / L at real steps
    else:                                                # dy at the winning step = dp
        dy[index, batch[:, None], xp.arange(F)[None, :]] = dpooled
    return dy
