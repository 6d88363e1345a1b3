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
    _resolve("fast.gru._factors_after")


# --------------------------------------------------------------------------- every Python block, as written

def fenced_blocks(text):
    """(section, language, code) of every fenced block of a Markdown text; ``section`` counts the
    headings before the block (a "#" inside a block is code, not a heading)."""
    blocks, section, fence = [], 0, None
    for line in text.splitlines(keepends=True):
        if fence is None and line.startswith("```"):
            fence = [line[3:].strip(), []]
        elif fence is not None and line.startswith("```"):
            blocks.append((section, fence[0], "".join(fence[1])))
            fence = None
        elif fence is not None:
            fence[1].append(line)
        elif line.startswith("#"):
            section += 1
    return blocks


def python_blocks():
    """(code, setup) of every ```python block in README.md and docs/*.md: ``setup`` is the
    ```bash blocks before it in its section (commands that make the files it reads)."""
    blocks = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        setup, number = {}, 0
        for section, language, code in fenced_blocks(path.read_text()):
            if language == "bash":
                setup[section] = setup.get(section, "") + code
            elif language == "python":
                number += 1
                blocks.append(pytest.param(code, setup.get(section, ""), id=f"{path.relative_to(ROOT)}:{number}"))
    return blocks


def needs_torch(code):
    return re.search(r"^\s*(import torch\b|from torch\b|from numpyrnn\.export\b|import numpyrnn\.export\b)",
                     code, re.M) is not None


#: setup commands already run, and the folder each ran in: the blocks of one section share them
#: (each block starts from a copy, so none sees what another block wrote)
_SETUPS = {}


@pytest.mark.parametrize("code,setup", python_blocks())
def test_every_python_block_runs_as_written_in_a_fresh_interpreter(code, setup, tmp_path, tmp_path_factory):
    import os
    import shutil
    import subprocess
    import sys
    from importlib.util import find_spec

    if needs_torch(code) and find_spec("torch") is None:
        pytest.skip("the block uses PyTorch, which is not installed")
    if setup:                                      # the section's shell commands, as written
        if setup not in _SETUPS:
            where = tmp_path_factory.mktemp("setup")
            env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
            out = subprocess.run(["bash", "-euo", "pipefail", "-c", setup], cwd=where, env=env,
                                 capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stdout + out.stderr
            _SETUPS[setup] = where
        shutil.copytree(_SETUPS[setup], tmp_path, dirs_exist_ok=True)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_the_shell_blocks_run_before_the_python_of_their_section():
    blocks = {b.id: b.values for b in python_blocks()}
    section = [v for v in blocks.values() if "torch_modules.load(\"model.pt\")" in v[0]]
    assert len(section) == 1 and "numpyrnn export run/model.npz --to torch model.pt" in section[0][1]
    assert fenced_blocks("# a\n```python\n# not a heading\n```\n# b\n```bash\nx\n```\n") == [
        (1, "python", "# not a heading\n"), (2, "bash", "x\n")]
    assert needs_torch("import re\nimport torch\n") and not needs_torch("import numpyrnn\n")


def test_the_blocks_are_found():
    assert len(python_blocks()) >= 5
