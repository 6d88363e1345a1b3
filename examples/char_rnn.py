"""A character-level language model with the whole loop in view, after Karpathy's min-char-rnn.

    python examples/char_rnn.py [--text FILE] [--cell lstm] [--steps 2000] [--hidden 128]

Reads a text (the built-in stories if none is given), trains on it with truncated
backpropagation through time, and prints a sample now and then.
"""

import argparse
import math

import numpy as np

import numpyrnn
from numpyrnn import optim
from numpyrnn.tasks import corpus


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", help="a UTF-8 text file (default: generated stories)")
    p.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="lstm")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=64, help="characters per chunk")
    p.add_argument("--batch", type=int, default=32, help="parallel streams")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    text = open(args.text, encoding="utf-8").read() if args.text else corpus.generate(200_000, np.random.default_rng(0))
    chars = sorted(set(text))
    index = {ch: i for i, ch in enumerate(chars)}
    data = np.array([index[ch] for ch in text])
    print(f"{len(text)} characters, {len(chars)} distinct")

    model = numpyrnn.CharLM(args.cell, vocab_size=len(chars), hidden_size=args.hidden, seed=args.seed)
    model.vocab = tuple(chars)
    opt = optim.Adam(model, lr=3e-3)

    B, L = args.batch, args.seq_len
    n = len(data) // B
    streams = data[:B * n].reshape(B, n)          # B parallel streams through the text
    pos, state, smooth = 0, None, math.log(len(chars))
    for step in range(args.steps):
        if pos + L + 1 > n:                       # the end of the streams: start again, fresh state
            pos, state = 0, None
        x = streams[:, pos:pos + L].T             # (L, B) characters ...
        y = streams[:, pos + 1:pos + L + 1].T     # ... and the ones that follow them
        loss, _ = model.forward(x, y, state=state)   # start where the previous chunk ended
        model.zero_grad()
        model.backward()                          # back through this chunk only
        optim.clip_grad_norm(model.grads, 1.0)
        opt.step()
        state = model.final_state                 # carried to the next chunk
        pos += L
        smooth = 0.98 * smooth + 0.02 * loss
        if step % max(1, args.steps // 5) == 0 or step == args.steps - 1:
            ids = model.sample(200, prime=[index["\n"]] if "\n" in index else (), temperature=0.8, seed=step)
            print(f"--- step {step}: {smooth / math.log(2):.3f} bits per character ---")
            print("".join(chars[i] for i in ids))
    numpyrnn.save(model, "char_rnn.npz")
    print("saved char_rnn.npz; `numpyrnn sample --checkpoint char_rnn.npz` writes more")


if __name__ == "__main__":
    main()
