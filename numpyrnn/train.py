"""The training loop: batches, optimizer steps, evaluation, timing, history and checkpoints.

    task = numpyrnn.tasks.make("adding", seq_len=50, seed=0)
    model = task.make_model("lstm", hidden_size=64, seed=0)
    trainer = Trainer(model, task, optim.Adam(model, lr=2e-3), batch_size=64, clip=1.0,
                      eval_every=200, out_dir="runs/adding")
    result = trainer.fit(steps=2000)          # {"val_mse": ..., "test_mse": ..., "train_seconds": ...}

What it guarantees:

* Same seed, same run: batches are drawn from the trainer's own generator, dropout from the
  model's; on the CPU every number repeats bit for bit.
* A checkpoint (``out_dir/checkpoint.npz``, written atomically at every evaluation) holds all of
  it — parameters, optimizer and schedule state, the epoch's batch plan and the position in it,
  every random generator, the state a language model carries between chunks, the running
  averages — so ``resume`` continues exactly as if the run had not stopped.
* Training time counts only training steps (forward, backward, clipping, update), never
  evaluation or checkpointing.
* A loss or gradient that is NaN or Inf stops the run with :class:`TrainingError` naming the
  step, before anything is written: the last good checkpoint stays as it was.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np

from . import __version__, checkpoint, optim
from .backend import asnumpy, thread_policy
from .models import REGULARISERS
from .settings import Settings, settings_of
from .validation import check_int


def _check_limit(name, value):
    """None, or a positive finite number (a clipping threshold)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be None or a positive finite number, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- budgets and schedules

def steps_per_epoch(task, batch_size) -> int:
    """Optimizer steps in one epoch of ``task`` at ``batch_size``."""
    return len(task.epoch(batch_size, np.random.default_rng(0)))


def budget(task, steps=None, epochs=None) -> dict:
    """``{"steps": n}`` or ``{"epochs": n}``: what was given, else the task's default budget."""
    if steps is not None and epochs is not None:
        raise ValueError("give at most one of steps and epochs")
    if steps is not None:
        return {"steps": steps}
    if epochs is not None:
        return {"epochs": epochs}
    d = task.defaults
    return {"steps": d["steps"]} if "steps" in d else {"epochs": d["epochs"]}


def total_steps(task, batch_size, run_budget) -> int:
    """The optimizer steps a budget from :func:`budget` amounts to."""
    return run_budget.get("steps") or run_budget["epochs"] * steps_per_epoch(task, batch_size)


SCHEDULES = ("none", "step", "cosine", "plateau")


def make_schedule(kind, optimizer, total, higher_is_better=False):
    """The learning-rate schedule ``kind`` over ``total`` steps: None for "none"; "step": ×0.1
    at two thirds of the run; "cosine": cosine annealing to 0 over the run; "plateau": halved
    after two evaluations in a row without a better validation metric (in the direction
    ``higher_is_better`` says)."""
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
    if kind == "plateau":
        return optim.ReduceLROnPlateau(optimizer, factor=0.5, patience=1, mode="max" if higher_is_better else "min")
    if kind == "step":
        return optim.StepLR(optimizer, step_size=max(1, 2 * total // 3), gamma=0.1)
    if kind == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=total)
    return None


#: the run's checkpoint, in its folder
CHECKPOINT = "checkpoint.npz"


def task_regularisers(task, **given):
    """The regularisers of :data:`numpyrnn.models.REGULARISERS` for a run on ``task``: each one
    given (not None) as given, else the task's default (a data set's tuned settings may hold
    one), else 0 (what :meth:`Settings.resolved` gives them)."""
    unknown = sorted(set(given) - set(REGULARISERS))
    if unknown:
        raise TypeError(f"unknown regularisers {', '.join(unknown)}; known: {', '.join(REGULARISERS)}")
    resolved = Settings(**given).resolved(task)
    return {name: getattr(resolved, name) for name in REGULARISERS}


def setup(task, settings=None, *, out_dir=None, progress=None, log=None, **fields):
    """A training run on ``task``: the model, its optimizer and schedule, and the trainer, from
    ``settings`` (a :class:`~numpyrnn.settings.Settings`) resolved against the task's defaults.
    Returns ``(trainer, budget)``, ready for ``trainer.fit(**budget)``.

    The keyword form names the settings instead, the cell first: ``setup(task, "gru", hidden=32,
    steps=200)`` is ``setup(task, Settings(cell="gru", hidden=32, steps=200))``; with a Settings,
    ``fields`` are laid over it.  ``out_dir``, ``progress`` and ``log`` are where the run writes
    and what it shows, not settings."""
    if settings is not None and not isinstance(settings, Settings):   # the keyword form: the cell first
        settings, fields = None, {"cell": settings, **fields}
    s = settings_of(settings, fields).resolved(task)
    model = task.make_model(s.cell, **s.model_options())
    opt = optim.make(s.optimizer, model, **s.optimizer_options())
    trainer = Trainer(model, task, opt, batch_size=s.batch_size, clip=s.clip,
                      schedule=make_schedule(s.schedule, opt, total_steps(task, s.batch_size, s.budget),
                                             task.higher_is_better),
                      eval_every=s.eval_every, seed=s.seed, out_dir=out_dir, progress=progress, log=log,
                      patience=s.patience, min_delta=s.min_delta, settings=s)
    return trainer, s.budget


def saved_run(out_dir, given=None, *, task=None, task_options=None):
    """What ``train --out DIR --resume`` continues: ``(task, settings)`` of the run saved in
    ``out_dir``, its task made again from its config, and its settings with ``given`` (a dict of
    settings by field) laid over them (:meth:`Settings.resume` says which may change; the
    others must equal the saved run's).  ``task`` and ``task_options``, when given, must name
    the saved run's task and options.  A ValueError saying what differs, or what is missing."""
    from . import tasks

    path = os.path.join(out_dir, CHECKPOINT)
    if not os.path.exists(path):
        raise ValueError(f"{path} does not exist")
    arrays = checkpoint.read(path)               # an older run's brought up to date as it is read
    if "trainer" not in arrays:
        raise checkpoint.CheckpointError(f"{path}: a saved model, not a training checkpoint (no trainer state)")
    state = checkpoint.from_json_array(arrays["trainer"])
    settings, recorded = Settings.from_dict(state["settings"]), tuple(state["settings_recorded"])
    config = state["task"]
    name, saved_options = config["name"], {k: v for k, v in config.items() if k not in ("name", "seed")}
    if task is not None and task != name:
        raise ValueError(f"the run in {out_dir} trains on --task {name}, not {task}")
    for key, value in (task_options or {}).items():
        if saved_options.get(key) != value:
            raise ValueError(f"the run in {out_dir} has {key} {saved_options.get(key)!r}, not {value!r}")
    return tasks.make(name, seed=config["seed"], **saved_options), settings.resume(given or {}, recorded)


# --------------------------------------------------------------------------- the trainer

class TrainingError(RuntimeError):
    """Training cannot go on (a NaN or infinite loss or gradient)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run between two steps; ``step`` and ``checkpoint`` say where it is kept."""

    def __init__(self, step, checkpoint):
        super().__init__(f"interrupted at step {step}" + (f"; checkpoint and history written to {checkpoint}"
                                                            if checkpoint else ""))
        self.step, self.checkpoint = step, checkpoint


#: a gradient norm this many times the median of the last ``SPIKE_WINDOW`` steps is reported
SPIKE_FACTOR, SPIKE_WINDOW = 10.0, 100


class Trainer:
    """Train ``model`` on ``task`` with ``optimizer``; see the module docstring."""

    def __init__(self, model, task, optimizer, *, batch_size=32, clip=None, clip_value=None,
                 schedule=None, eval_every=None, eval_batch_size=None, seed=0, out_dir=None,
                 progress=None, log=None, on_step=None, patience=None, min_delta=0.0, restore_best=True,
                 settings=None):
        from .models import SequenceModel
        from .tasks import Task

        if not isinstance(model, SequenceModel):
            raise TypeError(f"model must be a numpyrnn model (SequenceClassifier, SequenceRegressor, CharLM), got "
                            f"{type(model).__name__}")
        if not isinstance(task, Task):
            raise TypeError(f"task must be a numpyrnn task (numpyrnn.tasks.make), got {type(task).__name__}")
        if not isinstance(optimizer, optim.Optimizer) or optimizer.model is not model:
            raise TypeError("optimizer must be a numpyrnn.optim optimizer of this model (optim.Adam(model, lr=...) "
                            "or optim.make(name, model, ...)), got "
                            + ("one of another model" if isinstance(optimizer, optim.Optimizer)
                               else repr(optimizer) if isinstance(optimizer, str) else type(optimizer).__name__))
        if schedule is not None and not isinstance(schedule, (optim.StepLR, optim.ReduceLROnPlateau)):
            raise TypeError(f"schedule must be None or a numpyrnn.optim schedule (StepLR, CosineAnnealingLR, "
                            f"ReduceLROnPlateau), got "
                            f"{type(schedule).__name__}")
        self.model, self.task, self.optimizer, self.schedule = model, task, optimizer, schedule
        if settings is not None and not isinstance(settings, Settings):
            raise TypeError(f"settings must be a numpyrnn.settings.Settings or None, got {type(settings).__name__}")
        self.settings = settings       # what the run was set up from (train.setup), saved whole
        # the optimizer's settings as the run begins (a schedule then moves its lr)
        self._optimizer_settings = {"name": type(optimizer).__name__, **optimizer.hyperparameters()}
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.clip, self.clip_value = _check_limit("clip", clip), _check_limit("clip_value", clip_value)
        self.eval_every = None if eval_every is None else check_int("eval_every", eval_every, 1)
        self.eval_batch_size = (max(self.batch_size, 64) if eval_batch_size is None
                                else check_int("eval_batch_size", eval_batch_size, 1))
        self.seed = check_int("seed", seed, 0)
        if out_dir is not None:
            try:
                os.fspath(out_dir)
            except TypeError:
                raise TypeError(f"out_dir must be a folder path or None, got {type(out_dir).__name__}") from None
        if progress is not None and not isinstance(progress, bool):
            raise TypeError(f"progress must be True, False or None (a terminal decides), got {progress!r}")
        # early stopping: the task's own metric on validation, in its own direction
        self.patience = None if patience is None else check_int("patience", patience, 1)
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not math.isfinite(min_delta) \
                or min_delta < 0:
            raise ValueError(f"min_delta must be a finite number ≥ 0, got {min_delta!r}")
        if not isinstance(restore_best, bool):
            raise TypeError(f"restore_best must be True or False, got {restore_best!r}")
        self.min_delta, self.restore_best = float(min_delta), restore_best
        self.best = None               # {"value", "step", "since"}: the best validation so far
        self._best_params = None       # its weights (NumPy), kept in memory and in the checkpoint
        self.stopped_early = False
        self.rng = np.random.default_rng(self.seed)
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.progress = sys.stderr.isatty() if progress is None else bool(progress)
        self.log = log if log is not None else (lambda line: None)
        self.on_step = on_step         # called with the loss after every step (an outer progress bar)
        # where the run is
        self.step = 0
        self.epoch = 0                 # epochs started
        self.plan, self.position = None, 0
        self.carry = None              # the state a language model carries to its next chunk
        self.train_seconds = 0.0
        self.epoch_seconds = []        # training time of each finished epoch
        self._epoch_start_seconds = 0.0
        self.history = []
        self._since = {"loss": 0.0, "grad_norm": 0.0, "grad_norm_max": 0.0, "steps": 0, "spikes": 0}
        self._recent_norms = []
        self._stop_requested = False
        self._resumed = False

    # ------------------------------------------------------------------ the loop

    @property
    def checkpoint_path(self):
        return None if self.out_dir is None else os.path.join(self.out_dir, CHECKPOINT)

    @thread_policy()
    def fit(self, steps=None, epochs=None):
        """Train until ``steps`` optimizer steps or ``epochs`` epochs in all (counting any done
        before a resume), evaluating every ``eval_every`` steps and at the end; under numpyrnn's
        BLAS thread policy (:class:`numpyrnn.backend.thread_policy`).

        Returns the final metrics: ``val_*`` and ``test_*`` by name, ``train_seconds``,
        ``seconds_per_epoch``, ``steps``, ``epochs``.
        """
        if (steps is None) == (epochs is None):
            raise ValueError("give exactly one of steps and epochs")
        if steps is not None:
            check_int("steps", steps, 1)
        else:
            check_int("epochs", epochs, 1)
        self._check_out_dir()
        total = total_steps(self.task, self.batch_size, {"steps": steps} if steps is not None else {"epochs": epochs})
        bar = None
        self._stop_requested = False
        previous_handler = self._catch_ctrl_c()
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=self.step, desc=f"{self.task.name} {self.model.config().get('cell', '')}",
                       unit="step", dynamic_ncols=True, file=sys.stderr)
        try:
            while self.step < total:
                if self._stop_requested:         # Ctrl-C: stop between steps, everything kept
                    self._stop_requested = False
                    path = self.save_checkpoint()
                    raise Interrupted(self.step, path)
                if self.plan is None or self.position >= len(self.plan):
                    if self.plan is not None:
                        self._finish_epoch()
                    self.plan, self.position = self.task.epoch(self.batch_size, self.rng), 0
                    self.epoch += 1
                    self._epoch_start_seconds = self.train_seconds
                batch = self.task.batch(self.plan[self.position])
                self.position += 1
                loss, norm = self._train_step(batch)
                if self.on_step is not None:
                    self.on_step(loss)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4g}")
                if self.eval_every and self.step % self.eval_every == 0 or self.step == total:
                    record = self._record()
                    if bar is not None:
                        bar.write(self._describe(record))
                    else:
                        self.log(self._describe(record))
                    self._track_best(record)
                    self.save_checkpoint()
                    if self.patience is not None and self.best["since"] >= self.patience:
                        self.stopped_early = True
                        self.log(f"early stop at step {self.step}: val_{self.task.metric} has not improved for "
                                 f"{self.patience} evaluations (best {self.best['value']:.4f} at step "
                                 f"{self.best['step']})")
                        break
        finally:
            if bar is not None:
                bar.close()
            self._restore_ctrl_c(previous_handler)
        if self.plan is not None and self.position >= len(self.plan):
            self._finish_epoch()
        if self.restore_best and self._best_params is not None and self.best["step"] != self.step:
            self.model.load_state_dict(self._best_params)      # test at the best, as Keras restores it
        return self.final_metrics()

    def _track_best(self, record):
        """Early stopping's bookkeeping after an evaluation: a better validation metric (by more
        than ``min_delta``; a tie keeps the earlier) becomes the best, its weights kept."""
        if self.patience is None and not self.restore_best:
            return
        value = record[f"val_{self.task.metric}"]
        if self.best is None:
            better = True
        elif self.task.higher_is_better:
            better = value > self.best["value"] + self.min_delta
        else:
            better = value < self.best["value"] - self.min_delta
        if better:
            self.best = {"value": value, "step": self.step, "since": 0}
            if self.restore_best and self.patience is not None:
                self._best_params = self.model.state_dict()
        else:
            self.best["since"] += 1

    def _check_out_dir(self):
        """Before a run writes into ``out_dir``: a folder holding another run is never written
        over by a trainer that did not resume it."""
        if self.out_dir is None or self._resumed or self.step > 0:
            return
        from . import runs

        existing = [name for name in runs.FILES["train"] if os.path.exists(os.path.join(self.out_dir, name))]
        if existing:
            raise ValueError(f"out_dir {self.out_dir} holds a run already ({', '.join(existing)}): call resume() to "
                             "continue it, or give another out_dir (the command line's --overwrite replaces it)")

    def _train_step(self, batch):
        model = self.model
        start = time.perf_counter()
        model.train()
        model.zero_grad()
        carries_state = hasattr(model, "final_state")          # a language model
        kwargs = {"state": self.carry if batch.carry_state else None} if carries_state else {}
        loss, _ = model.forward(batch.inputs, batch.targets, batch.lengths, **kwargs)
        if not math.isfinite(loss):
            raise TrainingError(self._stopped(f"the loss became {loss}"))
        model.backward()
        if carries_state:
            self.carry = model.final_state
        grads = model.grads
        if self.clip_value is not None:
            optim.clip_grad_value(grads, self.clip_value)
        norm = optim.clip_grad_norm(grads, self.clip) if self.clip is not None else optim.grad_norm(grads)
        if not math.isfinite(norm):
            raise TrainingError(self._stopped(f"the gradient norm became {norm}"))
        self._watch_for_spikes(norm)
        self.optimizer.step()
        model.constrain()                                       # the cells' constrain hooks
        if self.schedule is not None:
            self.schedule.step()
        self.train_seconds += time.perf_counter() - start
        self.step += 1
        self._since["loss"] += loss
        self._since["grad_norm"] += norm
        self._since["grad_norm_max"] = max(self._since["grad_norm_max"], norm)
        self._since["steps"] += 1
        return loss, norm

    def _watch_for_spikes(self, norm):
        """Report a gradient norm far above the recent ones (an exploding gradient)."""
        recent = self._recent_norms
        if len(recent) >= 20:
            median = float(np.median(recent))
            if norm > SPIKE_FACTOR * median:
                self._since["spikes"] += 1
                if self._since["spikes"] == 1:           # once per evaluation interval
                    clipped = f", clipped to {self.clip}" if self.clip is not None and norm > self.clip else ""
                    self.log(f"exploding gradient at step {self.step + 1}: norm {norm:.3g}, "
                             f"{norm / median:.0f}× the median of the last {len(recent)} steps{clipped}")
        recent.append(norm)
        if len(recent) > SPIKE_WINDOW:
            del recent[0]

    def _catch_ctrl_c(self):
        """Make Ctrl-C request a stop at the next step boundary (main thread only)."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return None

        def request_stop(signum, frame):
            if self._stop_requested:                # a second Ctrl-C: stop now
                raise KeyboardInterrupt
            self._stop_requested = True

        return signal.signal(signal.SIGINT, request_stop)

    @staticmethod
    def _restore_ctrl_c(previous):
        if previous is not None:
            import signal

            signal.signal(signal.SIGINT, previous)

    def _stopped(self, what):
        kept = self.checkpoint_path if self.checkpoint_path and os.path.exists(self.checkpoint_path) else None
        return (f"{what} at step {self.step + 1} (epoch {self.epoch}); training stopped"
                + (f"; the last good checkpoint, from step {self._checkpoint_step}, is {kept}" if kept
                   else "; no checkpoint was written before it"))

    def _finish_epoch(self):
        if len(self.epoch_seconds) < self.epoch:            # once per epoch, whatever calls it
            self.epoch_seconds.append(self.train_seconds - self._epoch_start_seconds)

    def _record(self):
        n = max(self._since["steps"], 1)
        record = {"step": self.step, "epoch": self.epoch, "train_loss": self._since["loss"] / n,
                  "grad_norm": self._since["grad_norm"] / n, "grad_norm_max": self._since["grad_norm_max"],
                  "grad_spikes": self._since["spikes"], "lr": self.optimizer.lr,
                  "train_seconds": self.train_seconds}
        record.update({f"val_{k}": v for k, v in self.task.evaluate(self.model, "val", self.eval_batch_size).items()})
        if isinstance(self.schedule, optim.ReduceLROnPlateau):     # the one schedule that reads validation
            self.schedule.observe(record[f"val_{self.task.metric}"])
        self._since = {"loss": 0.0, "grad_norm": 0.0, "grad_norm_max": 0.0, "steps": 0, "spikes": 0}
        self.history.append(record)
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
            with open(os.path.join(self.out_dir, "history.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
        return record

    def _describe(self, record):
        metric = self.task.metric
        return (f"step {record['step']:>6}  epoch {record['epoch']:>3}  train_loss {record['train_loss']:.4f}  "
                f"val_loss {record['val_loss']:.4f}  val_{metric} {record[f'val_{metric}']:.4f}  "
                f"grad_norm {record['grad_norm']:.3g}  ({record['train_seconds']:.1f} s training)")

    def final_metrics(self):
        """The last validation record's metrics, the test metrics, timing and counts."""
        out = {k: v for k, v in self.history[-1].items() if k.startswith("val_")} if self.history else {}
        out.update({f"test_{k}": v for k, v in self.task.evaluate(self.model, "test", self.eval_batch_size).items()})
        out.update({"train_seconds": self.train_seconds, "steps": self.step, "epochs": self.epoch,
                    "seconds_per_epoch": (float(np.mean(self.epoch_seconds)) if self.epoch_seconds else None)})
        if self.patience is not None and self.best is not None:
            out.update({"best_step": self.best["step"], f"best_val_{self.task.metric}": self.best["value"],
                        "stopped_early": self.stopped_early,
                        "restored_best": bool(self.restore_best and self._best_params is not None)})
        return out

    # ------------------------------------------------------------------ checkpoints

    _checkpoint_step = 0

    def state(self) -> dict:
        """The trainer's state as JSON-ready data (arrays go separately)."""
        return {"step": self.step, "epoch": self.epoch, "position": self.position,
                "train_seconds": self.train_seconds, "epoch_seconds": self.epoch_seconds,
                "epoch_start_seconds": self._epoch_start_seconds,
                "since": self._since, "recent_norms": self._recent_norms, "history_length": len(self.history),
                "rng": self.rng.bit_generator.state, "model_rng": self.model.rng_state(),
                "optimizer": self._optimizer_settings,
                "schedule": None if self.schedule is None else
                {"name": type(self.schedule).__name__, **self.schedule.state_dict()},
                "task": self.task.config(), "batch_size": self.batch_size, "seed": self.seed,
                "carry": None if self.carry is None else len(self.carry) if isinstance(self.carry, tuple) else 1,
                "best": self.best, "stopped_early": self.stopped_early,
                "settings": None if self.settings is None else self.settings.to_dict()}

    def save_checkpoint(self, path=None):
        """Write everything needed to resume to ``path`` (default: out_dir/checkpoint.npz)."""
        path = path or self.checkpoint_path
        if path is None:
            return None
        arrays = checkpoint.model_arrays(self.model, meta={"task": self.task.config()})
        arrays.update({f"optim/{k}": v for k, v in self.optimizer.state_dict().items()})
        arrays["trainer"] = checkpoint.to_json_array(self.state())
        arrays["array/history"] = checkpoint.to_json_array(self.history)
        if self.plan is not None:
            arrays["array/plan"] = np.concatenate([np.asarray(p, dtype=np.int64) for p in self.plan])
            arrays["array/plan_sizes"] = np.array([len(p) for p in self.plan], dtype=np.int64)
        if self.carry is not None:
            for i, s in enumerate(self.carry if isinstance(self.carry, tuple) else (self.carry,)):
                arrays[f"array/carry{i}"] = asnumpy(s)
        if self._best_params is not None:                # early stopping's best weights
            arrays.update({f"best/{k}": v for k, v in self._best_params.items()})
        checkpoint.write(path, arrays)
        self._checkpoint_step = self.step
        return path

    def resume(self, path=None):
        """Continue from a checkpoint written by :meth:`save_checkpoint`: parameters, optimizer,
        schedule, position, generators and history.  The model, task, optimizer and batch size
        must be the ones the checkpoint was written with; nothing changes if they are not."""
        path = path or self.checkpoint_path
        arrays = checkpoint.read(path)
        if "trainer" not in arrays:
            raise checkpoint.CheckpointError(f"{path}: a saved model, not a training checkpoint (no trainer state)")
        state = checkpoint.from_json_array(arrays["trainer"])   # an older run's as today writes it
        expected = {"task": self.task.config(), "batch_size": self.batch_size,
                    "optimizer": self._optimizer_settings}
        for key, value in expected.items():
            if json.loads(json.dumps(value)) != state[key]:
                raise checkpoint.CheckpointError(f"{path}: was written by a run with a different {key} "
                                                 f"({state[key]} there, {value} here)")
        checkpoint.check_same_model(checkpoint.config_of(arrays, path), self.model, path)
        optimizer_state = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
        try:
            self.optimizer.check_state_dict(optimizer_state)          # before anything changes
        except (KeyError, ValueError) as exc:
            raise checkpoint.CheckpointError(f"{path}: optimizer state: {exc}") from exc
        checkpoint.load_into(self.model, path)
        self.optimizer.load_state_dict(optimizer_state)
        if self.schedule is not None and state["schedule"] is not None:
            self.schedule.load_state_dict(state["schedule"])
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.train_seconds, self.epoch_seconds = state["train_seconds"], list(state["epoch_seconds"])
        self._epoch_start_seconds = state["epoch_start_seconds"]
        self._since = state["since"]
        self._recent_norms = list(state["recent_norms"])
        self.rng.bit_generator.state = state["rng"]
        self.model.set_rng_state(state["model_rng"])
        self.history = checkpoint.from_json_array(arrays["array/history"])
        if "array/plan" in arrays:
            self.plan = np.split(arrays["array/plan"], np.cumsum(arrays["array/plan_sizes"])[:-1])
        carries = [arrays[f"array/carry{i}"] for i in range(state["carry"] or 0)]
        xp = self.model.xp
        self.carry = None if not carries else (tuple(xp.asarray(c) for c in carries) if len(carries) > 1
                                               else xp.asarray(carries[0]))
        self.best, self.stopped_early = state.get("best"), bool(state.get("stopped_early", False))
        best = {k[len("best/"):]: v for k, v in arrays.items() if k.startswith("best/")}
        self._best_params = best or None
        self._checkpoint_step = self.step
        self._resumed = True
        if self.out_dir is not None:            # the history file, as of the checkpoint
            with open(os.path.join(self.out_dir, "history.jsonl"), "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in self.history)
        return self


    def write_results(self, metrics, extra=None):
        """At the end of a run with ``out_dir``: ``model.npz`` (the model, with the task's config)
        and ``metrics.json`` (see :func:`write_metrics`)."""
        os.makedirs(self.out_dir, exist_ok=True)
        checkpoint.save(self.model, os.path.join(self.out_dir, "model.npz"), meta={"task": self.task.config()})
        return write_metrics(os.path.join(self.out_dir, "metrics.json"), metrics, task=self.task, model=self.model,
                             optimizer=self.optimizer,
                             extra={"batch_size": self.batch_size, "clip": self.clip, "seed": self.seed,
                                    **(extra or {})})


def write_metrics(path, metrics, *, task, model, optimizer, extra=None):
    """``metrics.json``: the final metrics by name, with the configs and the package version."""
    payload = {**metrics, "task": task.config(), "model": model.config(),
               "optimizer": {"name": type(optimizer).__name__, **optimizer.hyperparameters()},
               "baseline": {"value": task.baseline()[0], "what": task.baseline()[1], "metric": task.metric},
               "version": __version__, **(extra or {})}
    tmp = os.fspath(path) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)
    return payload
