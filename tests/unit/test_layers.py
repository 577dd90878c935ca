"""Imports go down the layers (STYLE.md "Library"; smallbatch/__init__.py): theory, the
closed forms and the measurements on real networks, sits below analysis and studies and
imports neither of them, not even inside a function."""

import ast
from pathlib import Path

import smallbatch

PACKAGE = Path(smallbatch.__file__).resolve().parent
ABOVE_THEORY = ("analysis", "studies")


def imported_modules(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every module a file of the package at ``root`` imports, at any depth (function-level
    imports included), as an absolute name where it is relative."""
    package = ["smallbatch", *path.relative_to(root).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            # ``from .. import analysis`` imports a module by its name
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def reaches_above_theory(modules: set[str]) -> set[str]:
    """The layers above theory (``ABOVE_THEORY``) that ``modules`` reach."""
    return {up for m in modules for up in ABOVE_THEORY
            if m == f"smallbatch.{up}" or m.startswith(f"smallbatch.{up}.")}


def test_the_import_reader_sees_relative_and_function_level_imports(tmp_path):
    theory = tmp_path / "theory"
    theory.mkdir()
    sample = theory / "sample.py"
    sample.write_text("from ..store import x\ndef f():\n    from .. import analysis\n"
                      "    from ..studies import load_study\n")
    modules = imported_modules(sample, root=tmp_path)
    assert reaches_above_theory(modules) == {"analysis", "studies"}
    assert reaches_above_theory({"smallbatch.store", "smallbatch.theory.nqm"}) == set()


def test_theory_imports_neither_analysis_nor_studies():
    offending = {path.name: sorted(reaches_above_theory(imported_modules(path)))
                 for path in sorted((PACKAGE / "theory").glob("*.py"))}
    assert not {name: found for name, found in offending.items() if found}
