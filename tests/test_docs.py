"""docs/derivations.md and the code agree: what one cites, the other has.

A student reads the cells beside the derivations.  Every "§N" the code cites must be a section
of the document; every code name the document cites (in backticks) must exist in the package;
every Python block in the document must run as written.
"""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "derivations.md"
PACKAGE = ROOT / "numpyrnn"


def doc_sections():
    """The section numbers of the document: "3", "6", "6a", ..."""
    return set(re.findall(r"^#{2,3} (\d+[a-z]?)\. ", DOC.read_text(), re.M))


def cited_sections():
    """(file, "§N") for every section the package's code cites."""
    cites = set()
    for path in PACKAGE.rglob("*.py"):
        for number in re.findall(r"§(\d+[a-z]?)", path.read_text()):
            cites.add((str(path.relative_to(ROOT)), number))
    return sorted(cites)


def test_every_section_the_code_cites_exists():
    sections, cites = doc_sections(), cited_sections()
    assert {"3", "4", "5", "6a", "6b", "7", "8", "9", "11"} <= sections
    assert len(cites) > 20                       # the reference loops cite a § on every line
    missing = [(path, n) for path, n in cites if n not in sections]
    assert missing == []


def test_the_code_cites_the_right_sections_for_each_cell():
    """Each cell's file cites its own section of the document (and no other cell's)."""
    own = {"rnn.py": "4", "lstm.py": "5", "gru.py": "6"}
    for name, section in own.items():
        cited = set(re.findall(r"§(\d+)", (PACKAGE / "cells" / name).read_text()))
        assert section in cited, name
        assert not (cited & (set(own.values()) - {section})), (name, cited)


def _resolve(dotted):
    """The object a dotted name in the doc means, looked up from numpyrnn, numpyrnn.cells or
    numpyrnn.cells.fast (a missing name raises)."""
    parts = dotted.removesuffix("()").split(".")
    errors = []
    for base in ("numpyrnn", "numpyrnn.cells", "numpyrnn.cells.fast", "numpyrnn.layers"):
        obj = importlib.import_module(base)
        try:
            for i, part in enumerate(parts):
                if not hasattr(obj, part):
                    obj = importlib.import_module(".".join([obj.__name__, part]))
                else:
                    obj = getattr(obj, part)
            return obj
        except (ImportError, AttributeError) as exc:
            errors.append(f"{base}: {exc}")
    raise LookupError(f"{dotted!r} is nowhere in the package ({'; '.join(errors)})")


def cited_code():
    """The backticked spans of the document, outside its code blocks."""
    text = re.sub(r"```.*?```", "", DOC.read_text(), flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


#: names the document cites from PyTorch, not from numpyrnn
PYTORCH_NAMES = {"pack_padded_sequence"}


def test_every_code_name_the_doc_cites_exists():
    source = " ".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    words = set(re.findall(r"\w+", source))
    checked = 0
    for span in set(cited_code()) - PYTORCH_NAMES:
        if re.fullmatch(r"[\w/]+\.py", span):                          # a file
            assert (ROOT / span).exists() or (PACKAGE / span).exists(), span
        elif re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+(\(\))?", span):   # a dotted name
            if span.split(".")[0] in ("layer", "m", "model"):           # a method on an instance
                assert span.split(".")[1].removesuffix("()") in words, span
            else:
                _resolve(span)
        elif re.fullmatch(r"[A-Za-z_]\w*", span):                       # a name in the code
            assert span in words, span
        elif span.startswith("numpyrnn "):                               # a command
            from numpyrnn.cli import build_parser

            build_parser().parse_args(span.split()[1:2] + (["--task", "adding"] if "train" in span else []))
        else:
            continue
        checked += 1
    assert checked > 30


def test_the_check_of_names_refuses_a_name_that_is_not_there():
    with pytest.raises(LookupError, match="is nowhere in the package"):
        _resolve("common.input_projection")
    _resolve("lstm.forward_reference")
    _resolve("fast.gru._factors")


# --------------------------------------------------------------------------- every Python block, as written

def python_blocks():
    """(file, number, code) of every ```python block in README.md and docs/*.md."""
    blocks = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.S)):
            blocks.append(pytest.param(code, id=f"{path.relative_to(ROOT)}:{i + 1}"))
    return blocks


@pytest.mark.parametrize("code", python_blocks())
def test_every_python_block_runs_as_written_in_a_fresh_interpreter(code, tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_the_blocks_are_found():
    assert len(python_blocks()) >= 5
