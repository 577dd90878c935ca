"""The book's citation metadata: ``CITATION.cff``, checked and turned into BibTeX.

The repository's ``CITATION.cff`` (Citation File Format 1.2.0) is the one place where the
book's citation is written down: GitHub's "Cite this repository" button and Zenodo read it,
and the book's "How to cite this book" page (``book/cite.md``) shows it together with a
BibTeX entry computed from it here, so no title, version or licence is typed twice.

- :func:`load_citation`: the file as a dictionary (YAML dates kept as strings, as the
  schema asks);
- :func:`validate_citation`: checks it against the official CFF 1.2.0 JSON schema,
  vendored in ``schemas/`` (offline; see ``schemas/README.md``);
- :func:`citation_bibtex`: the BibTeX entry (``@misc``) for the book;
- :func:`stage_citation`: called by the book build once ``book/`` is staged: writes
  ``book/_generated/citation.bib`` and copies ``CITATION.cff`` into the staged source,
  where the cite page's ``literalinclude`` directives find them.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "CITATION_FILE", "GENERATED_BIB", "SCHEMA_PATH", "CitationError", "citation_bibtex",
    "citation_errors", "load_citation", "stage_citation", "validate_citation",
]

CITATION_FILE = "CITATION.cff"
# Where stage_citation writes the BibTeX entry, relative to the staged book source
# (book/cite.md includes it as _generated/citation.bib).
GENERATED_BIB = Path("book") / "_generated" / "citation.bib"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "cff-1.2.0.schema.json"


class CitationError(ValueError):
    """CITATION.cff is missing, unreadable or does not validate; the message says where."""


# ------------------------------------------------------------------------------ loading


def _cff_loader():
    """A safe YAML loader that keeps dates as strings: ``date-released: 2026-01-31`` must
    reach the schema as the string it is written as (the schema's own note on ``date``)."""
    import yaml

    class CffLoader(yaml.SafeLoader):
        pass

    CffLoader.add_constructor("tag:yaml.org,2002:timestamp",
                              yaml.SafeLoader.construct_yaml_str)
    return CffLoader


def load_citation(root: Path | str) -> dict:
    """``root/CITATION.cff`` as a dictionary (a safe YAML load; dates as strings)."""
    import yaml

    path = Path(root) / CITATION_FILE
    if not path.is_file():
        raise CitationError(f"{path} not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_cff_loader())
    except yaml.YAMLError as exc:
        raise CitationError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CitationError(f"{path} must hold a YAML mapping, not {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------- validation


@functools.lru_cache(maxsize=1)
def _validator():
    """A draft-07 validator (the schema declares draft-07) with format checking
    (``date`` always; ``uri`` where jsonschema finds its optional URI checker)."""
    from jsonschema import Draft7Validator

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


def _field(path) -> str:
    """A JSON path as the CFF field it names: ``references[0].authors``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def citation_errors(cff: Mapping) -> list[str]:
    """Every way ``cff`` breaks the CFF 1.2.0 schema, one line each, as
    ``field: schema message``; empty when it validates."""
    from jsonschema.exceptions import best_match

    lines = []
    errors = sorted(_validator().iter_errors(dict(cff)),
                    key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        line = f"{_field(error.absolute_path)}: {error.message}"
        if error.context:  # anyOf/oneOf: say which alternative came closest, and why
            closest = best_match(error.context)
            line += f" (closest: {_field(closest.absolute_path)}: {closest.message})"
        lines.append(line)
    return lines


def _validated(root: Path | str) -> dict:
    path = Path(root) / CITATION_FILE
    cff = load_citation(root)
    errors = citation_errors(cff)
    if errors:
        raise CitationError(
            f"{path} does not validate against the Citation File Format 1.2.0 schema "
            f"({SCHEMA_PATH.name}):\n" + "\n".join(f"  - {line}" for line in errors))
    return cff


def validate_citation(root: Path | str) -> None:
    """Check ``root/CITATION.cff`` against the CFF 1.2.0 schema; raise
    :class:`CitationError` naming the file, each failing field and the schema's message."""
    _validated(root)


# ------------------------------------------------------------------------------- BibTeX

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "&": r"\&", "%": r"\%", "$": r"\$",
    "#": r"\#", "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
# Words that say "a group of people" and make a poor citation key on their own.
_KEY_NOISE = {"the", "a", "an", "and", "of", "authors", "author", "team", "contributors",
              "developers", "project"}


def _escape(text: str) -> str:
    text = " ".join(str(text).split())  # folded YAML may leave newlines and runs of spaces
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def _bibtex_name(author: Mapping) -> str:
    """One CFF author as a BibTeX name: a person as ``von Last, Jr, First``; an entity (or a
    person with no family name) braced whole, so BibTeX does not split it."""
    family = author.get("family-names")
    if not family:
        name = author.get("name") or author.get("given-names") or author.get("alias")
        if not name:
            raise CitationError(f"author {dict(author)} has no name")
        return "{" + _escape(name) + "}"
    last = " ".join(str(p) for p in (author.get("name-particle"), family) if p)
    parts = [_escape(last)]
    if author.get("name-suffix"):
        parts.append(_escape(author["name-suffix"]))
    if author.get("given-names") or len(parts) > 1:
        parts.append(_escape(author.get("given-names", "")))
    return ", ".join(parts)


def _year(cff: Mapping) -> str | None:
    released = cff.get("date-released")
    if not released:
        return None
    match = re.match(r"(\d{4})", str(released))
    return match.group(1) if match else None


def _bibtex_key(cff: Mapping) -> str:
    """``<first author's name><year>``, letters and digits only: ``smallbatch`` for "The
    smallbatch authors" with no release date."""
    first = cff["authors"][0]
    name = first.get("family-names") or first.get("name") or first.get("given-names") or ""
    words = [w for w in re.findall(r"[A-Za-z0-9]+", str(name).lower()) if w not in _KEY_NOISE]
    return ("".join(words) or "citation") + (_year(cff) or "")


def citation_bibtex(cff: Mapping) -> str:
    """The BibTeX entry for the work ``cff`` describes (a ``@misc``, which every BibTeX and
    biblatex style knows): author, title, version, the year of ``date-released`` (no year
    when there is none), doi and url when given, and a note with the version and licence.
    Everything comes from ``cff``."""
    for required in ("title", "authors"):
        if not cff.get(required):
            raise CitationError(f"the citation has no {required!r}")
    fields: list[tuple[str, str]] = [
        ("author", " and ".join(_bibtex_name(a) for a in cff["authors"])),
        ("title", _escape(cff["title"])),
    ]
    year = _year(cff)
    if year:
        fields.append(("year", year))
    version = cff.get("version")
    if version is not None:
        fields.append(("version", _escape(version)))
    if cff.get("doi"):
        fields.append(("doi", str(cff["doi"])))
    url = cff.get("url") or cff.get("repository-code")
    if url:
        fields.append(("url", str(url)))
    note = []
    if version is not None:
        note.append(f"Version {_escape(version)}")
    licence = cff.get("license")
    if licence:
        names = licence if isinstance(licence, list) else [licence]
        note.append(("Licence: " if len(names) == 1 else "Licences: ")
                    + ", ".join(_escape(n) for n in names))
    if note:
        fields.append(("note", ". ".join(note)))
    width = max(len(name) for name, _ in fields)
    body = "".join(f"  {name.ljust(width)} = {{{value}}},\n" for name, value in fields)
    return f"@misc{{{_bibtex_key(cff)},\n{body}}}\n"


# ------------------------------------------------------------------------------ staging


def stage_citation(root: Path | str, stage_dir: Path | str) -> list[Path]:
    """Put the citation into a staged book source (after ``book/`` is staged): validate
    ``root/CITATION.cff`` (a :class:`CitationError` stops the build), write its BibTeX
    entry to ``stage_dir/book/_generated/citation.bib`` and copy the file itself to
    ``stage_dir/CITATION.cff``. Returns the two paths written."""
    root, stage_dir = Path(root), Path(stage_dir)
    cff = _validated(root)
    bib = stage_dir / GENERATED_BIB
    bib.parent.mkdir(parents=True, exist_ok=True)
    bib.write_text(f"% computed from {CITATION_FILE} by smallbatch_book.citation\n"
                   + citation_bibtex(cff), encoding="utf-8")
    copied = stage_dir / CITATION_FILE
    shutil.copy2(root / CITATION_FILE, copied)
    return [bib, copied]
