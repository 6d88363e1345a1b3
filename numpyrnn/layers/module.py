"""The base of every layer and model: named parameters and their gradients, PyTorch-style.

``params`` and ``grads`` map names to arrays of the module's dtype on its device.  A module's own
parameters have plain names (``weight_ih_l0``); those of its submodules are prefixed with the
submodule's name (``rnn.weight_ih_l0``, ``head.bias``), in the order the submodules were added.

``backward`` *adds* into ``grads`` (gradients of several losses accumulate, as in PyTorch);
``zero_grad`` clears them.  Parameters are updated in place, so ``m.params[k] -= lr * m.grads[k]``
works, and assigning ``m.params[k] = array`` copies the values into the existing parameter.

Every module's ``forward`` and ``backward`` (a subclass's own included) run under numpyrnn's BLAS
thread policy (:class:`numpyrnn.backend.thread_policy`): set by the outermost call, so a model's
forward sets it once for its layers.
"""

from __future__ import annotations

import copy

import numpy as np

from .. import backend
from ..validation import check_float_dtype


class ParameterDict(dict):
    """name → array.  Assigning to an existing name writes the values into the array in place
    (shapes must match), so the module and anything holding the array (an optimizer) see the
    change; new names cannot be added."""

    def __setitem__(self, name, value):
        if name not in self:
            raise KeyError(f"no parameter named {name!r}; have {list(self)}")
        current = dict.__getitem__(self, name)
        if value is not current:
            if getattr(value, "shape", None) != current.shape:
                raise ValueError(f"{name} must keep its shape {current.shape}, got "
                                 f"{getattr(value, 'shape', type(value).__name__)}")
            current[...] = value


class Module:
    """Parameters, gradients, submodules, state dicts, train/eval mode, dtype and device."""

    #: attributes that hold what a forward stored for its backward: never copied, dropped on moves
    _transient = ("_cache",)

    def __init__(self, *, dtype=np.float32, device="auto"):
        self.dtype = check_float_dtype("dtype", dtype)
        self.device = backend.resolve_device(device)
        self._params: dict = {}
        self._grads: dict = {}
        self._children: dict = {}
        self.training = True
        self._drop_cache()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("forward", "backward"):             # under the thread policy (see the module)
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "thread_policy", False):
                setattr(cls, name, backend.thread_policy()(method))

    def __call__(self, *args, **kwargs):
        """``m(x)`` is ``m.forward(x)``, as in PyTorch: the subclass's forward, whatever it is."""
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ parameters

    def _add_param(self, name, value):
        """Register a parameter (and a zero gradient) from a NumPy array."""
        self._params[name] = backend.to_device(np.asarray(value, dtype=self.dtype), self.device)
        self._grads[name] = self.xp.zeros_like(self._params[name])

    def add_module(self, name, module):
        """Register a submodule (``self.name = module`` does the same); its parameters appear as
        ``name.<its names>``.  Returns the module."""
        if not isinstance(module, Module):
            raise TypeError(f"{name} must be a numpyrnn Module, got {type(module).__name__}")
        setattr(self, name, module)
        return module

    def __setattr__(self, name, value):
        # As in PyTorch: a Module assigned to an attribute becomes a submodule, kept in
        # _children only, so every copy or move of the parent sees exactly one of it.
        children = self.__dict__.get("_children")
        if isinstance(value, Module):
            if children is None:
                raise AttributeError("Module.__init__ must run before submodules are assigned")
            if value.dtype != self.dtype or value.device != self.device:
                raise ValueError(f"submodule {name} is {value.dtype} on {value.device}, but its parent "
                                 f"is {self.dtype} on {self.device}")
            children[name] = value
            self.__dict__.pop(name, None)
        else:
            if children is not None:
                children.pop(name, None)
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only reached when normal lookup fails: submodules live in _children.
        children = self.__dict__.get("_children")
        if children is not None and name in children:
            return children[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def children(self):
        """(name, submodule) pairs, in the order they were added."""
        return list(self._children.items())

    def _collect(self, attribute):
        merged = dict(getattr(self, attribute))
        for prefix, child in self._children.items():
            merged.update({f"{prefix}.{k}": v for k, v in child._collect(attribute).items()})
        return merged

    @property
    def params(self) -> ParameterDict:
        """name → parameter array, this module's and its submodules' (dotted names)."""
        return ParameterDict(self._collect("_params"))

    @property
    def grads(self) -> ParameterDict:
        """name → gradient array, with the same names as :attr:`params`."""
        return ParameterDict(self._collect("_grads"))

    def zero_grad(self):
        """Set every gradient to zero (in place)."""
        for g in self.grads.values():
            g.fill(0)

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def state_dict(self) -> dict:
        """Copies of the parameters as NumPy arrays, keyed by name, in order."""
        return {name: backend.asnumpy(p).copy() for name, p in self.params.items()}

    def load_state_dict(self, state):
        """Copy parameters in from ``state`` (name → array; a PyTorch ``state_dict`` whose
        tensors were turned into arrays with ``.numpy()`` works as is).

        Names, shapes and values are all checked before anything is written: on any error the
        module is unchanged.
        """
        if not hasattr(state, "keys"):
            raise TypeError(f"state must be a dict of name → array, got {type(state).__name__}")
        params = self.params
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        if missing or unexpected:
            parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {unexpected}"] if unexpected else [])
            raise KeyError(f"state does not match {type(self).__name__}'s parameters: "
                           + "; ".join(parts) + f" (expected {list(params)})")
        arrays = {}
        for name, p in params.items():
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
            with np.errstate(over="ignore"):
                cast = value.astype(self.dtype)
            if not np.all(np.isfinite(cast)):
                raise ValueError(f"state[{name!r}] holds values too large for {self.dtype} (largest |value| "
                                 f"{float(np.abs(value).max()):.3g}, {self.dtype}'s largest {np.finfo(self.dtype).max:.3g})")
            arrays[name] = cast
        for name, value in arrays.items():
            params[name] = backend.to_device(value, self.device)

    def constrain(self):
        """Apply the constraints of the cells inside (their ``constrain`` hooks) to the
        parameters, in place; the trainer calls this after every optimizer step."""
        for child in self._children.values():
            child.constrain()

    # ------------------------------------------------------------------ randomness

    def rng_state(self) -> dict:
        """The state of every random generator the forward draws from (dropout), as plain data."""
        return {name: child.rng_state() for name, child in self._children.items()}

    def set_rng_state(self, state: dict):
        """Restore what :meth:`rng_state` returned, so the next forward draws the same numbers."""
        for name, child in self._children.items():
            child.set_rng_state(state[name])

    # ------------------------------------------------------------------ modes, dtype, device

    def train(self, mode: bool = True):
        """Training mode (dropout active), for this module and its submodules.  Returns self."""
        self.training = bool(mode)
        for child in self._children.values():
            child.train(mode)
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
        for child in self._children.values():
            child.to(device)
        if device != self.device:
            self._params = {k: backend.to_device(v, device) for k, v in self._params.items()}
            self._grads = {k: backend.to_device(v, device) for k, v in self._grads.items()}
            self.device = device
            self._drop_cache()
        return self

    def astype(self, dtype):
        """A copy of this module (and its submodules) computing in ``dtype`` (float32 or float64).

        What the last forward cached is not copied.
        """
        dtype = check_float_dtype("dtype", dtype)
        skip = {"_params", "_grads", "_children", *self._transient}
        twin = type(self).__new__(type(self))
        twin.__dict__.update(copy.deepcopy({k: v for k, v in self.__dict__.items() if k not in skip}))
        twin._drop_cache()
        twin.dtype = dtype
        twin._params = {k: v.astype(dtype) for k, v in self._params.items()}
        twin._grads = {k: v.astype(dtype) for k, v in self._grads.items()}
        twin._children = {k: child.astype(dtype) for k, child in self._children.items()}
        return twin
