"""A run's settings as one object: what to build, how to train it, for how long, and where.

:class:`Settings` is frozen; each field is declared once, here, with what the command line needs
to make a flag of it (:data:`SPEC`: the flag, its type, its help, its group).  A field left None
means "the task's": :meth:`Settings.resolved` fills every such field from the task's defaults,
in this one place, and :mod:`numpyrnn.train`, :mod:`numpyrnn.experiments` and the command line
take the resolved object whole.  A checkpoint holds it whole (:meth:`Settings.to_dict`), so a
resumed run is the saved settings with the flags given laid over them (:meth:`Settings.resume`):
the budget, the device and the loop (``impl``) may change on resume; whatever defines the model
or its training may not, and a change to it is refused, saying which.

A new setting is added here (a field and its line in :data:`SPEC`) and where it acts, and
nowhere in between.  The layers and models keep their keyword arguments, as torch's do: a
setting object is how a *run* travels, not a replacement for ``LSTM(..., recurrent_dropout=0.25)``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from .models import REGULARISERS   # the regularisers of training (derivations §16)


@dataclass(frozen=True)
class Settings:
    """One run's settings; None: the task's (see :meth:`resolved`).  Groups: the model, its
    regularisation, the optimisation, the budget, early stopping, and where the run computes."""

    # the model
    cell: object = "lstm"             # a registered name, a Cell, or a cell's config
    hidden: int = None
    layers: int = 1
    bidirectional: bool = None        # None: the task's (both ways for g2p's encoder, else one)
    dropout: float = None             # between stacked layers (and a model's own place); None: the task's, else 0
    nonlinearity: str = "tanh"        # the RNN cell's
    reset_after: bool = True          # the GRU's form
    dtype: str = "float32"
    # regularisation (None: the task's tuned value, else off)
    input_dropout: float = None
    embedding_dropout: float = None
    recurrent_dropout: float = None
    zoneout: float = None             # h's rate (Krueger et al. 2017)
    zoneout_c: float = None           # c's rate, for a cell with a state c
    # optimisation
    optimizer: str = None
    lr: float = None
    weight_decay: float = 0.0
    momentum: float = 0.0             # sgd and rmsprop
    clip: object = "task"             # "task": the task's; None: no clipping; else the global norm
    schedule: str = None              # None: the task's, else "none"
    batch_size: int = None
    # the budget and early stopping
    steps: int = None
    epochs: int = None
    eval_every: int = None
    patience: int = None              # None: the task's (g2p 8), else train the whole budget
    min_delta: float = 0.0
    # the run
    seed: int = 0
    device: str = "auto"
    impl: str = "fast"

    # ------------------------------------------------------------------ resolving

    def resolved(self, task) -> "Settings":
        """These settings with every "the task's" filled from ``task.defaults``: the one place a
        task's defaults are read.  The budget becomes ``steps`` or ``epochs`` (one of them)."""
        d = task.defaults
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give at most one of steps and epochs")
        budget = ({"steps": self.steps} if self.steps is not None else {"epochs": self.epochs}
                  if self.epochs is not None else {"steps": d["steps"]} if "steps" in d else {"epochs": d["epochs"]})
        return dataclasses.replace(
            self, hidden=self.hidden or d.get("hidden"), optimizer=self.optimizer or d.get("optimizer"),
            lr=self.lr or d.get("lr"), batch_size=self.batch_size or d.get("batch_size"),
            clip=d.get("clip") if self.clip == "task" else self.clip,
            eval_every=self.eval_every or d.get("eval_every"),
            **{name: d.get(name, default) if getattr(self, name) is None else getattr(self, name)
               for name, default in (("bidirectional", False), ("dropout", 0.0), ("schedule", "none"),
                                     ("patience", None))},
            steps=budget.get("steps"), epochs=budget.get("epochs"),
            **{name: getattr(self, name) if getattr(self, name) is not None else d.get(name, 0.0)
               for name in REGULARISERS})

    @property
    def budget(self) -> dict:
        """``{"steps": n}`` or ``{"epochs": n}`` (of resolved settings)."""
        return {"steps": self.steps} if self.steps is not None else {"epochs": self.epochs}

    @property
    def regularisers(self) -> dict:
        """The regularisers that are on, by name (of resolved settings)."""
        return {name: getattr(self, name) for name in REGULARISERS if getattr(self, name)}

    def model_options(self) -> dict:
        """What a task's ``make_model`` takes from these settings (resolved), but the cell."""
        return dict(hidden_size=self.hidden, num_layers=self.layers, bidirectional=self.bidirectional,
                    dropout=self.dropout, dtype=np.dtype(self.dtype), seed=self.seed, device=self.device,
                    nonlinearity=self.nonlinearity, reset_after=self.reset_after, impl=self.impl,
                    **self.regularisers)

    def optimizer_options(self) -> dict:
        """What ``optim.make`` takes for this optimizer: lr, weight decay, and momentum where it has one."""
        return {"lr": self.lr, "weight_decay": self.weight_decay,
                **({"momentum": self.momentum} if self.optimizer in ("sgd", "rmsprop") else {})}

    # ------------------------------------------------------------------ saving and resuming

    def to_dict(self) -> dict:
        """JSON-ready: every field, the cell by name or by its config."""
        out = dataclasses.asdict(self)
        cell = self.cell
        if not isinstance(cell, (str, dict)):
            out["cell"] = cell.config()
        out["dtype"] = np.dtype(self.dtype).name
        return json.loads(json.dumps(out))

    @classmethod
    def from_dict(cls, data) -> "Settings":
        """The settings :meth:`to_dict` wrote; a field an older file lacks takes its default."""
        if not isinstance(data, dict):
            raise ValueError(f"settings must be a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown settings {', '.join(unknown)}")
        return cls(**data)

    def resume(self, given, recorded=None) -> "Settings":
        """The settings of a resumed run: these (the saved ones) with ``given`` (the fields the
        user gave again, name → value) laid over them.  A field of :data:`MAY_CHANGE_ON_RESUME`
        takes the given value; any other given with another value is refused (ValueError naming
        it), since it defines the model or its training.  ``recorded``: the fields the saved run
        recorded (None: all); one it did not record takes what is given (an older checkpoint)."""
        changed = {}
        for name, value in given.items():
            saved = getattr(self, name)
            if _same(value, saved):
                continue
            if name not in MAY_CHANGE_ON_RESUME and (recorded is None or name in recorded):
                raise ValueError(f"{name} was {_shown(saved)} in the saved run and is {_shown(value)} here: "
                                 f"a resumed run keeps what defines its model and its training (only "
                                 f"{', '.join(MAY_CHANGE_ON_RESUME)} may change)")
            changed[name] = value
        if "steps" in changed:
            changed.setdefault("epochs", None)
        if "epochs" in changed:
            changed.setdefault("steps", None)
        return dataclasses.replace(self, **changed)


def settings_of(settings=None, fields=None) -> Settings:
    """The Settings a function that takes a run's settings works with: ``settings`` (a Settings,
    or None for the defaults) with ``fields`` (its keyword form, name → value) laid over it."""
    fields = fields or {}
    if settings is None:
        return Settings(**fields)
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be a numpyrnn.settings.Settings, got {type(settings).__name__}")
    return dataclasses.replace(settings, **fields) if fields else settings


#: what a resumed run may change: its budget (and when it evaluates and stops), where it computes
MAY_CHANGE_ON_RESUME = ("steps", "epochs", "eval_every", "patience", "min_delta", "device", "impl")


def _same(a, b):
    if hasattr(a, "config") and not isinstance(a, dict):
        a = a.config()
    if hasattr(b, "config") and not isinstance(b, dict):
        b = b.config()
    if isinstance(a, str) and isinstance(b, dict):
        a, b = b, a
    if isinstance(a, dict) and isinstance(b, str):     # a name against a config of that cell with defaults
        from . import cells

        try:
            return cells.resolve(a) == cells.resolve(b)
        except Exception:
            return False
    return a == b


def _shown(value):
    return value.short_repr() if hasattr(value, "short_repr") else repr(value)


# --------------------------------------------------------------------------- the flags

class Flag(NamedTuple):
    """A setting as a command-line flag: ``field`` of :class:`Settings`, shown as ``flag``;
    ``kind``: an argparse type, "switch" (store_true), or a choices callable's name; ``help``;
    ``group``; ``to_field``: the flag's value to the field's (None: as it is)."""
    field: str
    flag: str
    help: str
    group: str
    type: Callable = None
    choices: Callable = None
    switch: bool = False
    metavar: str = None
    to_field: Callable = None


def positive_int(text):
    """An argument type: a whole number ≥ 1 (the command line's, for every flag that takes one)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text):
    """An argument type: a finite number > 0."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def _optimizers():
    from . import optim

    return list(optim.OPTIMIZERS)


def _schedules():
    from . import train

    return list(train.SCHEDULES)


def _nonlinearities():
    from .cells.common import NONLINEARITIES

    return list(NONLINEARITIES)


def _impls():
    from .layers.recurrent import IMPLS

    return list(IMPLS)


TUNED = " (default: 0, or what the data set's tuned settings chose)"
TASKS = " (default: the task's)"

#: every setting a command line can give, declared once: the train command takes them all,
#: compare the model, regularisation and optimisation ones (see numpyrnn.cli)
SPEC = (
    Flag("cell", "--cell", "recurrent cell: rnn, lstm, gru, or a cell of your own from --cell-file (default: lstm)",
         "model", metavar="NAME"),
    Flag("hidden", "--hidden", "hidden units" + TASKS, "model", type=positive_int),
    Flag("layers", "--layers", "stacked layers (default: 1)", "model", type=positive_int),
    Flag("bidirectional", "--bidirectional", "read each sequence both ways (default: the task's; one way, but "
         "g2p's encoder both)", "model", switch=True),
    Flag("bidirectional", "--one-way", "read each sequence one way only (g2p: its encoder)", "model", switch=True,
         to_field=lambda v: False),
    Flag("dropout", "--dropout", "dropout between stacked layers, and g2p's on the attentional layer (default: 0; "
         "g2p 0.2)", "model", type=float),
    Flag("input_dropout", "--input-dropout",
         "one mask per sequence over the recurrent layer's input features (Keras's dropout)" + TUNED,
         "model", type=float),
    Flag("embedding_dropout", "--embedding-dropout",
         "whole word types dropped per sequence (Gal & Ghahramani 2016)" + TUNED, "model", type=float),
    Flag("recurrent_dropout", "--recurrent-dropout",
         "one mask per sequence on h_{t-1} where it enters the recurrent products (Gal & Ghahramani 2016; "
         "Keras's recurrent_dropout); the GRU's carry z*h_{t-1} is never masked" + TUNED, "model", type=float),
    Flag("zoneout", "--zoneout", "each unit of h keeps its previous value with probability P at every step "
         "(Krueger et al. 2017, derivations §17; at evaluation the expectation)" + TUNED, "model", type=float,
         metavar="P"),
    Flag("zoneout_c", "--zoneout-c", "the same for the cell state c (the LSTM's), at its own rate" + TUNED,
         "model", type=float, metavar="P"),
    Flag("nonlinearity", "--nonlinearity", "the RNN cell's (default: tanh)", "model", choices=_nonlinearities),
    Flag("reset_after", "--gru-form", "GRU reset gate after the product (PyTorch) or before it (Cho et al. v3) "
         "(default: after)", "model", choices=lambda: ["after", "before"], to_field=lambda v: v == "after"),
    Flag("dtype", "--dtype", "parameters and arithmetic (default: float32)", "model",
         choices=lambda: ["float32", "float64"]),
    Flag("optimizer", "--optimizer", "the optimizer" + TASKS, "training", choices=_optimizers),
    Flag("lr", "--lr", "learning rate" + TASKS, "training", type=positive_float),
    Flag("weight_decay", "--weight-decay", "L2 penalty, decoupled for adamw (default: 0)", "training", type=float),
    Flag("momentum", "--momentum", "for sgd and rmsprop (default: 0)", "training", type=float),
    Flag("clip", "--clip", "clip the global gradient norm" + TASKS, "training", type=positive_float),
    Flag("clip", "--no-clip", "do not clip", "training", switch=True, to_field=lambda v: None),
    Flag("schedule", "--schedule", "learning-rate schedule over the run, step: ×0.1 at 2/3; plateau: halved after "
         "two evaluations without a better validation metric (default: none; g2p plateau)",
         "training", choices=_schedules),
    Flag("batch_size", "--batch-size", "sequences per batch" + TASKS, "training", type=positive_int),
    Flag("steps", "--steps", "optimizer steps in all" + TASKS, "budget", type=positive_int),
    Flag("epochs", "--epochs", "epochs in all, instead of steps", "budget", type=positive_int),
    Flag("eval_every", "--eval-every", "evaluate on val every N steps" + TASKS, "budget", type=positive_int),
    Flag("patience", "--patience", "stop when the validation metric has not improved for this many evaluations "
         "in a row, and test the best weights (default: train the whole budget; g2p 8)", "budget", type=positive_int),
    Flag("min_delta", "--min-delta", "the least change that counts as an improvement, with --patience "
         "(default: 0)", "budget", type=float),
    Flag("seed", "--seed", "seed for the data, the weights, the batches (default: 0)", "run", type=int),
    Flag("impl", "--impl", "how the recurrent layers run each cell over the sequence: the fast path; the reference "
         "(the textbook loop over the step functions; several times slower); or the generic loop written once for "
         "any cell (a cell of your own always runs on it) (default: fast)", "run", choices=_impls),
)


def flag_dest(flag: Flag) -> str:
    """The argparse destination of a flag: ``no_clip`` for --no-clip, else the flag's name."""
    return flag.flag.lstrip("-").replace("-", "_")


def given(args, flags=SPEC) -> dict:
    """The settings the user gave on the command line (every flag of ``flags`` that was given),
    as fields: name → value."""
    out = {}
    for flag in flags:
        value = getattr(args, flag_dest(flag), None)
        if value is None or value is False:
            continue
        out[flag.field] = flag.to_field(value) if flag.to_field else value
    return out


# --------------------------------------------------------------------------- a saved run's settings

#: a schedule's class name, as a checkpoint's trainer state records it, to its name in train.SCHEDULES
_SCHEDULE_NAMES = {None: "none", "StepLR": "step", "CosineAnnealingLR": "cosine", "ReduceLROnPlateau": "plateau"}


def saved(state, model_config) -> tuple:
    """The settings a training checkpoint was written with, from its trainer state and model
    config: ``(settings, recorded)``, ``recorded`` the fields the file holds.  A checkpoint of
    today holds them whole; one written before settings were saved (every earlier format) is
    read from what it does hold (the model's config, the optimizer's, the batch size, the seed,
    the schedule), its other fields left to what the resumed run gives (as such runs always
    resumed).  How an older run's settings are migrated; ``checkpoint.read`` calls it, the one
    place a saved run is brought up to date."""
    if state.get("settings") is not None:
        settings = Settings.from_dict(state["settings"])
        return settings, tuple(f.name for f in dataclasses.fields(Settings))
    from .optim import OPTIMIZERS

    c, opt = model_config, state.get("optimizer", {})
    names = {cls.__name__: name for name, cls in OPTIMIZERS.items()}    # the class's name, as saved
    cell = c.get("cell", "lstm")
    fields = dict(cell=cell, hidden=c.get("hidden_size"), layers=c.get("num_layers", 1),
                  bidirectional=c.get("bidirectional", False), dropout=c.get("dropout", 0.0),
                  nonlinearity=c.get("nonlinearity", "tanh"), reset_after=c.get("reset_after", True),
                  dtype=c.get("dtype", "float32"),
                  **{name: c.get(name, 0.0) for name in REGULARISERS},
                  optimizer=names.get(opt.get("name"), opt.get("name")), lr=opt.get("lr"),
                  weight_decay=opt.get("weight_decay", 0.0), batch_size=state.get("batch_size"),
                  seed=state.get("seed", 0))
    if "momentum" in opt:
        fields["momentum"] = opt["momentum"]
    schedule = state.get("schedule")
    fields["schedule"] = _SCHEDULE_NAMES.get(None if schedule is None else schedule.get("name"), "none")
    return Settings(**fields), tuple(fields)
