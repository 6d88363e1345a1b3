"""A/B timing of training steps, two versions of numpyrnn in one process, on the CPU.

    git worktree add /tmp/before <commit>
    python tools/ab_train.py /tmp/before [ROUNDS=10] [TASK=sentiment]

What `numpyrnn compare --quick` trains (for sentiment: 3 000 generated reviews padded to the
batch's longest, with lengths; hidden 64, batch 32, float32, Adam, clipping at 1): the first 40
batches of an epoch, one optimizer step each, for each cell, the installed numpyrnn ("after")
and the one in the given checkout ("before") taking turns in blocks, the order swapped every
round, as in tools/ab_bench.py.  Prints the medians of milliseconds per step and their ratio.
"""
import importlib
import statistics
import sys
import time

import numpy as np

from ab_bench import load

#: the task options of `compare --quick` (numpyrnn.experiments.compare.QUICK)
QUICK = {"sentiment": dict(train_size=3_000, val_size=500, test_size=500, seq_len=32),
         "adding": dict(train_size=2_000, val_size=300, test_size=300, seq_len=20),
         "copy": dict(train_size=2_000, val_size=300, test_size=300, seq_len=10)}


def trainer(package, task_name, cell):
    def sub(name):
        return importlib.import_module(f"{package.__name__}.{name}")

    task = sub("tasks").make(task_name, seed=0, **QUICK.get(task_name, {}))
    model = task.make_model(cell, hidden_size=64, seed=0, dtype=np.float32)
    run = sub("train").Trainer(model, task, sub("optim").Adam(model, lr=3e-3), batch_size=32, clip=1.0)
    batches = [task.batch(b) for b in task.epoch(32, np.random.default_rng(0))][:40]
    return run, batches


def main(argv):
    import numpyrnn as after

    before = load("numpyrnn_before", argv[1])
    rounds = int(argv[2]) if len(argv) > 2 else 10
    task_name = argv[3] if len(argv) > 3 else "sentiment"
    print(f"{'cell':<5} {'task':<10} {'before ms':>9} {'after ms':>9} {'after/before':>12}")
    for cell in ("lstm", "gru", "rnn"):
        runs = {label: trainer(package, task_name, cell) for label, package in (("before", before), ("after", after))}
        times = {"before": [], "after": []}
        for r in range(rounds):
            for label in (("before", "after") if r % 2 == 0 else ("after", "before")):
                run, batches = runs[label]
                run._train_step(batches[0])              # untimed: the switch from the other
                start = time.perf_counter()
                for batch in batches:
                    run._train_step(batch)
                times[label].append((time.perf_counter() - start) / len(batches))
        b, a = (1e3 * statistics.median(times[k]) for k in ("before", "after"))
        print(f"{cell:<5} {task_name:<10} {b:9.3f} {a:9.3f} {a / b:12.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
