"""The largest |difference| between a numpyrnn model and its PyTorch export, per model kind,
cell and dtype, over 1–2 layers, one or two directions (CharLM: one) and with or without
lengths, after 20 Adam steps on random data; measured on a batch of 32 sequences of 50 steps.

    python tools/export_differences.py          # the table in docs/benchmarks.md
"""

import itertools

import numpy as np

from numpyrnn import export, optim
from numpyrnn.models import CharLM, SequenceClassifier, SequenceRegressor

KINDS = {
    "SequenceClassifier": lambda cell, L, bi, dt: SequenceClassifier(
        cell, num_classes=3, vocab_size=40, embedding_dim=16, hidden_size=32, num_layers=L,
        bidirectional=bi, padding_idx=0, dtype=dt, seed=0),
    "SequenceRegressor": lambda cell, L, bi, dt: SequenceRegressor(
        cell, input_size=8, hidden_size=32, output_size=2, num_layers=L, bidirectional=bi, dtype=dt, seed=0),
    "CharLM": lambda cell, L, bi, dt: CharLM(cell, vocab_size=40, hidden_size=32, num_layers=L, dtype=dt, seed=0),
}


def targets_for(model, inputs, rng):
    config = model.config()
    T, B = inputs.shape[:2]
    if config["type"] == "SequenceClassifier":
        return rng.integers(0, 3, B)
    if config["type"] == "SequenceRegressor":
        return rng.standard_normal((B, 2))
    return rng.integers(0, 40, (T, B))


def largest(kind, cell, dtype):
    worst = 0.0
    for L, bi, with_lengths in itertools.product((1, 2), (False, True), (False, True)):
        if kind == "CharLM" and bi:
            continue
        model = KINDS[kind](cell, L, bi, dtype)
        opt, rng = optim.Adam(model, lr=0.01), np.random.default_rng(1)
        for step in range(20):
            inputs, lengths = export.example_inputs(model, batch=16, steps=30, seed=step)
            model.zero_grad()
            model.forward(inputs, targets_for(model, inputs, rng), lengths if with_lengths else None)
            model.backward()
            opt.step()
        inputs, lengths = export.example_inputs(model, batch=32, steps=50, seed=100)
        worst = max(worst, export.max_difference(model, export.to_torch(model), inputs,
                                                 lengths if with_lengths else None))
    return worst


if __name__ == "__main__":
    print("| model | cell | float32 | float64 |")
    print("|---|---|---|---|")
    for kind in KINDS:
        for cell in ("rnn", "lstm", "gru"):
            print(f"| {kind} | {cell} | {largest(kind, cell, np.float32):.2e} | {largest(kind, cell, np.float64):.2e} |")
