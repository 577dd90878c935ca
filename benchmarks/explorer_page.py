"""How heavy the explorer's static page is (book: "Explore the stored runs"): its size, the
share of it that is the embedded data, and how long Chromium takes to load and draw it.

Builds nothing: point it at a built book (``make book``), then

    .venv/bin/python benchmarks/explorer_page.py _build/html

Opens the page in headless Chromium over http://127.0.0.1 (the book's browser-test setup)
``--loads`` times in one browser: the first load also fetches plotly.js (4.8 MB, shared by
every page with a figure and cached after), the others find it cached. The time runs from
the request to the figure drawn with the explorer's script attached. Other work on the
machine slows it: the load average at the start is written beside the times.

Writes benchmarks/results/explorer_page.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
PAGE = "notebooks/26_explorer.html"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="a built book's html folder")
    parser.add_argument("--loads", type=int, default=6)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests" / "book"))
    import book_checks

    from smallbatch.provenance import git_commit

    page_file = args.html / PAGE
    html = page_file.read_text()
    start = html.index('"smallbatchExplorer"')
    depth, end = 0, start + len('"smallbatchExplorer"') + 1
    while True:  # the embedded data: the JSON object after the key
        char = html[end]
        depth += char == "{"
        depth -= char == "}"
        end += 1
        if depth == 0 and char == "}":
            break
    data_bytes = len(html[start:end].encode())
    times, load = [], os.getloadavg()[0]
    with book_checks.serve(args.html) as base, book_checks._browser() as context:
        for _ in range(args.loads):
            page = context.new_page()
            began = time.perf_counter()
            page.goto(base + PAGE, wait_until="load", timeout=book_checks.LOAD_MS)
            page.wait_for_function(
                "() => { const gd = document.querySelector('.plotly-graph-div');"
                " return gd && gd.querySelector('svg.main-svg') && gd._smallbatchState; }",
                timeout=book_checks.WAIT_MS)
            times.append(time.perf_counter() - began)
            page.close()
    record = {"measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "load_average_at_start": load,
              "python": platform.python_version(), "commit": git_commit(),
              "page_bytes": page_file.stat().st_size, "data_bytes": data_bytes,
              "plotly_js_bytes": (args.html / "_static" / "plotly.min.js").stat().st_size,
              "first_load_s": times[0], "cached_loads_s": times[1:]}
    cached = times[1:] or times
    lines = [
        "# The explorer's static page",
        "",
        f"Measured {record['measured']} on {record['cpus']} CPUs ({record['machine']}), load "
        f"average {load:.1f} at the start, commit {record['commit'][:10]}.",
        "",
        "| what | value |", "| --- | --- |",
        f"| page (HTML) | {record['page_bytes'] / 1e3:,.0f} kB |",
        f"| of which the embedded runs | {data_bytes / 1e3:,.0f} kB |",
        f"| plotly.js (shared, cached after the first page) | "
        f"{record['plotly_js_bytes'] / 1e6:.1f} MB |",
        f"| first load, to the figure drawn and its script attached | {times[0]:.2f} s |",
        f"| later loads (median of {len(cached)}) | {statistics.median(cached):.2f} s |",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "explorer_page.json").write_text(json.dumps(record, indent=1) + "\n")
    (RESULTS / "explorer_page.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
