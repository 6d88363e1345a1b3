r"""The Cell protocol: a recurrent cell as an object, and the one registry of cell names.

A cell is the math of one step: how the state after step t follows from the input x_t and the
state before it, and how the gradients go back through that step.  Everything else (the loop
over time, masks for lengths, directions, stacks, batches of sequences) belongs to the layer,
:class:`numpyrnn.Recurrent`, which runs any cell::

    class MyCell(numpyrnn.cells.Cell):
        name = "my_cell"                    # how models, commands and checkpoints name it
        state_names = ("h",)                # the carried state, each (B, H); the first is the output h_t

        def __init__(self, bias=True):      # the cell's own options, saved with it
            self.bias = bias

        def parameters(self, input_size, hidden_size):     # {name: shape tuple}, in drawing order
            ...
        def step_forward(self, x_t, state, params):        # -> (new_state tuple, cache)
            ...
        def step_backward(self, dstate, cache):            # -> (dx_t, dstate_prev tuple, {name: grad})
            ...

What the protocol fixes (docs/derivations.md §13 derives a cell's backward by this method):

* ``state``, ``dstate`` and ``dstate_prev`` are tuples in ``state_names`` order, every entry
  (B, H).  ``dstate`` holds ∂L/∂(new state), already summed over everything that reads it (the
  output at step t and step t+1).
* ``step_backward`` returns a gradient for every parameter, by name, and must not change its
  cache (nor its arguments): it may be called more than once on one cache (gradflow's one-step
  Jacobian does).  An entry of ``dstate_prev`` may be None: the step does not read that state,
  and its gradient is zero (as a None gradient means in torch).
* A cell computes with the array module of its inputs (``backend.array_module(x_t)``), so the
  same cell runs on CuPy, and in the dtype of its inputs.
* A cell never sees masks, directions, layers or batches of sequences.
* A cell's options (``bias=True``, ``nonlinearity="relu"``, ...) are the arguments of its
  constructor; they are recorded when it is made (:attr:`Cell.options`) and saved with it.

Optional hooks: ``initialize`` (default U(−1/√H, 1/√H) for every parameter, in
``parameters()`` order, PyTorch's rule), ``gate_activations`` (the gates of one step by name,
for gradflow's panels) and ``constrain`` (called on every (layer, direction)'s parameters
after each optimizer step, e.g. to clip a recurrent weight).  Optional class attributes:
``init_options`` (options that shape only the initial weights), ``length_options`` (options the
commands fill from the task's sequence length), ``forms`` (the option sets gradcheck checks) and
``h_prev_only_in_products`` (True when h_{t−1} enters the new state only through products with
recurrent weights, so that the layer's ``recurrent_dropout`` may hand the step h_{t−1} ⊙ mask;
derivations §16).  Optional facts, which the figures, tables, bench, export and grader read off
the cell (nothing else keeps a list of cells): ``title``, ``colour``, ``section``, ``blocks``,
``gates``, ``torch_module`` and ``loops`` (see :class:`Cell`; :func:`declared` says which a
subclass keeps).

The registry: :func:`register` a Cell subclass, :func:`get` an instance by name.  The built-in
cells (rnn, lstm, gru) are registered when the package is imported.  A checkpoint names its
cell and options; loading never imports code named inside a file, so a user's cell comes back
only from a class the user hands over (``numpyrnn.load(path, cells=[MyCell])``) or registered.
"""

from __future__ import annotations

import inspect
import json
import keyword
import math

from . import generic
from .common import CellError, zeros_for_none
from .generic import recurrent_dropout_refusal

__all__ = ["Cell", "CellError", "declared", "title", "colour", "register", "names", "lookup", "get", "from_config",
           "resolve", "register_file", "for_length", "label", "zeros_for_none", "recurrent_dropout_refusal",
           "constrains", "takes", "with_options", "from_record"]


class Cell:
    """The base class of every cell; see the module for the protocol."""

    #: the name models, commands and checkpoints use for this cell (a Python identifier)
    name: str = None
    #: the carried state, each (B, H); the first is the output h_t
    state_names: tuple = ("h",)
    #: options that only shape the initial weights (a resumed run may differ in them)
    init_options: tuple = ()
    #: the option sets ``gradcheck.check_cells`` and ``numpyrnn gradcheck`` check for this cell
    forms: tuple = ({},)
    #: options that the commands fill from the task's sequence length when not given (the
    #: longest dependency a chrono initialisation or a weight bound reads)
    length_options: tuple = ()
    #: whether h_{t−1} reaches the new state only through products with recurrent weights (as
    #: in the RNN, the LSTM and IndRNN's u ⊙ h_{t−1}), so that recurrent dropout may hand the
    #: step h_{t−1} ⊙ mask (derivations §16); False for a cell that also carries h_{t−1} itself
    #: (the GRU's z ⊙ h_{t−1}), which must not be dropped
    h_prev_only_in_products: bool = False
    #: the states zoneout may act on (derivations §17: a unit keeps its previous value); None:
    #: every state (zoneout mixes old and new values in the loop, whatever the step computes)
    zoneout_states: tuple = None

    # Facts the rest of the house reads off the cell (figures, tables, the bench, the export,
    # the grader), so that no table elsewhere lists the cells.  ``title`` and ``colour`` belong
    # to the class that sets them (a subclass names and colours itself); the others hold for a
    # subclass while it keeps the math they describe (see :func:`declared`).
    #: how figures and tables name the cell ("LSTM"); None: its ``name``
    title: str = None
    #: its colour in figures (a matplotlib colour); None: one of its own (``plots.colours``)
    colour: str = None
    #: where docs/derivations.md derives its step ("§5"); None: not there
    section: str = None
    #: the blocks of rows in its weights, in order (the LSTM's ("i", "f", "g", "o")); () if none
    blocks: tuple = ()
    #: the blocks among them that are gates, σ(·) in (0, 1) (the LSTM's ("i", "f", "o"))
    gates: tuple = ()
    #: the torch.nn module of the same function and parameters ("LSTM"), or None: what
    #: ``numpyrnn.export`` writes the cell as (refusing, saying why, an option torch's lacks)
    torch_module: str = None
    #: the cell's own loops over time, by ``impl`` name ("reference", "fast"), each a
    #: :class:`~numpyrnn.cells.generic.Loop`; every cell also runs on the generic loop
    loops: dict = {}

    def __new__(cls, *args, **kwargs):
        # Record the constructor's arguments, defaults filled in, whatever the subclass's
        # __init__ does with them: they are the cell's options, saved with it.
        self = super().__new__(cls)
        signature = inspect.signature(cls.__init__)
        try:
            bound = signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{cls.__name__}(): {exc}") from None
        bound.apply_defaults()
        options = {}
        for i, (name, value) in enumerate(bound.arguments.items()):
            kind = signature.parameters[name].kind
            if i == 0:
                continue                                    # self
            if kind is inspect.Parameter.VAR_KEYWORD:
                options.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise TypeError(f"{cls.__name__}() takes its options by name, not *{name}")
            else:
                options[name] = value
        self.__dict__["_options"] = options
        return self

    def __init__(self, **options):
        for key, value in options.items():
            setattr(self, key, value)

    def __getnewargs_ex__(self):
        # copies and pickles are made again from the options (__new__ records them)
        return (), dict(self._options)

    # ------------------------------------------------------------------ what it is

    @property
    def options(self) -> dict:
        """The constructor's arguments, with defaults filled in."""
        return dict(self._options)

    def config(self) -> dict:
        """``{"name": ..., "options": {...}}``: what :func:`from_config` makes the same cell from
        (JSON, so that a checkpoint can hold it)."""
        try:
            options = json.loads(json.dumps(self._options))
        except (TypeError, ValueError) as exc:
            raise CellError(f"{type(self).__name__}'s options must be plain data (numbers, strings, "
                            f"booleans, lists) to be saved with it: {exc}") from None
        return {"name": self.name, "options": options}

    def record(self):
        """How a model's config records this cell: its :meth:`config`.  (The three textbook
        cells, at their defaults but for their function options, are recorded by name: see
        ``BuiltInCell.record``; :func:`from_record` reads either.)"""
        return self.config()

    def changed_options(self) -> dict:
        """The options given away from their defaults."""
        defaults = {k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()}
        return {k: v for k, v in self._options.items() if defaults.get(k, inspect.Parameter.empty) != v}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"{type(self).__name__}({args})"

    def short_repr(self) -> str:
        """The cell by its name and the options given away from their defaults: "gru(reset_after=False)"."""
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.changed_options().items())})"

    def __eq__(self, other):
        return type(other) is type(self) and other._options == self._options

    def __hash__(self):
        return hash((type(self), json.dumps(self._options, sort_keys=True, default=repr)))

    # ------------------------------------------------------------------ the protocol

    def parameters(self, input_size, hidden_size) -> dict:
        """{name: shape tuple} of one layer and direction's parameters, in drawing order."""
        raise NotImplementedError(f"{type(self).__name__} must define parameters(input_size, hidden_size)")

    def initialize(self, params, hidden_size, rng):
        """Fill ``params`` (name → float64 NumPy array, in :meth:`parameters` order) in place.
        Default: every entry ~ U(−1/√H, 1/√H), drawn parameter by parameter, PyTorch's rule."""
        bound = 1.0 / math.sqrt(hidden_size)
        for p in params.values():
            p[...] = rng.uniform(-bound, bound, p.shape)

    def step_forward(self, x_t, state, params):
        """One step: ``(new_state, cache)`` from x_t (B, I), the state tuple and the parameters."""
        raise NotImplementedError(f"{type(self).__name__} must define step_forward(x_t, state, params)")

    def step_backward(self, dstate, cache):
        """Backward of one step: ``(dx_t, dstate_prev, {name: grad})`` from ∂L/∂(new state)."""
        raise NotImplementedError(f"{type(self).__name__} must define step_backward(dstate, cache)")

    def gate_activations(self, cache) -> dict:
        """{gate name: (B, H)} of one step, read from its cache (optional; none by default)."""
        return {}

    def constrain(self, params):
        """Called with one (layer, direction)'s parameters (name → array, changed in place)
        after every optimizer step (optional; nothing by default)."""

    # ------------------------------------------------------------------ the loop over time

    def sequence(self, impl="fast"):
        """How a layer runs this cell over a sequence: a :class:`~numpyrnn.cells.generic.Loop`.

        Every cell runs on the generic loop over its step functions (:mod:`numpyrnn.cells.generic`);
        a cell may bring loops of its own (``loops``: the built-in cells bring their textbook
        reference and their fast path), which ``impl`` names."""
        return declared(self, "loops").get(impl, generic.LOOP)


#: the methods that make a cell's math: a subclass that defines one of them computes something
#: else, so the facts its parents declared about their math no longer hold for it
MATH = ("parameters", "step_forward", "step_backward", "function_options")


def declared(cell, fact):
    """A fact about ``cell``'s math (``loops``, ``torch_module``, ``section``, ``blocks``,
    ``gates``) as its class declares it, or as a parent declares it while every class in
    between keeps the parent's math (defines none of :data:`MATH`); else the protocol's
    default.  So ``lstm_fb1``, the LSTM with another initialisation, keeps the LSTM's loops and
    export, while a user's subclass that rewrites the LSTM's step runs on the generic loop and
    is exported as nothing."""
    for cls in type(cell).__mro__:
        if fact in cls.__dict__:
            value = cls.__dict__[fact]
            return value.__get__(cell) if isinstance(value, property) else value
        if cls is Cell or any(method in cls.__dict__ for method in MATH):
            break
    return Cell.__dict__[fact]


def title(cell) -> str:
    """How figures and tables name ``cell`` (an instance or a registered name): its class's own
    ``title``, else its name ("RNN (tanh)", "lstm_nig")."""
    if isinstance(cell, str):
        try:
            cell = lookup(cell)()
        except (CellError, TypeError, ValueError):   # no longer registered (an old results file),
            return cell                              # or not made without options: its name
    if isinstance(cell, Cell):
        own = type(cell).__dict__.get("title")
        return cell.title if isinstance(own, property) else (own or cell.name)
    return str(cell)


def colour(cell):
    """``cell``'s own colour (its class's ``colour``), or None: figures give it one of its own."""
    if isinstance(cell, str):
        try:
            cell = lookup(cell)
        except CellError:                        # a name no longer registered (an old results file)
            return None
    cls = cell if isinstance(cell, type) else type(cell)
    return cls.__dict__.get("colour")


def constrains(cell) -> bool:
    """Whether ``cell`` defines a ``constrain`` hook (the layer skips the call otherwise)."""
    return type(cell).constrain is not Cell.constrain


# --------------------------------------------------------------------------- the registry

_REGISTRY: dict = {}
#: the names the package itself registers, which no other class may take
BUILT_IN: tuple = ()
#: the files register_file imported, and the names of the modules it made of them (a worker
#: process registers the same files again)
FILES: list = []
FILE_MODULES: set = set()


def _check_class(cell_class):
    if not (isinstance(cell_class, type) and issubclass(cell_class, Cell)) or cell_class is Cell:
        raise TypeError(f"register takes a subclass of numpyrnn.cells.Cell, got {cell_class!r}")
    name = cell_class.name
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise CellError(f"{cell_class.__name__}.name must be a Python identifier (how models, commands and "
                        f"checkpoints name the cell), got {name!r}")
    names = cell_class.state_names
    if (not isinstance(names, tuple) or not names or len(set(names)) != len(names)
            or not all(isinstance(s, str) and s.isidentifier() for s in names)):
        raise CellError(f"{cell_class.__name__}.state_names must be a non-empty tuple of distinct "
                        f"identifiers, the first being the output h, got {names!r}")


def register(cell_class):
    """Make ``cell_class`` (a :class:`Cell` subclass) known by its ``name`` to models, commands
    and checkpoints.  Returns the class, so it can decorate one.  A user's name registered again
    is taken by the newest class; the built-in names cannot be taken."""
    _check_class(cell_class)
    name = cell_class.name
    held = _REGISTRY.get(name)
    if held is not None and held is not cell_class and name in BUILT_IN:
        raise CellError(f"{name!r} is the name of numpyrnn's built-in {held.__name__}; give "
                        f"{cell_class.__name__} another name")
    _REGISTRY[name] = cell_class
    return cell_class


def names() -> list:
    """Every registered cell name, the built-in ones first."""
    return [*BUILT_IN, *sorted(n for n in _REGISTRY if n not in BUILT_IN)]


def lookup(name, extra=()):
    """The class registered as ``name`` (or among ``extra``, classes handed over for this call);
    a clear error naming it, and how to provide it, when there is none."""
    for cls in extra:
        _check_class(cls)
        if cls.name == name:
            return cls
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    raise CellError(f"no cell named {name!r}: the registered cells are {', '.join(names())}. A cell of "
                    "your own is known once its class is registered (numpyrnn.cells.register(MyCell)), "
                    "or handed over (numpyrnn.load(path, cells=[MyCell])); on the command line, "
                    "--cell-file FILE registers the cells FILE defines")


def get(name, **options):
    """An instance of the cell registered as ``name``, made with ``options``."""
    return lookup(name)(**options)


def takes(name, option) -> bool:
    """Whether the cell registered as ``name`` takes the constructor option ``option``: a keyword
    of its ``__init__`` that its class does not rule out (a variant of the LSTM family without a
    forget gate of its own has ``forget_bias`` in its signature and refuses it)."""
    cls = lookup(name)
    if option not in inspect.signature(cls.__init__).parameters:
        return False
    return not (option == "forget_bias" and getattr(cls, "has_forget_rows", True) is False)


def with_options(cell_names, **options):
    """The cells ``cell_names``: each that takes every one of ``options`` (:func:`takes`; None
    values are left out) made with them, the others left as names.  A ValueError naming the
    cells that take an option when none of these does, or when a cell refuses a value."""
    given = {k: v for k, v in options.items() if v is not None}
    if not given:
        return list(cell_names)
    for option in given:
        if not any(takes(n, option) for n in cell_names):
            raise ValueError(f"{option} applies to the cells that take it ({', '.join(n for n in names() if takes(n, option))}), "
                             f"and none of {', '.join(cell_names)} does")
    return [get(n, **given) if all(takes(n, option) for option in given) else n for n in cell_names]


def from_config(config, extra=()):
    """The cell a :meth:`Cell.config` describes; ``extra``: classes to look in first."""
    if not isinstance(config, dict) or not isinstance(config.get("name"), str) \
            or not isinstance(config.get("options", {}), dict):
        raise CellError(f"a cell's config must be {{'name': str, 'options': dict}}, got {config!r}")
    return lookup(config["name"], extra)(**config.get("options", {}))


def from_record(record, extra=(), **model_options):
    """The cell a model's config records (:meth:`Cell.record`): a cell's config, or a
    registered name made with those of the model's options (``nonlinearity``, ``reset_after``,
    recorded beside the name) that its constructor takes; ``extra``: classes to look in first."""
    if isinstance(record, dict):
        return from_config(record, extra)
    cls = lookup(record, extra)
    taken = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in model_options.items() if k in taken})


def resolve(cell, extra=()):
    """A Cell from what a user may give: an instance, a registered name, or a config dict."""
    if isinstance(cell, Cell):
        return cell
    if isinstance(cell, str):
        return lookup(cell, extra)()
    if isinstance(cell, dict):
        return from_config(cell, extra)
    if isinstance(cell, type) and issubclass(cell, Cell):
        return cell()
    raise TypeError(f"cell must be a Cell, a registered cell's name ({', '.join(names())}) or a cell's "
                    f"config, got {type(cell).__name__}")


def register_file(path):
    """Import the Python file ``path`` (a user's own, named by the user: ``--cell-file``) and
    register every :class:`Cell` subclass it defines that has a ``name``.  Returns the classes.

    This is the one place numpyrnn runs code from a file, and only one the user names on the
    command line; a checkpoint never names a file to import."""
    import importlib.util
    import os

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    module_name = "numpyrnn_cells_" + "".join(c if c.isalnum() else "_" for c in os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: not a Python file numpyrnn can import")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [obj for obj in vars(module).values()
             if isinstance(obj, type) and issubclass(obj, Cell) and obj.__module__ == module_name
             and obj.name is not None]
    if not found:
        raise CellError(f"{path} defines no subclass of numpyrnn.cells.Cell with a name")
    for cls in found:
        register(cls)
    if os.path.abspath(path) not in FILES:
        FILES.append(os.path.abspath(path))
    FILE_MODULES.add(module_name)
    return found


def for_length(cell, seq_len, extra=()):
    """The cell a command makes for a task of sequences of ``seq_len`` steps: a name becomes its
    cell with every ``length_options`` option set to ``seq_len``; a Cell (options given) stays
    as it is."""
    if isinstance(cell, str):
        cls = lookup(cell, extra)
        return cls(**{name: seq_len for name in cls.length_options})
    return resolve(cell, extra)


def label(cell) -> str:
    """The name to show for a cell given any way :func:`resolve` takes."""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, dict):
        return str(cell.get("name"))
    return getattr(cell, "name", None) or type(cell).__name__
