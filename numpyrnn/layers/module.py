"""The base of every layer: named parameters and their gradients, PyTorch-style.

``params`` and ``grads`` are dicts keyed by the PyTorch parameter names, holding arrays of the
module's dtype on its device.  ``backward`` *adds* into ``grads`` (so gradients of several
losses accumulate, as in PyTorch); ``zero_grad`` clears them.  Optimizers update ``params`` in
place, so the dicts never need rebuilding.
"""

from __future__ import annotations

import copy

import numpy as np

from .. import backend
from ..validation import check_float_dtype


class Module:
    """Parameters, gradients, state dicts, train/eval mode, dtype and device."""

    #: attributes that hold what a forward stored for its backward: never copied, dropped on moves
    _transient = ("_cache",)

    def __init__(self, *, dtype=np.float32, device="auto"):
        self.dtype = check_float_dtype("dtype", dtype)
        self.device = backend.resolve_device(device)
        self.params: dict = {}
        self.grads: dict = {}
        self.training = True

    # ------------------------------------------------------------------ parameters

    def _add_param(self, name, value):
        """Register a parameter (and a zero gradient) from a NumPy array."""
        self.params[name] = backend.to_device(np.asarray(value, dtype=self.dtype), self.device)
        self.grads[name] = self.xp.zeros_like(self.params[name])

    def zero_grad(self):
        """Set every gradient to zero (in place)."""
        for g in self.grads.values():
            g.fill(0)

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def state_dict(self) -> dict:
        """Copies of the parameters as NumPy arrays, keyed by name, in PyTorch's order."""
        return {name: backend.asnumpy(p).copy() for name, p in self.params.items()}

    def load_state_dict(self, state):
        """Copy parameters in from ``state`` (name → array; a PyTorch ``state_dict`` whose
        tensors were turned into arrays with ``.numpy()`` works as is).

        Names, shapes and values are all checked before anything is written: on any error the
        module is unchanged.
        """
        if not hasattr(state, "keys"):
            raise TypeError(f"state must be a dict of name → array, got {type(state).__name__}")
        missing = [k for k in self.params if k not in state]
        unexpected = [k for k in state if k not in self.params]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if unexpected:
                parts.append(f"unexpected {unexpected}")
            raise KeyError(f"state does not match {type(self).__name__}'s parameters: "
                           + "; ".join(parts) + f" (expected {list(self.params)})")
        arrays = {}
        for name, p in self.params.items():
            value = state[name]
            try:
                value = np.asarray(backend.asnumpy(value) if hasattr(value, "__cuda_array_interface__")
                                   else value)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"state[{name!r}] is not an array ({type(value).__name__})") from exc
            if value.shape != p.shape:
                raise ValueError(f"state[{name!r}] has shape {value.shape}, expected {tuple(p.shape)}")
            if value.dtype.kind not in "fiu":
                raise TypeError(f"state[{name!r}] must hold real numbers, got dtype {value.dtype}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"state[{name!r}] contains NaN or Inf")
            arrays[name] = value
        for name, value in arrays.items():
            self.params[name][...] = backend.to_device(value.astype(self.dtype), self.device)

    # ------------------------------------------------------------------ randomness

    def rng_state(self) -> dict:
        """The state of every random generator the forward draws from (dropout), as plain data."""
        return {}

    def set_rng_state(self, state: dict):
        """Restore what :meth:`rng_state` returned, so the next forward draws the same numbers."""

    # ------------------------------------------------------------------ modes, dtype, device

    def train(self, mode: bool = True):
        """Training mode (dropout active).  Returns self, as in PyTorch."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode (dropout off).  Returns self."""
        return self.train(False)

    @property
    def xp(self):
        """The array module of this module's device (numpy or cupy)."""
        return backend.module_for(self.device)

    def _drop_cache(self):
        """Forget what the last forward stored for backward (after a dtype or device change)."""
        for name in self._transient:
            self.__dict__[name] = None

    def to(self, device):
        """Move parameters and gradients to ``device`` (``"cpu"``, ``"gpu"`` or ``"auto"``), in place."""
        device = backend.resolve_device(device)
        if device != self.device:
            self.params = {k: backend.to_device(v, device) for k, v in self.params.items()}
            self.grads = {k: backend.to_device(v, device) for k, v in self.grads.items()}
            self.device = device
            self._drop_cache()
        return self

    def astype(self, dtype):
        """A copy of this module computing in ``dtype`` (float32 or float64)."""
        dtype = check_float_dtype("dtype", dtype)
        skip = {"params", "grads", *self._transient}
        twin = type(self).__new__(type(self))
        twin.__dict__.update(copy.deepcopy({k: v for k, v in self.__dict__.items() if k not in skip}))
        twin._drop_cache()
        twin.dtype = dtype
        twin.params = {k: v.astype(dtype) for k, v in self.params.items()}
        twin.grads = {k: v.astype(dtype) for k, v in self.grads.items()}
        return twin
