"""A built-in text for character-level language models, generated from a seed.

Small stories about a small world: people, places, things, weather and talk.  The generator is
ours (no text is copied from anywhere), so the corpus works offline and is the same on every
machine.  What it asks of a model, beyond spelling: a capital letter after every full stop,
speech that opens and closes its quotation marks, parentheses that close, numbers, and names
that recur within a paragraph.
"""

from __future__ import annotations

NAMES = ("Ada", "Tom", "Mira", "Leo", "Nina", "Omar", "Iris", "Sam", "Ruth", "Ben", "Clara", "Felix")
RELATIVES = ("her brother", "his sister", "their friend", "the baker", "an old sailor", "the teacher",
             "a small boy", "the miller's daughter")
PLACES = ("the mill", "the river", "the market", "the old bridge", "the garden", "the station",
          "the library", "the hill", "the harbour", "the bakery", "the forest", "the lighthouse")
THINGS = ("apples", "a lamp", "two books", "a red kite", "bread", "a letter", "some tea", "a map",
          "three coins", "a small boat", "a basket of eggs", "an umbrella", "a wooden box")
TIMES = ("On Monday", "On Tuesday", "On Saturday", "In the morning", "At noon", "That evening",
         "Later", "The next day", "Before dawn", "In the spring")
MOVES = ("walked to", "ran to", "went to", "rode to", "hurried to", "wandered down to")
ACTS = ("found", "carried", "bought", "lost", "painted", "sold", "mended", "counted", "hid")
WEATHER = ("it was raining", "the sun was bright", "the wind was cold", "a fog had come in",
           "snow was falling", "the sky was grey")
FEELINGS = ("happy", "tired", "worried", "hungry", "surprised", "quiet", "cheerful")
SAYS = ("said", "asked", "cried", "whispered", "answered")


def _sentence(rng, name, other):
    pick = lambda options: options[int(rng.integers(len(options)))]   # noqa: E731
    kind = int(rng.integers(7))
    if kind == 0:
        return f"{pick(TIMES)}, {name} {pick(MOVES)} {pick(PLACES)}."
    if kind == 1:
        return f"{name} {pick(ACTS)} {pick(THINGS)} near {pick(PLACES)}."
    if kind == 2:
        return f"{pick(TIMES)}, {pick(WEATHER)}, and {name} felt {pick(FEELINGS)}."
    if kind == 3:
        line = pick((f"Where are the {pick(('apples', 'books', 'coins', 'eggs'))}?",
                     f"We should go to {pick(PLACES)}.", "I can see the water from here.",
                     f"It is {int(rng.integers(2, 12))} o'clock already.", "Nobody has seen it since the winter.",
                     f"Bring {pick(THINGS)}, please."))
        if line.endswith("."):                   # a statement ends in a comma inside the quotes
            line = line[:-1] + ","
        return f'"{line}" {pick(SAYS)} {name}.'
    if kind == 4:
        return f"{name} ({'who was ' + str(int(rng.integers(5, 80))) + ' years old'}) {pick(ACTS)} {pick(THINGS)}."
    if kind == 5:
        return f"{other.capitalize()} and {name} counted {int(rng.integers(2, 200))} {pick(('boats', 'birds', 'stones', 'steps'))}."
    return f"When {pick(WEATHER)}, {name} stayed at {pick(PLACES)} with {other}."


def generate(n_chars, rng):
    """At least ``n_chars`` characters of stories, in paragraphs separated by blank lines."""
    paragraphs, size = [], 0
    while size < n_chars:
        name = NAMES[int(rng.integers(len(NAMES)))]
        other = RELATIVES[int(rng.integers(len(RELATIVES)))]
        sentences = [_sentence(rng, name, other) for _ in range(int(rng.integers(3, 7)))]
        paragraph = " ".join(sentences)
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(paragraphs) + "\n"
