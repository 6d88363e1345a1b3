"""Success against sequence length: every cell trained on the adding problem at each T with the
same budget, final test MSE against T, the baseline drawn."""

from __future__ import annotations

import numpy as np

from .. import optim, tasks
from ..tasks.adding import BASELINE_MSE
from ..train import Trainer
from .progress import Progress

DEFAULT_LENGTHS = (10, 25, 50, 100, 200)


def sweep(lengths=DEFAULT_LENGTHS, cells=("lstm", "gru", "rnn"), steps=1500, hidden=64, seeds=1,
          train_size=5_000, log=None, device="auto", impl="fast", progress=None):
    """Test MSE of each cell at each length (one list of per-seed values per length).
    ``device``: where the models train ("auto", "cpu" or "gpu"); ``impl``: the layers' path
    ("fast" or "reference"); ``progress``: one bar over every run's steps (None: on a terminal
    only)."""
    data = {"lengths": list(lengths), "baseline": BASELINE_MSE, "budget": {"steps": steps}, "hidden": hidden,
            "seeds": seeds, "train_size": train_size, "cells": {cell: [] for cell in cells},
            "train_seconds": {cell: [] for cell in cells}}
    with Progress(len(lengths) * len(cells) * seeds * steps, enabled=progress, log=log) as bar:
        for T in lengths:
            task = tasks.make("adding", seq_len=T, seed=0, train_size=train_size)
            d = task.defaults
            for cell in cells:
                values, seconds = [], []
                for seed in range(seeds):
                    bar.run(f"T={T} {cell} seed {seed}")
                    model = task.make_model(cell, hidden_size=hidden, seed=seed, device=device, impl=impl)
                    trainer = Trainer(model, task, optim.make(d["optimizer"], model, lr=d["lr"]),
                                      batch_size=d["batch_size"], clip=d["clip"], eval_every=steps, seed=seed,
                                      progress=False, on_step=bar.step)
                    final = trainer.fit(steps=steps)
                    values.append(final["test_mse"])
                    seconds.append(final["train_seconds"])
                data["cells"][cell].append(values)
                data["train_seconds"][cell].append(seconds)
                bar.log(f"T={T:>4} {cell:<4} test MSE {np.mean(values):.4f} ({np.mean(seconds):.1f} s)")
    return data
