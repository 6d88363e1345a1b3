"""LSTM vs GRU: the claims, measured.

The exercise numpyrnn grew from ends with a table of claims: the LSTM is often more accurate; the
GRU is faster, simpler and uses less memory.  :func:`claims` measures each on a comparison's own
runs and gives a verdict:

* **Accuracy** ("the LSTM is often more accurate"): the difference of the test metric, LSTM −
  GRU oriented so that above 0 means the LSTM is better, with a 95 % interval from a bootstrap
  that resamples the seeds within each cell and the test items, paired across the cells (the
  same items for both: examples for classifiers and regressors, each stream's piece of a chunk
  for the language model).
* **Speed** ("the GRU is faster"): training seconds per epoch (per step when the runs were
  shorter than an epoch), LSTM ÷ GRU, with a 95 % interval from resampling the seeds (paired:
  ``compare`` runs seed s of every cell in the same round, so the two meet the same machine).
  When the machine was busy while they ran (:func:`numpyrnn.machine.busy_reason`: a load
  average above the cores, or a run that waited for a core), the verdict is withheld,
  "undecided: the machine was busy (load 2.9 on 2 cores)": the ratio then measures the load as
  much as the cells.
* **Memory** ("the LSTM uses more"): activation memory per batch and parameters, LSTM ÷ GRU
  (measured once: no noise).
* **Complexity** ("the GRU is simpler"): gates and parameters per hidden unit.

A verdict is "supported" when the interval lies on the claim's side, "contradicted" when it lies
on the other, "within noise" when it holds both; the speed claim of a comparison with one seed
per cell is "undecided (one seed)", since one ratio has no spread to judge it by, and that of
runs on a busy machine "undecided: the machine was busy (...)".
"""

from __future__ import annotations

import numpy as np

from .. import cells, machine

#: bootstrap resamples, and the generator's seed (the table repeats exactly)
RESAMPLES, SEED = 2000, 0


def _gates(cell):
    """(gates, blocks of weight rows) per hidden unit, as the cell declares them: the LSTM's
    i, f, o of i, f, g, o; the GRU's r, z of r, z, n."""
    made = cells.get(cell)
    return len(cells.protocol.declared(made, "gates")), len(cells.protocol.declared(made, "blocks"))


def _verdict(low, high, threshold):
    if low > threshold:
        return "supported"
    if high < threshold:
        return "contradicted"
    return "within noise"


def _interval(samples):
    return float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))


def _accuracy(results, rng):
    lstm, gru = (results["cells"][c]["runs"] for c in ("lstm", "gru"))
    sign = 1.0 if results["higher_is_better"] else -1.0
    a = np.array([r["test_items"] for r in lstm])        # (seeds, items)
    b = np.array([r["test_items"] for r in gru])
    n = a.shape[1]
    diffs = np.empty(RESAMPLES)
    for k in range(RESAMPLES):
        items = rng.integers(0, n, n)                     # the same test items for both cells
        sa, sb = rng.integers(0, len(a), len(a)), rng.integers(0, len(b), len(b))
        diffs[k] = sign * (a[sa][:, items].mean() - b[sb][:, items].mean())
    value = sign * (a.mean() - b.mean())
    low, high = _interval(diffs)
    return {"claim": "the LSTM is often more accurate", "measure":
            f"test {results['metric']}, LSTM − GRU ({'higher' if sign > 0 else 'lower'} is better; above 0: the LSTM "
            "better)", "value": float(value), "interval": [low, high], "verdict": _verdict(low, high, 0.0)}


def _speed(results, rng):
    lstm, gru = (results["cells"][c]["runs"] for c in ("lstm", "gru"))
    if all(r.get("seconds_per_epoch") for r in lstm + gru):
        per, (a, b) = "epoch", (np.array([r["seconds_per_epoch"] for r in runs]) for runs in (lstm, gru))
    else:                                        # runs shorter than an epoch
        steps = results["settings"]["total_steps"]
        per, (a, b) = "step", (np.array([r["train_seconds"] / steps for r in runs]) for runs in (lstm, gru))
    value = float(a.mean() / b.mean())
    measure = f"training seconds per {per}, LSTM ÷ GRU (above 1: the GRU faster)"
    row = {"claim": "the GRU is faster", "measure": measure, "value": value}
    load = [r.get("load") for r in lstm + gru]
    if all(load):                                # what the machine was doing while they ran
        busy = machine.busy_reason(load)
        row["load"] = {"busy": busy, "cores": load[0]["cores"],
                       "max_load_after": max((l["load_after"] for l in load if l["load_after"] is not None),
                                             default=None),
                       "min_cpu_share": min(l["cpu_share"] for l in load)}
        if busy:
            return {**row, "interval": [value, value], "verdict": f"undecided: the machine was busy ({busy})"}
    if min(len(a), len(b)) < 2:                  # one run each: a ratio with no spread to judge it by
        return {**row, "interval": [value, value], "verdict": "undecided (one seed)"}
    if len(a) == len(b):                         # round-robin runs: seed s of both met the same machine
        picks = (rng.integers(0, len(a), len(a)) for _ in range(RESAMPLES))
        ratios = np.array([a[k].mean() / b[k].mean() for k in picks])
    else:
        ratios = np.array([a[rng.integers(0, len(a), len(a))].mean() / b[rng.integers(0, len(b), len(b))].mean()
                           for _ in range(RESAMPLES)])
    low, high = _interval(ratios)
    return {**row, "interval": [low, high], "verdict": _verdict(low, high, 1.0)}


def _memory(results):
    s = {c: results["cells"][c]["summary"] for c in ("lstm", "gru")}
    mib = s["lstm"]["activation_mib"] / s["gru"]["activation_mib"]
    params = results["cells"]["lstm"]["parameters"] / results["cells"]["gru"]["parameters"]
    return {"claim": "the LSTM uses more memory", "measure": "activation memory per batch, LSTM ÷ GRU (parameters: "
            f"{params:.2f})", "value": float(mib), "interval": [float(mib), float(mib)],
            "verdict": "supported" if mib > 1 else "contradicted"}


def _complexity(results):
    (lstm_gates, lstm_blocks), (gru_gates, gru_blocks) = _gates("lstm"), _gates("gru")
    per_unit = {c: results["cells"][c]["parameters"] / results["cells"][c]["hidden"] for c in ("lstm", "gru")}
    return {"claim": "the GRU is simpler", "measure": f"gates per unit: LSTM {lstm_gates}, GRU {gru_gates}; parameters "
            f"per unit: LSTM {per_unit['lstm']:.0f}, GRU {per_unit['gru']:.0f}",
            "value": float(lstm_blocks / gru_blocks), "interval": [float(lstm_blocks / gru_blocks)] * 2,
            "verdict": "supported" if gru_blocks < lstm_blocks else "contradicted"}


def claims(results):
    """The rows of the claims table for a comparison holding an LSTM and a GRU (None without
    both): dicts with claim, measure, value, interval (95 %) and verdict."""
    if not {"lstm", "gru"} <= set(results["cells"]):
        return None
    rng = np.random.default_rng(SEED)
    rows = []
    if all("test_items" in r for c in ("lstm", "gru") for r in results["cells"][c]["runs"]):
        rows.append(_accuracy(results, rng))
    rows += [_speed(results, rng), _memory(results), _complexity(results)]
    return rows


def format_table(head, rows, markdown=False):
    """Rows of strings under ``head`` as a markdown table, or as text in padded columns."""
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                         + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


def table(rows, markdown=False):
    """The claims as a text (or markdown) table."""
    head = ["claim", "measured", "value", "95 % interval", "verdict"]
    body = [[r["claim"], r["measure"], f"{r['value']:.4g}",
             "-" if r["interval"][0] == r["interval"][1] else f"[{r['interval'][0]:.4g}, {r['interval'][1]:.4g}]",
             r["verdict"]] for r in rows]
    return format_table(head, body, markdown)


def _formatted(results):
    """A comparison's four claims as table cells: {"accuracy", "speed", "memory", "simpler"} each
    "value [interval], verdict" (or "-" where it was not measured); None without an LSTM and a GRU."""
    rows = {r["claim"]: r for r in results.get("claims") or claims(results) or []}
    if not rows:
        return None
    cells = results["cells"]

    def cell(claim, fmt):
        r = rows.get(claim)
        if r is None:
            return "-"
        low, high = r["interval"]
        spread = "" if low == high else f" [{fmt(low)}, {fmt(high)}]"
        return f"{fmt(r['value'])}{spread}, {r['verdict']}"

    accuracy = cell("the LSTM is often more accurate", lambda v: f"{v:+.4f}")
    return {"accuracy": accuracy if accuracy == "-" else f"{results['metric']} {accuracy}",
            "speed": cell("the GRU is faster", lambda v: f"{v:.3f}"),
            "memory": cell("the LSTM uses more memory", lambda v: f"{v:.2f}"),
            "simpler": (f"{_gates('lstm')[0]} vs {_gates('gru')[0]}; "
                        + " vs ".join(f"{cells[c]['parameters'] / cells[c]['hidden']:.0f}" for c in ("lstm", "gru"))),
            "verdicts": {r["claim"]: r["verdict"] for r in rows.values()}}


def across(comparisons):
    """One markdown table of the claims over several comparisons (``results`` dicts, each from
    :func:`numpyrnn.experiments.compare.compare`): a row per comparison — its data, the LSTM's
    and the GRU's hidden sizes — and a column per claim, value, 95 % interval and verdict.  The
    accuracy column is oriented as the claim is: above 0, the LSTM better (lower bpc or MSE, or
    higher accuracy)."""
    head = ["data, sizing", "more accurate: the LSTM's lead in the test metric", "faster: s per epoch, LSTM ÷ GRU",
            "more memory: activations, LSTM ÷ GRU", "simpler: gates, parameters per unit, LSTM vs GRU"]
    rows = []
    for results in comparisons:
        c = _formatted(results)
        if c is None:
            continue
        cells, settings = results["cells"], results["settings"]
        sizing = "parameters matched" if settings["match_params"] else "equal hidden"
        label = results.get("label", results["task"]["name"])
        rows.append([f"{label}, {sizing} (h {cells['lstm']['hidden']} vs {cells['gru']['hidden']})",
                     c["accuracy"], c["speed"], c["memory"], c["simpler"]])
    return format_table(head, rows, markdown=True)


#: the seed's uses, by the task that measures each: (the use, the cell the seed picks for it, why)
USES = {
    "sentiment": ("sentiment (the seed's own example)", None, None),
    "g2p": ("translation: letters to phonemes", "lstm", "more accurate"),
    "speech": ("speech recognition", "lstm", "more accurate"),
    "anomaly": ("medical time series", "lstm", "more accurate"),
    "demand": ("real-time prediction", "gru", "faster"),
}


def _advice(pick, verdicts, latency):
    """Whether the seed's pick for a use holds on its comparison: the LSTM where accuracy
    matters (its accuracy claim), the GRU where speed does (its speed claims, per epoch and,
    where measured, per step at batch 1)."""
    if pick is None:
        return "-"
    if pick == "lstm":
        verdict = verdicts.get("the LSTM is often more accurate", "not measured")
        return {"supported": "holds: the LSTM is more accurate",
                "contradicted": "does not hold: the GRU is more accurate",
                "within noise": "not shown: the LSTM is not distinguishably more accurate"}.get(verdict, verdict)
    trains = verdicts.get("the GRU is faster", "not measured")
    accurate = verdicts.get("the LSTM is often more accurate")
    parts = [f"training: the GRU {'is' if trains == 'supported' else 'is not shown to be'} faster ({trains})"]
    if latency is not None:
        parts.append(f"a step at batch 1: the GRU is {'faster' if latency['ratio'] > 1 else 'not faster'} "
                     f"(LSTM ÷ GRU {latency['ratio']:.2f})")
    if accurate == "supported":
        parts.append("and the LSTM forecasts better")
    return "; ".join(parts)


def uses(comparisons, latency=None):
    """The seed's use-case table: a row per use measured (one comparison each, the task naming
    the use: :data:`USES`), the four claims with their verdicts and intervals, the cell the seed
    picks for the use, and whether that advice holds here.  ``latency``: what ``tools/latency.py
    --out`` wrote (numpyrnn's per-step medians at batch 1), shown on the real-time row."""
    head = ["use (the seed's pick)", "data", "more accurate: the LSTM's lead", "faster: s per epoch, LSTM ÷ GRU",
            "a step at batch 1, LSTM ÷ GRU", "more memory: activations, LSTM ÷ GRU",
            "simpler: gates, parameters per unit", "the seed's advice here"]
    rows = []
    for results in comparisons:
        c = _formatted(results)
        task = results["task"]["name"]
        if c is None or task not in USES:
            continue
        use, pick, why = USES[task]
        step = latency_ratio(latency) if pick == "gru" and latency else None
        step_cell = "-" if step is None else (f"{step['ratio']:.2f} (median µs: LSTM {step['lstm']:.1f}, GRU "
                                              f"{step['gru']:.1f}; torch.nn {step['torch_ratio']:.2f})")
        data = results.get("data", {}).get("name", "generated")
        rows.append([use if pick is None else f"{use} ({pick.upper()}, {why})", data, c["accuracy"], c["speed"],
                     step_cell, c["memory"], c["simpler"], _advice(pick, c["verdicts"], step)])
    return format_table(head, rows, markdown=True)


def latency_ratio(latency):
    """The per-step latency claim from ``tools/latency.py --out``'s record: numpyrnn's median step
    of the LSTM and the GRU, their ratio (above 1: the GRU faster), and torch.nn's ratio (each
    cell's faster median, on its default threads or on one)."""
    ours = {c: latency["cells"][c]["numpyrnn"]["median"] for c in ("lstm", "gru")}
    theirs = {c: min(latency["cells"][c][k]["median"] for k in ("torch", "torch_1_thread")) for c in ("lstm", "gru")}
    return {**ours, "ratio": ours["lstm"] / ours["gru"], "torch_ratio": theirs["lstm"] / theirs["gru"]}
