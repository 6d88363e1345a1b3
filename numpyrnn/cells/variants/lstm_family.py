r"""The LSTM with one thing removed or changed: the variants of Greff et al., "LSTM: A Search
Space Odyssey" (2017).

Our base is PyTorch's LSTM (docs/derivations.md §5), which is Greff's "NP" variant: no
peepholes.  Each variant below removes or changes one thing from that base, so ``lstm_nig`` is
Greff's NIG *without peepholes*, and so on; ``lstm_peephole`` adds the peepholes and is Greff's
"vanilla" LSTM.  The derivations of each are in docs/derivations.md §14.

The base, one step (x_t: (B, I); h_prev, c_prev: (B, H)), over the gate blocks the variant has,
in PyTorch's row order [i | f | g | o]::

    a  = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh
    i  = σ(a_i)      f = σ(a_f)      g = tanh(a_g)      o = σ(a_o)
    c  = f ⊙ c_prev + i ⊙ g
    h  = o ⊙ tanh(c)

and what each variant changes:

    lstm_nig        no input gate            i ≡ 1             (no i rows)
    lstm_nfg        no forget gate           f ≡ 1             (no f rows; the 1997 LSTM)
    lstm_nog        no output gate           o ≡ 1             (no o rows)
    lstm_niaf       no input activation      g = a_g
    lstm_noaf       no output activation     h = o ⊙ c
    lstm_cifg       coupled input and forget f = 1 − i         (no f rows)
    lstm_peephole   peepholes                a_i += p_i ⊙ c_prev, a_f += p_f ⊙ c_prev,
                                             a_o += p_o ⊙ c    (p_i, p_f, p_o: (H,) each)

One class computes them all, each change a switch read where it acts, so that a variant reads as
the base with its one line changed; each variant is that class with its switch set.  The
switches combine: Greff's own variants keep their peepholes, so his NIG is ``lstm_nig`` with
``peepholes = True`` (a peephole weight exists for each gate the variant keeps: NIG has p_f
and p_o, CIFG p_i and p_o)::

    class GreffNIG(numpyrnn.cells.variants.NIG):
        name = "greff_nig"
        peepholes = True

Two combinations mean nothing and are refused when the cell is made: coupling the forget gate
to an input gate the variant removes, and coupling it while also removing it (f ≡ 1 − i and f ≡ 1).
"""

from __future__ import annotations

from ...backend import array_module
from ..builtin import check_flag, check_forget_bias, set_forget_bias
from ..common import sigmoid
from ..protocol import Cell


class LSTMFamily(Cell):
    """The LSTM with switches for what Greff et al.'s variants remove or change (see the module).
    Not registered itself: its subclasses, one per variant, are.

    ``bias``: whether it has ``bias_ih`` and ``bias_hh``; ``forget_bias``: for a variant with a
    forget gate of its own, None (PyTorch's draw) or the value its slice of ``bias_ih`` starts
    at (``bias_hh``'s slice at 0), an option of the initialisation only.
    """

    state_names = ("h", "c")
    init_options = ("forget_bias",)
    h_prev_only_in_products = True   # h_{t−1} enters only h_{t−1} W_hh^T (peepholes read c): recurrent dropout may mask it
    # what the variant changes (the base: all True but coupled and peepholes)
    input_gate = True             # False: i ≡ 1
    forget_gate = True            # False: f ≡ 1
    output_gate = True            # False: o ≡ 1
    input_activation = True       # False: g = a_g
    output_activation = True      # False: h = o ⊙ c
    coupled = False               # True: f = 1 − i
    peepholes = False             # True: p_i, p_f read c_prev, p_o reads c
    #: whether the forget gate has rows of its own (not removed, not coupled): read off the
    #: class too (which cells take ``forget_bias``), so set for each subclass as it is made
    has_forget_rows = True
    section = "§14"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.has_forget_rows = bool(cls.forget_gate and not cls.coupled)

    def __repr__(self):
        return self.short_repr()

    def __init__(self, bias=True, forget_bias=None):
        if self.coupled and not self.input_gate:
            raise ValueError(f"{self.name}: coupled gates set f = 1 − i, and this variant has no input gate i "
                             "(coupled = True needs input_gate = True)")
        if self.coupled and not self.forget_gate:
            raise ValueError(f"{self.name}: coupled gates set f = 1 − i, and forget_gate = False sets f ≡ 1; "
                             "choose one of them")
        check_flag("bias", bias)
        self.bias = bool(bias)
        if forget_bias is not None and not self.has_forget_rows:
            raise ValueError(f"{self.name} has no forget gate of its own, so no forget_bias to set")
        self.forget_bias = check_forget_bias(forget_bias, bias)

    @property
    def peephole_weights(self):
        """The peephole weights, one for each gate the variant keeps: p_i reads c_prev into the
        input gate, p_f into the forget gate (none when f is coupled or removed), p_o reads c."""
        if not self.peepholes:
            return {}
        return {gate: weight for gate, weight, present in (
            ("i", "weight_ci", self.input_gate), ("f", "weight_cf", self.has_forget_rows),
            ("o", "weight_co", self.output_gate)) if present}

    @property
    def blocks(self):
        """The gate blocks in the weights' rows, in PyTorch's order [i | f | g | o]."""
        return tuple(name for name, present in (("i", self.input_gate), ("f", self.has_forget_rows), ("g", True),
                                                ("o", self.output_gate)) if present)

    @property
    def gates(self):
        """The blocks that are gates (all but the candidate g)."""
        return tuple(b for b in self.blocks if b != "g")

    def parameters(self, input_size, hidden_size):
        G, H = len(self.blocks), hidden_size
        shapes = {"weight_ih": (G * H, input_size), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        shapes.update({weight: (H,) for weight in self.peephole_weights.values()})
        return shapes

    def initialize(self, params, hidden_size, rng):
        super().initialize(params, hidden_size, rng)
        if self.forget_bias is not None:
            k = self.blocks.index("f")
            set_forget_bias(params, slice(k * hidden_size, (k + 1) * hidden_size), self.forget_bias)

    def step_forward(self, x_t, state, params):
        xp = array_module(x_t)
        h_prev, c_prev = state
        H = h_prev.shape[-1]
        a = x_t @ params["weight_ih"].T + h_prev @ params["weight_hh"].T      # a = x W_ih^T + h_prev W_hh^T
        if self.bias:
            a = a + params["bias_ih"] + params["bias_hh"]                      #     + b_ih + b_hh
        a = {name: a[:, k * H:(k + 1) * H] for k, name in enumerate(self.blocks)}
        peep = self.peephole_weights
        if "i" in peep:
            a["i"] = a["i"] + params["weight_ci"] * c_prev                     # a_i += p_i ⊙ c_prev
        if "f" in peep:
            a["f"] = a["f"] + params["weight_cf"] * c_prev                     # a_f += p_f ⊙ c_prev
        i = sigmoid(a["i"]) if self.input_gate else None                       # i = σ(a_i), or i ≡ 1
        if self.coupled:
            f = 1 - i                                                          # f = 1 − i (CIFG)
        else:
            f = sigmoid(a["f"]) if self.forget_gate else None                  # f = σ(a_f), or f ≡ 1
        g = xp.tanh(a["g"]) if self.input_activation else a["g"]               # g = tanh(a_g), or g = a_g
        c = (c_prev if f is None else f * c_prev) + (g if i is None else i * g)   # c = f ⊙ c_prev + i ⊙ g
        if "o" in peep:
            a["o"] = a["o"] + params["weight_co"] * c                          # a_o += p_o ⊙ c
        o = sigmoid(a["o"]) if self.output_gate else None                      # o = σ(a_o), or o ≡ 1
        phi = xp.tanh(c) if self.output_activation else c                      # φ(c) = tanh(c), or c
        h = phi if o is None else o * phi                                      # h = o ⊙ φ(c)
        cache = {"x_t": x_t, "h_prev": h_prev, "c_prev": c_prev, "params": params,
                 "i": i, "f": f, "g": g, "o": o, "c": c, "phi": phi}
        return (h, c), cache

    def step_backward(self, dstate, cache):
        xp = array_module(dstate[0])
        dh, dc = dstate
        x_t, h_prev, c_prev, params = cache["x_t"], cache["h_prev"], cache["c_prev"], cache["params"]
        i, f, g, o, c, phi = (cache[k] for k in ("i", "f", "g", "o", "c", "phi"))
        da = {}
        dphi = dh if o is None else dh * o                                     # dφ = dh ⊙ o
        if o is not None:
            da["o"] = dh * phi * o * (1 - o)                                   # da_o = dh ⊙ φ(c) ⊙ o(1 − o)
        dc = dc + (dphi * (1 - phi * phi) if self.output_activation else dphi)   # dc ← dc + dφ ⊙ φ'(c)
        peep = self.peephole_weights
        if "o" in peep:
            dc = dc + da["o"] * params["weight_co"]                            # dc += da_o ⊙ p_o
        dc_prev = dc if f is None else dc * f                                  # dc_prev = dc ⊙ f
        dg = dc if i is None else dc * i                                       # dg = dc ⊙ i
        if i is not None:
            di = dc * g                                                        # di = dc ⊙ g
            if self.coupled:
                di = di - dc * c_prev                                          # f = 1 − i: di −= dc ⊙ c_prev
            da["i"] = di * i * (1 - i)                                         # da_i = di ⊙ i(1 − i)
        if self.has_forget_rows:
            da["f"] = dc * c_prev * f * (1 - f)                                # da_f = dc ⊙ c_prev ⊙ f(1 − f)
        da["g"] = dg * (1 - g * g) if self.input_activation else dg            # da_g = dg ⊙ (1 − g²), or dg
        grads = {}
        if "i" in peep:
            dc_prev = dc_prev + da["i"] * params["weight_ci"]                  # dc_prev += da_i ⊙ p_i
            grads["weight_ci"] = (da["i"] * c_prev).sum(axis=0)                # dp_i = Σ_batch da_i ⊙ c_prev
        if "f" in peep:
            dc_prev = dc_prev + da["f"] * params["weight_cf"]                  # dc_prev += da_f ⊙ p_f
            grads["weight_cf"] = (da["f"] * c_prev).sum(axis=0)                # dp_f = Σ_batch da_f ⊙ c_prev
        if "o" in peep:
            grads["weight_co"] = (da["o"] * c).sum(axis=0)                     # dp_o = Σ_batch da_o ⊙ c
        da = xp.concatenate([da[name] for name in self.blocks], axis=1)        # da = [da_i | da_f | da_g | da_o]
        dx_t = da @ params["weight_ih"]                                        # dx_t = da W_ih
        dh_prev = da @ params["weight_hh"]                                     # dh_prev = da W_hh
        grads.update(weight_ih=da.T @ x_t, weight_hh=da.T @ h_prev)            # dW_ih = da^T x_t, dW_hh = da^T h_prev
        if self.bias:
            grads.update(bias_ih=da.sum(axis=0), bias_hh=da.sum(axis=0))       # db = Σ_batch da
        return dx_t, (dh_prev, dc_prev), grads

    def gate_activations(self, cache):
        gates = {k: cache[k] for k in ("i", "f", "g", "o") if cache[k] is not None}
        return {**gates, "c": cache["c"]}


class NIG(LSTMFamily):
    """``lstm_nig``, no input gate: i ≡ 1, so c = f ⊙ c_prev + g.  Greff's NIG without
    peepholes.  Rows [f | g | o]."""
    name = "lstm_nig"
    section = "§14a"
    input_gate = False


class NFG(LSTMFamily):
    """``lstm_nfg``, no forget gate: f ≡ 1, so c = c_prev + i ⊙ g (Hochreiter & Schmidhuber's
    1997 LSTM).  Greff's NFG without peepholes.  Rows [i | g | o]."""
    name = "lstm_nfg"
    section = "§14b"
    forget_gate = False


class NOG(LSTMFamily):
    """``lstm_nog``, no output gate: o ≡ 1, so h = tanh(c).  Greff's NOG without peepholes.
    Rows [i | f | g]."""
    name = "lstm_nog"
    section = "§14c"
    output_gate = False


class NIAF(LSTMFamily):
    """``lstm_niaf``, no input activation: g = a_g (no tanh).  Greff's NIAF without peepholes."""
    name = "lstm_niaf"
    section = "§14d"
    input_activation = False


class NOAF(LSTMFamily):
    """``lstm_noaf``, no output activation: h = o ⊙ c (no tanh).  Greff's NOAF without
    peepholes."""
    name = "lstm_noaf"
    section = "§14e"
    output_activation = False


class CIFG(LSTMFamily):
    """``lstm_cifg``, coupled input and forget gates: f = 1 − i, so c = (1 − i) ⊙ c_prev + i ⊙ g.
    Greff's CIFG without peepholes.  Rows [i | g | o]."""
    name = "lstm_cifg"
    section = "§14f"
    coupled = True


class Peephole(LSTMFamily):
    """``lstm_peephole``, peepholes (Gers & Schmidhuber 2000): the gates also read the cell state,
    a_i += p_i ⊙ c_prev, a_f += p_f ⊙ c_prev, a_o += p_o ⊙ c, with diagonal (H,) weights
    ``weight_ci``, ``weight_cf``, ``weight_co``.  Greff's "vanilla" LSTM."""
    name = "lstm_peephole"
    section = "§14g"
    peepholes = True


VARIANTS = (NIG, NFG, NOG, NIAF, NOAF, CIFG, Peephole)
