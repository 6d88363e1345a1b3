"""Figures, written to PNG files.

matplotlib is imported here only, when a figure is drawn, and through its object-oriented
interface with the Agg canvas: no window, and nothing changes the pyplot backend of a session
that has one.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

from .cells import protocol as _cells

#: colours for the cells without one of their own (``Cell.colour``), given in the order the
#: cells come: none is a built-in cell's, nor the orange of the forget panel's top units
PALETTE = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79", "#637939",
           "#8c6d31", "#843c39", "#7b4173", "#3182bd")
#: the orange of the units that keep the forget gate highest
TOP_UNITS = "#ff7f0e"


def colours(cells) -> dict:
    """A colour for each of ``cells`` (names): its own (the LSTM's blue, the GRU's red, the RNN's
    grey), else the next of :data:`PALETTE` that no cell in the figure has, so that a cell of
    the user's never wears the LSTM's colour."""
    own = {cell: _cells.colour(cell) for cell in cells}
    taken = {c.lower() for c in own.values() if c}
    free = [c for c in PALETTE if c.lower() not in taken]
    given, k = {}, 0
    for cell in cells:
        if own[cell]:
            given[cell] = own[cell]
        else:
            given[cell] = free[k % len(free)]
            k += 1
    return given


def label(cell) -> str:
    """How a figure names a cell: its title ("LSTM", "RNN (tanh)"), else its name."""
    return _cells.title(cell)


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


#: the PNG text chunk that holds a figure's record: the command that drew it and its plan
RECORD_KEY = "numpyrnn"


def save(fig, path, record=None):
    """Write ``fig`` to ``path``, with ``record`` (a dict: "command", the command line that
    redraws the figure, and "plan", the task and settings it ran with) in a PNG text chunk, so
    that a figure copied anywhere still says what it shows (:func:`read_record`)."""
    metadata = None if record is None else {RECORD_KEY: json.dumps(record, sort_keys=True)}
    fig.savefig(path, metadata=metadata)
    return path


def read_record(path):
    """The record :func:`save` put in the PNG at ``path``, or None if it holds none."""
    with open(path, "rb") as f:
        png = f.read()
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    at = 8
    while at + 8 <= len(png):                   # chunks: length, type, data, CRC
        length, kind = struct.unpack(">I4s", png[at:at + 8])
        data = png[at + 8:at + 8 + length]
        at += 12 + length
        if kind == b"tEXt":
            key, _, text = data.partition(b"\0")
        elif kind == b"zTXt":
            key, _, rest = data.partition(b"\0")
            text = zlib.decompress(rest[1:])    # after the compression method byte
        else:
            continue
        if key == RECORD_KEY.encode():
            record = json.loads(text.decode("latin-1"))
            plan = record.get("plan")
            if isinstance(plan, dict) and "task" in plan:    # as today's code writes a task's config
                from .tasks import upgrade_config

                plan["task"] = upgrade_config(plan["task"])
            settings = plan.get("settings") if isinstance(plan, dict) else None
            from .models import REGULARISERS
            if isinstance(settings, dict) and any(k in settings for k in REGULARISERS):
                # a plan that records the regularisers: one added since was off in that run
                plan["settings"] = {**{k: 0.0 for k in REGULARISERS}, **settings}
            return record
    return None


def _log_scale(metric):
    return metric in ("mse",)


def compare(results, path):
    """Validation metric against epochs and against training seconds: one line per cell (the
    mean over seeds), a band from the lowest to the highest seed, the baseline dashed."""
    metric = results["metric"]
    fig = _figure(10, 4)
    by_epoch, by_time = fig.subplots(1, 2, sharey=True)
    colour = colours(list(results["cells"]))
    for cell, r in results["cells"].items():
        curves = [run["curve"] for run in r["runs"]]
        n = min(len(c) for c in curves)
        epochs = np.array([p["epoch"] for p in curves[0][:n]])
        values = np.array([[p["value"] for p in c[:n]] for c in curves])
        seconds = np.array([[p["seconds"] for p in c[:n]] for c in curves]).mean(axis=0)
        name = f"{label(cell)} (h={r['hidden']}, {r['parameters']:,} params)"
        color = colour[cell]
        for ax, x in ((by_epoch, epochs), (by_time, seconds)):
            ax.plot(x, values.mean(axis=0), color=color, label=name, lw=2)
            if len(curves) > 1:
                ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2, lw=0)
    for ax, xlabel in ((by_epoch, "epoch"), (by_time, "training time (s, evaluation excluded)")):
        for b, style in zip(results.get("baselines", [results["baseline"] | {"name": "baseline"}]), ("--", ":", "-.")):
            ax.axhline(b["value"], color="k", ls=style, lw=1, label=f"{b['name']} (test) {b['value']:.4f}")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if _log_scale(metric):
            ax.set_yscale("log")
    by_epoch.set_ylabel(f"validation {metric}")
    by_epoch.legend(fontsize=8)
    seeds = results["settings"]["seeds"]
    fig.suptitle(f"{results.get('label', results['task']['name'])}: validation {metric}, mean of {seeds} seed{'s' * (seeds > 1)}"
                 f"{' (band: lowest to highest)' if seeds > 1 else ''}")
    return save(fig, path, _record(results, {"task": results["task"], "settings": results["settings"]}))


def _record(data, plan):
    """The figure's record, where the data say which command made them (the CLI's runs do)."""
    return {"command": data["command"], "plan": plan} if data.get("command") else None


def gradflow(data, path):
    """‖∂L/∂h_t‖ (and every other state's, such as the LSTM's ‖∂L/∂c_t‖, dashed) against t at initialisation and after
    training (log scale); the largest singular value of the one-step Jacobian per step (mean over
    sequences); and the forget gate over time of every cell that reports a gate named f (its
    mean; for the LSTM, or the first such cell, also its spread and the units keeping it
    highest)."""
    fig = _figure(13, 8)
    (before, after), (spectral, forget) = fig.subplots(2, 2)
    colour = colours(list(data["cells"]))
    for ax, stage, title in ((before, "initial", "at initialisation"), (after, "trained", "after training")):
        for cell, d in data["cells"].items():
            norms = np.asarray(d[stage]["grad_norms"])
            ax.plot(np.arange(len(norms)), norms, color=colour[cell], label=label(cell), lw=2)
            for name, other in d[stage].get("state_grad_norms", {}).items():
                other = np.asarray(other)[:-1]   # ∂L/∂c_{T−1} is 0: c reaches the loss only through later steps
                ax.plot(np.arange(len(other)), other, color=colour[cell], ls="--", lw=1.5,
                        label=f"{label(cell)}: ‖∂L/∂{name}_t‖")
        ax.set_yscale("log")
        ax.set_xlabel("step t")
        ax.set_title(f"‖∂L/∂h_t‖ {title}")
        ax.grid(alpha=0.3)
    before.set_ylabel("gradient norm (mean over sequences)")
    before.legend(fontsize=8)
    for cell, d in data["cells"].items():
        for stage, style in (("initial", ":"), ("trained", "-")):
            if "jacobian" in d[stage]:
                sigma = d[stage]["jacobian"]["mean"]
                spectral.plot(np.arange(len(sigma)), sigma, ls=style, color=colour[cell], lw=1.5,
                              label=f"{label(cell)}, {'initial' if stage == 'initial' else 'trained'}")
    spectral.axhline(1, color="k", lw=1)
    spectral.set_yscale("log")
    spectral.set_xlabel("step t")
    spectral.set_title("largest singular value of the one-step Jacobian ∂state_t/∂state_{t−1}")
    spectral.legend(fontsize=7, ncol=2)
    spectral.grid(alpha=0.3)
    gated = [cell for cell, d in data["cells"].items() if "forget_gate" in d["initial"]]
    if gated:
        # every cell that reports a gate named f: its mean; the first's (the LSTM's when it
        # ran) also its spread and the units that keep it highest
        first = "lstm" if "lstm" in gated else gated[0]
        for cell in [first] + [c for c in gated if c != first]:
            for stage, style, alpha in (("initial", ":", 0.10), ("trained", "-", 0.22)):
                gate = data["cells"][cell][stage]["forget_gate"]
                t = np.arange(len(gate["mean"]))
                name = label(cell)
                if cell == first:
                    forget.fill_between(t, gate["p10"], gate["p90"], color=colour[cell], alpha=alpha,
                                        lw=0, label=f"{name}: 10th–90th percentile, {stage}")
                forget.plot(t, gate["mean"], ls=style, color=colour[cell], lw=2,
                            label=f"{name}: mean, {stage}")
                for k, unit in enumerate(gate.get("top", []) if cell == first else []):
                    forget.plot(t, unit, ls=style, color=TOP_UNITS, lw=1,
                                label=f"{name}: the {len(gate['top'])} units keeping f highest, {stage}"
                                if k == 0 else None)
        forget.set_ylim(0, 1.02)
        forget.set_xlabel("step t")
        forget.set_title("forget gate f_t of " + ", ".join(label(c) for c in gated))
        forget.legend(fontsize=7, loc="lower right")
        forget.grid(alpha=0.3)
    else:
        forget.set_axis_off()
    fig.suptitle(f"{data['task']['name']}, T={data['task']['seq_len']}: the gradient reaching each step of the "
                 f"sequence, from the loss at its end")
    return save(fig, path, _record(data, data.get("plan")))


def sweep(data, path):
    """Final test metric against sequence length, one line per cell (the band: lowest to highest
    seed), the baseline dashed; on the adding problem the bar for solving it dotted."""
    fig = _figure(7.5, 4.6)
    ax = fig.subplots()
    lengths = data["lengths"]
    task, metric = data.get("task", "adding"), data.get("metric", "mse")
    colour = colours(list(data["cells"]))
    for cell, values in data["cells"].items():
        means = [np.mean(v) for v in values]
        color = colour[cell]
        ax.plot(lengths, means, "o-", color=color, label=label(cell), lw=2 if _cells.colour(cell) else 1.2)
        if any(len(v) > 1 for v in values):
            ax.fill_between(lengths, [min(v) for v in values], [max(v) for v in values], color=color, alpha=0.15, lw=0)
    baselines = data.get("baselines", [data.get("baseline")] * len(lengths))
    ax.plot(lengths, baselines, color="k", ls="--", lw=1, label=f"baseline ({', '.join(f'{b:.3g}' for b in baselines)})")
    if task == "adding":
        ax.axhline(0.01, color="k", ls=":", lw=1, label="solved (0.01)")
    ax.set_yscale("log")
    if len(lengths) > 1:
        ax.set_xscale("log")
    ax.set_xticks(lengths)
    ax.set_xticklabels([str(t) for t in lengths])
    ax.set_xlabel("sequence length T")
    ax.set_ylabel(f"test {metric}")
    side = ", runs side by side" if data.get("side_by_side") else ""
    ax.set_title(f"{'adding problem' if task == 'adding' else task + ' task'}, {data['budget']['steps']} steps for "
                 f"every cell and length, {data['seeds']} seed{'s' * (data['seeds'] > 1)}{side}")
    ax.legend(fontsize=7, ncol=2 if len(data["cells"]) > 6 else 1)
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return path


def detection(results, context, path):
    """The anomaly task's figure: the signal above (the training part shaded, the labelled
    anomaly marked), each cell's anomaly score beneath (the mean over seeds; each run's top
    score marked) beside the baselines' scores, and a close-up of both around the anomaly.
    ``context``: the task's "values", "periods", "anomaly" (first, last), "tolerance", and
    "baselines" (name → score of every test value)."""
    values, (first, last), tolerance = np.asarray(context["values"]), context["anomaly"], context["tolerance"]
    test_start, test_end = context["periods"]["test"]
    t = np.arange(test_start, test_end)
    fig = _figure(12, 7)
    grid = fig.add_gridspec(2, 3)
    signal, score = fig.add_subplot(grid[0, :2]), fig.add_subplot(grid[1, :2])
    close_signal, close_score = fig.add_subplot(grid[0, 2]), fig.add_subplot(grid[1, 2])
    near = slice(max(first - 4 * tolerance, 0), min(last + 4 * tolerance, len(values)))
    signal.axvspan(*context["periods"]["train"], color="0.85", lw=0, label="training part (normal)")
    signal.axvspan(*context["periods"]["val"], color="0.93", lw=0, label="validation part")
    for ax, span in ((signal, slice(0, len(values))), (close_signal, near)):
        ax.plot(np.arange(len(values))[span], values[span], color="k", lw=0.8)
    colour = colours(list(results["cells"]))
    for ax, span in ((score, slice(None)), (close_score, slice(near.start - test_start, near.stop - test_start))):
        for (name, base), style in zip(context["baselines"].items(), ("--", ":")):
            ax.plot(t[span], np.asarray(base)[span], color="k", alpha=0.55, ls=style, lw=0.9, label=name)
        for cell, r in results["cells"].items():
            runs = [run["report"] for run in r["runs"] if "report" in run]
            mean = np.mean([run["score"] for run in runs], axis=0)
            ax.plot(t[span], mean[span], color=colour[cell], lw=1.2,
                    label=f"{label(cell)} (mean of {len(runs)} seed{'s' * (len(runs) > 1)})")
            for run in runs:
                top = run["top"]
                if span.start is None or near.start <= top < near.stop:
                    ax.plot([top], [run["score"][top - test_start]], "v", color=colour[cell], ms=6)
    for ax in (signal, close_signal, score, close_score):
        ax.axvspan(first - tolerance, last + tolerance, color="#d62728", alpha=0.08, lw=0)
        ax.axvspan(first, last + 1, color="#d62728", alpha=0.35, lw=0)
        ax.grid(alpha=0.3)
    score.set_xlim(signal.get_xlim())    # the score beneath the signal it scores
    for ax in (close_signal, close_score):
        ax.set_xlim(near.start, near.stop - 1)
    for ax in (score, close_score):
        ax.set_yscale("log")          # the baselines' scores and the cells' differ tenfold
    signal.set_title(f"the signal; red: the labelled anomaly ({first}–{last}) and the ±{tolerance} a hit may fall in")
    signal.legend(fontsize=8, loc="upper right")
    close_signal.set_title("close-up")
    score.set_title("anomaly score: the forecast error's trailing mean; ▼ each run's top score")
    score.set_xlabel("index in the series")
    close_score.set_xlabel("index in the series")
    score.set_ylabel("score (standardised units, log)")
    score.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{results.get('label', results['task']['name'])}: found by forecasting the next value")
    return save(fig, path, _record(results, {"task": results["task"], "settings": results["settings"]}))


def attention_maps(panels, path, record=None, title=""):
    """The attention weights of decoded words, one panel per word: ``panels`` a list of
    {"word", "phonemes" (decoded, </s> last), "weights" (steps, letters)}; letters across,
    decoded phonemes down, darker = more weight."""
    n = len(panels)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig = _figure(3.1 * cols, 3.0 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, panel in zip(axes, panels):
        weights = np.asarray(panel["weights"])
        ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(panel["word"])), list(panel["word"]))
        ax.set_yticks(range(len(panel["phonemes"])), list(panel["phonemes"]), fontsize=8)
        ax.tick_params(length=0)
        ax.set_title(panel["word"] + ("" if panel.get("right", True) else " (≠ dictionary)"), fontsize=10)
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.suptitle(title or "attention over the letters at each decoded phoneme (greedy decoding)")
    return save(fig, path, record)


def per_by_length(curves, counts, path, record=None, title=""):
    """Phoneme error rate against word length: ``curves`` name → {length: PER}, ``counts``
    length → the number of test words of that length (drawn as bars beneath)."""
    fig = _figure(7.5, 4.6)
    ax = fig.subplots()
    lengths = sorted(counts)
    bars = ax.twinx()
    bars.bar(lengths, [counts[n] for n in lengths], color="0.88", width=0.8, zorder=0)
    bars.set_ylabel("test words of that length", color="0.45")
    ax.set_zorder(bars.get_zorder() + 1)
    ax.patch.set_visible(False)
    for (name, per), style in zip(curves.items(), ("-o", "--s", ":^")):
        ax.plot(lengths, [100 * per[n] for n in lengths], style, label=name, lw=1.6, ms=4)
    ax.set_xlabel("word length (letters; the last point pools the longer words)")
    ax.set_ylabel("phoneme error rate (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_xticks(lengths, [str(n) if n < max(lengths) else f"{n}+" for n in lengths])
    fig.suptitle(title or "where attention earns its keep: PER by word length")
    return save(fig, path, record)
