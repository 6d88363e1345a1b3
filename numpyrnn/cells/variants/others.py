r"""Three cells from other papers: the Minimal Gated Unit, JANET and IndRNN.  Their derivations
are in docs/derivations.md §15.

``mgu``, Zhou et al. (2016), "Minimal gated unit for recurrent neural networks": the GRU with
its reset and update gates made one, f.  Rows [f | n] in PyTorch's style::

    f = σ(x_t W_if^T + b_if + h_prev W_hf^T + b_hf)
    n = tanh(x_t W_in^T + b_in + (f ⊙ h_prev) W_hn^T + b_hn)
    h = (1 − f) ⊙ h_prev + f ⊙ n

``janet``, van der Westhuizen & Lasenby (2018), "The unreasonable effectiveness of the forget
gate": the LSTM with only a forget gate, whose input gate is tied to it shifted by β = 1, and
whose state is its output (one state, h = c).  Rows [f | c]::

    s = x_t W_if^T + b_if + h_prev W_hf^T + b_hf
    c̃ = tanh(x_t W_ic^T + b_ic + h_prev W_hc^T + b_hc)
    h = σ(s) ⊙ h_prev + (1 − σ(s − β)) ⊙ c̃

    chrono initialisation (Tallec & Ollivier 2018, as the authors' code does it): b_if ~
    log(U(1, t_max)), b_hf = 0, the candidate's biases 0; t_max is the longest dependency.

``indrnn``, Li et al. (2018), "Independently recurrent neural network": every unit has one
recurrent weight of its own, a vector u (H,) instead of a matrix::

    h = relu(x_t W^T + b + u ⊙ h_prev)

    |u| is kept ≤ γ^(1/t_max) (γ = 2: no unit's gradient may grow more than 2-fold over t_max
    steps), by the constrain hook after every optimizer step, as the paper does; u starts
    ~ U(0, γ^(1/t_max)) and W ~ N(0, 0.001²), b = 0, as in the authors' adding experiment.
"""

from __future__ import annotations

import math

import numpy as np

from ...backend import array_module
from ..builtin import check_flag
from ..common import sigmoid
from ..protocol import Cell


def _check_length(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
        raise ValueError(f"{name} must be an integer ≥ 2 (the longest dependency, in steps), got {value!r}")
    return int(value)


class MGU(Cell):
    """The Minimal Gated Unit (Zhou et al. 2016): one gate f both resets h_prev for the
    candidate and mixes the candidate in.  See the module for the equations."""

    name = "mgu"
    section = "§15a"

    def __repr__(self):
        return self.short_repr()

    def __init__(self, bias=True):
        check_flag("bias", bias)
        self.bias = bool(bias)

    def parameters(self, input_size, hidden_size):
        H = hidden_size
        shapes = {"weight_ih": (2 * H, input_size), "weight_hh": (2 * H, H)}
        if self.bias:
            shapes.update(bias_ih=(2 * H,), bias_hh=(2 * H,))
        return shapes

    def step_forward(self, x_t, state, params):
        xp = array_module(x_t)
        (h_prev,) = state
        H = h_prev.shape[-1]
        W_ih, W_hh = params["weight_ih"], params["weight_hh"]
        ax = x_t @ W_ih.T                                              # x_t W_i{f,n}^T, one product
        if self.bias:
            ax = ax + params["bias_ih"]
        b_hf, b_hn = ((params["bias_hh"][:H], params["bias_hh"][H:]) if self.bias else (0, 0))
        f = sigmoid(ax[:, :H] + h_prev @ W_hh[:H].T + b_hf)            # f = σ(x W_if^T + b_if + h W_hf^T + b_hf)
        fh = f * h_prev                                                # f ⊙ h_prev
        n = xp.tanh(ax[:, H:] + fh @ W_hh[H:].T + b_hn)                # n = tanh(x W_in^T + b_in + (f ⊙ h) W_hn^T + b_hn)
        h = (1 - f) * h_prev + f * n                                   # h = (1 − f) ⊙ h_prev + f ⊙ n
        return (h,), {"x_t": x_t, "h_prev": h_prev, "params": params, "f": f, "fh": fh, "n": n}

    def step_backward(self, dstate, cache):
        xp = array_module(dstate[0])
        (dh,) = dstate
        x_t, h_prev, params, f, fh, n = (cache[k] for k in ("x_t", "h_prev", "params", "f", "fh", "n"))
        H = h_prev.shape[-1]
        W_ih, W_hh = params["weight_ih"], params["weight_hh"]
        dh_prev = dh * (1 - f)                                         # dh_prev = dh ⊙ (1 − f)   (more below)
        df = dh * (n - h_prev)                                         # df = dh ⊙ (n − h_prev)   (more below)
        da_n = dh * f * (1 - n * n)                                    # da_n = dh ⊙ f ⊙ (1 − n²)
        d_fh = da_n @ W_hh[H:]                                         # d(f ⊙ h) = da_n W_hn
        df = df + d_fh * h_prev                                        # df += d(f ⊙ h) ⊙ h_prev
        dh_prev = dh_prev + d_fh * f                                   # dh_prev += d(f ⊙ h) ⊙ f
        da_f = df * f * (1 - f)                                        # da_f = df ⊙ f(1 − f)
        dh_prev = dh_prev + da_f @ W_hh[:H]                            # dh_prev += da_f W_hf
        dax = xp.concatenate([da_f, da_n], axis=1)                     # dax = [da_f | da_n]
        grads = {"weight_ih": dax.T @ x_t,                             # dW_ih = dax^T x_t
                 "weight_hh": xp.concatenate([da_f.T @ h_prev,         # dW_hf = da_f^T h_prev
                                              da_n.T @ fh])}           # dW_hn = da_n^T (f ⊙ h_prev)
        if self.bias:
            grads.update(bias_ih=dax.sum(axis=0), bias_hh=dax.sum(axis=0))   # db = Σ_batch dax
        return dax @ W_ih, (dh_prev,), grads                           # dx_t = dax W_ih

    def gate_activations(self, cache):
        return {"f": cache["f"], "n": cache["n"]}


class JANET(Cell):
    """JANET (van der Westhuizen & Lasenby 2018): the forget-gate-only LSTM.  See the module for
    the equations; ``t_max`` (the longest dependency, which the chrono initialisation of the
    forget bias reads) is filled by the commands from the task's sequence length; ``beta`` is
    the shift of the input gate, 1 in the paper."""

    name = "janet"
    section = "§15b"
    init_options = ("t_max",)
    length_options = ("t_max",)

    def __repr__(self):
        return self.short_repr()

    def __init__(self, t_max=100, beta=1.0, bias=True):
        check_flag("bias", bias)
        if not bias:
            raise ValueError("janet's chrono initialisation sets the forget gate's bias: it needs bias=True")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta):
            raise ValueError(f"beta must be a finite number, got {beta!r}")
        self.t_max, self.beta, self.bias = _check_length("t_max", t_max), float(beta), True

    def parameters(self, input_size, hidden_size):
        H = hidden_size
        return {"weight_ih": (2 * H, input_size), "weight_hh": (2 * H, H), "bias_ih": (2 * H,),
                "bias_hh": (2 * H,)}

    def initialize(self, params, hidden_size, rng):
        super().initialize(params, hidden_size, rng)                   # weights: U(−1/√H, 1/√H)
        H = hidden_size
        params["bias_ih"][:H] = [math.log(u) for u in rng.uniform(1, self.t_max, H)]   # chrono: b_f ~ log(U(1, t_max))
        params["bias_hh"][:H] = 0.0
        params["bias_ih"][H:] = params["bias_hh"][H:] = 0.0             # the candidate's biases: 0

    def step_forward(self, x_t, state, params):
        xp = array_module(x_t)
        (h_prev,) = state
        H = h_prev.shape[-1]
        a = x_t @ params["weight_ih"].T + params["bias_ih"] + h_prev @ params["weight_hh"].T + params["bias_hh"]
        s, a_c = a[:, :H], a[:, H:]                                    # s and the candidate's pre-activation
        f = sigmoid(s)                                                 # f = σ(s)
        u = sigmoid(self.beta - s)                                     # 1 − σ(s − β) = σ(β − s)
        c_tilde = xp.tanh(a_c)                                         # c̃ = tanh(a_c)
        h = f * h_prev + u * c_tilde                                   # h = f ⊙ h_prev + (1 − σ(s − β)) ⊙ c̃
        return (h,), {"x_t": x_t, "h_prev": h_prev, "params": params, "f": f, "u": u, "c_tilde": c_tilde}

    def step_backward(self, dstate, cache):
        xp = array_module(dstate[0])
        (dh,) = dstate
        x_t, h_prev, params, f, u, c_tilde = (cache[k] for k in ("x_t", "h_prev", "params", "f", "u", "c_tilde"))
        ds = dh * h_prev * f * (1 - f) - dh * c_tilde * u * (1 - u)    # ds = dh ⊙ h_prev ⊙ σ'(s) − dh ⊙ c̃ ⊙ σ'(β − s)
        da_c = dh * u * (1 - c_tilde * c_tilde)                        # da_c = dh ⊙ u ⊙ (1 − c̃²)
        da = xp.concatenate([ds, da_c], axis=1)                        # da = [ds | da_c]
        dh_prev = dh * f + da @ params["weight_hh"]                    # dh_prev = dh ⊙ f + da W_hh
        grads = {"weight_ih": da.T @ x_t, "weight_hh": da.T @ h_prev,  # dW_ih = da^T x_t, dW_hh = da^T h_prev
                 "bias_ih": da.sum(axis=0), "bias_hh": da.sum(axis=0)}  # db = Σ_batch da
        return da @ params["weight_ih"], (dh_prev,), grads             # dx_t = da W_ih

    def gate_activations(self, cache):
        return {"f": cache["f"], "input": cache["u"], "c_tilde": cache["c_tilde"]}


class IndRNN(Cell):
    """The independently recurrent network (Li et al. 2018): h = relu(x_t W^T + b + u ⊙ h_prev),
    one recurrent weight per unit, |u| ≤ γ^(1/t_max) kept by :meth:`constrain`.  ``t_max`` is
    filled by the commands from the task's sequence length; ``gamma`` is the paper's 2."""

    name = "indrnn"
    section = "§15c"
    length_options = ("t_max",)
    h_prev_only_in_products = True   # h_{t−1} enters only u ⊙ h_{t−1}: recurrent dropout may mask it

    def __repr__(self):
        return self.short_repr()

    def __init__(self, t_max=100, gamma=2.0, bias=True):
        check_flag("bias", bias)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not (1 <= gamma < math.inf):
            raise ValueError(f"gamma must be a finite number ≥ 1 (the largest growth allowed over t_max steps), "
                             f"got {gamma!r}")
        self.t_max, self.gamma, self.bias = _check_length("t_max", t_max), float(gamma), bool(bias)

    @property
    def bound(self):
        """γ^(1/t_max): the largest |u|."""
        return self.gamma ** (1.0 / self.t_max)

    def parameters(self, input_size, hidden_size):
        shapes = {"weight_ih": (hidden_size, input_size), "weight_hh": (hidden_size,)}
        if self.bias:
            shapes["bias_ih"] = (hidden_size,)
        return shapes

    def initialize(self, params, hidden_size, rng):
        params["weight_ih"][...] = rng.normal(0.0, 0.001, params["weight_ih"].shape)   # W ~ N(0, 0.001²)
        params["weight_hh"][...] = rng.uniform(0.0, self.bound, hidden_size)          # u ~ U(0, γ^(1/t_max))
        if self.bias:
            params["bias_ih"][...] = 0.0

    def step_forward(self, x_t, state, params):
        xp = array_module(x_t)
        (h_prev,) = state
        a = x_t @ params["weight_ih"].T + params["weight_hh"] * h_prev  # a = x W^T + u ⊙ h_prev (+ b)
        if self.bias:
            a = a + params["bias_ih"]
        h = xp.maximum(a, 0)                                           # h = relu(a)
        return (h,), {"x_t": x_t, "h_prev": h_prev, "params": params, "h": h}

    def step_backward(self, dstate, cache):
        (dh,) = dstate
        x_t, h_prev, params, h = (cache[k] for k in ("x_t", "h_prev", "params", "h"))
        da = dh * (h > 0)                                              # da = dh ⊙ [a > 0], read off h
        grads = {"weight_ih": da.T @ x_t,                              # dW = da^T x_t
                 "weight_hh": (da * h_prev).sum(axis=0)}               # du = Σ_batch da ⊙ h_prev
        if self.bias:
            grads["bias_ih"] = da.sum(axis=0)                          # db = Σ_batch da
        return da @ params["weight_ih"], (da * params["weight_hh"],), grads   # dx_t = da W, dh_prev = da ⊙ u

    def constrain(self, params):
        xp = array_module(params["weight_hh"])
        xp.clip(params["weight_hh"], -self.bound, self.bound, out=params["weight_hh"])   # |u| ≤ γ^(1/t_max)

    def gate_activations(self, cache):
        return {"h": cache["h"]}


VARIANTS = (MGU, JANET, IndRNN)
