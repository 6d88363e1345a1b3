"""How the anomaly task's detection depends on the smoothing of its score (docs/tasks.md).

    python tools/anomaly_smoothing.py [SEEDS=3] [WINDOWS=1,5,10,25,50,100]

Trains the LSTM, the GRU and the RNN at the anomaly task's defaults (seeds 0 .. SEEDS − 1, as
``numpyrnn compare --task anomaly`` does), then scores each trained model's test forecasts with
every trailing-mean window in WINDOWS (the forecasts do not depend on it), beside the
persistence and seasonal-naive baselines: hit or miss and the ratio (the anomaly's top score
over the highest elsewhere), per window.  Needs the data set (pip install --no-deps aeon==1.6.0).
"""
import sys

import numpy as np

from numpyrnn import tasks, train
from numpyrnn.tasks.anomaly import trailing_mean


def detections(task, forecasts, windows):
    """"hit/ratio" for each window, of the standardised test forecasts."""
    start, end = task.periods["test"]
    errors = np.abs(forecasts - task.series[start:end])
    found = []
    for window in windows:
        d = task.detection(trailing_mean(errors, window))
        found.append(f"{'hit' if d['hit'] else 'miss'} {d['ratio']:.2f}")
    return found


def main(argv):
    seeds = int(argv[1]) if len(argv) > 1 else 3
    windows = [int(w) for w in (argv[2] if len(argv) > 2 else "1,5,10,25,50,100").split(",")]
    task = tasks.make("anomaly")
    print("| forecaster | seed | " + " | ".join(f"window {w}" for w in windows) + " |")
    print("|---|---|" + "---|" * len(windows))
    for name, lag in (("persistence", 1), ("seasonal naive", task.period)):
        start, end = task.periods["test"]
        print(f"| {name} | - | " + " | ".join(detections(task, task.series[start - lag:end - lag], windows)) + " |")
    for cell in ("lstm", "gru", "rnn"):
        for seed in range(seeds):
            trainer, budget = train.setup(task, cell, seed=seed)
            metrics = trainer.fit(**budget)
            found = detections(task, task.forecasts(trainer.model, "test"), windows)
            print(f"| {cell.upper()} | {seed} | " + " | ".join(found) + f" |  <!-- test MAE {metrics['test_mae']:.4f} -->",
                  flush=True)


if __name__ == "__main__":
    main(sys.argv)
