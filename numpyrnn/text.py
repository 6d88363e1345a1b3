"""Tokenizers, by name and version: how a model's text becomes token ids.

A model trained on text keeps the name and version of its tokenizer (in its checkpoint's
metadata, beside its vocabulary and class names), so that the same text becomes the same ids
when it is used: ``model.classify(texts)``, ``numpyrnn predict``, and the export to PyTorch
(whose ``torch_modules.tokenize`` is the same function, held to this one by a test).

``words`` (version 1)       lower-cased words (letters, digits, apostrophes) and single
                            punctuation marks: the sentiment task's
``characters`` (version 1)  every character: the character language model's
"""

from __future__ import annotations

import re

WORDS = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")


def words(text):
    """Lower-cased words (letters, digits, apostrophes) and single punctuation marks."""
    return WORDS.findall(text.lower())


def characters(text):
    return list(text)


#: name → (version, function)
TOKENIZERS = {"words": (1, words), "characters": (1, characters)}


def tokenizer(spec):
    """The function a tokenizer spec ``{"name": ..., "version": ...}`` names; a clear error for
    one this numpyrnn does not have."""
    if not isinstance(spec, dict) or spec.get("name") not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {spec!r}: numpyrnn has {', '.join(TOKENIZERS)}")
    version, function = TOKENIZERS[spec["name"]]
    if spec.get("version") != version:
        raise ValueError(f"tokenizer {spec['name']!r} version {spec.get('version')!r}: this numpyrnn has version "
                         f"{version}; upgrade numpyrnn to read the model")
    return function


def spec(name):
    """The spec a model keeps for the tokenizer ``name``."""
    return {"name": name, "version": TOKENIZERS[name][0]}
