"""Success against sequence length: every cell trained on the adding problem (or the copy task)
at each T with the same budget, the final test metric against T, the baseline drawn; and, on
the adding problem, how much gradient reaches the first step, at initialisation and after
training (the gradient-flow ratio ‖∂L/∂h_0‖ / ‖∂L/∂h_{T−1}‖, for every state of the cell).

Runs go to worker processes, ``jobs`` at a time, each with one BLAS thread (set before NumPy is
imported there, unless the user chose a number with ``numpyrnn.set_threads`` or ``--threads``): so the numbers are the same bit for bit whatever ``jobs`` is, ``jobs=1``
included, and runs side by side do not fight over threads.  Their training times are then
measured side by side, ``jobs`` at a time on the machine's cores, and the results say so.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os

import numpy as np

from .. import backend, cells as _cells, optim, tasks
from ..settings import Settings, settings_of
from ..train import Trainer
from .progress import Progress

DEFAULT_LENGTHS = (10, 25, 50, 100, 200)
#: the budget and size of every run when not given: the same for every cell, length and task
STEPS, HIDDEN = 1500, 64
TASKS = ("adding", "copy")
#: --quick: sizes for a run of seconds (CI), not for conclusions
QUICK = {"train_size": 256, "steps": 30, "hidden": 16}
#: the variables that set BLAS threads in a worker (OpenBLAS, OpenMP, MKL, Apple's Accelerate)
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def default_jobs() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _ratios(model, task):
    """The gradient-flow ratios of every state of the model's cell (:func:`gradflow.flow_ratios`),
    on the adding problem's first 64 test sequences."""
    from .gradflow import flow_ratios, gradient_norms

    probe = task.examples("test", np.arange(min(64, task.split_size("test"))))
    return flow_ratios(gradient_norms(model, probe.inputs, probe.targets), model.rnn.cell.state_names)


def run_one(spec):
    """One training run, described by plain data (so that it can go to a worker): the run's
    settings (``Settings.to_dict``), its task, length, cell and seed.  Returns the test metric,
    the training seconds and, on the adding problem, the gradient-flow ratios."""
    task = tasks.make(spec["task"], seq_len=spec["seq_len"], seed=0, train_size=spec["train_size"])
    s = dataclasses.replace(Settings.from_dict(spec["settings"]), seed=spec["seed"]).resolved(task)
    cell = _cells.for_length(spec["cell"], task.sequence_length())
    model = task.make_model(cell, **s.model_options())
    measured = task.name == "adding"
    initial = _ratios(model, task) if measured else None
    trainer = Trainer(model, task, optim.make(s.optimizer, model, **s.optimizer_options()),
                      batch_size=s.batch_size, clip=s.clip, eval_every=s.steps, seed=s.seed, progress=False)
    final = trainer.fit(steps=s.steps)
    out = {"value": final[f"test_{task.metric}"], "seconds": final["train_seconds"]}
    if measured:
        out["gradflow"] = {"initial": initial, "trained": _ratios(model, task)}
    return out


def _start_worker(cell_files, cell_classes, threads="auto"):
    """In each worker: the user's cells registered again (a worker starts a fresh interpreter),
    and the BLAS threads the user chose (``numpyrnn.set_threads``, ``--threads``), if any."""
    backend.set_threads(threads)
    for path in cell_files:
        _cells.protocol.register_file(path)
    for cls in cell_classes:
        _cells.register(cls)


def _pool(jobs):
    """``jobs`` worker processes, each started with one BLAS thread and the user's cells."""
    context = multiprocessing.get_context("spawn")
    files = list(_cells.protocol.FILES)
    classes = [cls for name, cls in _cells.protocol._REGISTRY.items()
               if name not in _cells.protocol.BUILT_IN and cls.__module__ not in _cells.protocol.FILE_MODULES]
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: "1" for k in THREAD_VARIABLES})      # read when NumPy loads in the worker
    try:
        return context.Pool(jobs, initializer=_start_worker,
                            initargs=(files, classes, backend.thread_setting()["setting"]))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def sweep(lengths=DEFAULT_LENGTHS, cells=("lstm", "gru", "rnn"), settings=None, *, seeds=1, train_size=5_000,
          log=None, progress=None, task="adding", jobs=1, quick=False, **fields):
    """Test metric of each cell at each length (one list of per-seed values per length), and on
    the adding problem the gradient-flow ratios.  ``settings`` (a
    :class:`~numpyrnn.settings.Settings`, or its fields by name: ``steps=300, hidden=32``) are
    every run's, resolved against the task at each length, with the sweep's own budget and size
    when not given (:data:`STEPS`, :data:`HIDDEN`: the same for every task); the cell and the
    seed are the sweep's.  ``task``: "adding" or "copy"; ``jobs``: worker processes (one BLAS
    thread each; results are the same for any number); ``settings.device``: where the models
    train (the GPU takes one job, in this process); ``quick``: tiny data and budget, for a check
    that it runs; ``progress``: one bar over every run's steps (None: on a terminal only)."""
    settings = settings_of(settings, fields)
    settings = dataclasses.replace(settings, steps=settings.steps or STEPS, hidden=settings.hidden or HIDDEN)
    steps, hidden, device = settings.steps, settings.hidden, settings.device
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    gpu = backend.resolve_device(device) == "gpu"
    if gpu and jobs > 1:
        raise ValueError(f"jobs={jobs} on the GPU: runs in parallel would share one device; use jobs=1")
    if quick:
        train_size, steps, hidden = QUICK["train_size"], min(steps, QUICK["steps"]), min(hidden, QUICK["hidden"])
    settings = dataclasses.replace(settings, steps=steps, hidden=hidden, epochs=None,
                                   device="gpu" if gpu else "cpu").to_dict()
    names = [_cells.label(c) for c in cells]
    given = [c if isinstance(c, str) else _cells.resolve(c).config() for c in cells]
    for c in given:                                  # an unknown name fails here, not in a worker
        _cells.lookup(c if isinstance(c, str) else c["name"])
    specs = [{"task": task, "seq_len": T, "cell": c, "seed": seed, "train_size": train_size, "settings": settings}
             for T in lengths for c in given for seed in range(seeds)]
    probe_task = tasks.make(task, seq_len=lengths[0], seed=0, train_size=train_size)
    data = {"task": task, "metric": probe_task.metric, "lengths": list(lengths),
            "baselines": [tasks.make(task, seq_len=T, seed=0, train_size=train_size).baseline()[0]
                          for T in lengths],
            "budget": {"steps": steps}, "hidden": hidden, "seeds": seeds, "train_size": train_size,
            "jobs": jobs, "side_by_side": jobs > 1 and not gpu,
            "cells": {n: [] for n in names}, "train_seconds": {n: [] for n in names}}
    if task == "adding":
        data["gradflow"] = {n: [] for n in names}
    metric_label = "MSE" if data["metric"] == "mse" else data["metric"]
    with Progress(len(specs) * steps, enabled=progress, log=log) as bar:
        results = []
        if gpu:
            outcomes = map(run_one, specs)
        else:
            pool = _pool(jobs)
            outcomes = pool.imap(run_one, specs)             # in order, as they finish
        try:
            for spec, result in zip(specs, outcomes):
                name = _cells.label(spec["cell"])
                bar.run(f"T={spec['seq_len']} {name} seed {spec['seed']}")
                results.append(result)
                _advance(bar, steps)
                if spec["seed"] == seeds - 1:        # a (length, cell) done: its mean over the seeds
                    group = results[-seeds:]
                    bar.log(f"T={spec['seq_len']:>4} {name:<4} test {metric_label} "
                            f"{np.mean([r['value'] for r in group]):.4f} "
                            f"({np.mean([r['seconds'] for r in group]):.1f} s)")
        finally:
            if not gpu:
                pool.terminate()
    k = 0
    for _ in lengths:
        for name in names:
            runs = results[k:k + seeds]
            k += seeds
            data["cells"][name].append([r["value"] for r in runs])
            data["train_seconds"][name].append([r["seconds"] for r in runs])
            if "gradflow" in data:
                data["gradflow"][name].append([r["gradflow"] for r in runs])
    return data


def _advance(bar, steps):
    for _ in range(steps):
        bar.step()
