"""The front page's computed findings (analysis.findings)."""

import math

import pandas as pd
import pytest

from smallbatch.analysis import findings
from smallbatch.studies import load_study


def bests(medians):
    return pd.DataFrame({"median": medians}).rename_axis("batch_size")


def test_the_share_of_the_deficit_equal_steps_remove():
    fixed = bests({32: 0.90, 128: 0.86, 256: 0.85, 1024: 0.80, 2048: 0.895})
    equal = bests({32: 0.90, 128: 0.89, 256: 0.90, 1024: 0.88})
    table = findings.deficit_removed(fixed, equal, 32, margin=0.01)
    assert list(table.index) == [128, 256, 1024]
    assert table.loc[128, "share_removed"] == pytest.approx(0.75)      # 4 -> 1 point
    assert table.loc[256, "share_removed"] == pytest.approx(1.0)       # 5 -> 0 points
    assert table.loc[1024, "share_removed"] == pytest.approx(0.8)      # 10 -> 2 points
    small = findings.deficit_removed(bests({32: 0.9, 128: 0.895}), bests({32: 0.9, 128: 0.8}),
                                     32, margin=0.01)
    assert math.isnan(small.loc[128, "share_removed"])                 # no deficit to remove
    text = findings.deficit_sentence(table, 32)
    assert "75% at m = 128 (4.0 → 1.0 points)" in text and "80% at m = 1024" in text
    assert "no deficit" in findings.deficit_sentence(small, 32)
    with pytest.raises(ValueError, match="m = 64 must be in both"):
        findings.deficit_removed(fixed, equal, 64, margin=0.01)


def test_the_scale_gap_is_read_from_the_study_files():
    table = findings.scale_gap({"resnet-bn": (load_study("resnet-bn", "scaled"),
                                              load_study("resnet-bn", "full"))})
    row = table.loc["resnet-bn"]
    assert (row["scaled training images"], row["scaled epochs"]) == (8192, 10)
    assert (row["full training images"], row["full epochs"]) == (50_000, 82)
    assert row["full / scaled examples"] == pytest.approx(50_000 * 82 / 81_920)
    text = findings.scale_gap_sentence(table, "resnet-bn")
    assert "resnet8 on 8,192 fashion-mnist images for 10 epochs" in text
    assert "resnet20 on 50,000 cifar10 images for 82 epochs, 50 times" in text
