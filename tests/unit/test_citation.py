"""CITATION.cff: valid CFF 1.2.0, in step with the book's config, its references and the
BibTeX entry and staged files the "How to cite this book" page shows."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from smallbatch_book.citation import (
    CITATION_FILE, GENERATED_BIB, SCHEMA_PATH, CitationError, citation_bibtex, citation_errors,
    load_citation, stage_citation, validate_citation,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cff() -> dict:
    return load_citation(REPO)


def _write_cff(root: Path, data: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / CITATION_FILE
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ the schema


def test_schema_is_the_official_draft07_cff_schema():
    from jsonschema import Draft7Validator
    from jsonschema.validators import validator_for

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$id"] == "https://citation-file-format.github.io/1.2.0/schema.json"
    assert validator_for(schema) is Draft7Validator  # the class citation.py validates with
    assert (SCHEMA_PATH.parent / "README.md").is_file()  # where it came from


def test_citation_file_validates(cff):
    validate_citation(REPO)  # raises CitationError with every failing field otherwise
    assert citation_errors(cff) == []


@pytest.mark.parametrize("break_it, expected", [
    (lambda d: d.pop("authors"), ["(top level)", "'authors' is a required property"]),
    (lambda d: d.update({"cff-version": "1.1.0"}), ["cff-version", "'1.1.0' does not match"]),
    (lambda d: d["authors"][0].update({"nickname": "x"}), ["authors[0]", "'nickname'"]),
    # matches the schema's pattern but is no date: only format checking catches it
    (lambda d: d.update({"date-released": "2026-02-30"}), ["date-released", "is not a 'date'"]),
    (lambda d: d["references"][0].pop("title"), ["references[0]", "'title' is a required"]),
], ids=["no-authors", "cff-version", "unknown-author-field", "impossible-date",
        "reference-without-title"])
def test_a_broken_copy_fails_naming_the_file_and_field(tmp_path, cff, break_it, expected):
    data = json.loads(json.dumps(cff))  # a deep copy
    break_it(data)
    path = _write_cff(tmp_path, data)
    with pytest.raises(CitationError) as caught:
        validate_citation(tmp_path)
    message = str(caught.value)
    assert str(path) in message and "Citation File Format 1.2.0 schema" in message
    for part in expected:
        assert part in message, message


def test_missing_or_unparsable_file_is_a_citation_error(tmp_path):
    with pytest.raises(CitationError, match="not found"):
        validate_citation(tmp_path)
    (tmp_path / CITATION_FILE).write_text("title: [unclosed\n", encoding="utf-8")
    with pytest.raises(CitationError, match="not valid YAML"):
        validate_citation(tmp_path)


def test_unquoted_yaml_date_is_read_as_the_string_the_schema_wants(tmp_path):
    text = (REPO / CITATION_FILE).read_text(encoding="utf-8")
    (tmp_path / CITATION_FILE).write_text(text + "date-released: 2027-03-14\n", encoding="utf-8")
    assert load_citation(tmp_path)["date-released"] == "2027-03-14"
    validate_citation(tmp_path)
    assert "year    = {2027}" in citation_bibtex(load_citation(tmp_path))


# ------------------------------------------------------------- agreement with the project


def test_title_version_licence_agree_with_config_and_pyproject(cff):
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert cff["title"] == config["title"]
    assert str(cff["version"]) == project["version"]
    assert cff["license"] == project["license"]
    assert cff["type"] == "software"
    assert cff["authors"] == [{"name": config["author"]}]
    assert "repository-code" not in cff and "url" not in cff  # no public URL yet


def test_references_masters_and_luschi_2018(cff):
    [paper] = [r for r in cff["references"]
               if r["title"] == "Revisiting Small Batch Training for Deep Neural Networks"]
    assert [a["family-names"] for a in paper["authors"]] == ["Masters", "Luschi"]
    assert paper["year"] == 2018
    assert any(i["value"] == "arXiv:1804.07612" for i in paper["identifiers"])
    assert cff["references"][0] is paper  # the message calls it "the first of the references"


def test_every_reference_is_taken_from_references_bib(cff):
    """Titles, authors and years as in book/references.bib, and the arXiv id the entry
    carries: nothing in the references is typed from elsewhere."""
    pytest.importorskip("pybtex")
    from pybtex.database import parse_file
    from pybtex.richtext import Text

    def text(latex: str) -> str:
        return Text.from_latex(latex).render_as("text")

    bib = parse_file(str(REPO / "book" / "references.bib")).entries
    by_title = {text(entry.fields["title"]): entry for entry in bib.values()}
    for ref in cff["references"]:
        entry = by_title.get(ref["title"])
        assert entry is not None, f"{ref['title']!r} is not in book/references.bib"
        # an entity author ({"name": ...}) is one braced last name in BibTeX; a person's
        # given names include any middle names ("George E.")
        assert [(a["name"], "") if "name" in a else (a["family-names"], a["given-names"])
                for a in ref["authors"]] == [
            (text(" ".join(p.last_names)), text(" ".join(p.first_names + p.middle_names)))
            for p in entry.persons["author"]]
        assert str(ref["year"]) == entry.fields["year"]
        ids = [i["value"].removeprefix("arXiv:") for i in ref.get("identifiers", [])]
        for arxiv in ids:
            assert arxiv in " ".join(entry.fields.values()), (ref["title"], arxiv)
        if "url" in ref:  # only the arXiv page of the entry's own id
            assert ref["url"] in [f"https://arxiv.org/abs/{arxiv}" for arxiv in ids]


# ------------------------------------------------------------------------------ BibTeX


def _balanced(text: str) -> bool:
    depth = 0
    for ch in re.sub(r"\\[{}]", "", text):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def test_bibtex_entry_carries_the_cff_title_version_and_licence(cff):
    bib = citation_bibtex(cff)
    assert bib.startswith("@misc{smallbatch,\n")
    assert _balanced(bib)
    for field in ("author", "title", "version", "note"):
        assert re.search(rf"^  {field} *= \{{", bib, re.M), field
    assert f"{{{cff['title']}}}" in bib
    assert f"version = {{{cff['version']}}}" in bib
    assert f"Licence: {cff['license']}" in bib
    assert "year" not in bib  # no date-released, so no year (none is made up)


def test_bibtex_entry_parses_with_pybtex(cff):
    pytest.importorskip("pybtex")
    from pybtex.database import parse_string

    [(key, entry)] = parse_string(citation_bibtex(cff), "bibtex").entries.items()
    assert key == "smallbatch" and entry.type == "misc"
    assert entry.fields["title"] == cff["title"]
    assert entry.fields["version"] == cff["version"]
    # the entity stays one name, not "authors, The smallbatch"
    [author] = entry.persons["author"]
    assert author.last_names == ["{The smallbatch authors}"] and not author.first_names


def test_bibtex_from_persons_dates_and_special_characters():
    pytest.importorskip("pybtex")
    from pybtex.database import parse_string

    cff = {
        "title": "Fast & loose: 100% of_it {braced}", "version": 2,
        "authors": [{"family-names": "Beethoven", "name-particle": "van",
                     "given-names": "Ludwig"},
                    {"family-names": "King", "name-suffix": "Jr.", "given-names": "Martin"},
                    {"name": "Team Rocket"}],
        "date-released": "2027-03-14", "doi": "10.1234/example",
        "license": ["MIT", "Apache-2.0"],
    }
    bib = citation_bibtex(cff)
    assert bib.startswith("@misc{beethoven2027,")
    assert _balanced(bib)
    assert r"{Fast \& loose: 100\% of\_it \{braced\}}" in bib
    assert "year    = {2027}" in bib and "doi" in bib
    assert "Licences: MIT, Apache-2.0" in bib
    entry = parse_string(bib, "bibtex").entries["beethoven2027"]
    people = entry.persons["author"]
    assert [p.last_names for p in people] == [["Beethoven"], ["King"], ["{Team Rocket}"]]
    assert people[0].prelast_names == ["van"] and people[1].lineage_names == ["Jr."]
    assert people[1].first_names == ["Martin"]


def test_bibtex_needs_a_title_and_authors():
    with pytest.raises(CitationError, match="authors"):
        citation_bibtex({"title": "x", "authors": []})


# ----------------------------------------------------------------------------- staging


def test_stage_citation_writes_what_the_cite_page_includes(tmp_path, cff):
    stage = tmp_path / "source"
    written = stage_citation(REPO, stage)
    bib, copied = stage / GENERATED_BIB, stage / CITATION_FILE
    assert written == [bib, copied]
    assert bib.read_text(encoding="utf-8").endswith(citation_bibtex(cff))
    assert copied.read_bytes() == (REPO / CITATION_FILE).read_bytes()
    # book/cite.md's literalincludes, resolved from its folder in the staged tree
    page = (REPO / "book" / "cite.md").read_text(encoding="utf-8")
    includes = re.findall(r"^```\{literalinclude\} (\S+)$", page, re.M)
    assert sorted(includes) == ["../CITATION.cff", "_generated/citation.bib"]
    for include in includes:
        assert (stage / "book" / include).resolve() in {bib.resolve(), copied.resolve()}


def test_stage_citation_refuses_an_invalid_file_and_writes_nothing(tmp_path, cff):
    data = dict(cff)
    del data["title"]
    _write_cff(tmp_path / "root", data)
    with pytest.raises(CitationError, match="'title' is a required property"):
        stage_citation(tmp_path / "root", tmp_path / "source")
    assert not (tmp_path / "source").exists()


def test_cite_page_is_in_the_toc_and_its_bibliography_cannot_duplicate_the_intros():
    toc = (REPO / "_toc.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s+- file: book/cite$", toc, re.M)
    page = (REPO / "book" / "cite.md").read_text(encoding="utf-8")
    # a second bibliography over the same keys would warn (and warnings fail the build):
    # this page's cites and list use their own key prefix
    assert ":keyprefix: cite-" in page
    cited = re.findall(r"\{cite:[tp]\}`([^`]+)`", page)
    assert cited and all(key.startswith("cite-") for key in cited)
