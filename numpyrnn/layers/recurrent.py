"""Recurrent layers with PyTorch's interface: :class:`Recurrent` for any cell, and
:class:`RNN`, :class:`LSTM`, :class:`GRU`.

A layer runs its cell over every (layer, direction) of a stack::

    x ──► layer 0 forward  ─┐                         y_0 = [forward | reverse] outputs
      └─► layer 0 reverse  ─┴─► dropout ─► layer 1 ... ─► y (T, B, D·H)

Parameters, shapes and defaults are PyTorch's: the cell's parameter names with ``_l{k}``
(``weight_ih_l0``, ``bias_hh_l1``) and ``_reverse`` for the reverse direction, input (T, B, I)
time-major unless ``batch_first``, output (T, B, D·H), final states (L·D, B, H).

``impl`` chooses how each (layer, direction) runs its cell over the sequence: ``"fast"`` (the
default), the cell's fast path where it has one; ``"reference"``, its textbook loop over the step
functions (rnn.py's loop, which gru.py runs too, and lstm.py's); ``"generic"``, the loop written
once for any cell (:mod:`numpyrnn.cells.generic`).  A cell of your own has no fast path and no
loop of its own: it runs on the generic loop, whatever ``impl`` says (``repr`` says so).  All
compute the same functions (to rounding); the fast path is several times faster.

Regularisers beyond PyTorch's ``dropout`` (between stacked layers), each off by default and off
in ``eval()``, their masks drawn from the layer's dropout generator at every training forward
(derivations §16): ``input_dropout``, one mask per sequence over the layer's input features, the
same at every step, for any cell; ``recurrent_dropout``, one mask per sequence, layer and
direction on h_{t−1} where it enters the recurrent products (Gal & Ghahramani 2016), for the
built-in cells on every path but the GRU on the generic loop, and for a cell of your own that
sets ``h_prev_only_in_products`` (any other refuses it, saying why).
"""

from __future__ import annotations

import functools
import json
import warnings

import numpy as np

from .. import cells
from ..cells import generic, gru, lstm, rnn
from ..cells.common import Workspace
from ..cells.protocol import constrains, recurrent_dropout_refusal
from ..validation import as_float_array, as_lengths, check_finite, check_int, check_probability, check_shape
from .module import Module

#: the regularisers a layer takes (its keyword arguments of these names; the RNN, LSTM and GRU
#: layers hand theirs on as they come)
REGULARISERS = ("input_dropout", "recurrent_dropout", "zoneout", "zoneout_c")

#: the cells (class, options, sizes, dtype, array module) that passed the probe in this process
_PROBED: set = set()


def _probe(cell, params, input_size, hidden_size, xp, dtype):
    """Every cell, a user's as the package's, probed once on a small batch before any real work
    (:func:`numpyrnn.cells.generic.check_cell`): once per process for a cell of the same class
    and options at the same sizes, dtype and array module."""
    key = (type(cell), json.dumps(cell.options, sort_keys=True, default=repr), input_size, hidden_size,
           np.dtype(dtype).str, xp.__name__)
    if key not in _PROBED:
        generic.check_cell(cell, params, input_size, hidden_size, xp, dtype)
        _PROBED.add(key)


#: how a layer runs its cell over a sequence: the fast path, the cell's textbook reference loop,
#: or the generic loop over any cell's step functions
IMPLS = ("fast", "reference", "generic")


def check_impl(impl):
    if not isinstance(impl, str) or impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(map(repr, IMPLS))}, got {impl!r}")
    return impl


class Recurrent(Module):
    """A stack of recurrent layers over any cell (a :class:`~numpyrnn.cells.Cell`, or the name of
    a registered one), with the interface of ``torch.nn.RNN``/``LSTM``/``GRU``: stacks, both
    directions, lengths, initial states and their gradients, float32/float64, CPU and CuPy.

    ``Recurrent(cell, input_size, hidden_size, num_layers=1, batch_first=False, dropout=0.0,
    bidirectional=False, *, impl="fast", dtype=float32, seed=None, device="auto",
    input_dropout=0.0, recurrent_dropout=0.0)``.  The cell's
    options (whether it has biases, ...) are the cell's own.  :class:`RNN`, :class:`LSTM` and
    :class:`GRU` are this layer over the built-in cells, with PyTorch's arguments.
    """

    _transient = ("_cache", "_workspaces", "_state_grads")

    #: the regularisers a layer takes by name (the RNN, LSTM and GRU layers hand them on)
    REGULARISERS = REGULARISERS

    def __init__(self, cell, input_size, hidden_size, num_layers=1, batch_first=False, dropout=0.0,
                 bidirectional=False, *, impl="fast", dtype=np.float32, seed=None, device="auto", input_dropout=0.0,
                 recurrent_dropout=0.0, zoneout=0.0, zoneout_c=0.0):
        super().__init__(dtype=dtype, device=device)
        self.cell = cells.resolve(cell)
        self.impl = impl
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        for name, flag in (("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        dropout = check_probability("dropout", dropout)
        if dropout > 0 and self.num_layers == 1:
            warnings.warn("dropout acts between stacked layers (after all but the last), so with "
                          f"num_layers=1 it does nothing (dropout={dropout})", UserWarning, stacklevel=3)
        if seed is not None:
            seed = check_int("seed", seed, 0)
        self.batch_first, self.bidirectional = bool(batch_first), bool(bidirectional)
        self.dropout = dropout
        self.input_dropout = check_probability("input_dropout", input_dropout)
        self.recurrent_dropout = check_probability("recurrent_dropout", recurrent_dropout)
        if self.recurrent_dropout:
            self._check_recurrent_dropout(self.impl)
        self.zoneout = check_probability("zoneout", zoneout)
        self.zoneout_c = check_probability("zoneout_c", zoneout_c)
        self._check_zoneout(self.impl)
        self.num_directions = 2 if self.bidirectional else 1
        self._drop_cache()
        init_seed, dropout_seed = np.random.SeedSequence(seed).spawn(2)
        self._dropout_rng = np.random.default_rng(dropout_seed)
        self._init_params(np.random.default_rng(init_seed))
        _probe(self.cell, self.cell_params(0, 0), self.input_size, self.hidden_size, self.xp, self.dtype)

    @classmethod
    def over(cls, cell, input_size, hidden_size, **kwargs):
        """The layer a user would build over ``cell``: :class:`RNN`, :class:`LSTM` or :class:`GRU`
        (torch.nn's names and arguments) when ``cell`` is the cell that class makes, with its
        options as the class's arguments; :class:`Recurrent` over it otherwise.  The two compute
        the same (the same cell, drawn in the same order); the first reads as PyTorch does."""
        cell = cells.resolve(cell)
        for layer in _TextbookLayer.__subclasses__():
            if type(cell) is layer.CELL:
                return layer(input_size, hidden_size, **cell.options, **kwargs)
        return Recurrent(cell, input_size, hidden_size, **kwargs)

    @property
    def impl(self) -> str:
        """``"fast"``, ``"reference"`` or ``"generic"``: how the cell runs over the sequence (see
        the module).  Changing it takes effect at the next forward; a pending backward uses the
        functions of the forward that made its cache."""
        return self._impl

    @impl.setter
    def impl(self, value):
        value = check_impl(value)
        if getattr(self, "recurrent_dropout", 0):
            self._check_recurrent_dropout(value)
        if hasattr(self, "zoneout"):
            self._check_zoneout(value)
        self._impl = value

    @property
    def zoneout_rates(self) -> dict:
        """Zoneout's rate for each state that has one: h's (``zoneout``) and c's (``zoneout_c``)."""
        rates = {"h": self.zoneout, "c": self.zoneout_c}
        return {name: rates[name] for name in rates if rates[name]}

    def _check_zoneout(self, impl):
        """Zoneout (derivations §17) needs a state for each rate, one the cell lets be zoned out
        (``Cell.zoneout_states``), and a loop that takes it."""
        rates, cell = self.zoneout_rates, self.cell
        name = cell.name or type(cell).__name__
        for state in rates:
            if state not in cell.state_names:
                raise ValueError(f"zoneout_c zones out the cell state c, and the cell {name!r} has no state c "
                                 f"(its states: {', '.join(cell.state_names)})")
            allowed = cell.state_names if cell.zoneout_states is None else cell.zoneout_states
            if state not in allowed:
                raise ValueError(f"zoneout{'_c' if state == 'c' else ''}: the cell {name!r} does not let its state "
                                 f"{state} be zoned out (its zoneout_states: {', '.join(allowed) or 'none'})")
        if rates and "zoneout" not in cell.sequence(impl).takes:
            raise ValueError(f"zoneout: the {name} cell's {impl} loop does not take it; impl='generic' "
                             "runs the same steps on the generic loop, which does (derivations §17)")

    def _check_recurrent_dropout(self, impl):
        refusal = recurrent_dropout_refusal(self.cell, impl)
        if refusal:
            raise ValueError(refusal)

    @property
    def loop(self):
        """The :class:`~numpyrnn.cells.generic.Loop` the next forward runs: its ``kind`` says
        which ("fast", "reference", or "generic" for a cell with no loop of its own)."""
        return self.cell.sequence(self.impl)

    def _drop_cache(self):
        """Forget the last forward, and the buffers kept for the next one."""
        super()._drop_cache()
        if hasattr(self, "num_directions"):
            self._workspaces = [Workspace() for _ in range(self.num_layers * self.num_directions)]

    def release_memory(self):
        """Free what this layer keeps between calls: the last forward's cache and the reused
        buffers.  (The next forward allocates them again.)"""
        self._drop_cache()

    def workspace_bytes(self) -> int:
        """Bytes held in reusable buffers (the last forward's cache included)."""
        return sum(ws.nbytes() for ws in self._workspaces)

    # ------------------------------------------------------------------ parameters

    def _init_params(self, rng):
        """Each (layer, direction)'s parameters, named after the cell's (``weight_ih`` becomes
        ``weight_ih_l0``, ``weight_ih_l0_reverse``, ...), filled by the cell's ``initialize``
        (PyTorch's U(−1/√H, 1/√H) unless the cell says otherwise) from one generator, layer by
        layer, direction by direction, parameter by parameter, as PyTorch draws them."""
        H, D = self.hidden_size, self.num_directions
        self._param_names = []
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else H * D
            shapes = generic.check_parameters(self.cell, layer_input, H)
            for direction in range(D):
                values = {name: np.zeros(shape) for name, shape in shapes.items()}
                with generic.calling(self.cell, "initialize"):
                    self.cell.initialize(values, H, rng)
                names = {name: self._name(name, layer, direction) for name in shapes}
                for name, value in values.items():
                    if getattr(value, "shape", None) != shapes[name]:
                        raise generic.CellError(f"{type(self.cell).__name__}.initialize must fill the arrays it "
                                                f"is given in place; {name} is now {getattr(value, 'shape', value)!r}")
                    self._add_param(names[name], value)
                self._param_names.append(names)

    @staticmethod
    def _name(kind, layer, direction):
        return f"{kind}_l{layer}" + ("_reverse" if direction else "")

    def cell_params(self, layer=0, direction=0) -> dict:
        """One layer and direction's parameters under the cell's names (``weight_ih``, ...): the
        layer's own arrays, not copies."""
        self._check_layer_direction(layer, direction)
        return self._cell_params(layer * self.num_directions + direction)

    def _cell_params(self, k):
        """:meth:`cell_params` of the k-th (layer, direction), unchecked (the loops' own use)."""
        return {name: self._params[full] for name, full in self._param_names[k].items()}

    def constrain(self):
        """Apply the cell's ``constrain`` hook to every layer and direction's parameters (the
        trainer calls this after each optimizer step)."""
        if constrains(self.cell):
            for k in range(len(self._param_names)):
                self.cell.constrain(self._cell_params(k))

    # ------------------------------------------------------------------ forward and backward

    def forward(self, x, state=None, lengths=None):
        """Run the stack over x.

        x: (T, B, input_size), or (B, T, input_size) with ``batch_first``, or (T, input_size)
        for one unbatched sequence.  state: the initial state, h0 (L·D, B, H) for a cell with
        one state (RNN, GRU), a tuple such as (h0, c0) in the cell's ``state_names`` order for
        more (LSTM); None means zeros.  lengths: (B,) true length of each sequence, each in
        1..T; steps past a sequence's length leave its state unchanged and output zeros.

        Returns (y, state_n): y (T, B, D·H) (same layout as x), state_n like ``state``, each
        sequence's state after its own last step.
        """
        x, unbatched = self._prepare_input(x)
        T, B, _ = x.shape
        if lengths is not None:
            if unbatched:
                raise ValueError("lengths applies to a batch; x is one unbatched sequence of shape "
                                 f"{(T, self.input_size)}, so leave lengths out")
            lengths = as_lengths(lengths, T, B)
        state0 = self._prepare_state(state, B, unbatched)
        input_mask = self._input_mask(B)                 # drawn once every argument has passed
        if input_mask is not None:                       # x̃_t = x_t ⊙ m, one m per sequence (§16)
            x = x * input_mask                           # a new array: x may be the caller's
        xp, L, D, H = self.xp, self.num_layers, self.num_directions, self.hidden_size
        state_n = tuple(xp.empty((L * D, B, H), self.dtype) for _ in state0)
        loop, cell = self.loop, self.cell
        caches, dropout_masks = [], []
        layer_input = x
        for layer in range(L):
            outputs = []
            for direction in range(D):
                k = layer * D + direction
                h_mask = self._recurrent_mask(B)         # one per sequence, layer and direction (§16)
                zoneout = self._zoneout(T, B)            # per step, unit and sequence (§17)
                y, final, cache = loop.forward(cell, layer_input, tuple(s[k] for s in state0),
                                               self._cell_params(k), lengths=lengths,
                                               reverse=direction == 1, workspace=self._workspaces[k],
                                               **({} if h_mask is None else {"h_mask": h_mask}),
                                               **({} if zoneout is None else {"zoneout": zoneout}))
                for buffer, s in zip(state_n, final):
                    buffer[k] = s
                outputs.append(y)
                caches.append(cache)
            layer_output = outputs[0] if D == 1 else xp.concatenate(outputs, axis=2)
            mask = self._dropout_mask(layer_output.shape) if layer < L - 1 else None
            if mask is not None:
                layer_output = layer_output * mask
            dropout_masks.append(mask)
            layer_input = layer_output
        self._cache = (caches, dropout_masks, input_mask, T, B, unbatched, loop)
        # With one direction and no lengths the cell's output may be a view of its cache: copy it.
        y = self._to_user_layout(layer_input, unbatched, copy=D == 1 and lengths is None)
        return y, self._pack_state(state_n, unbatched)

    def step(self, x_t, state=None):
        """One step of every layer, as data arrives: ``x_t`` (B, I), or (I,) for one sequence;
        ``state`` as :meth:`forward` takes it (None: zeros).  Returns (y_t, state): y_t (B, H)
        (or (H,)) the last layer's output, and the state after the step, to hand to the next
        call.  It computes what :meth:`forward` computes at evaluation, one step at a time (equal
        to rounding: the tests hold them to 1e-12), whatever the training mode: no dropout, and
        zoneout's expectation, s_t = (1 − p) s̃_t + p s_{t−1} (§17).  Nothing is kept for a
        backward.  A bidirectional layer reads the sequence from its end too, so it has no step."""
        if self.bidirectional:
            raise ValueError("a bidirectional layer reads each sequence from its end too, so it cannot run one step "
                             "at a time as data arrives; step() needs bidirectional=False")
        x, unbatched = self._step_input(x_t)
        y, state_n = self._step(x, self._prepare_state(state, x.shape[0], unbatched))
        return (y[0] if unbatched else y), self._pack_state(state_n, unbatched)

    def _step_input(self, x_t):
        """x_t checked, as a (B, I) array of the layer's dtype, and whether it was one sequence's (I,)."""
        x = as_float_array("x_t", x_t, self.dtype, self.device)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"x_t must have shape (B, {self.input_size}) or ({self.input_size},), got {x.shape}")
        check_finite("x_t", x)
        return (x[None], True) if x.ndim == 1 else (x, False)

    def _step(self, x, state0):
        """:meth:`step` on checked arguments: x (B, I), state0 a tuple of (L, B, H) arrays.
        Returns (y (B, H), the new state tuple)."""
        rates = self.zoneout_rates
        keep = [None if name not in rates else 1 - rates[name] for name in self.cell.state_names]   # k = 1 − p
        state_n = tuple(self.xp.empty_like(s) for s in state0)
        fast = self._stream_step()
        layer_input = x
        for k in range(self.num_layers):
            previous = tuple(s[k] for s in state0)
            if fast is None:
                new, _ = self.cell.step_forward(layer_input, previous, self._cell_params(k))   # s̃_t (§3)
            else:                                        # the same s̃_t, without checks or a cache
                new = fast(layer_input, previous, *self.cell.weights(self._cell_params(k)))
            for buffer, s_tilde, s_prev, share in zip(state_n, new, previous, keep):
                buffer[k] = s_tilde if share is None else share * s_tilde + (1 - share) * s_prev   # (§17)
            layer_input = state_n[0][k]
        return layer_input.copy(), state_n

    def _stream_step(self):
        """On the fast path, the built-in RNN's, LSTM's or GRU's step for a stream
        (``cells/fast/stream.py``: the reference step's equations without its checks and cache);
        None for any other cell (a subclass included) or ``impl``, which step through the cell's
        own ``step_forward``."""
        from ..cells.fast import stream

        step = stream.STEPS.get(type(self.cell))
        if step is None or self.impl != "fast":
            return None
        return functools.partial(step, **self.cell.function_options())

    def backward(self, dy, dstate=None, *, keep_state_grads=False):
        """Backpropagate through the last forward.

        dy: ∂L/∂y, shaped like y (None means zero); dstate: ∂L/∂state_n shaped like state_n
        (None, or for a cell with several states a tuple whose entries may be None, means zero).

        Adds the parameter gradients into ``grads`` and returns (dx, dstate0): ∂L/∂x shaped like
        x and ∂L/∂state0 shaped like the state (returned whether or not a state was passed).
        ``keep_state_grads=True`` also keeps ∂L/∂s_t of every state at every step (∂L/∂h_t, and
        ∂L/∂c_t for the LSTM), which the backward computes anyway: see :meth:`state_grads`.
        """
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() needs a forward() first "
                               "(a dtype or device change also clears the forward's cache)")
        caches, dropout_masks, input_mask, T, B, unbatched, loop = self._cache
        xp, L, D, H = self.xp, self.num_layers, self.num_directions, self.hidden_size
        d_out = None if dy is None else self._prepare_output_grad(dy, T, B, unbatched)
        dstate_n = self._prepare_state_grad(dstate, B, unbatched)
        dstate0 = tuple(xp.empty((L * D, B, H), self.dtype) for _ in dstate_n)
        self._state_grads = [{s: xp.empty((T, B, H), self.dtype) for s in self.cell.state_names}
                             for _ in range(L * D)] if keep_state_grads else None
        for layer in reversed(range(L)):
            d_in = None
            for direction in range(D):
                k = layer * D + direction
                dy_k = d_out if (d_out is None or D == 1) else d_out[..., direction * H:(direction + 1) * H]
                dx, dinit, grads = loop.backward(
                    self.cell, dy_k, tuple(None if ds is None else ds[k] for ds in dstate_n), caches[k],
                    state_grads=None if self._state_grads is None else self._state_grads[k])
                for buffer, g in zip(dstate0, dinit):
                    buffer[k] = g
                names = self._param_names[k]
                for name, g in grads.items():
                    self._grads[names[name]] += g
                d_in = dx if d_in is None else d_in + dx     # both directions read the same input
            if layer > 0 and dropout_masks[layer - 1] is not None:
                d_in *= dropout_masks[layer - 1]             # y = y_prev ⊙ mask ⇒ dy_prev = dy ⊙ mask
            d_out = d_in
        if input_mask is not None:
            d_out = d_out * input_mask                   # dx_t = m ⊙ dx̃_t (§16)
        dx = self._to_user_layout(d_out, unbatched, copy=False)
        return dx, self._pack_state(dstate0, unbatched)

    def state_grads(self, layer=0, direction=0):
        """∂L/∂s_t for every state s of the cell (∂L/∂h_t, and ∂L/∂c_t for the LSTM) at every step
        of one layer and direction, kept by the last ``backward(..., keep_state_grads=True)``: a
        dict state name → time-major array (T, B, H).  Each is the gradient of the loss with
        respect to the state after step t, taken as the input of step t+1: h_t's through the
        step's output and the later steps, the other states' through the later steps."""
        if self._state_grads is None:
            raise RuntimeError("state_grads() needs a backward(..., keep_state_grads=True) first")
        self._check_layer_direction(layer, direction)
        kept = self._state_grads[layer * self.num_directions + direction]
        return {name: a.copy() for name, a in kept.items()}

    def _check_layer_direction(self, layer, direction):
        check_int("layer", layer, 0)
        if layer >= self.num_layers or direction not in range(self.num_directions):
            raise ValueError(f"no layer {layer}, direction {direction} in {self!r}")

    def gate_activations(self, layer=0, direction=0):
        """The gate activations of the last forward, for one layer and direction: a dict of
        time-major arrays (T, B, H) — LSTM i, f, g, o and c; GRU r, z, n; RNN h; a cell of your
        own, what its ``gate_activations`` hook gives (none without one).  0 at padded steps."""
        if self._cache is None:
            raise RuntimeError("gate_activations() needs a forward() first")
        self._check_layer_direction(layer, direction)
        caches, *_, loop = self._cache
        cache = caches[layer * self.num_directions + direction]
        return {k: v.copy() for k, v in loop.gate_activations(self.cell, cache).items()}

    # ------------------------------------------------------------------ dropout

    def rng_state(self) -> dict:
        return {"dropout": self._dropout_rng.bit_generator.state}

    def set_rng_state(self, state: dict):
        self._dropout_rng.bit_generator.state = state["dropout"]

    def _mask(self, p, shape):
        """Inverted dropout's mask of ``shape``: each entry kept with probability 1 − p and then
        scaled by 1/(1−p), 0 where dropped; None when inactive (evaluation, or p = 0).  Every
        dropout of the layer draws from its one dropout generator."""
        if not self.training or p == 0:
            return None
        keep = self._dropout_rng.random(shape) >= p
        return self.xp.asarray(keep.astype(self.dtype) / self.dtype.type(1 - p))

    def _input_mask(self, B):
        """Input dropout (Keras's ``dropout``): one mask per sequence over the input features, the
        same at every step, (1, B, I)."""
        return self._mask(self.input_dropout, (1, B, self.input_size))

    def _recurrent_mask(self, B):
        """Recurrent dropout (Gal & Ghahramani 2016; Keras's ``recurrent_dropout``): one mask per
        sequence on h_{t−1} where it enters the recurrent products, the same at every step, (B, H)."""
        return self._mask(self.recurrent_dropout, (B, self.hidden_size))

    def _zoneout(self, T, B):
        """Zoneout (Krueger et al. 2017, derivations §17): for each state, in ``state_names``
        order, None without it; in training a fresh 0/1 mask δ per step, unit and sequence (1:
        the unit keeps its previous value, with probability p), (T, B, H); at evaluation the rate
        p itself, the expectation.  None when no state has it."""
        rates = self.zoneout_rates
        if not rates:
            return None
        out = []
        for name in self.cell.state_names:
            p = rates.get(name)
            if p is None:
                out.append(None)
            elif not self.training:
                out.append(float(p))
            else:
                kept = self._dropout_rng.random((T, B, self.hidden_size)) < p
                out.append(self.xp.asarray(kept.astype(self.dtype)))
        return tuple(out)

    def _dropout_mask(self, shape):
        """PyTorch's dropout between stacked layers: a fresh mask for every element."""
        return self._mask(self.dropout, shape)

    # ------------------------------------------------------------------ shapes and checks

    def _input_layout(self):
        return "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"

    def _prepare_input(self, x):
        """x as a private time-major (T, B, I) array of the module's dtype, checked."""
        x = as_float_array("x", x, self.dtype, self.device)
        if x.ndim not in (2, 3):
            raise ValueError(f"x must be 3-d {self._input_layout()}, or 2-d (T, input_size) for one "
                             f"unbatched sequence, got shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x must have input_size={self.input_size} features in its last "
                             f"dimension, got shape {x.shape}")
        if x.size == 0:
            raise ValueError(f"x must hold at least one step of one sequence, got shape {x.shape}")
        check_finite("x", x)
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        return x.copy(order="C"), unbatched  # the cache must not alias the caller's array

    def _state_shape(self, B, unbatched):
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        return (LD, H) if unbatched else (LD, B, H)

    def _state_names(self, prefix="", suffix="0"):
        return tuple(f"{prefix}{s}{suffix}" for s in self.cell.state_names)

    def _split_states(self, value, names, what):
        """One array per state name: h for RNN and GRU, the pair (h, c) for LSTM, a tuple in
        ``state_names`` order for any cell with more than one state."""
        if len(names) == 1:
            if isinstance(value, (tuple, list)):
                raise TypeError(f"{what} of {type(self).__name__} must be one array {names[0]}, "
                                f"got a {type(value).__name__} of {len(value)}")
            return (value,)
        if not isinstance(value, (tuple, list)) or len(value) != len(names):
            raise TypeError(f"{what} of {type(self).__name__} must be a tuple ({', '.join(names)}), "
                            f"got {type(value).__name__}")
        return tuple(value)

    def _prepare_state(self, state, B, unbatched):
        """The initial state(s) as time-major (L·D, B, H) arrays; zeros when None."""
        names = self._state_names()
        shape = self._state_shape(B, unbatched)
        if state is None:
            return tuple(self.xp.zeros(self._state_shape(B, False), self.dtype) for _ in names)
        prepared = []
        for name, s in zip(names, self._split_states(state, names, "state")):
            s = as_float_array(name, s, self.dtype, self.device)
            check_shape(name, s, shape)
            check_finite(name, s)
            prepared.append((s[:, None, :] if unbatched else s).copy(order="C"))
        return tuple(prepared)

    def _prepare_state_grad(self, dstate, B, unbatched):
        names = self._state_names("d", "_n")
        if dstate is None:
            return (None,) * len(names)
        shape = self._state_shape(B, unbatched)
        prepared = []
        for name, d in zip(names, self._split_states(dstate, names, "dstate")):
            if d is not None:
                d = as_float_array(name, d, self.dtype, self.device)
                check_shape(name, d, shape)
                check_finite(name, d)
                d = d[:, None, :] if unbatched else d
            prepared.append(d)
        return tuple(prepared)

    def _prepare_output_grad(self, dy, T, B, unbatched):
        dy = as_float_array("dy", dy, self.dtype, self.device)
        out = self.num_directions * self.hidden_size
        shape = (T, out) if unbatched else ((B, T, out) if self.batch_first else (T, B, out))
        check_shape("dy", dy, shape)
        check_finite("dy", dy)
        if unbatched:
            return dy[:, None, :]
        return dy.transpose(1, 0, 2) if self.batch_first else dy

    def _to_user_layout(self, a, unbatched, copy):
        """A time-major (T, B, F) array in the caller's layout, contiguous."""
        if unbatched:
            a = a[:, 0, :]
        elif self.batch_first:
            a = a.transpose(1, 0, 2)
        return a.copy(order="C") if copy else self.xp.ascontiguousarray(a)

    def _pack_state(self, states, unbatched):
        states = tuple(s[:, 0, :] if unbatched else s for s in states)
        return states if len(states) > 1 else states[0]

    # ------------------------------------------------------------------ description

    def config(self) -> dict:
        """Everything needed to rebuild this layer (parameters aside): the cell by its name and
        options, the layer's arguments."""
        return {"type": type(self).__name__, "cell": self.cell.config(), "input_size": self.input_size,
                "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "batch_first": self.batch_first, "dropout": self.dropout,
                "bidirectional": self.bidirectional, "dtype": self.dtype.name, "impl": self.impl,
                **self._regularisation()}

    def _regularisation(self) -> dict:
        """The regularisers switched on (absent at 0, as in the configs of older files)."""
        return {name: getattr(self, name) for name in REGULARISERS if getattr(self, name)}

    #: the arguments ``repr`` leaves out at these values
    _REPR_DEFAULTS = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0,
                      "bidirectional": False, "nonlinearity": "tanh", "reset_after": True, "impl": "fast"}

    def __repr__(self):
        cfg = self.config()
        extra = [f"{k}={cfg[k]!r}" for k in self._REPR_DEFAULTS if k in cfg and cfg[k] != self._REPR_DEFAULTS[k]]
        if self.loop.kind != self.impl:              # a cell with no loop of its own
            extra.append(f"impl={self.impl!r} (generic loop: {self.cell.name} has no {self.impl} path)")
        cell = "" if type(self) is not Recurrent else f"{self.cell!r}, "
        return (f"{cfg['type']}({cell}{self.input_size}, {self.hidden_size}"
                + "".join(f", {e}" for e in extra) + f", dtype={self.dtype.name}, device={self.device!r})")


class _TextbookLayer(Recurrent):
    """What RNN, LSTM and GRU share: PyTorch's arguments (``bias`` among the layer's), and a
    config in the same terms (what older checkpoints hold)."""

    def config(self) -> dict:
        return {"type": type(self).__name__, "input_size": self.input_size,
                "hidden_size": self.hidden_size, "num_layers": self.num_layers, "bias": self.bias,
                "batch_first": self.batch_first, "dropout": self.dropout,
                "bidirectional": self.bidirectional, "dtype": self.dtype.name,
                **self.cell.function_options(), "impl": self.impl, **self._regularisation()}

    @property
    def bias(self) -> bool:
        """Whether the layer has ``bias_ih`` and ``bias_hh`` (the cell's option)."""
        return self.cell.bias


class RNN(_TextbookLayer):
    """Elman RNN, h_t = tanh(x_t W_ih^T + b_ih + h_{t−1} W_hh^T + b_hh) (or relu).

    Same arguments, in the same order, as ``torch.nn.RNN``; plus ``impl`` ("fast", "reference"
    or "generic", see the module), ``dtype`` (float32 or float64), ``seed`` for the initial
    weights and dropout, and ``device``.  :class:`Recurrent` over ``cells.rnn.CELL``.
    """

    CELL = rnn.CELL            # the cell it makes (Recurrent.over)

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, impl="fast",
                 dtype=np.float32, seed=None, device="auto", **regularisers):
        super().__init__(rnn.CELL(nonlinearity=nonlinearity, bias=bias), input_size, hidden_size,
                         num_layers, batch_first, dropout, bidirectional, impl=impl, dtype=dtype,
                         seed=seed, device=device, **regularisers)


class LSTM(_TextbookLayer):
    """Long short-term memory, gates (i, f, g, o) as in ``torch.nn.LSTM``; state is (h, c).

    Same arguments, in the same order, as ``torch.nn.LSTM`` (without ``proj_size``); plus
    ``forget_bias`` (None: PyTorch's initialisation; a number: the forget gate's slice of
    ``bias_ih`` starts there, its slice of ``bias_hh`` at 0), ``impl`` ("fast", "reference" or
    "generic", see the module), ``dtype`` (float32 or float64), ``seed`` for the initial weights
    and dropout, and ``device``.  :class:`Recurrent` over ``cells.lstm.CELL``.
    """

    CELL = lstm.CELL            # the cell it makes (Recurrent.over)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, forget_bias=None, impl="fast", dtype=np.float32,
                 seed=None, device="auto", **regularisers):
        super().__init__(lstm.CELL(bias=bias, forget_bias=forget_bias), input_size, hidden_size, num_layers,
                         batch_first, dropout, bidirectional, impl=impl, dtype=dtype, seed=seed, device=device,
                         **regularisers)

    def config(self) -> dict:
        config = super().config()
        if self.cell.forget_bias is not None:         # older files have no such key: None
            config["forget_bias"] = self.cell.forget_bias
        return config


class GRU(_TextbookLayer):
    """Gated recurrent unit, gates (r, z, n) as in ``torch.nn.GRU``.

    ``reset_after=True`` (default) is PyTorch's and cuDNN's form, n = tanh(W_in x + b_in +
    r ⊙ (W_hn h + b_hn)); ``reset_after=False`` is the textbook form of Cho et al. (2014, v3),
    n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn), which PyTorch does not offer.  Other
    arguments as ``torch.nn.GRU``, plus ``impl``, ``dtype``, ``seed`` and ``device`` as for
    :class:`LSTM`.  :class:`Recurrent` over ``cells.gru.CELL``.
    """

    CELL = gru.CELL            # the cell it makes (Recurrent.over)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, reset_after=True, impl="fast",
                 dtype=np.float32, seed=None, device="auto", **regularisers):
        super().__init__(gru.CELL(reset_after=reset_after, bias=bias), input_size, hidden_size,
                         num_layers, batch_first, dropout, bidirectional, impl=impl, dtype=dtype,
                         seed=seed, device=device, **regularisers)
