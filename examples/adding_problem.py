"""The adding problem: can a recurrent network carry one number across T steps?

    python examples/adding_problem.py [--cell lstm] [--seq-len 100] [--steps 4000]

Each input is T pairs (value, marker); two markers are 1, and the target is the sum of the two
marked values.  Always answering 1 scores MSE 1/6 ≈ 0.167; solving the task means going below
0.01.  Try --cell rnn at --seq-len 100: the vanilla RNN stays at the baseline.
"""

import argparse

from numpyrnn import optim, tasks
from numpyrnn.train import Trainer


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="lstm")
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--train-size", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    task = tasks.make("adding", seq_len=args.seq_len, train_size=args.train_size, seed=args.seed)
    model = task.make_model(args.cell, hidden_size=args.hidden, seed=args.seed)
    optimizer = optim.Adam(model, lr=2e-3)
    print(f"{model!r}: {model.num_parameters()} parameters; baseline MSE {task.baseline()[0]:.4f}")
    trainer = Trainer(model, task, optimizer, batch_size=64, clip=1.0, eval_every=max(1, args.steps // 10),
                      seed=args.seed, log=print)
    result = trainer.fit(steps=args.steps)
    verdict = "solved" if result["test_mse"] < 0.01 else "not solved"
    print(f"test MSE {result['test_mse']:.4f} ({verdict}; the bar is 0.01) after "
          f"{result['train_seconds']:.1f} s of training")


if __name__ == "__main__":
    main()
