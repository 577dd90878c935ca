"""The README's numbers that the stored records can compute, computed (``make readme``).

A block of the README between ``<!-- computed: NAME -->`` and ``<!-- end computed -->`` is
written by :data:`BLOCKS` [NAME] from ``results/`` and ``benchmarks/results/``; everything
else in the README is prose. ``python -m smallbatch_book.readme`` rewrites the blocks in
place; ``--check`` only says whether they are current (the tests run it, so a README whose
numbers the records no longer give fails them). Commit the README with the records that
change it: ``make readme`` after storing trials.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .toc import REPO_ROOT, BookBuildError

__all__ = ["BLOCKS", "render", "main", "README"]

README = REPO_ROOT / "README.md"

_BLOCK = re.compile(r"(<!-- computed: (?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- end computed -->)",
                    re.S)


def _scaled_studies() -> str:
    """The published scaled studies: trials, stored, process-hours, what is still missing
    and the curves short of seeds (analysis.scaled_costs, missing trials, seed_gaps)."""
    from smallbatch import analysis

    data = [analysis.study_data(name, "scaled") for name in analysis.PUBLISHED_STUDIES]
    _, totals, _ = analysis.scaled_costs(data)
    lines = [f"The {len(data)} published studies ({', '.join(d.study.name for d in data)}): "
             + totals]
    missing = [f"{d.study.name} ({d.missing} of {d.total})" for d in data if d.missing]
    lines.append("Trials still to train: " + (", ".join(missing) + "; each chapter names its own "
                                              "and the command that trains them."
                                              if missing else "none."))
    short = []
    for d in data:
        gaps = analysis.seed_gaps(d.frame, analysis.MIN_SEEDS)
        if len(gaps):
            curves = gaps[analysis.curve_columns(d.frame)].drop_duplicates()
            short.append(f"{d.study.name} ({len(curves)} curves, {len(gaps)} cells)")
    lines.append(
        f"Curves with fewer than {analysis.MIN_SEEDS} seeds at their best η̃ or the η̃ either "
        "side (`analysis.seed_gaps`; a verdict that rests on a best with fewer reads \"cannot decide\"): "
        + (", ".join(short) if short else "none") + ".")
    return "".join(f"- {line}\n" for line in lines)


def _full_protocol() -> str:
    """The paper-size protocol's estimated hours per machine (benchmarks/results)."""
    from smallbatch import analysis

    bench = analysis.load_benchmarks(REPO_ROOT / "benchmarks" / "results")
    hours = analysis.hours_by_study(bench.costs)
    total = hours.loc["all studies"]
    studies = len(hours.index) - 1
    parts = [f"about {value:,.0f} hours on {machine}" for machine, value in total.items()]
    return (f"The {studies} CIFAR studies at full size, estimated from measured training rates "
            f"(`benchmarks/full_cost.py`): {' and '.join(parts)}, one process on the whole "
            "machine; the full-protocol chapter has them study by study, with the machines' "
            "torch builds.\n")


BLOCKS = {"scaled-studies": _scaled_studies, "full-protocol": _full_protocol}


def render(text: str, blocks=None) -> str:
    """``text`` with every computed block's body rewritten by its function. An unknown block
    name, or a block without its end marker, is an error that names it."""
    blocks = BLOCKS if blocks is None else blocks
    opened = re.findall(r"<!-- computed: ([^ ]+) -->", text)
    found = [m.group("name") for m in _BLOCK.finditer(text)]
    if opened != found:
        raise BookBuildError(f"README: a computed block is not closed: {opened} opened, "
                             f"{found} closed by '<!-- end computed -->'")
    unknown = [name for name in found if name not in blocks]
    if unknown:
        raise BookBuildError(f"README: unknown computed block(s) {unknown}; known: "
                             f"{sorted(blocks)}")
    return _BLOCK.sub(lambda m: m.group(1) + blocks[m.group("name")]() + m.group(4), text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smallbatch_book.readme",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only say whether the README's computed blocks are current")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    new = render(text)
    if new == text:
        print(f"{args.readme.name}: computed blocks are current")
        return 0
    if args.check:
        print(f"{args.readme.name}: computed blocks are out of date with the records; run "
              "`make readme` and commit README.md", file=sys.stderr)
        return 1
    args.readme.write_text(new)
    print(f"{args.readme.name}: computed blocks rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
