"""The g2p README figures and tables, from two trained runs: one with attention, one without.

    numpyrnn train --task g2p --cell lstm --out results/g2p_lstm
    numpyrnn train --task g2p --cell lstm --attention none --out results/g2p_lstm_plain
    python tools/g2p_figures.py results/g2p_lstm results/g2p_lstm_plain --out docs/figures

Scores each model's test words (greedy, and a beam of 5), and writes:

* ``attention_g2p.png``: the attention model's weights over the letters at each decoded
  phoneme, for a few test words, one panel per word;
* ``per_by_length_g2p.png``: PER against word length, with and without attention;
* ``g2p_figures.json`` (beside the first run): the numbers, and a few decoded words beside the
  dictionary's, which the script also prints as markdown.

Each figure records this command and the plan of the two runs (their task and settings), which
tests/test_figures.py holds to what the two train commands would run today (:func:`plan`).
"""
import argparse
import json
import os
import sys

import numpyrnn
from numpyrnn import plots, tasks, train
from numpyrnn.settings import Settings
from numpyrnn.tasks.g2p import best_match, error_rates

#: the test words whose attention the figure shows (chosen for letters that are not one phoneme each)
WORDS = ("knight", "photograph", "exchange", "thought")
#: word lengths pooled at the last point of the figure
LONGEST = 13
#: the two runs' train commands (beside their folders): what plan() rebuilds today
COMMANDS = {"attention": ("lstm", {}), "plain": ("lstm", {"attention": "none"})}


def _run_plan(task, settings):
    return {"task": task.config(), "settings": settings.to_dict()}


def plan(folders=None):
    """The two runs' plans: read from their checkpoints (``folders``), or, without folders, what
    their train commands would run today."""
    if folders is not None:
        return {name: _run_plan(*train.saved_run(folder)) for name, folder in zip(COMMANDS, folders)}
    out = {}
    for name, (cell, options) in COMMANDS.items():
        task = tasks.make("g2p", **options)
        out[name] = _run_plan(task, Settings(cell=cell).resolved(task))
    return out


def per_by_length(task, predicted):
    """{length: PER} over the test words of each length (LONGEST pools the longer), and the counts."""
    edits, lengths, counts = {}, {}, {}
    for word, guess in zip(task.words["test"], predicted):
        n = min(len(word), LONGEST)
        word_edits, length = best_match(guess, task.entries[word])
        edits[n] = edits.get(n, 0) + word_edits
        lengths[n] = lengths.get(n, 0) + length
        counts[n] = counts.get(n, 0) + 1
    return {n: edits[n] / lengths[n] for n in sorted(edits)}, dict(sorted(counts.items()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("attention", help="the run with attention (numpyrnn train --task g2p ... --out DIR)")
    p.add_argument("plain", help="the run without (--attention none)")
    p.add_argument("--out", default="docs/figures", help="where the figures go")
    args = p.parse_args(argv)
    command = "python tools/g2p_figures.py " + " ".join(argv if argv is not None else sys.argv[1:])
    record = {"command": command, "plan": plan([args.attention, args.plain])}
    task, _ = train.saved_run(args.attention)
    models = {name: numpyrnn.load(os.path.join(folder, "model.npz"))
              for name, folder in (("with attention", args.attention), ("without attention", args.plain))}
    references = [task.entries[w] for w in task.words["test"]]
    summary, curves = {}, {}
    for name, model in models.items():
        greedy = task.decode(model, "test", 500)
        beam = task.decode(model, "test", 500, beam=5)
        curves[name], counts = per_by_length(task, greedy)
        summary[name] = {"greedy": error_rates(greedy, references), "beam5": error_rates(beam, references),
                         "tf_error": task.evaluate(model, "test", 500)["tf_error"],
                         "per_by_length": curves[name]}
        summary[name]["examples"] = {w: " ".join(g) for w, g in zip(task.words["test"][:12], greedy[:12])}
    summary["counts"] = counts
    model = models["with attention"]
    sequences, maps = model.greedy(*task.encode_words(list(WORDS)), attention=True, keep_eos=True)
    panels = [{"word": w, "phonemes": [model.target_vocab[i] for i in seq], "weights": m.tolist(),
               "right": tuple(model.target_vocab[i] for i in seq[:-1]) in task.entries.get(w, [()])}
              for w, seq, m in zip(WORDS, sequences, maps)]
    os.makedirs(args.out, exist_ok=True)
    plots.attention_maps(panels, os.path.join(args.out, "attention_g2p.png"), record,
                         "g2p, LSTM encoder-decoder: attention over the letters at each decoded phoneme")
    plots.per_by_length(curves, counts, os.path.join(args.out, "per_by_length_g2p.png"), record,
                        "g2p, LSTM encoder-decoder: PER by word length, with and without attention (test, greedy)")
    with open(os.path.join(args.attention, "g2p_figures.json"), "w") as f:
        json.dump({"record": record, "summary": summary, "panels": panels}, f, indent=1)
    print("| | greedy PER / WER (any pronunciation) | (first) | beam 5 | teacher-forced token error |")
    print("|---|---|---|---|---|")
    for name, s in summary.items():
        if name == "counts":
            continue
        g, b = s["greedy"], s["beam5"]
        print(f"| {name} | {100 * g['per']:.1f} % / {100 * g['wer']:.1f} % | {100 * g['per_first']:.1f} % / "
              f"{100 * g['wer_first']:.1f} % | {100 * b['per']:.1f} % / {100 * b['wer']:.1f} % | "
              f"{100 * s['tf_error']:.1f} % |")
    print("\n| word | decoded (with attention) | the dictionary's |\n|---|---|---|")
    for w, decoded in summary["with attention"]["examples"].items():
        print(f"| {w} | {decoded} | {' / '.join(' '.join(r) for r in task.entries[w])} |")


if __name__ == "__main__":
    main()
