"""The seed's claims over several comparisons, as the README's tables: one row per comparison.

    python tools/claims_across.py results/sentiment results/sentiment-matched results/rt ...
    python tools/claims_across.py --uses results/sentiment results/speech results/anomaly \
        results/demand --latency results/latency.json

Each argument is a folder that `numpyrnn compare --out` wrote (its results.json is read).  With
``--uses``, the seed's use-case table instead: a row per use (the task names it: speech,
anomaly for the medical signal, demand for real-time prediction; sentiment, the seed's own
example), the cell the seed picks for it and whether that advice holds; ``--latency`` names what
``tools/latency.py --out`` wrote, for the real-time row's per-step claim.
"""
import json
import os
import sys

from numpyrnn.experiments.claims import across, uses


def main(argv):
    args = argv[1:]
    use_table = "--uses" in args
    latency = None
    if "--latency" in args:
        at = args.index("--latency")
        with open(args[at + 1]) as f:
            latency = json.load(f)
        args = args[:at] + args[at + 2:]
    folders = [a for a in args if a != "--uses"]
    if not folders:
        raise SystemExit(__doc__)
    comparisons = []
    for folder in folders:
        with open(os.path.join(folder, "results.json")) as f:
            comparisons.append(json.load(f))
    print(uses(comparisons, latency) if use_table else across(comparisons))


if __name__ == "__main__":
    main(sys.argv)
