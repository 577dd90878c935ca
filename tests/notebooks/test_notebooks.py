"""Every notebook runs under papermill at the smoke scale (executed by the session's book
build, see tests/conftest.py) and is committed in the shape the build expects."""

from pathlib import Path

import nbformat
import pytest

from smallbatch_book.build import toc_notebooks

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_every_notebook_is_in_the_table_of_contents():
    assert NOTEBOOKS, "no notebooks found"
    assert sorted((REPO / p).resolve() for p in toc_notebooks(REPO)) == [p.resolve() for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_a_scale_parameter_and_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    parameters = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1, "one cell tagged 'parameters'"
    assert parameters[0].source.lstrip().startswith("scale = ")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ran_at_smoke_scale_without_errors(built_book, path):
    executed = built_book.build_dir / "executed" / "notebooks" / path.name
    nb = nbformat.read(executed, as_version=4)
    assert nb.metadata["papermill"]["parameters"]["scale"] == "smoke"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs, "the executed notebook has outputs"
    assert not [o for o in outputs if o.output_type == "error"]


def test_quickstart_shows_its_training_curves(built_book):
    executed = built_book.build_dir / "executed" / "notebooks" / "00_quickstart.ipynb"
    nb = nbformat.read(executed, as_version=4)
    html = [o.data["text/html"] for c in nb.cells for o in c.get("outputs", [])
            if "data" in o and "text/html" in o.data]
    figures = [h for h in html if "Plotly.newPlot" in h]
    assert len(figures) == 1
    assert "Cross-entropy loss" in figures[0] and "Synthetic" in figures[0]


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name.startswith("2")],
                         ids=lambda p: p.name)
def test_experiments_chapters_fold_their_code_behind_a_toggle(path):
    """The experiments chapters are read for their figures, tables and verdicts; the code
    that computes them is one click away (Jupyter Book's hide-input), not hidden. The one
    hidden cell is the Colab setup (smallbatch_book.launch), which computes nothing."""
    from smallbatch_book.launch import SETUP_TAG

    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"
            and not {"parameters", SETUP_TAG} & set(c.metadata.get("tags", []))]
    assert code and all("hide-input" in c.metadata.get("tags", []) for c in code)
    assert not any("remove-input" in c.metadata.get("tags", []) or
                   "remove-cell" in c.metadata.get("tags", []) for c in code)
