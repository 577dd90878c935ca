"""The claims' rule texts (book: the experiments chapters' claims tables): built from the
constants that define "small" and "large" batches, never with a batch size typed in, and
rendered exactly as the book shows them."""

import ast
import inspect
import re

import pandas as pd

from smallbatch.analysis import claims
from smallbatch.analysis.claims import (LARGE_BATCHES, MIN_SEEDS, SMALL_BATCHES,
                                        verdict_curves_small_ahead, verdict_range_shrinks,
                                        verdict_small_batches_best, verdict_warmup)

# The rule of "best results at m = 2 ... 32" as the book shows it.
SMALL_RULE_TEXT = (
    "S: the best over m <= 32, L: over m >= 128, O: over every m > 32. Disagrees if O beats "
    "S by more than the margin; else agrees if S beats L by more than the margin; else "
    "equivalent within the margin; cannot decide if a best the outcome rests on has fewer "
    "than 3 seeds or sits at an end of its η̃ window")


def test_the_small_batch_rule_reads_as_the_book_shows_it_from_the_constants():
    assert claims._SMALL_RULE == SMALL_RULE_TEXT
    for text in (f"m <= {SMALL_BATCHES}", f"m >= {LARGE_BATCHES}", f"m > {SMALL_BATCHES}",
                 f"fewer than {MIN_SEEDS} seeds"):
        assert text in claims._SMALL_RULE


def test_every_rule_that_compares_small_and_large_batches_names_the_constants():
    best = pd.DataFrame({"median": [0.5], "seeds": [5]}, index=[64])
    curves = pd.DataFrame({"epoch": [1], "batch_size": [64], "test_accuracy": [0.5]})
    with_warmup = pd.DataFrame({"median": [0.5], "seeds": [5]}, index=[256])
    verdicts = [verdict_small_batches_best(best, 0.01),
                verdict_range_shrinks(pd.DataFrame({"octaves": [1, 2]}, index=[64, 96])),
                verdict_curves_small_ahead(curves, 0.01, 1),
                verdict_warmup(with_warmup, with_warmup.assign(median=0.4), 0.6, 0.01)[1]]
    for verdict in verdicts:
        assert f"m <= {SMALL_BATCHES}" in verdict.rule
    for verdict in verdicts[:3]:  # a premise not met: the measurement says which
        assert verdict.verdict == claims.CANNOT_DECIDE
        assert f"m >= {LARGE_BATCHES}" in verdict.rule
    assert verdicts[0].measurement == (f"needs both m <= {SMALL_BATCHES} and "
                                       f"m >= {LARGE_BATCHES}")


def test_no_batch_size_is_typed_into_a_rule_string():
    """Outside docstrings and the claims in the paper's words, no string literal of
    claims.py compares m with a number: each such text formats SMALL_BATCHES or
    LARGE_BATCHES."""
    tree = ast.parse(inspect.getsource(claims))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    typed = [node.value for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and id(node) not in docstrings and re.search(r"m [<>]=? ?\d", node.value)]
    assert typed == []
