"""The README's computed blocks (smallbatch_book.readme): current with the stored records,
and the block mechanism itself."""

import pytest

from smallbatch_book import readme
from smallbatch_book.toc import BookBuildError


def test_readme_numbers_are_the_records():
    text = readme.README.read_text()
    assert "<!-- computed: scaled-studies -->" in text and "<!-- computed: full-protocol -->" in text
    assert readme.render(text) == text, (
        "README.md's computed blocks are out of date with results/ or benchmarks/results/: "
        "run `make readme` and commit README.md")


def test_render_rewrites_only_the_blocks():
    text = ("prose 1\n<!-- computed: a -->\nold\n<!-- end computed -->\nprose 2\n"
            "<!-- computed: b -->\n<!-- end computed -->\n")
    out = readme.render(text, {"a": lambda: "new a\n", "b": lambda: "- b\n"})
    assert out == ("prose 1\n<!-- computed: a -->\nnew a\n<!-- end computed -->\nprose 2\n"
                   "<!-- computed: b -->\n- b\n<!-- end computed -->\n")
    assert readme.render(out, {"a": lambda: "new a\n", "b": lambda: "- b\n"}) == out


def test_render_refuses_unknown_and_unclosed_blocks():
    with pytest.raises(BookBuildError, match=r"unknown computed block\(s\) \['c'\]"):
        readme.render("<!-- computed: c -->\n<!-- end computed -->\n", {"a": str})
    with pytest.raises(BookBuildError, match="not closed"):
        readme.render("<!-- computed: a -->\nno end\n", {"a": str})


def test_check_mode_fails_on_a_stale_readme(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(readme, "BLOCKS", {"a": lambda: "now\n"})
    path = tmp_path / "README.md"
    path.write_text("<!-- computed: a -->\nthen\n<!-- end computed -->\n")
    assert readme.main(["--check", "--readme", str(path)]) == 1
    assert "make readme" in capsys.readouterr().err
    assert "then" in path.read_text()  # --check writes nothing
    assert readme.main(["--readme", str(path)]) == 0
    assert readme.main(["--check", "--readme", str(path)]) == 0
