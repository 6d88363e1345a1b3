"""Your own cell, from a paper: the MinimalRNN of Chen (2017), written as a student would.

    python examples/custom_cell.py [--seq-len 50] [--steps 1500] [--seeds 1] [--out custom_cell]

numpyrnn does not ship this cell.  Below it is one class: the step forward as a chain of named
intermediates, and the step backward derived from it line by line, last line first (the method
of docs/derivations.md §13, where the same derivation is written out).  Then the script

  1. gradchecks it: the step, and a two-layer bidirectional layer over sequences with lengths;
  2. trains it on the adding problem next to the LSTM and the GRU, same data, budget and seeds;
  3. draws its gradient flow beside theirs (gradflow.png), from its own step functions.

The same file works on the command line: `numpyrnn gradcheck --cell-file examples/custom_cell.py
--cell minimal_rnn`, `numpyrnn compare --task adding --cells lstm,gru,minimal_rnn --cell-file
examples/custom_cell.py`.
"""

import argparse
import json
import os

from numpyrnn import cells, gradcheck, plots
from numpyrnn.backend import array_module
from numpyrnn.cells.common import sigmoid
from numpyrnn.experiments.compare import compare, table
from numpyrnn.experiments.gradflow import gradflow
from numpyrnn.layers import Recurrent


class MinimalRNN(cells.Cell):
    r"""Chen (2017), "MinimalRNN: toward more interpretable and trainable recurrent neural
    networks".  The input is mapped to a latent z, and one gate u mixes the old state with it:

        z   = tanh(x_t W_x^T + b_z)                    latent input
        a_u = h_prev U_h^T + z U_z^T + b_u
        u   = σ(a_u)                                   update gate
        h   = u ⊙ h_prev + (1 − u) ⊙ z

    Parameters (PyTorch's naming style): weight_xz = W_x (H, I), bias_z (H,), weight_hu = U_h
    (H, H), weight_zu = U_z (H, H), bias_u (H,).  One state, h.
    """

    name = "minimal_rnn"
    state_names = ("h",)

    def parameters(self, input_size, hidden_size):
        H = hidden_size
        return {"weight_xz": (H, input_size), "bias_z": (H,), "weight_hu": (H, H), "weight_zu": (H, H),
                "bias_u": (H,)}

    def step_forward(self, x_t, state, params):
        xp = array_module(x_t)
        (h_prev,) = state
        z = xp.tanh(x_t @ params["weight_xz"].T + params["bias_z"])            # z = tanh(x W_x^T + b_z)
        a_u = h_prev @ params["weight_hu"].T + z @ params["weight_zu"].T + params["bias_u"]
        u = sigmoid(a_u)                                                        # u = σ(a_u)
        h = u * h_prev + (1 - u) * z                                            # h = u ⊙ h_prev + (1 − u) ⊙ z
        return (h,), (x_t, h_prev, z, u, params)

    def step_backward(self, dstate, cache):
        (dh,) = dstate
        x_t, h_prev, z, u, params = cache
        # the last line, h = u ⊙ h_prev + (1 − u) ⊙ z: a sum of two products (facts 1 and 3)
        du = dh * (h_prev - z)                             # du = dh ⊙ (h_prev − z)
        dh_prev = dh * u                                   # dh_prev = dh ⊙ u (the direct path; more below)
        dz = dh * (1 - u)                                  # dz = dh ⊙ (1 − u) (more below)
        # u = σ(a_u) (fact 2, through the output)
        da_u = du * u * (1 - u)                            # da_u = du ⊙ u(1 − u)
        # a_u = h_prev U_h^T + z U_z^T + b_u: two linear maps (fact 1), adding to dh_prev and dz
        dh_prev = dh_prev + da_u @ params["weight_hu"]     # dh_prev += da_u U_h
        dz = dz + da_u @ params["weight_zu"]               # dz += da_u U_z
        # z = tanh(x_t W_x^T + b_z)
        da_z = dz * (1 - z * z)                            # da_z = dz ⊙ (1 − z²)
        dx_t = da_z @ params["weight_xz"]                  # dx_t = da_z W_x
        grads = {"weight_xz": da_z.T @ x_t,                # dW_x = da_z^T x_t
                 "bias_z": da_z.sum(axis=0),               # db_z = Σ_batch da_z
                 "weight_hu": da_u.T @ h_prev,             # dU_h = da_u^T h_prev
                 "weight_zu": da_u.T @ z,                  # dU_z = da_u^T z
                 "bias_u": da_u.sum(axis=0)}               # db_u = Σ_batch da_u
        return dx_t, (dh_prev,), grads

    def gate_activations(self, cache):
        return {"u": cache[3], "z": cache[2]}


cells.register(MinimalRNN)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seq-len", type=int, default=50)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--out", default="custom_cell")
    args = p.parse_args()

    print("1. The gradient check: the step, then a 2-layer bidirectional layer over sequences with lengths")
    results, lengths = gradcheck.check_cells([MinimalRNN()], num_layers=2, bidirectional=True, lengths=True)
    print(gradcheck.summary(results, f"T=5, B=3, lengths {lengths.tolist()}"))
    print(repr(Recurrent(MinimalRNN(), 4, 5)))
    if not all(report.passed for _, report in results):
        raise SystemExit("the backward is not the derivative of the forward: fix it before training")

    print(f"\n2. The adding problem at T={args.seq_len}, {args.steps} steps, next to the LSTM and the GRU")
    data = compare("adding", cells=("lstm", "gru", "minimal_rnn"), seeds=args.seeds, steps=args.steps,
                   hidden=args.hidden, task_options={"seq_len": args.seq_len}, progress=False)
    print(table(data))

    print("\n3. The gradient reaching each step, at initialisation and after training")
    flow = gradflow(("lstm", "gru", "minimal_rnn"), seq_len=args.seq_len, steps=args.steps, hidden=args.hidden,
                    batch=16, log=print, progress=False)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gradflow.json"), "w") as f:
        json.dump(flow, f)
    plots.gradflow(flow, os.path.join(args.out, "gradflow.png"))
    print(f"wrote {args.out}/gradflow.png")


if __name__ == "__main__":
    main()
