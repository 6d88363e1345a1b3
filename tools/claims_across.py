"""The seed's claims over several comparisons, as the README's table: one row per comparison.

    python tools/claims_across.py results/sentiment results/sentiment-matched results/rt ...

Each argument is a folder that `numpyrnn compare --out` wrote (its results.json is read).
"""
import json
import os
import sys

from numpyrnn.experiments.claims import across


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    comparisons = []
    for folder in argv[1:]:
        with open(os.path.join(folder, "results.json")) as f:
            comparisons.append(json.load(f))
    print(across(comparisons))


if __name__ == "__main__":
    main(sys.argv)
