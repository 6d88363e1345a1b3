r"""Optimizers, gradient clipping and learning-rate schedules, with torch.optim's update rules.

An optimizer works on a model (anything with ``params`` and ``grads`` dicts of the same names):

    opt = Adam(model, lr=1e-3)
    loss, _ = model.forward(x, y); model.zero_grad(); model.backward()
    clip_grad_norm(model.grads, 1.0)
    opt.step()

It reads ``model.params`` and ``model.grads`` at every step and updates the parameters in place,
so it follows the model across ``to(device)``.  Its state (moments, step counts) is kept per
parameter name; ``state_dict()`` / ``load_state_dict()`` give and take it as plain arrays.

The rules, for a parameter θ with gradient g, learning rate γ and weight decay λ (torch.optim's
definitions, in the order torch computes them, so results agree to rounding):

SGD        g ← g + λθ;  b ← g (first step) or μb + (1 − τ)g;  g ← g + μb (Nesterov) or b;  θ ← θ − γg
Adam       g ← g + λθ;  m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;
           θ ← θ − γ/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)          (amsgrad: v ← max(v, v_max))
AdamW      θ ← θ(1 − γλ), then Adam without the λθ term
Adagrad    g ← g + λθ;  γₜ = γ / (1 + (t − 1)η);  s ← s + g²;  θ ← θ − γₜ g / (√s + ε)
RMSprop    g ← g + λθ;  v ← αv + (1 − α)g²;  ṽ = v − ḡ² with ḡ ← αḡ + (1 − α)g (centered) or v;
           b ← μb + g/(√ṽ + ε), θ ← θ − γb (momentum) or θ ← θ − γ g/(√ṽ + ε)

One difference from torch.optim: ε must be > 0.  torch accepts ε = 0, and then a parameter
whose gradient has been exactly zero gets 0/0 = NaN; here that setting is refused.
"""

from __future__ import annotations

import inspect
import math
import numbers

import numpy as np

from . import backend


def _check_hyper(name, value, low=0.0, high=None, open_high=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < low or (high is not None and (value >= high if open_high else value > high)):
        if high is None:
            raise ValueError(f"{name} must be ≥ {low}, got {value}")
        bound = f"[{low}, {high})" if open_high else f"[{low}, {high}]"
        raise ValueError(f"{name} must be in {bound}, got {value}")
    return float(value)


def _check_eps(value, model):
    """ε > 0, in the model's dtype.  torch.optim accepts ε = 0, but then a parameter whose
    gradient (and so its second moment) is exactly zero gets 0/0 = NaN; here that is refused up
    front instead, and so is an ε that rounds to 0 in the model's dtype (1e-50 in float32)."""
    eps = _check_hyper("eps", value)
    if eps == 0:
        raise ValueError("eps must be > 0 (it keeps g / (√v + ε) finite where a gradient is zero), got 0")
    dtype = np.dtype(getattr(model, "dtype", np.float64))
    if dtype.type(eps) == 0:
        raise ValueError(f"eps must be > 0 in the model's dtype, {dtype}, where {eps!r} rounds to 0")
    return eps


class Optimizer:
    """The common part: the model it updates, the learning rate, per-parameter state."""

    #: names of the per-parameter state arrays (saved in checkpoints)
    buffers: tuple = ()

    def __init__(self, model, lr, weight_decay=0.0):
        if not (hasattr(model, "params") and hasattr(model, "grads")):
            raise TypeError(f"an optimizer needs a model with params and grads, got {type(model).__name__}")
        self.model = model
        self.lr = _check_hyper("lr", lr)
        self.weight_decay = _check_hyper("weight_decay", weight_decay)
        self.step_count = 0
        self.state = {name: {} for name in model.params}

    def hyperparameters(self) -> dict:
        """The settings, as plain numbers (saved with checkpoints)."""
        return {"lr": self.lr, "weight_decay": self.weight_decay}

    def _buffer(self, name, key, like):
        state = self.state.setdefault(name, {})
        if key not in state:
            state[key] = backend.array_module(like).zeros_like(like)
        return state[key]

    def step(self):
        """One update of every parameter from its current gradient."""
        self.step_count += 1
        params, grads = self.model.params, self.model.grads
        for name, p in params.items():
            self._update(name, p, grads[name])

    def _update(self, name, p, g):
        raise NotImplementedError

    def _decayed(self, p, g):
        """g + λθ (a new array; the model's gradient is left as it is)."""
        return g + self.weight_decay * p if self.weight_decay else g

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """{"step": t, "<param>/<buffer>": array, ...} as NumPy arrays."""
        out = {"step": np.asarray(self.step_count)}
        for name, buffers in self.state.items():
            for key, value in buffers.items():
                out[f"{name}/{key}"] = backend.asnumpy(value).copy()
        return out

    def check_state_dict(self, state):
        """Raise (KeyError, ValueError) unless ``state`` fits this optimizer and model."""
        self._parse_state(state)

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` gave (names and shapes checked first)."""
        params = self.model.params
        buffers = self._parse_state(state)
        self.step_count = int(state.get("step", 0))
        self.state = {name: {} for name in params}
        for name, bufs in buffers.items():
            for buf, value in bufs.items():
                self.state[name][buf] = backend.to_device(np.asarray(value, dtype=params[name].dtype),
                                                         backend.device_of(params[name]))

    def _parse_state(self, state):
        params = self.model.params
        buffers = {}
        for key, value in state.items():
            if key == "step":
                continue
            name, _, buf = key.rpartition("/")
            if name not in params or buf not in self.buffers:
                raise KeyError(f"optimizer state {key!r} does not belong to this model and "
                               f"{type(self).__name__} (parameters {list(params)}, buffers {self.buffers})")
            if np.shape(value) != params[name].shape:
                raise ValueError(f"optimizer state {key!r} has shape {np.shape(value)}, expected "
                                 f"{params[name].shape}")
            buffers.setdefault(name, {})[buf] = value
        return buffers

    def to(self, device):
        """Move the state to ``device`` (the model moves itself)."""
        device = backend.resolve_device(device)
        self.state = {n: {k: backend.to_device(v, device) for k, v in b.items()} for n, b in self.state.items()}
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, with momentum μ, dampening τ and Nesterov's variant."""

    buffers = ("momentum",)

    def __init__(self, model, lr=1e-2, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(model, lr, weight_decay)
        self.momentum = _check_hyper("momentum", momentum)
        self.dampening = _check_hyper("dampening", dampening)
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        self.nesterov = bool(nesterov)

    def hyperparameters(self):
        return {**super().hyperparameters(), "momentum": self.momentum, "dampening": self.dampening,
                "nesterov": self.nesterov}

    def _update(self, name, p, g):
        g = self._decayed(p, g)                              # g ← g + λθ
        if self.momentum:
            first = "momentum" not in self.state[name]
            buf = self._buffer(name, "momentum", p)
            if first:
                buf[...] = g                                 # b ← g on the first step
            else:
                buf *= self.momentum                         # b ← μb + (1 − τ)g
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g                                     # θ ← θ − γg


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), with bias correction, optional amsgrad; AdamW decouples the
    weight decay."""

    buffers = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled = False

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(model, lr, weight_decay)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas must be a pair (β₁, β₂), got {betas!r}")
        self.betas = (_check_hyper("betas[0]", betas[0], 0, 1, open_high=True),
                      _check_hyper("betas[1]", betas[1], 0, 1, open_high=True))
        self.eps = _check_eps(eps, model)
        self.amsgrad = bool(amsgrad)

    def hyperparameters(self):
        return {**super().hyperparameters(), "betas": list(self.betas), "eps": self.eps,
                "amsgrad": self.amsgrad}

    def _update(self, name, p, g):
        xp = backend.array_module(p)
        beta1, beta2 = self.betas
        if self.decoupled:
            p *= 1 - self.lr * self.weight_decay              # θ ← θ(1 − γλ)
        else:
            g = self._decayed(p, g)                          # g ← g + λθ
        m = self._buffer(name, "exp_avg", p)
        v = self._buffer(name, "exp_avg_sq", p)
        m *= beta1                                           # m ← β₁m + (1 − β₁)g
        m += (1 - beta1) * g
        v *= beta2                                           # v ← β₂v + (1 − β₂)g²
        v += (1 - beta2) * g * g
        t = self.step_count
        bias_correction1 = 1 - beta1 ** t
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** t)
        if self.amsgrad:
            v_max = self._buffer(name, "max_exp_avg_sq", p)
            xp.maximum(v_max, v, out=v_max)
            v = v_max
        denom = xp.sqrt(v) / bias_correction2_sqrt + self.eps
        p -= (self.lr / bias_correction1) * m / denom        # θ ← θ − γ/(1 − β₁ᵗ) · m/(√v̂ + ε)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): θ ← θ(1 − γλ) first."""

    decoupled = True

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(model, lr, betas, eps, weight_decay, amsgrad)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011), with learning-rate decay η."""

    buffers = ("sum",)

    def __init__(self, model, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        super().__init__(model, lr, weight_decay)
        self.lr_decay = _check_hyper("lr_decay", lr_decay)
        self.initial_accumulator_value = _check_hyper("initial_accumulator_value", initial_accumulator_value)
        self.eps = _check_eps(eps, model)

    def hyperparameters(self):
        return {**super().hyperparameters(), "lr_decay": self.lr_decay, "eps": self.eps,
                "initial_accumulator_value": self.initial_accumulator_value}

    def _update(self, name, p, g):
        xp = backend.array_module(p)
        g = self._decayed(p, g)                              # g ← g + λθ
        if "sum" not in self.state[name]:
            self._buffer(name, "sum", p)[...] = self.initial_accumulator_value
        s = self.state[name]["sum"]
        clr = self.lr / (1 + (self.step_count - 1) * self.lr_decay)   # γₜ = γ / (1 + (t − 1)η)
        s += g * g                                           # s ← s + g²
        p -= clr * g / (xp.sqrt(s) + self.eps)               # θ ← θ − γₜ g / (√s + ε)


class RMSprop(Optimizer):
    """RMSprop (Hinton 2012), optionally centered (Graves 2013) and with momentum."""

    buffers = ("square_avg", "grad_avg", "momentum")

    def __init__(self, model, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(model, lr, weight_decay)
        self.alpha = _check_hyper("alpha", alpha, 0, 1)
        self.eps = _check_eps(eps, model)
        self.momentum = _check_hyper("momentum", momentum)
        self.centered = bool(centered)

    def hyperparameters(self):
        return {**super().hyperparameters(), "alpha": self.alpha, "eps": self.eps,
                "momentum": self.momentum, "centered": self.centered}

    def _update(self, name, p, g):
        xp = backend.array_module(p)
        g = self._decayed(p, g)                              # g ← g + λθ
        v = self._buffer(name, "square_avg", p)
        v *= self.alpha                                      # v ← αv + (1 − α)g²
        v += (1 - self.alpha) * g * g
        if self.centered:
            g_avg = self._buffer(name, "grad_avg", p)
            g_avg *= self.alpha                              # ḡ ← αḡ + (1 − α)g
            g_avg += (1 - self.alpha) * g
            avg = xp.sqrt(v - g_avg * g_avg) + self.eps      # √(v − ḡ²) + ε
        else:
            avg = xp.sqrt(v) + self.eps                      # √v + ε
        if self.momentum > 0:
            buf = self._buffer(name, "momentum", p)
            buf *= self.momentum                             # b ← μb + g/(√ṽ + ε)
            buf += g / avg
            p -= self.lr * buf                               # θ ← θ − γb
        else:
            p -= self.lr * g / avg                           # θ ← θ − γ g/(√ṽ + ε)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "adagrad": Adagrad, "rmsprop": RMSprop}


def make(name, model, **kwargs):
    """An optimizer by name: sgd, adam, adamw, adagrad or rmsprop."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    cls = OPTIMIZERS[name]
    allowed = [p for p in inspect.signature(cls).parameters if p != "model"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(f"{name} takes no setting {', '.join(unknown)}; its settings are {', '.join(allowed)}")
    return cls(model, **kwargs)


# --------------------------------------------------------------------------- clipping

def _gradients(grads):
    """The gradient arrays of ``grads``: a module (as torch users hand over ``model.parameters()``,
    its ``grads``) or a dict name → gradient array (``model.grads``)."""
    from .layers import Module

    if isinstance(grads, Module):
        return list(grads.grads.values())
    if not isinstance(grads, dict) or not all(hasattr(g, "shape") and hasattr(g, "dtype") for g in grads.values()):
        raise TypeError(f"grads must be a module or a dict of name → gradient array (model.grads), "
                        f"got {type(grads).__name__}")
    return list(grads.values())


def _norm(arrays) -> float:
    return math.sqrt(sum(float((g * g).sum()) for g in arrays))


def grad_norm(grads) -> float:
    """‖g‖₂ over every gradient together (the norm of the per-tensor norms).  ``grads``: a module
    or its ``grads`` dict."""
    return _norm(_gradients(grads))


def clip_grad_norm(grads, max_norm) -> float:
    """Scale all gradients together so their global norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_`` does (coefficient max_norm / (norm + 1e-6), capped at 1).
    ``grads``: a module (as torch's takes the model's parameters) or its ``grads`` dict.

    Returns the norm before clipping (NaN or Inf if a gradient is not finite; nothing is
    scaled then).
    """
    max_norm = _check_hyper("max_norm", max_norm)
    grads = _gradients(grads)
    total = _norm(grads)
    coef = max_norm / (total + 1e-6)
    if math.isfinite(total) and coef < 1:
        for g in grads:
            g *= coef
    return total


def clip_grad_value(grads, clip_value):
    """Clip every gradient entry into [−clip_value, clip_value], in place.  ``grads``: a module or
    its ``grads`` dict."""
    clip_value = _check_hyper("clip_value", clip_value)
    for g in _gradients(grads):
        backend.array_module(g).clip(g, -clip_value, clip_value, out=g)


# --------------------------------------------------------------------------- schedules

def _check_optimizer(optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a numpyrnn optimizer (optim.SGD, Adam, ...), got "
                        f"{type(optimizer).__name__}")
    return optimizer


class StepLR:
    """γ · decay^⌊t / step_size⌋, t counting calls of :meth:`step` (torch's StepLR)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.optimizer = _check_optimizer(optimizer)
        self.base_lr = optimizer.lr
        if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral) or step_size < 1:
            raise ValueError(f"step_size must be a positive integer, got {step_size!r}")
        self.step_size, self.gamma = int(step_size), _check_hyper("gamma", gamma)
        self.last_epoch = 0

    def lr_at(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lr": self.base_lr}

    def load_state_dict(self, state):
        self.last_epoch, self.base_lr = int(state["last_epoch"]), float(state["base_lr"])
        self.optimizer.lr = self.lr_at(self.last_epoch)


class CosineAnnealingLR(StepLR):
    """η_min + (γ − η_min)(1 + cos(π t / T_max)) / 2 (torch's CosineAnnealingLR, closed form)."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        if isinstance(T_max, bool) or not isinstance(T_max, numbers.Integral) or T_max < 1:
            raise ValueError(f"T_max must be a positive integer, got {T_max!r}")
        self.optimizer = _check_optimizer(optimizer)
        self.base_lr = optimizer.lr
        self.T_max, self.eta_min = int(T_max), _check_hyper("eta_min", eta_min)
        self.last_epoch = 0

    def lr_at(self, t):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` when the validation metric has not improved for
    more than ``patience`` evaluations in a row (torch's ReduceLROnPlateau, with improvement
    meaning strictly better).  The trainer calls :meth:`observe` after each evaluation with the
    task's metric; :meth:`step`, called after each optimizer step as for the other schedules,
    does nothing.  ``mode``: "min" (lower is better) or "max"."""

    def __init__(self, optimizer, factor=0.5, patience=1, mode="min", min_lr=0.0):
        self.optimizer = _check_optimizer(optimizer)
        self.factor = _check_hyper("factor", factor)
        if not 0 < self.factor < 1:
            raise ValueError(f"factor must lie in (0, 1), got {factor!r}")
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 0:
            raise ValueError(f"patience must be a whole number ≥ 0, got {patience!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience, self.mode, self.min_lr = int(patience), mode, _check_hyper("min_lr", min_lr)
        self.best, self.bad = None, 0

    def step(self):
        pass

    def observe(self, value):
        """After an evaluation: the metric ``value``; the learning rate drops after more than
        ``patience`` evaluations in a row without a better value."""
        value = float(value)
        if self.best is None or (value < self.best if self.mode == "min" else value > self.best):
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad > self.patience:
            self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
            self.bad = 0

    def state_dict(self):
        return {"best": self.best, "bad": self.bad, "lr": self.optimizer.lr}

    def load_state_dict(self, state):
        self.best, self.bad = state["best"], int(state["bad"])
        self.optimizer.lr = float(state["lr"])
