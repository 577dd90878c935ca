"""The named scales, in one place: smoke, scaled and full.

- ``smoke``: seconds per notebook on the synthetic data set; CI runs every notebook at it.
  Never shown as a result.
- ``scaled``: what the published book shows; real data, sized for a 2-core CPU.
- ``full``: the paper's protocol; for a GPU and the original data sets.

Every size a notebook uses derives from its ``scale`` parameter through a function here.
"""

from __future__ import annotations

import os
from pathlib import Path

from .train import TrainConfig

__all__ = ["SCALES", "check_scale", "repo_root", "results_dir", "quickstart"]

SCALES: tuple[str, ...] = ("smoke", "scaled", "full")


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    return scale


def repo_root() -> Path:
    """The checkout this package runs from (the package is installed editable from lib/)."""
    return Path(__file__).resolve().parents[2]


def results_dir(study: str, scale: str) -> Path | None:
    """Where a study's records live at ``scale``: $SMALLBATCH_RESULTS/<study>/<scale>, else
    <repo>/results/<study>/<scale>. None at the smoke scale: smoke runs are checks, not
    results, and are never stored."""
    if check_scale(scale) == "smoke":
        return None
    base = os.environ.get("SMALLBATCH_RESULTS")
    return (Path(base) if base else repo_root() / "results") / study / scale


def quickstart(scale: str) -> TrainConfig:
    """The quickstart chapter's single run (book: "Quickstart").

    ResNet-8 with batch norm, plain SGD at m = 32 and eta_tilde = 2^-8 (eta = 0.125; the
    paper's training curves use eta_tilde = 2^-8), LR / 10 at 50% and 75% of the steps.

    - smoke: synthetic data, 1,024 training and 500 test images, 2 epochs (a few seconds).
    - scaled: Fashion-MNIST, all 60,000 training and 10,000 test images, 10 epochs.
    - full: CIFAR-10 (original, torchvision), ResNet-20 with batch norm and augmentation,
      weight decay 1e-4, 82 epochs: the paper's CIFAR-10 protocol at one (m, eta_tilde).
    """
    check_scale(scale)
    base = TrainConfig(model="resnet8", batch_norm="all", batch_size=32, base_lr=2.0**-8)
    if scale == "smoke":
        return base.replace(data="synthetic", train_subset=1024, test_subset=500, num_epochs=2)
    if scale == "scaled":
        return base.replace(data="fashion-mnist", num_epochs=10)
    return base.replace(data="cifar10", model="resnet20", augment=True, weight_decay=1e-4,
                        num_epochs=82)
