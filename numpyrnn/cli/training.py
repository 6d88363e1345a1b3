"""numpyrnn train, sample, predict, forecast, export and tasks: a model's run, its use, its way out."""

from __future__ import annotations

import sys

from .common import (  # the shared options and checks
    TASK_CHOICES, TRAIN_SETTINGS, _add_cell_file, _add_device, _add_settings, _add_task_options, _check_out,
    _check_output_file, _given_settings, _Help, _positive_float, _positive_int, _progress, _task_options,
    UsageError,
)


# --------------------------------------------------------------------------- train, sample, tasks

def _add_train(sub):
    p = sub.add_parser(
        "train", help="train a model on a task",
        description="Train a recurrent model on one of the built-in tasks (see `numpyrnn tasks`), "
                    "evaluating on the validation split as it goes and on the test split at the end.",
        formatter_class=_Help)
    p.add_argument("--task", choices=TASK_CHOICES,
                   help="what to train on (see `numpyrnn tasks`); with --resume, the saved run's")
    _add_settings(p, TRAIN_SETTINGS)
    _add_cell_file(p)
    _add_device(p)
    _add_task_options(p)
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", help="write checkpoint.npz, history.jsonl, model.npz and metrics.json here")
    again = g.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the run in --out (only the files train writes there are removed)")
    g.add_argument("--quiet", action="store_true", help="no progress bar, no per-evaluation lines")
    p.set_defaults(run=_run_train)


def _saved_run(args, given, options):
    """--resume: the task and the settings of the run saved in --out (numpyrnn.train.saved_run),
    the settings given laid over them; a usage error saying what differs."""
    from .. import checkpoint
    from ..train import saved_run

    try:
        return saved_run(args.out, given, task=args.task, task_options=options)
    except (checkpoint.CheckpointError, ValueError, TypeError) as exc:
        raise UsageError(f"numpyrnn train: --resume: {exc}") from None


def _run_train(args):
    from .. import checkpoint, tasks
    from ..settings import Settings
    from ..train import Interrupted, TrainingError, setup

    if args.resume and not args.out:
        raise UsageError("numpyrnn train: --resume needs --out DIR (the run to continue)")
    if args.overwrite and not args.out:
        raise UsageError("numpyrnn train: --overwrite needs --out DIR (the run to replace)")
    if args.task is None and not args.resume:
        raise UsageError("numpyrnn train: the following arguments are required: --task (or --resume, which "
                         "continues the run saved in --out)")
    if args.out:
        _check_out(args, "train")
    options = _task_options(args)
    given = _given_settings(args)
    try:
        if args.resume:
            task, settings = _saved_run(args, given, options)
        else:
            settings = Settings(**given)
            task = tasks.make(args.task, seed=settings.seed, **options)
        trainer, budget = setup(task, settings, out_dir=args.out, progress=_progress(args),
                                log=None if args.quiet else print)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"numpyrnn train: {exc}") from None
    if args.resume:
        path = trainer.checkpoint_path
        try:
            trainer.resume(path)
        except checkpoint.CheckpointError as exc:
            raise UsageError(f"numpyrnn train: --resume: {exc}") from None
    model, optimizer = trainer.model, trainer.optimizer
    if not args.quiet:
        print(f"{task.name}: {model!r}, {model.num_parameters()} parameters, {optimizer!r}, batch {trainer.batch_size}"
              + (f", resuming at step {trainer.step}" if args.resume else ""))
    try:
        metrics = trainer.fit(**budget)
    except TrainingError as exc:
        print(f"numpyrnn train: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        resume = " (continue with the same command and --resume)" if exc.checkpoint else " (no --out: nothing kept)"
        print(f"numpyrnn train: {exc}{resume}", file=sys.stderr)
        return 130
    report = task.report(trainer.model)           # what else the task measures (the anomaly task: the detection)
    shown = {k: v for k, v in (report or {}).items() if not isinstance(v, list)}
    if args.out:
        trainer.write_results(metrics, extra={"report": shown} if shown else None)
    baseline, how = task.baseline()
    metric = task.metric
    others = "".join(f"; {k} {v:.4f}" for k, v in metrics.items() if k.startswith("test_") and k != f"test_{metric}")
    print(f"test_{metric} {metrics[f'test_{metric}']:.4f} (baseline {baseline:.4f}: {how}){others}; "
          f"{metrics['steps']} steps, {metrics['epochs']} epochs, {metrics['train_seconds']:.1f} s of training")
    if shown:
        print(", ".join(f"{k} {f'{v:.4g}' if isinstance(v, float) else v}" for k, v in shown.items())
              + f". {task.report_note}")
    return 0


def _add_sample(sub):
    p = sub.add_parser("sample", help="generate text from a trained character-level model",
                       description="Generate text from a model trained with `numpyrnn train --task charlm`.",
                       formatter_class=_Help)
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="model.npz or checkpoint.npz of a charlm run")
    p.add_argument("--length", type=_positive_int, default=300, help="characters to generate")
    p.add_argument("--temperature", type=_positive_float, default=0.8, help="below 1: safer; above 1: wilder")
    p.add_argument("--prime", default="", help="text to start from (its characters must be in the vocabulary)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random draws")
    _add_device(p, "where the model runs")
    _add_cell_file(p)
    p.set_defaults(run=_run_sample)


def _run_sample(args):
    from .. import checkpoint
    from ..models import CharLM

    try:
        model = checkpoint.load(args.checkpoint, device=args.device)
    except checkpoint.CheckpointError as exc:
        raise UsageError(f"numpyrnn sample: {exc}") from None
    if not isinstance(model, CharLM) or model.vocab is None:
        raise UsageError(f"numpyrnn sample: {args.checkpoint} holds a {type(model).__name__} without a "
                         "character vocabulary; sample needs a charlm model")
    index = {ch: i for i, ch in enumerate(model.vocab)}
    unknown = sorted({ch for ch in args.prime if ch not in index})
    if unknown:
        raise UsageError(f"numpyrnn sample: --prime has characters the model never saw: {unknown!r}")
    ids = model.sample(args.length, prime=[index[ch] for ch in args.prime], temperature=args.temperature,
                       seed=args.seed)
    print(args.prime + "".join(model.vocab[i] for i in ids))
    return 0


def _add_predict(sub):
    p = sub.add_parser(
        "predict", help="classify texts with a trained sentiment model, or pronounce words with a g2p model",
        description="Print the class and its probability for each text, with a model trained by `numpyrnn train "
                    "--task sentiment` (its model.npz or checkpoint.npz); or each word's phonemes, with a model "
                    "trained by `numpyrnn train --task g2p`: the texts given, or one per line of standard input.",
        formatter_class=_Help)
    p.add_argument("model", metavar="MODEL", help="the model file (.npz)")
    p.add_argument("texts", metavar="TEXT", nargs="*", help="texts to classify, or words to pronounce (none: read "
                                                            "lines from stdin)")
    p.add_argument("--beam", type=_positive_int, metavar="K", help="g2p: decode with a beam of K hypotheses "
                                                                     "(default: 1, greedy)")
    _add_cell_file(p)
    p.set_defaults(run=_run_predict)


def _run_predict(args):
    from .. import checkpoint
    from ..models import Seq2Seq, SequenceClassifier

    try:
        model = checkpoint.load(args.model, device="cpu")
    except checkpoint.CheckpointError as exc:
        raise UsageError(f"numpyrnn predict: {exc}") from None
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if isinstance(model, Seq2Seq) and model.source_vocab is not None:
        try:
            decoded = model.translate([t.strip().lower() for t in texts], beam=args.beam or 1)
        except ValueError as exc:
            raise UsageError(f"numpyrnn predict: {exc}") from None
        for text, tokens in zip(texts, decoded):
            print(f"{text.strip()}\t{' '.join(tokens)}")
        return 0
    if args.beam is not None:
        raise UsageError(f"numpyrnn predict: --beam decodes with an encoder-decoder (numpyrnn train --task g2p); "
                         f"{args.model} holds a {type(model).__name__}")
    if not isinstance(model, SequenceClassifier) or model.vocab is None or model.tokenizer is None:
        raise UsageError(f"numpyrnn predict: {args.model} holds a {type(model).__name__} that does not read text; "
                         "predict needs a classifier trained on text (numpyrnn train --task sentiment)")
    note = getattr(model, "class_note", None)
    if note:
        print(f"note: {note}", file=sys.stderr)
    for text, (name, p) in zip(texts, model.classify(texts)):
        print(f"{name}\t{p:.3f}\t{text}")
    return 0


def _add_forecast(sub):
    p = sub.add_parser(
        "forecast", help="predict the next value as each value arrives, with a trained forecaster",
        description="Read values from standard input, one step a line (the features of a step separated by spaces), "
                    "and print the model's forecast of the next value after each line, at once, the state carried "
                    "from line to line (model.stream()). For a model trained by `numpyrnn train --task series` "
                    "the values are read and printed in their own units (the task's normalisation, from the "
                    "file's record of its task).", formatter_class=_Help)
    p.add_argument("model", metavar="MODEL", help="the model file (.npz): a SequenceRegressor with a prediction per step")
    _add_cell_file(p)
    p.set_defaults(run=_run_forecast)


def _run_forecast(args):
    import json

    import numpy as np

    from .. import checkpoint, tasks
    from ..models import SequenceRegressor

    try:
        model = checkpoint.load(args.model, device="cpu")
        meta = json.loads(str(checkpoint.read(args.model).get("meta", "{}")))
    except checkpoint.CheckpointError as exc:
        raise UsageError(f"numpyrnn forecast: {exc}") from None
    if not isinstance(model, SequenceRegressor):
        raise UsageError(f"numpyrnn forecast: {args.model} holds a {type(model).__name__}; forecast needs a "
                         "SequenceRegressor (numpyrnn train --task series)")
    model.eval()
    try:
        stream = model.stream()
    except ValueError as exc:
        raise UsageError(f"numpyrnn forecast: {exc}") from None
    mean, std = 0.0, 1.0
    task = meta.get("task") if isinstance(meta, dict) else None
    if isinstance(task, dict) and task.get("name") in tasks.TASKS:
        config = {k: v for k, v in task.items() if k != "name"}
        mean, std = getattr(tasks.make(task["name"], **config), "scale", (0.0, 1.0))
    inputs = model.rnn.input_size
    with stream:
        for number, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            try:
                values = np.array([float(v) for v in line.split()])
            except ValueError:
                raise UsageError(f"numpyrnn forecast: line {number}: not a number: {line.strip()[:40]!r}") from None
            if values.shape != (inputs,) or not np.all(np.isfinite(values)):
                raise UsageError(f"numpyrnn forecast: line {number}: the model reads {inputs} finite value"
                                 f"{'s' * (inputs > 1)} a step, got {line.strip()[:40]!r}")
            prediction = stream.step((values - mean) / std) * std + mean
            print(" ".join(f"{v:.6g}" for v in np.ravel(prediction)), flush=True)
    return 0


def _add_export(sub):
    p = sub.add_parser(
        "export", help="write a saved model as a file PyTorch loads",
        description="Write a model saved by numpyrnn (model.npz, or a run's checkpoint.npz) as a "
                    "PyTorch file: a dict with its config, state dict and vocabulary, read by "
                    "torch.load(path, weights_only=True); numpyrnn.export.torch_modules.load(path) "
                    "gives the torch.nn.Module. The module written is checked on a random batch: the "
                    "largest difference between the two models' outputs is printed. Needs PyTorch "
                    "(pip install numpyrnn[torch]).",
        formatter_class=_Help)
    p.add_argument("checkpoint", metavar="MODEL", help="a .npz written by numpyrnn.save or numpyrnn train")
    p.add_argument("--to", required=True, choices=["torch"], help="the framework to write for")
    p.add_argument("output", metavar="OUT", help="the file to write (e.g. model.pt)")
    _add_cell_file(p)
    p.set_defaults(run=_run_export)


def _run_export(args):
    import os

    from .. import checkpoint, export

    if os.path.abspath(args.output) == os.path.abspath(args.checkpoint):
        raise UsageError(f"numpyrnn export: {args.output} is the model being read; write elsewhere")
    _check_output_file(args, args.output, "OUT")
    try:
        model = checkpoint.load(args.checkpoint, device="cpu")
        module = export.save_torch(model, args.output)       # the module written is the one checked
        inputs, lengths = export.example_inputs(model)
        difference = export.max_difference(model, module, inputs, lengths)
    except (checkpoint.CheckpointError, export.TorchUnavailable, ValueError, OSError) as exc:
        raise UsageError(f"numpyrnn export: {exc}") from None
    config = model.config()
    layers = config.get("num_layers")
    described = ", ".join([config["cell"]] * ("cell" in config)
                          + [f"{layers} layer{'s' * (layers > 1)}"] * (layers is not None)
                          + ["bidirectional"] * bool(config.get("bidirectional")) + [config["dtype"]])
    print(f"{config['type']}({described}) -> {args.output} (PyTorch, {model.num_parameters():,} parameters"
          + (f", vocabulary of {len(model.vocab)}" if getattr(model, "vocab", None) else "") + ")")
    print(f"checked on a random batch ({inputs.shape[0 if not config.get('batch_first') else 1]} steps): "
          f"largest difference {difference:.3g} between numpyrnn's outputs and torch's")
    print("load it in PyTorch:\n"
          "    from numpyrnn.export import torch_modules   # or a copy of that file: it needs only torch\n"
          f"    module = torch_modules.load({args.output!r})")
    return 0


def _add_tasks(sub):
    p = sub.add_parser("tasks", help="list the tasks with their baselines and default settings",
                       formatter_class=_Help)
    p.add_argument("--seq-len", type=_positive_int, help="baselines at this sequence length")
    p.set_defaults(run=_run_tasks)


def _run_tasks(args):
    from .. import tasks
    from ..tasks import datasets

    for name in tasks.TASKS:
        options = {} if args.seq_len is None or "seq_len" not in tasks.options_of(name) else {"seq_len": args.seq_len}
        try:
            task = tasks.make(name, seed=0, **options)
        except datasets.DataUnavailable as exc:          # a task of real data only, whose files are not here
            print(f"{name:<10} {tasks.TASKS[name].title}\n{'':<10} {exc}")
            continue
        baseline = (f"baseline: {task.slow_baseline}" if task.slow_baseline
                    else "baseline {:.4g}: {}".format(*task.baseline()))
        defaults = ", ".join(f"{k} {v}" for k, v in task.defaults.items())
        print(f"{name:<10} {task.title}\n{'':<10} metric {task.metric} ({'higher' if task.higher_is_better else 'lower'} "
              f"is better); {baseline}\n{'':<10} defaults: {defaults}")
    print("\nnamed data sets (--data NAME for sentiment, speech, demand, anomaly and g2p, --text NAME for charlm):")
    for line in datasets.describe():
        print(f"  {line}")
    return 0
