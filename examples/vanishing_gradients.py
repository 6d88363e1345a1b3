"""Why gates beat vanishing gradients, shown rather than told.

    python examples/vanishing_gradients.py [--seq-len 100] [--steps 2000] [--out vanishing]

On the adding problem the loss depends on the last step only.  For each cell this measures
‖∂L/∂h_t‖, the gradient that reaches step t, at initialisation and after training, and the
LSTM's forget gate over time; it writes gradflow.png and prints how much weaker the gradient
is at the first step than at the last.  (The same as `numpyrnn gradflow`.)
"""

import argparse
import json
import os

from numpyrnn import plots
from numpyrnn.experiments.gradflow import gradflow


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", default="vanishing")
    args = p.parse_args()

    data = gradflow(("rnn", "lstm", "gru"), seq_len=args.seq_len, steps=args.steps, hidden=args.hidden,
                    batch=args.batch, log=print)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gradflow.json"), "w") as f:
        json.dump(data, f)
    plots.gradflow(data, os.path.join(args.out, "gradflow.png"))
    print(f"\n‖∂L/∂h_0‖ / ‖∂L/∂h_{args.seq_len - 1}‖: the fraction of the gradient that travels back "
          f"{args.seq_len - 1} steps")
    for cell, d in data["cells"].items():
        ratios = [d[s]["grad_norms"][0] / d[s]["grad_norms"][-1] for s in ("initial", "trained")]
        print(f"  {cell.upper():<4} at initialisation {ratios[0]:.1e}, after training {ratios[1]:.1e} "
              f"(test MSE {d['trained']['test_mse']:.4f})")
    print(f"wrote {args.out}/gradflow.png")


if __name__ == "__main__":
    main()
