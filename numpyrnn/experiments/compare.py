"""LSTM against GRU against RNN on the same task: accuracy, training time, memory.

Every cell gets the same data and splits (made once, from ``data_seed``), the same optimizer,
learning rate, batch size and budget, and the same seeds (0 .. seeds − 1, which set the initial
weights and the order of the batches).  With ``match_params`` each cell's hidden size is chosen
so that its model has as many parameters as the reference cell's model at ``hidden`` (the
reference is the LSTM when it is compared, else the first cell).

For each run the validation metric is recorded twice per epoch, against the epoch and against
the training seconds so far (evaluation excluded), and the test metric at the end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform

import numpy as np

from .. import __version__, machine, optim, tasks
from ..backend import thread_policy
from ..bench import activation_bytes
from ..models import REGULARISERS
from ..settings import settings_of
from ..train import Trainer, make_schedule
from ..train import steps_per_epoch as train_steps_per_epoch
from ..train import total_steps as train_total_steps
from .claims import claims, format_table
from .claims import table as claims_table
from .progress import Progress

#: per task, smaller data and budgets that finish the comparison in well under a minute
QUICK = {
    "sentiment": ({"train_size": 3_000, "val_size": 500, "test_size": 500, "seq_len": 32}, {"epochs": 5}),
    "adding": ({"train_size": 2_000, "val_size": 300, "test_size": 300, "seq_len": 20}, {"steps": 400}),
    "copy": ({"train_size": 2_000, "val_size": 300, "test_size": 300, "seq_len": 10}, {"steps": 300}),
    "charlm": ({"size": 20_000, "seq_len": 32}, {"steps": 150}),
    "series": ({"length": 4_000, "seq_len": 30}, {"steps": 150}),
    "speech": ({}, {"epochs": 20}),
    "demand": ({}, {"steps": 300}),
    "anomaly": ({}, {"steps": 200}),
    "g2p": ({}, {"epochs": 1}),
}

#: the same for the named real data sets, whose size is what it is: a shorter budget
QUICK_DATA = {
    "rotten-tomatoes": ({}, {"epochs": 5}),
    "hamlet": ({"seq_len": 32}, {"steps": 100}),
    "japanese-vowels": ({}, {"epochs": 20}),
    "taylor": ({}, {"steps": 300}),
    "internal-bleeding": ({}, {"steps": 200}),
    "cmudict": ({}, {"epochs": 1}),
}

#: the quick runs that were checked to keep the full run's order, and how they run: fewer seeds,
#: early stopping, a faster learning rate.  docs/benchmarks.md ("The quick mode") records what
#: was measured against the full run.
QUICK_RUNS = {
    "rotten-tomatoes": {"seeds": 1, "patience": 2, "lr": 5e-3, "found": (
        "the gated cells end above the RNN and the majority class, at most 4 points below their full-run "
        "accuracy (2026-12-07: the GRU 1.7, the LSTM 3.6); the RNN ends at the majority class, where 5 epochs "
        "leave it (its full-run seeds reach 0.67-0.69)")},
}
DEFAULT_SEEDS = 3


def quick_note(results) -> str | None:
    """What a quick run changed, and whether its numbers mean what the full run's do."""
    q = results["settings"].get("quick_changes")
    if not q:
        return None
    head = "QUICK RUN (--quick): " + "; ".join(q["changed"]) + ". "
    if q["checked"]:
        return head + (f"This setting was checked against the full run: {q['checked']}. One seed gives no spread "
                       "over seeds: for the numbers to report, run without --quick.")
    return head + ("A check that the comparison runs, in seconds: its numbers are not the full run's and may "
                   "rank the cells differently; run without --quick for results.")


def load_note(results) -> str | None:
    """What the machine was doing while the comparison ran: the load average before and after,
    the least and most CPU a run's thread got of its time, the BLAS threads; None for results
    from before this was recorded."""
    whole = results.get("load")
    if not whole:
        return None
    runs = [r["load"] for c in results["cells"].values() for r in c["runs"] if r.get("load")]
    shares = [r["cpu_share"] for r in runs]
    load = lambda v: "?" if v is None else f"{v:.2f}"
    busy = machine.busy_reason(runs)
    low, high = f"{100 * min(shares):.0f}", f"{100 * max(shares):.0f}"
    return (f"The machine while it ran: load average {load(whole['load_before'])} before, "
            f"{load(whole['load_after'])} after, on {whole['cores']} cores; each run's thread had the CPU "
            f"{low if low == high else f'{low}–{high}'} % of its time; BLAS threads "
            f"{results['machine'].get('threads')}. "
            + (f"Busy ({busy}): its times measure the load as much as the cells." if busy
               else "Quiet enough for its times to compare the cells."))


def _parameters(task, cell, hidden, **kwargs):
    return task.make_model(cell, hidden_size=hidden, seed=0, **kwargs).num_parameters()


def matched_hidden(task, cell, target, **kwargs):
    """The hidden size whose model has the parameter count closest to ``target``."""
    lo, hi = 1, 4096
    while lo < hi:                                  # the smallest size reaching the target
        mid = (lo + hi) // 2
        if _parameters(task, cell, mid, **kwargs) < target:
            lo = mid + 1
        else:
            hi = mid
    candidates = [h for h in (lo - 1, lo) if h >= 1]
    return min(candidates, key=lambda h: abs(_parameters(task, cell, h, **kwargs) - target))


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values)) if len(values) > 1 else 0.0


@thread_policy()
def compare(task_name="sentiment", cells=("lstm", "gru", "rnn"), seeds=None, settings=None, *, match_params=False,
            quick=False, data_seed=0, task_options=None, log=None, progress=None, **fields):
    """Train every cell ``seeds`` times on one task with the same ``settings`` (a
    :class:`~numpyrnn.settings.Settings`, or its fields by name: ``hidden=32, epochs=4``); returns
    the results as a dict (see :func:`write` for what it holds).  ``progress``: one bar over
    every run's steps (None: on a terminal only).

    The settings are resolved against the task's defaults as for any run, with compare's own
    rules on top: every run evaluates twice an epoch (its curves), a weight decay with no
    optimizer named trains AdamW (decoupled), and ``settings.cell``, ``seed`` and ``eval_every``
    are not read (``cells`` and ``seeds`` are compare's).

    The runs go round-robin over the seeds — seed 0 of every cell, then seed 1 of every cell,
    ... — so that the cells meet the same machine: a load that comes and goes falls on every
    cell alike.  Each run records the load it met (:class:`numpyrnn.machine.Meter`)."""
    run = _setup(task_name, cells, seeds, settings_of(settings, fields), match_params, quick, data_seed,
                 task_options)
    task, settings = run["task"], run["settings"]
    cells, seeds, total_steps = settings["cells"], settings["seeds"], settings["total_steps"]
    results = {"task": task.config(), "data": task.data_info(), "label": task.label(), "metric": task.metric,
               "higher_is_better": task.higher_is_better,
               "baseline": {"value": task.baseline()[0], "what": task.baseline()[1]},
               "baselines": task.baselines(),
               "settings": settings,
               "machine": {**machine.describe(), "python": platform.python_version()},
               "version": __version__, "cells": {}}
    runs = {cell: [] for cell in cells}
    with Progress(len(cells) * seeds * total_steps, enabled=progress, log=log) as bar, machine.Meter() as whole:
        for seed in range(seeds):
            for cell in cells:
                runs[cell].append(_train_run(task, cell, seed, run, bar))
    results["load"] = whole.record()
    if task.report_note:
        results["report_note"] = task.report_note
    for cell in cells:
        results["cells"][cell] = _summary(task, cell, run, runs[cell])
    results["claims"] = claims(results)
    return results


def plan(task_name="sentiment", cells=("lstm", "gru", "rnn"), seeds=None, settings=None, *, match_params=False,
         quick=False, data_seed=0, task_options=None, **fields):
    """What :func:`compare` would run with these arguments, without training: the task's config
    and the settings, as results.json and compare.png record them (a figure's recorded plan is
    held to today's by tests/test_figures.py)."""
    run = _setup(task_name, cells, seeds, settings_of(settings, fields), match_params, quick, data_seed,
                 task_options)
    return {"task": run["task"].config(), "settings": run["settings"]}


def _setup(task_name, cells, seeds, settings, match_params, quick, data_seed, task_options):
    """The task, the settings, and what the runs are built from: compare's arguments resolved
    against the task's defaults and the quick mode."""
    options = dict(task_options or {})
    budget = {}
    quick_changes = None
    if quick:
        named = options.get("data") or options.get("text")
        quick_options, budget = QUICK_DATA[named] if named in QUICK_DATA else QUICK[task_name]
        runs = QUICK_RUNS.get(named, {})
        changed = [f"{k.replace('_', ' ')} {v}" for k, v in quick_options.items() if k not in options]
        given_budget = settings.steps is not None or settings.epochs is not None
        changed += [f"{k} {v}" for k, v in budget.items()] if not given_budget else []
        if seeds is None and "seeds" in runs:
            seeds = runs["seeds"]
            changed.append(f"{seeds} seed{'s' if seeds > 1 else ''} (not {DEFAULT_SEEDS})")
        if settings.patience is None and "patience" in runs:
            settings = dataclasses.replace(settings, patience=runs["patience"])
            changed.append(f"early stopping, patience {settings.patience}, the best weights tested")
        if settings.lr is None and "lr" in runs:
            settings = dataclasses.replace(settings, lr=runs["lr"])
            changed.append(f"lr {settings.lr:g} (faster, for the shorter budget)")
        quick_changes = {"changed": changed, "checked": runs.get("found", False)}
        options = {**quick_options, **options}
        if not given_budget:
            settings = dataclasses.replace(settings, **budget)     # the quick budget, unless one was given
    seeds = DEFAULT_SEEDS if seeds is None else seeds
    task = tasks.make(task_name, seed=data_seed, **options)
    if settings.optimizer is None and settings.weight_decay:      # compare's rule: decay means AdamW
        settings = dataclasses.replace(settings, optimizer="adamw")
    s = settings.resolved(task)
    regularisers = {name: getattr(s, name) for name in REGULARISERS}
    model_kwargs = {k: v for k, v in s.model_options().items() if k not in ("hidden_size", "seed")}  # each run's
    shape_kwargs = {k: v for k, v in model_kwargs.items() if k in ("num_layers", "bidirectional")}
    reference = "lstm" if "lstm" in cells else cells[0]
    target = _parameters(task, reference, s.hidden, **shape_kwargs)
    sizes = {cell: (matched_hidden(task, cell, target, **shape_kwargs) if match_params else s.hidden)
             for cell in cells}
    steps_per_epoch = train_steps_per_epoch(task, s.batch_size)
    total_steps = train_total_steps(task, s.batch_size, s.budget)
    eval_every = max(1, steps_per_epoch // 2)
    recorded = {"cells": list(cells), "seeds": seeds, "hidden": s.hidden, "match_params": match_params,
                "reference": reference, "reference_parameters": target, "optimizer": s.optimizer, "lr": s.lr,
                "batch_size": s.batch_size, "clip": s.clip, "layers": s.layers, "bidirectional": s.bidirectional,
                "dropout": s.dropout, "dtype": np.dtype(s.dtype).name, "impl": s.impl,
                "weight_decay": s.weight_decay, "patience": s.patience, "min_delta": s.min_delta, **regularisers,
                "budget": s.budget, "total_steps": total_steps, "steps_per_epoch": steps_per_epoch, "quick": quick,
                "quick_changes": quick_changes,
                # a schedule only when there is one (the records of older runs have none)
                **({"schedule": s.schedule} if s.schedule != "none" else {})}
    return {"task": task, "settings": recorded, "sizes": sizes, "model_kwargs": model_kwargs,
            "shape_kwargs": shape_kwargs, "eval_every": eval_every}


def _train_run(task, cell, seed, run, bar):
    """One run: ``cell`` trained with ``seed`` under the settings ``run`` holds (from :func:`_setup`)."""
    settings, metric = run["settings"], task.metric
    bar.run(f"{cell} seed {seed}")
    model = task.make_model(cell, hidden_size=run["sizes"][cell], seed=seed, **run["model_kwargs"])
    weight_decay = settings["weight_decay"]
    opt = optim.make(settings["optimizer"], model, lr=settings["lr"],
                     **({"weight_decay": weight_decay} if weight_decay else {}))
    schedule = make_schedule(settings.get("schedule", "none"), opt, settings["total_steps"], task.higher_is_better)
    trainer = Trainer(model, task, opt, batch_size=settings["batch_size"], clip=settings["clip"],
                      eval_every=run["eval_every"], seed=seed, progress=False, on_step=bar.step,
                      patience=settings["patience"], min_delta=settings["min_delta"], schedule=schedule)
    with machine.Meter() as met:
        final = trainer.fit(**settings["budget"])
    model.eval()
    batch_size = settings["batch_size"]
    batch = task.batch(task.epoch(batch_size, np.random.default_rng(0))[0])
    model.forward(batch.inputs, batch.targets, batch.lengths)
    items = task.item_scores(model, "test", max(batch_size, 64))       # for the claims' paired bootstrap
    report = task.report(model)                                         # what else the task measures
    bar.log(f"{cell} seed {seed}: test_{metric} {final[f'test_{metric}']:.4f}, "
            f"{final['train_seconds']:.1f} s of training")
    return {"seed": seed, "test": final[f"test_{metric}"], "test_loss": final["test_loss"],
            # every score the task's evaluation gives (g2p: WER, the first pronunciation's, ...)
            "test_scores": {k[len("test_"):]: v for k, v in final.items() if k.startswith("test_")},
            "test_items": [float(v) for v in items],
            **{k: final[k] for k in ("best_step", "stopped_early") if k in final},
            **({"report": report} if report is not None else {}),
            "train_seconds": final["train_seconds"], "seconds_per_epoch": final["seconds_per_epoch"],
            "load": {**met.record(), "device": model.device},
            "activation_bytes": activation_bytes(model.rnn),
            "curve": _curve(trainer.history, settings["steps_per_epoch"], run["eval_every"], metric)}


def _summary(task, cell, run, runs):
    """A cell's runs and what they add up to."""
    test_mean, test_std = _mean_std([r["test"] for r in runs])
    time_mean, time_std = _mean_std([r["train_seconds"] for r in runs])
    epoch_mean, _ = _mean_std([r["seconds_per_epoch"] for r in runs])
    hidden = run["sizes"][cell]
    return {"hidden": hidden, "parameters": _parameters(task, cell, hidden, **run["shape_kwargs"]), "runs": runs,
            "summary": {"test_mean": test_mean, "test_std": test_std, "train_seconds_mean": time_mean,
                        "train_seconds_std": time_std, "seconds_per_epoch": epoch_mean,
                        "activation_mib": runs[0]["activation_bytes"] / 2**20}}


def _curve(history, steps_per_epoch, eval_every, metric):
    """The validation curve, one point per evaluation; a regular evaluation that falls less
    than half an interval before the final one is left out, so that the curve ends without a
    hook (two points at nearly the same epoch)."""
    points = []
    for k, r in enumerate(history):
        after = history[k + 1]["step"] - r["step"] if k + 1 < len(history) else None
        if after is not None and k + 2 == len(history) and after < eval_every / 2:
            continue
        points.append({"epoch": r["step"] / steps_per_epoch, "seconds": r["train_seconds"], "value": r[f"val_{metric}"]})
    return points


def table(results, markdown=False):
    """The comparison as a text (or markdown) table."""
    metric = results["metric"]
    head = ["cell", "hidden", "parameters", f"test {metric} (mean ± std)", "training s (mean ± std)",
            "s / epoch", "activations MiB / batch"]
    rows = []
    for cell, r in results["cells"].items():
        s = r["summary"]
        rows.append([cell.upper(), str(r["hidden"]), str(r["parameters"]),
                     f"{s['test_mean']:.4f} ± {s['test_std']:.4f}",
                     f"{s['train_seconds_mean']:.1f} ± {s['train_seconds_std']:.1f}",
                     "-" if s["seconds_per_epoch"] is None else f"{s['seconds_per_epoch']:.2f}",
                     f"{s['activation_mib']:.2f}"])
    for b in results.get("baselines", [results["baseline"] | {"name": "baseline"}]):
        rows.append([f"({b['name']})", "-", "-", f"{b['value']:.4f}", "-", "-", "-"])
    return format_table(head, rows, markdown)


def report_table(results, markdown=False):
    """What the task measured of each trained model beside its metric (:meth:`Task.report`: the
    anomaly task's detection), one row a run, then the baselines'; None when it measured nothing."""
    runs = [(cell, run) for cell, r in results["cells"].items() for run in r["runs"] if "report" in run]
    if not runs:
        return None
    keys = [k for k, v in runs[0][1]["report"].items() if not isinstance(v, list)]     # the figure's lists aside
    shown = lambda v: ("yes" if v else "no") if isinstance(v, bool) else f"{v:.4g}" if isinstance(v, float) else str(v)
    rows = [[cell.upper(), str(run["seed"])] + [shown(run["report"][k]) for k in keys] for cell, run in runs]
    rows += [[f"({b['name']})", "-"] + [shown(b["report"][k]) for k in keys]
             for b in results.get("baselines", []) if "report" in b]
    return format_table(["cell", "seed", *keys], rows, markdown)


def _regularisation(settings):
    """", input dropout 0.25, ..." for the regularisers, weight decay and early stopping that were on."""
    names = {"dropout": "dropout between layers", "patience": "early stopping, patience"}
    on = [(names.get(k, k.replace("_", " ")), settings.get(k))
          for k in (*REGULARISERS, "dropout", "weight_decay", "patience")]
    return "".join(f", {name} {value}" for name, value in on if value)


def write(results, out_dir):
    """results.json, results.md (the table and the settings) and compare.png in ``out_dir``, and
    the figures of the task's reports (the anomaly task: detection.png); the paths written."""
    from .. import plots

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    settings = results["settings"]
    budget = ", ".join(f"{k} {v}" for k, v in settings["budget"].items())
    baselines = "; ".join(f"{b['name']}: {b['value']:.4f} ({b['what']})"
                          for b in results.get("baselines", [results["baseline"] | {"name": "baseline"}]))
    reports = report_table(results, markdown=True)        # None: the task measured nothing more
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        note = quick_note(results)
        f.write(f"# {results.get('label', results['task']['name'])}: {', '.join(c.upper() for c in results['cells'])}\n\n"
                + (f"**{note}**\n\n" if note else "") +
                f"{table(results, markdown=True)}\n\n"
                f"Seeds 0–{settings['seeds'] - 1}; {settings['optimizer']} lr {settings['lr']}, batch "
                f"{settings['batch_size']}, clip {settings['clip']}, {budget}{_regularisation(settings)}"
                f"{', parameters matched to ' + settings['reference'].upper() if settings['match_params'] else ''}. "
                f"Baselines, test {results['metric']} on the same split: {baselines}. "
                f"numpyrnn {results['version']}, {results['machine']['cpu']}, "
                f"{results['machine']['cores']} cores.\n")
        if load_note(results):
            f.write(f"\n{load_note(results)}\n")
        if reports:
            f.write(f"\n## What else the task measured\n\n{reports}\n\n{results.get('report_note', '')}\n")
        if results.get("claims"):
            f.write(f"\n## LSTM vs GRU: the claims, measured\n\n{claims_table(results['claims'], markdown=True)}\n\n"
                    "Accuracy: a bootstrap over seeds and test items (paired across the cells), 95 % interval. Speed: "
                    "over seeds, paired (the cells ran round-robin). Memory and complexity: measured once.\n")
    written = [os.path.join(out_dir, name) for name in ("results.json", "results.md", "compare.png")]
    plots.compare(results, written[-1])
    if reports:
        from .. import tasks

        config = results["task"]              # as compare made it: the task whose runs reported
        task = tasks.make(config["name"], **{k: v for k, v in config.items() if k != "name"})
        written += task.draw_report(results, out_dir)
    return written
