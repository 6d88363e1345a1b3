"""Carry weights between numpyrnn and PyTorch, and measure how closely the two agree.

    python examples/parity_with_torch.py [--seeds 20] [--seq-len 50] [--grid] [--impl reference]

For each cell and configuration this builds a numpyrnn layer, loads its state dict into the
matching torch.nn layer, runs both forward and backward in float64 on the same data (padded
batches through pack_padded_sequence on the torch side) and prints the largest normwise
relative error max|ours − torch| / max|torch| over everything observable: outputs, final
states, and the gradients of the input, the initial states and every parameter.  ``--impl``
picks numpyrnn's path: the fast one (the default) or the reference, the textbook loop over the
step functions.  Needs torch.

The textbook GRU (``reset_after=False``) has no torch.nn counterpart; without --grid it is also
compared, one layer, with its equations written in torch operations and differentiated by
torch's autograd.
"""

import argparse
import sys

import numpy as np

import numpyrnn

try:
    import torch
except ImportError:  # the example is about PyTorch; say so and stop
    sys.exit("this example compares with PyTorch: pip install torch")

VARIANTS = [("RNN tanh", numpyrnn.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
            ("RNN relu", numpyrnn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
            ("LSTM", numpyrnn.LSTM, torch.nn.LSTM, {}),
            ("GRU", numpyrnn.GRU, torch.nn.GRU, {})]

CONFIGS = [("1 layer", dict(num_layers=1), False),
           ("2 layers, bidirectional, lengths", dict(num_layers=2, bidirectional=True), True)]

#: --grid: every stack depth 1–3 × direction × layout, always with random lengths
GRID = [(f"L={layers} {'bi' if bi else 'uni'} {'batch_first' if bf else 'time-major'}",
         dict(num_layers=layers, bidirectional=bi, batch_first=bf), True)
        for layers in (1, 2, 3) for bi in (False, True) for bf in (False, True)]


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def compare(ours_cls, torch_cls, options, layer_kw, use_lengths, T, B, I, H, seed, impl="fast"):
    ours = ours_cls(I, H, dtype=np.float64, seed=seed, impl=impl, **layer_kw, **options)
    theirs = torch_cls(I, H, dtype=torch.float64, **layer_kw, **options)
    # numpyrnn → torch: the state dicts have the same keys and shapes.
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})

    rng = np.random.default_rng(seed)
    batch_first = layer_kw.get("batch_first", False)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    lengths = rng.integers(1, T + 1, size=B) if use_lengths else None
    y, state = ours.forward(x, lengths=lengths)
    finals = list(state) if isinstance(state, tuple) else [state]
    dy = rng.standard_normal(y.shape)
    dfinals = [rng.standard_normal(s.shape) for s in finals]
    dx, dstate0 = ours.backward(dy, tuple(dfinals) if len(dfinals) == 2 else dfinals[0])
    dstate0 = list(dstate0) if isinstance(dstate0, tuple) else [dstate0]

    xt = torch.tensor(x, requires_grad=True)
    s0 = [torch.zeros(s.shape, dtype=torch.float64, requires_grad=True) for s in finals]
    s0_arg = tuple(s0) if len(s0) == 2 else s0[0]
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.as_tensor(lengths), batch_first=batch_first,
                                                         enforce_sorted=False)
        out, tstate = theirs(packed, s0_arg)
        ty, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    else:
        ty, tstate = theirs(xt, s0_arg)
    tfinals = list(tstate) if isinstance(tstate, tuple) else [tstate]
    loss = (ty * torch.from_numpy(dy)).sum() + sum((s * torch.from_numpy(d)).sum() for s, d in zip(tfinals, dfinals))
    loss.backward()

    errors = [rel_err(y, ty.detach().numpy()), rel_err(dx, xt.grad.numpy())]
    errors += [rel_err(a, b.detach().numpy()) for a, b in zip(finals, tfinals)]
    errors += [rel_err(a, b.grad.numpy()) for a, b in zip(dstate0, s0)]
    errors += [rel_err(ours.grads[k], p.grad.numpy()) for k, p in theirs.named_parameters()]
    return max(errors)


def textbook_gru_in_torch(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """Cho et al. (2014, v3): n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn), in torch ops."""
    H = h.shape[-1]
    w_hrz, w_hn = weight_hh[:2 * H], weight_hh[2 * H:]
    outputs = []
    for x_t in x:
        a = x_t @ weight_ih.T + bias_ih
        r, z = torch.sigmoid(a[:, :2 * H] + h @ w_hrz.T + bias_hh[:2 * H]).split(H, dim=1)
        n = torch.tanh(a[:, 2 * H:] + (r * h) @ w_hn.T + bias_hh[2 * H:])
        h = (1 - z) * n + z * h
        outputs.append(h)
    return torch.stack(outputs), h


def compare_textbook_gru(T, B, I, H, seed, impl="fast"):
    ours = numpyrnn.GRU(I, H, reset_after=False, dtype=np.float64, seed=seed, impl=impl)
    rng = np.random.default_rng(seed)
    x, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((1, B, H))
    y, h_n = ours.forward(x, h0)
    dy, dh_n = rng.standard_normal(y.shape), rng.standard_normal(h_n.shape)
    dx, dh0 = ours.backward(dy, dh_n)
    names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    xt, h0t = torch.tensor(x, requires_grad=True), torch.tensor(h0[0], requires_grad=True)
    params = [torch.tensor(ours.params[k], requires_grad=True) for k in names]
    ty, th = textbook_gru_in_torch(xt, h0t, *params)
    ((ty * torch.from_numpy(dy)).sum() + (th * torch.from_numpy(dh_n[0])).sum()).backward()
    errors = [rel_err(y, ty.detach().numpy()), rel_err(h_n[0], th.detach().numpy()),
              rel_err(dx, xt.grad.numpy()), rel_err(dh0[0], h0t.grad.numpy())]
    errors += [rel_err(ours.grads[k], p.grad.numpy()) for k, p in zip(names, params)]
    return max(errors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="random models and batches per cell and configuration")
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--grid", action="store_true",
                        help="every depth 1-3 x direction x layout (with lengths), one row per configuration")
    parser.add_argument("--impl", choices=["fast", "reference"], default="fast", help="numpyrnn's path")
    args = parser.parse_args()
    shape = (args.seq_len, args.batch, args.input_size, args.hidden)
    print(f"float64, T={shape[0]} B={shape[1]} I={shape[2]} H={shape[3]}, {args.seeds} seeds each, numpyrnn's "
          f"{args.impl} path; worst normwise relative error over y, state_n, dx, dstate0 and every parameter gradient")
    configs = GRID if args.grid else CONFIGS
    if args.grid:                                           # configurations down, cells across
        print(f"{'configuration':<34}" + "".join(f"{label:>12}" for label, *_ in VARIANTS))
    else:
        print(f"{'cell':<10}" + "".join(f"{name:>36}" for name, _, _ in configs))
    table = {(label, name): max(compare(ours_cls, torch_cls, options, layer_kw, use_lengths, *shape, seed, args.impl)
                                for seed in range(args.seeds))
             for label, ours_cls, torch_cls, options in VARIANTS for name, layer_kw, use_lengths in configs}
    worst = max(table.values())
    if args.grid:
        for name, *_ in configs:
            print(f"{name:<34}" + "".join(f"{table[label, name]:>12.2e}" for label, *_ in VARIANTS))
    else:
        for label, *_ in VARIANTS:
            print(f"{label:<10}" + "".join(f"{table[label, name]:>36.2e}" for name, *_ in configs))
        textbook = max(compare_textbook_gru(*shape, seed, args.impl) for seed in range(args.seeds))
        print(f"GRU textbook (reset_after=False), 1 layer, against its equations in torch ops "
              f"and autograd: {textbook:.2e}")
        worst = max(worst, textbook)
    print(f"worst: {worst:.2e}")
    return 0 if worst < 1e-10 else 1


if __name__ == "__main__":
    sys.exit(main())
