"""The gate study ("Which gate matters", issue 22): its table and figure from the sweeps' JSON.

    python tools/gate_study.py [FOLDER=docs/results/gates] [FIGURE=docs/figures/gates.png]

FOLDER holds the JSON that `numpyrnn sweep` wrote for each setting (adding50.json,
adding100.json, copy5.json; the commands are in docs/benchmarks.md).  Prints the table in
markdown (per cell: the test metric, mean ± std over seeds, in each setting; the gradient-flow
ratio ‖∂L/∂h_0‖ / ‖∂L/∂h_T−1‖, and the cell state's, at initialisation and after training, on
the adding problem, geometric mean over seeds; training seconds) and draws the figure: the test
metric of each cell in each setting, every seed a dot, the baselines dashed.
"""
import hashlib
import json
import math
import os
import sys

import numpy as np

from numpyrnn import plots

SETTINGS = (("adding50", "adding, T = 50"), ("adding100", "adding, T = 100"), ("copy5", "copy, T = 5"))


def _sources(folder):
    """(name, path) of each setting's JSON that ``folder`` holds, in order."""
    for name, _ in SETTINGS:
        path = os.path.join(folder, f"{name}.json")
        if os.path.exists(path):
            yield name, path


def load(folder):
    """The settings found in ``folder``, in order: name → sweep JSON."""
    out = {}
    for name, path in _sources(folder):
        with open(path) as f:
            out[name] = json.load(f)
    return out


def plan(folder):
    """What the figure is drawn from: the SHA-256 of each setting's JSON in ``folder`` (recorded in
    the figure; tests/test_figures.py holds docs/figures/gates.png to the JSON beside it)."""
    out = {}
    for name, path in _sources(folder):
        with open(path, "rb") as f:
            out[f"{name}.json"] = hashlib.sha256(f.read()).hexdigest()
    return {"sources": out}


def _geomean(values):
    values = [v for v in values if v is not None and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def table(data):
    """The study as markdown rows, one per cell."""
    names = [n for n, _ in SETTINGS if n in data]
    cells = list(next(iter(data.values()))["cells"])
    head = ["cell"] + [f"{dict(SETTINGS)[n]} (test {data[n]['metric']})" for n in names]
    ratios = [n for n in names if "gradflow" in data[n]]
    head += [f"‖∂L/∂h_0‖/‖∂L/∂h_T−1‖ {dict(SETTINGS)[n]}: init → trained" for n in ratios]
    head += ["training s (" + ", ".join(n for n in names) + ")"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell in cells:
        row = [cell]
        for n in names:
            values = data[n]["cells"][cell][0]
            row.append(f"{np.mean(values):.4f} ± {np.std(values):.4f}")
        for n in ratios:
            runs = data[n]["gradflow"][cell][0]
            parts = []
            for state in runs[0]["initial"]:
                a = _geomean([r["initial"][state] for r in runs])
                b = _geomean([r["trained"][state] for r in runs])
                parts.append(f"{state}: {a:.1e} → {b:.1e}" if a and b else f"{state}: -")
            row.append("; ".join(parts))
        row.append(", ".join(f"{np.mean(data[n]['train_seconds'][cell][0]):.0f}" for n in names))
        rows.append("| " + " | ".join(row) + " |")
    baselines = ", ".join(f"{dict(SETTINGS)[n]} {data[n]['baselines'][0]:.4f}" for n in names)
    rows.append("")
    rows.append(f"Baselines (a constant answer): {baselines}.")
    return "\n".join(rows)


def figure(data, path, record=None):
    """Left: the adding problem's test MSE against T, one line per cell (mean over seeds, every
    seed a dot). Right: the copy task's test loss per cell (every seed a dot, the mean a bar)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    adding = [n for n in ("adding50", "adding100") if n in data]
    copy = "copy5" in data
    cells = list(next(iter(data.values()))["cells"])
    colours = {cell: matplotlib.colormaps["tab20"](k % 20) for k, cell in enumerate(cells)}
    styles = {cell: "-" if cell.startswith("lstm") else "--" for cell in cells}
    fig = Figure(figsize=(13, 5.4), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.15, 1))
    if adding:
        lengths = [data[n]["lengths"][0] for n in adding]
        for k, cell in enumerate(cells):
            runs = [data[n]["cells"][cell][0] for n in adding]
            shift = (k - len(cells) / 2) * 0.6                  # spread the dots of equal T apart
            for T, values in zip(lengths, runs):
                left.scatter([T + shift] * len(values), values, s=10, color=colours[cell], alpha=0.6, zorder=3)
            left.plot([T + shift for T in lengths], [np.mean(v) for v in runs], styles[cell], marker="o", ms=4,
                      color=colours[cell], label=cell, lw=1.3)
        left.axhline(data[adding[0]]["baselines"][0], color="k", ls=":", lw=1, label="baseline (always 1)")
        left.axhline(0.01, color="k", ls="-.", lw=1, label="solved (0.01)")
        left.set_xticks(lengths)
        left.set_xlabel("sequence length T")
        left.set_yscale("log")
        left.set_ylabel("test MSE")
        steps = ", ".join(f"T={T}: {data[n]['budget']['steps']} steps" for T, n in zip(lengths, adding))
        left.set_title(f"adding problem ({steps}; {data[adding[0]]['seeds']} seeds)", fontsize=10)
        left.grid(alpha=0.3)
        left.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        left.set_visible(False)
    if copy:
        d = data["copy5"]
        for k, cell in enumerate(cells):
            values = d["cells"][cell][0]
            right.scatter([k] * len(values), values, s=14, color=colours[cell], zorder=3)
            right.plot([k - 0.3, k + 0.3], [np.mean(values)] * 2, color="k", lw=1)
        right.axhline(d["baselines"][0], color="k", ls=":", lw=1, label=f"memoryless baseline {d['baselines'][0]:.3g}")
        right.set_yscale("log")
        right.set_xticks(range(len(cells)))
        right.set_xticklabels(cells, rotation=70, fontsize=8)
        right.set_ylabel(f"test {d['metric']}")
        right.set_title(f"copy task, T = {d['lengths'][0]} ({d['budget']['steps']} steps; {d['seeds']} seeds)",
                        fontsize=10)
        right.grid(alpha=0.3, axis="y")
        right.legend(fontsize=7)
    else:
        right.set_visible(False)
    fig.suptitle("Which gate matters: the LSTM with one thing removed or changed, beside other cells "
                 "(solid: the LSTM family)", fontsize=10)
    return plots.save(fig, path, record)


def main(argv):
    folder = argv[1] if len(argv) > 1 else "docs/results/gates"
    path = argv[2] if len(argv) > 2 else "docs/figures/gates.png"
    data = load(folder)
    if not data:
        raise SystemExit(f"{folder}: no sweep JSON of the study (adding50.json, adding100.json, copy5.json)")
    print(table(data))
    figure(data, path, {"command": f"python tools/gate_study.py {folder} {path}", "plan": plan(folder)})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main(sys.argv)
