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


def module_level_imports(path: Path, root: Path = PACKAGE) -> set[str]:
    """The package modules a file imports at module level (what runs at import)."""
    package = ["smallbatch", *path.relative_to(root).parent.parts]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("smallbatch"):
            found.add(node.module)
    return found


def _module_name(path: Path) -> str:
    parts = ["smallbatch", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports at module level (names that are not
    modules, ``from .cells import best_first``, are dropped)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in module_level_imports(path) if m in files and m != name}
            for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles among modules, ignoring a package's import of its own submodules
    (``analysis/__init__`` re-exporting ``analysis.cells`` is not a cycle)."""
    def edges(node):
        return {m for m in graph.get(node, ()) if not m.startswith(node + ".")}

    found, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(edges(node)):
            if state.get(nxt) == "open":
                found.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"p": {"p.x"}, "p.x": set()}) == []


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_presets_import_nothing_above_the_core():
    above = ("analysis", "studies", "theory", "figures", "live", "cli")
    found = sorted(m for m in imported_modules(PACKAGE / "presets.py")
                   if any(m == f"smallbatch.{a}" or m.startswith(f"smallbatch.{a}.")
                          for a in above))
    assert not found, f"presets imports upward: {found}"


def test_records_are_read_without_torch():
    """A stored record is read with the config and record types of smallbatch.config, which
    import no torch (train re-exports them): reading results needs no deep-learning stack."""
    import subprocess
    import sys

    code = ("import sys; from smallbatch import presets, store; "
            "r = store.load_records(presets.study_dir('resnet-bn', 'scaled'), warn=False); "
            "assert r.results, 'no records read'; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
