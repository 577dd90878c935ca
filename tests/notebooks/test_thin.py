"""Chapters are calls and prose: the analysis a chapter shows lives in tested library
functions, so that the book can be restructured by moving calls, not code (book: every
chapter; STYLE.md "Notebooks").

How the lines of a code cell are counted ("lines of logic"): every line that is not blank,
not a comment, and not part of an import statement (``import x``, ``from x import (a,
b)`` over several lines). Left out whole: the ``parameters`` cell (papermill's) and the
Colab setup cell (``smallbatch_book.launch.SETUP_TAG``), which compute nothing.
"""

import ast
from pathlib import Path

import nbformat
import pytest

from smallbatch_book.launch import SETUP_TAG

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

MAX_CELL_LINES = 12     # lines of logic in one code cell
MAX_TOTAL_LINES = 600   # lines of logic in all notebooks together


def counted_cells(path: Path) -> list[tuple[int, str]]:
    """(index among the notebook's cells, source) of the code cells that are counted."""
    nb = nbformat.read(path, as_version=4)
    return [(index, cell.source) for index, cell in enumerate(nb.cells)
            if cell.cell_type == "code"
            and not {"parameters", SETUP_TAG} & set(cell.metadata.get("tags", []))]


def logic_lines(source: str) -> int:
    """Lines of logic in one cell (see the module docstring)."""
    lines = source.splitlines()
    imports: set[int] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a cell magic or shell escape: count every line
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.update(range(node.lineno, node.end_lineno + 1))
    return sum(1 for number, line in enumerate(lines, 1)
               if line.strip() and not line.strip().startswith("#") and number not in imports)


def definitions(source: str) -> list[str]:
    """Functions and classes a cell defines (lambdas included)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.append(node.name)
        elif isinstance(node, ast.Lambda):
            found.append("lambda")
    return found


def test_the_counting_rule():
    cell = ("import math\nfrom smallbatch import (analysis,\n    figures)\n\n# a comment\n"
            "x = 1\nif x:\n    display(x)\n")
    assert logic_lines(cell) == 3
    assert definitions("def f():\n    pass\nclass A: pass\ny = lambda v: v") == \
        ["f", "A", "lambda"]
    assert definitions("display(analysis.table(frame))") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_chapter_defines_nothing(path):
    found = [f"cell {index}: {', '.join(names)}" for index, source in counted_cells(path)
             for names in [definitions(source)] if names]
    assert not found, (f"{path.name} defines functions or classes, which belong in the "
                       f"library with a test: {'; '.join(found)}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_code_cell_is_long(path):
    long = [f"cell {index} ({count} lines)" for index, source in counted_cells(path)
            for count in [logic_lines(source)] if count > MAX_CELL_LINES]
    assert not long, (f"{path.name}: code cells over {MAX_CELL_LINES} lines of logic: "
                      f"{', '.join(long)}; move the computation into a library function")


def test_the_notebooks_hold_little_code_in_all():
    per_notebook = {path.name: sum(logic_lines(s) for _, s in counted_cells(path))
                    for path in NOTEBOOKS}
    total = sum(per_notebook.values())
    assert total <= MAX_TOTAL_LINES, (
        f"{total} lines of logic in the notebooks (at most {MAX_TOTAL_LINES}): "
        + ", ".join(f"{name} {n}" for name, n in sorted(per_notebook.items(),
                                                         key=lambda item: -item[1])))
