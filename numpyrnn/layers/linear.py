"""Linear and Embedding layers, each with its backward.

``Linear``:    y = x W^T + b over the last dimension, any leading dimensions.
               dx = dy W,  dW += Σ dy^T x,  db += Σ dy   (sums over every leading index)
``Embedding``: y = W[ids], a row lookup for integer ids of any shape.
               dW[k] += Σ_{positions p with ids[p] = k} dy[p]   (repeated ids accumulate;
               the padding row, if any, receives nothing)
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..validation import as_float_array, check_finite, check_int
from .module import Module


class Linear(Module):
    """y = x W^T + b, as ``torch.nn.Linear`` (weight (out, in), bias (out,), same init)."""

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, seed=None,
                 device="auto"):
        super().__init__(dtype=dtype, device=device)
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.bias = bool(bias)
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)        # PyTorch's default for both
        self._add_param("weight", rng.uniform(-bound, bound, (self.out_features, self.in_features)))
        if self.bias:
            self._add_param("bias", rng.uniform(-bound, bound, self.out_features))

    def forward(self, x, *, check=True):
        """x (..., in_features) → y (..., out_features).

        ``check=False`` skips the NaN/Inf check, for activations a model computed itself (their
        divergence is the trainer's to report, not an input error).
        """
        x = as_float_array("x", x, self.dtype, self.device)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have in_features={self.in_features} in its last dimension, "
                             f"got shape {x.shape}")
        if check:
            check_finite("x", x)
        y = self.apply(x)
        self._cache = x.copy()
        return y

    def apply(self, x):
        """y = x W^T + b on an array already checked, keeping nothing for a backward (a stream's
        head: :class:`numpyrnn.models.Stream`)."""
        y = x @ self._params["weight"].T                  # y = x W^T
        if self.bias:
            y += self._params["bias"]                     #     + b
        return y


    def backward(self, dy):
        """dy (..., out_features) → dx (..., in_features); adds dW, db into ``grads``."""
        if self._cache is None:
            raise RuntimeError("Linear.backward() needs a forward() first")
        x = self._cache
        dy = as_float_array("dy", dy, self.dtype, self.device)
        if dy.shape != x.shape[:-1] + (self.out_features,):
            raise ValueError(f"dy must have shape {x.shape[:-1] + (self.out_features,)}, got {dy.shape}")
        dy2 = dy.reshape(-1, self.out_features)
        self._grads["weight"] += dy2.T @ x.reshape(-1, self.in_features)   # dW = Σ dy^T x
        if self.bias:
            self._grads["bias"] += dy2.sum(axis=0)                          # db = Σ dy
        return dy @ self._params["weight"]                                  # dx = dy W

    def config(self):
        return {"type": "Linear", "in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias, "dtype": self.dtype.name}

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias}, dtype={self.dtype.name})"


def as_indices(name, ids, size):
    """Integer ids as an int64 NumPy array, each in [0, size)."""
    xp = backend.array_module(ids)
    try:
        ids = xp.asarray(ids)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of integer ids, got {type(ids).__name__}") from exc
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer ids, got dtype {ids.dtype}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= size):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise ValueError(f"{name} must lie in 0..{size - 1}, got {bad}")
    return ids.astype(np.int64, copy=False)


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors, as ``torch.nn.Embedding`` (weight ~ N(0, 1);
    the row ``padding_idx``, if given, starts at zero and is never updated)."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, *, dtype=np.float32,
                 seed=None, device="auto"):
        super().__init__(dtype=dtype, device=device)
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        if padding_idx is not None:
            padding_idx = check_int("padding_idx", padding_idx)
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"padding_idx must lie in {-self.num_embeddings}..{self.num_embeddings - 1}, "
                                 f"got {padding_idx}")
            padding_idx %= self.num_embeddings            # negative counts from the end, as in torch
        self.padding_idx = padding_idx
        weight = np.random.default_rng(seed).standard_normal((self.num_embeddings, self.embedding_dim))
        if padding_idx is not None:
            weight[padding_idx] = 0
        self._add_param("weight", weight)

    def forward(self, ids):
        """ids (any shape, integers in 0..num_embeddings−1) → vectors (ids.shape + (embedding_dim,))."""
        ids = as_indices("ids", ids, self.num_embeddings)
        ids = backend.to_device(ids, self.device)
        self._cache = ids
        return self._params["weight"][ids]


    def backward(self, dy):
        """Adds dW into ``grads`` (repeated ids accumulate); ids have no gradient: returns None."""
        if self._cache is None:
            raise RuntimeError("Embedding.backward() needs a forward() first")
        ids = self._cache
        dy = as_float_array("dy", dy, self.dtype, self.device)
        if dy.shape != ids.shape + (self.embedding_dim,):
            raise ValueError(f"dy must have shape {ids.shape + (self.embedding_dim,)}, got {dy.shape}")
        flat_ids, rows = ids.reshape(-1), dy.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:                  # the padding row receives no gradient
            keep = flat_ids != self.padding_idx
            flat_ids, rows = flat_ids[keep], rows[keep]
        backend.scatter_add(self._grads["weight"], flat_ids, rows)   # dW[k] += Σ_{ids = k} dy
        return None

    def config(self):
        return {"type": "Embedding", "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim, "padding_idx": self.padding_idx,
                "dtype": self.dtype.name}

    def __repr__(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}{pad}, dtype={self.dtype.name})"
