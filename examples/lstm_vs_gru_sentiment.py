"""LSTM vs GRU (vs a vanilla RNN) on the same sentiment data: accuracy and training time.

    python examples/lstm_vs_gru_sentiment.py [--quick] [--seeds 3] [--match-params] [--out results]

The classic exercise: build two models on the same data set and compare them.  Every cell gets
the same reviews, splits, optimizer, budget and seeds; the script prints the table, says what
it shows, and writes results.json, results.md and compare.png.  (The same as
`numpyrnn compare --task sentiment`.)
"""

import argparse

from numpyrnn.experiments.compare import compare, table, write


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small data and budget (well under a minute)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the task's 6)")
    p.add_argument("--match-params", action="store_true", help="same parameter count for every cell")
    p.add_argument("--out", default="results/lstm_vs_gru")
    args = p.parse_args()

    results = compare("sentiment", cells=("lstm", "gru", "rnn"), seeds=args.seeds, quick=args.quick,
                      epochs=args.epochs, match_params=args.match_params, log=print)
    print()
    print(table(results))
    write(results, args.out)

    lstm, gru, rnn = (results["cells"][c]["summary"] for c in ("lstm", "gru", "rnn"))
    print(f"\nLSTM {lstm['test_mean']:.3f} vs GRU {gru['test_mean']:.3f} test accuracy: "
          + ("the LSTM is higher" if lstm["test_mean"] > gru["test_mean"] + gru["test_std"]
             else "the GRU is higher" if gru["test_mean"] > lstm["test_mean"] + lstm["test_std"]
             else "no difference beyond the spread over seeds"))
    print(f"GRU trains in {gru['train_seconds_mean'] / lstm['train_seconds_mean']:.2f}× the LSTM's time, "
          f"with {results['cells']['gru']['parameters'] / results['cells']['lstm']['parameters']:.2f}× its parameters "
          f"and {gru['activation_mib'] / lstm['activation_mib']:.2f}× its activation memory.")
    print(f"The vanilla RNN reaches {rnn['test_mean']:.3f}: the reviews need memory across many words.")
    print(f"Wrote {args.out}/results.json, results.md, compare.png")


if __name__ == "__main__":
    main()
