r"""Losses with their backward passes, as function pairs: ``loss, cache = f(...)`` and
``dinput = f_backward(dloss, cache)``.

Each loss is a mean over the entries that count: all of them, or those where ``mask`` is True
(per-step losses over padded batches pass the mask of real steps).  N below is that count.

Softmax cross-entropy from logits z (..., C) and integer targets y (...)::

    log p = z − logsumexp(z)                 (stable: logsumexp(z) = m + log Σ e^(z − m), m = max z)
    L     = −(1/N) Σ_n log p_n[y_n]
    dz    = (softmax(z) − onehot(y)) / N     at counted entries, 0 elsewhere

Binary cross-entropy from logits z and targets y ∈ [0, 1] (same shape)::

    L     = (1/N) Σ max(z, 0) − z·y + log(1 + e^(−|z|))      (= −y log σ(z) − (1−y) log(1−σ(z)), stably)
    dz    = (σ(z) − y) / N

Mean squared error of predictions ŷ against targets y (same shape; a mask covers the leading
dimensions and every feature under them counts)::

    L     = (1/N) Σ (ŷ − y)²                dŷ = 2 (ŷ − y) / N

The returned loss is a 0-d array (on the inputs' device); ``float(loss)`` gives the number.
Targets and masks are checked (shape, type, NaN); logits and predictions only for shape and
type: a NaN or Inf in them makes the loss NaN or Inf, which is what a diverging model should see.
"""

from __future__ import annotations

import numpy as np

from .backend import array_module
from .cells.common import sigmoid
from .validation import check_finite


def _as_float(name, a, finite=True):
    """``a`` as a float array; with ``finite``, NaN or Inf in it is an error.

    Targets are data and are checked; logits and predictions are what a model computed, and a
    NaN there simply makes the loss NaN, as in PyTorch (the trainer reports it with its step).
    """
    xp = array_module(a)
    a = xp.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must hold float32 or float64 numbers (numpyrnn computes in those), "
                        f"got dtype {a.dtype}")
    if finite:
        check_finite(name, a)
    return a


def _diverged_logits_pass():
    """NaN and Inf in logits or predictions flow into the loss without NumPy's warnings: they are
    a diverging model's, which the loss reports by being NaN or Inf (as in PyTorch)."""
    return np.errstate(invalid="ignore", over="ignore", divide="ignore")


def _as_mask(mask, shape, xp):
    """A boolean mask of ``shape`` (None: everything counts), and how many entries count."""
    if mask is None:
        count = int(np.prod(shape, dtype=np.int64))
        if count == 0:
            raise ValueError(f"the loss must have at least one entry to average, got shape {tuple(shape)}")
        return None, count
    mask = xp.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"mask must be a boolean array (True where the entry counts), got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ValueError(f"mask must have shape {tuple(shape)}, got {mask.shape}")
    count = int(mask.sum())
    if count == 0:
        raise ValueError("mask selects no entries: the mean loss of nothing is undefined")
    return mask, count


# --------------------------------------------------------------------------- softmax cross-entropy

def cross_entropy(logits, targets, mask=None):
    """Mean softmax cross-entropy of logits (..., C) against integer targets (...).

    Returns (loss, cache).
    """
    logits = _as_float("logits", logits, finite=False)
    xp = array_module(logits)
    if logits.ndim < 1:
        raise ValueError("logits must have a class dimension (..., C)")
    C = logits.shape[-1]
    targets = xp.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer class ids, got dtype {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets must have shape {logits.shape[:-1]} (logits without the class "
                         f"dimension), got {targets.shape}")
    if targets.size and (int(targets.min()) < 0 or int(targets.max()) >= C):
        raise ValueError(f"targets must be class ids in 0..{C - 1}, got values in "
                         f"{int(targets.min())}..{int(targets.max())}")
    mask, count = _as_mask(mask, targets.shape, xp)
    with _diverged_logits_pass():
        shifted = logits - logits.max(axis=-1, keepdims=True)        # z − m
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))   # log p = z − logsumexp(z)
        nll = -xp.take_along_axis(log_probs, targets[..., None].astype(np.int64), axis=-1)[..., 0]
        if mask is not None:
            nll = nll * mask
        loss = nll.sum() / nll.dtype.type(count)                                    # L = −(1/N) Σ log p[y]
    cache = (xp.exp(log_probs), targets, mask, count)
    return loss, cache


def cross_entropy_backward(dloss, cache):
    """∂L/∂logits = (softmax(z) − onehot(y)) · dloss / N at counted entries."""
    probs, targets, mask, count = cache
    xp = array_module(probs)
    dlogits = probs - (xp.arange(probs.shape[-1]) == targets[..., None])
    dlogits *= float(dloss) / count
    if mask is not None:
        dlogits *= mask[..., None]
    return dlogits


# --------------------------------------------------------------------------- binary cross-entropy

def binary_cross_entropy_with_logits(logits, targets, mask=None):
    """Mean binary cross-entropy of logits against targets in [0, 1] of the same shape.

    Returns (loss, cache).
    """
    logits = _as_float("logits", logits, finite=False)
    xp = array_module(logits)
    targets = _as_float("targets", xp.asarray(targets)).astype(logits.dtype, copy=False)   # on the logits' device
    if targets.shape != logits.shape:
        raise ValueError(f"targets must have the logits' shape {logits.shape}, got {targets.shape}")
    if targets.size and (float(targets.min()) < 0 or float(targets.max()) > 1):
        raise ValueError("targets must be probabilities in [0, 1]")
    mask, count = _as_mask(mask, logits.shape, xp)
    with _diverged_logits_pass():
        terms = xp.maximum(logits, 0) - logits * targets + xp.log1p(xp.exp(-xp.abs(logits)))
        if mask is not None:
            terms = terms * mask
        loss = terms.sum() / terms.dtype.type(count)
    return loss, (logits, targets, mask, count)


def binary_cross_entropy_with_logits_backward(dloss, cache):
    """∂L/∂logits = (σ(z) − y) · dloss / N at counted entries."""
    logits, targets, mask, count = cache
    dlogits = sigmoid(logits) - targets
    dlogits *= float(dloss) / count
    if mask is not None:
        dlogits *= mask
    return dlogits


# --------------------------------------------------------------------------- mean squared error

def mse(predictions, targets, mask=None):
    """Mean squared error.  ``mask`` may cover the leading dimensions of the predictions (e.g.
    (T, B) over (T, B, F)): every feature under a True entry counts.  Returns (loss, cache)."""
    predictions = _as_float("predictions", predictions, finite=False)
    xp = array_module(predictions)
    targets = _as_float("targets", xp.asarray(targets)).astype(predictions.dtype, copy=False)   # on their device
    if targets.shape != predictions.shape:
        raise ValueError(f"targets must have the predictions' shape {predictions.shape}, got {targets.shape}")
    if mask is None:
        mask_full, count = _as_mask(None, predictions.shape, xp)
    else:
        mask = xp.asarray(mask)
        mask_lead, count_lead = _as_mask(mask, predictions.shape[:mask.ndim], xp)
        mask_full = mask_lead.reshape(mask_lead.shape + (1,) * (predictions.ndim - mask_lead.ndim))
        count = count_lead * int(np.prod(predictions.shape[mask_lead.ndim:], dtype=np.int64))
    with _diverged_logits_pass():
        diff = predictions - targets
        squares = diff * diff if mask_full is None else diff * diff * mask_full
        loss = squares.sum() / squares.dtype.type(count)                                 # L = (1/N) Σ (ŷ − y)²
    return loss, (diff, mask_full, count)


def mse_backward(dloss, cache):
    """∂L/∂ŷ = 2 (ŷ − y) · dloss / N at counted entries."""
    diff, mask, count = cache
    dpred = diff * (2.0 * float(dloss) / count)
    if mask is not None:
        dpred *= mask
    return dpred
