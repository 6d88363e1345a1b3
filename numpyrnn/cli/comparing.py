"""numpyrnn compare, gradflow and sweep: the experiments and their figures."""

from __future__ import annotations

import json
import os

from ..experiments import sweep as _sweep
from ..settings import Settings
from .common import (  # the shared options and checks
    COMPARE_SETTINGS, TASK_CHOICES, _add_cells, _add_data_options, _add_device, _add_forget_bias, _add_overwrite,
    _add_settings, _cells_with_options, _check_out, _check_output_file, _given_settings, _Help, _positive_int,
    _progress, _task_options, UsageError, _write_json,
)


# --------------------------------------------------------------------------- experiments

def _add_compare(sub):
    p = sub.add_parser(
        "compare", help="LSTM vs GRU vs RNN on the same task: accuracy, training time, memory",
        description="Train each cell on the same data, splits, optimizer, budget and seeds; print a table "
                    "(test metric and training time, mean ± std over seeds; time per epoch; activation "
                    "memory per batch) and write results.json, results.md and compare.png to --out "
                    "(the anomaly task: detection.png too).",
        formatter_class=_Help)
    p.add_argument("--task", choices=TASK_CHOICES, default="sentiment", help="the task")
    _add_cells(p, ["lstm", "gru", "rnn"])
    p.add_argument("--seeds", type=_positive_int, help="runs per cell (seeds 0..N-1; default 3, or what --quick sets)")
    p.add_argument("--match-params", action="store_true",
                   help="size each cell to the parameter count of the LSTM (or first cell) at --hidden")
    p.add_argument("--quick", action="store_true", help="small data and budget: well under a minute")
    p.add_argument("--seq-len", type=_positive_int, help="sequence length (default: the task's)")
    _add_data_options(p)
    p.add_argument("--data-seed", type=int, default=0, help="seed of the data, the same for every run")
    _add_settings(p, COMPARE_SETTINGS)
    _add_device(p, "where to train")
    p.add_argument("--out", metavar="DIR", help="write results.json, results.md and compare.png here")
    _add_overwrite(p, "a comparison")
    p.add_argument("--quiet", action="store_true", help="only the table")
    p.set_defaults(run=_run_compare, plan=_plan_compare)


def _compare_arguments(args):
    """compare's arguments from the command line's (the run's and the plan's): the settings
    given, as one object."""
    return dict(task_name=args.task, cells=args.cells, seeds=args.seeds,
                settings=Settings(**_given_settings(args)), match_params=args.match_params,
                quick=args.quick, data_seed=args.data_seed, task_options=_task_options(args))


def _plan_compare(args):
    from ..experiments.compare import plan

    return plan(**_compare_arguments(args))


def _run_compare(args):
    from ..experiments.compare import compare, load_note, quick_note, report_table, table, write

    if args.out:
        _check_out(args, "compare")
    try:
        results = compare(**_compare_arguments(args), log=None if args.quiet else print, progress=_progress(args))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"numpyrnn compare: {exc}") from None
    results["command"] = args.invocation
    note = quick_note(results)
    if note:
        print(note + "\n")
    print(table(results))
    print("\n" + load_note(results))
    reports = report_table(results)
    if reports:
        print(f"\n{reports}\n{results['report_note']}")
    if results.get("claims"):
        from ..experiments.claims import table as claims_table

        print("\nLSTM vs GRU: the claims, measured (95 % intervals: a bootstrap over seeds and test items)")
        print(claims_table(results["claims"]))
    if args.out:
        written = write(results, args.out)
        print(f"wrote {args.out}/" + ", ".join(os.path.basename(path) for path in written))
    return 0


def _add_gradflow(sub):
    p = sub.add_parser(
        "gradflow", help="the gradient reaching each step, at initialisation and after training",
        description="On the adding problem, measure ‖∂L/∂h_t‖ against t for each cell at initialisation "
                    "and after training with the same budget, and the LSTM's forget gate over time; "
                    "write gradflow.png and gradflow.json to --out.",
        formatter_class=_Help)
    _add_cells(p, ["rnn", "lstm", "gru"])
    p.add_argument("--seq-len", type=_positive_int, default=100, help="sequence length T")
    p.add_argument("--batch", type=_positive_int, default=64, help="test sequences measured")
    _add_settings(p, ("steps", "hidden", "seed", "impl"),
                  helps={"steps": "training steps per cell (default: the adding task's, 2000)",
                         "hidden": "hidden units (default: the adding task's, 64)",
                         "seed": "seed of the data and the weights (default: 0)"})
    _add_device(p, "where to train and measure")
    p.add_argument("--out", metavar="DIR", default="gradflow", help="where the figure and numbers go")
    _add_overwrite(p, "the measurements")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_gradflow, plan=_plan_gradflow)


def _gradflow_arguments(args):
    return dict(cells=args.cells, seq_len=args.seq_len, settings=Settings(**_given_settings(args)), batch=args.batch)


def _plan_gradflow(args):
    from ..experiments.gradflow import plan

    return plan(**_gradflow_arguments(args))


def _run_gradflow(args):
    from .. import plots
    from ..experiments.gradflow import gradflow

    _check_out(args, "gradflow")
    data = gradflow(**_gradflow_arguments(args), log=print, progress=_progress(args))
    data["command"] = args.invocation
    os.makedirs(args.out, exist_ok=True)
    _write_json(os.path.join(args.out, "gradflow.json"), data)
    plots.gradflow(data, os.path.join(args.out, "gradflow.png"))
    print(f"wrote {args.out}/gradflow.png, gradflow.json")
    return 0


def _add_sweep(sub):
    from ..experiments.sweep import default_jobs

    p = sub.add_parser(
        "sweep", help="success against sequence length (adding or copy), every cell with the same budget",
        description="Train each cell on the adding problem (or the copy task) at each length with the same "
                    "budget and seeds, in parallel worker processes of one BLAS thread each (the numbers are the "
                    "same whatever --jobs is); plot the final test metric against T with the baseline; on the "
                    "adding problem also record the gradient-flow ratio ‖∂L/∂h_0‖/‖∂L/∂h_T-1‖ at initialisation "
                    "and after training; write sweep.png and sweep.json to --out.",
        formatter_class=_Help)
    p.add_argument("--task", choices=_sweep.TASKS, default="adding", help="the task")
    p.add_argument("--lengths", default="10,25,50,100,200", help="comma-separated sequence lengths")
    _add_cells(p, ["lstm", "gru", "rnn"])
    p.add_argument("--seeds", type=_positive_int, default=1, help="runs per cell and length")
    p.add_argument("--train-size", type=_positive_int, default=5000, help="training sequences")
    _add_settings(p, ("steps", "hidden", "batch_size", "lr", "zoneout", "zoneout_c", "impl"),
                  helps={"steps": f"training steps for every cell and length (default: {_sweep.STEPS})",
                         "hidden": f"hidden units (default: {_sweep.HIDDEN})"})
    _add_forget_bias(p)
    p.add_argument("--jobs", type=_positive_int, default=default_jobs(),
                   help="runs at a time, each in a worker process with one BLAS thread (1 on the GPU)")
    p.add_argument("--quick", action="store_true", help="tiny data and budget: checks that it runs, in seconds")
    p.add_argument("--from-json", metavar="FILE", help="draw the figure of a sweep.json already made, training nothing")
    _add_device(p, "where to train")
    p.add_argument("--out", metavar="DIR", default="sweep", help="where the figure and numbers go")
    _add_overwrite(p, "a sweep (with --from-json: its figure)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_sweep)


def _run_sweep(args):
    from .. import plots
    from ..experiments.sweep import sweep

    if args.from_json:
        figure = os.path.join(args.out, "sweep.png")
        _check_output_file(args, figure, "--out")
        if os.path.exists(figure) and not args.overwrite:
            raise UsageError(f"numpyrnn sweep: --out {args.out} holds sweep.png already: pass --overwrite to redraw it")
        try:
            with open(args.from_json) as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError(f"numpyrnn sweep: --from-json {args.from_json}: {exc}") from None
    else:
        try:
            lengths = [int(t) for t in args.lengths.split(",")]
        except ValueError:
            raise UsageError(f"numpyrnn sweep: --lengths must be comma-separated integers, got {args.lengths!r}") from None
        if not lengths or min(lengths) < 2:
            raise UsageError("numpyrnn sweep: every length must be at least 2")
        _check_out(args, "sweep")
        try:
            data = sweep(lengths, _cells_with_options(args, args.cells), Settings(**_given_settings(args)),
                         seeds=args.seeds, train_size=args.train_size, task=args.task, jobs=args.jobs,
                         quick=args.quick, log=print, progress=_progress(args))
        except ValueError as exc:
            raise UsageError(f"numpyrnn sweep: {exc}") from None
    os.makedirs(args.out, exist_ok=True)
    if not args.from_json:
        _write_json(os.path.join(args.out, "sweep.json"), data)
    plots.sweep(data, os.path.join(args.out, "sweep.png"))
    print(f"wrote {args.out}/sweep.png" + ("" if args.from_json else ", sweep.json"))
    return 0
