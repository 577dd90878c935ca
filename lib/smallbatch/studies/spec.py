"""A study's specification: a YAML grid expanded into TrainConfigs. Runs nothing.

A study is a base :class:`~smallbatch.train.TrainConfig` and a grid: for each grid axis (a
TrainConfig field) a list of values; its trials are every combination. A study file is
YAML::

    name: lr-batch-fmnist-resnet8
    description: test accuracy against eta_tilde for each batch size
    base: {data: fashion-mnist, model: resnet8, num_epochs: 10}
    grid:
      batch_size: [2, 8, 32, 128]
      base_lr: {pow2: [-12, 0]}        # 2^-12, 2^-11, ..., 2^0 (or a list: [2^-8, 0.01])
      seed: [0, 1, 2]
    scales:                            # overrides per scale (smoke / scaled / full)
      smoke: {base: {data: synthetic, train_subset: 512, num_epochs: 1},
              grid: {batch_size: [8, 32], base_lr: [2^-8, 2^-6], seed: [0]}}

A grid may also be a list of blocks, each a product of its own axes; the study's trials are
the union (each trial once), e.g. a learning-rate window that moves with the batch size::

    grid:
      - {batch_size: [2, 4], base_lr: {pow2: [-12, -2]}, seed: [0, 1, 2]}
      - {batch_size: [512, 1024], base_lr: {pow2: [-16, -6]}, seed: [0, 1, 2]}

A scale's ``grid`` override that is a mapping updates the axes of every block; a list
replaces the blocks.

Named studies ship in ``smallbatch/studies/``; a path to a YAML file works too.

How a study runs is :mod:`smallbatch.studies.run`.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..presets import check_scale, study_dir
from ..train import ConfigError, TrainConfig, config_hash, validate

__all__ = ["Study", "StudyError", "parse_number", "study_names", "load_study",
           "validate_study", "training_examples"]


STUDIES_DIR = Path(__file__).resolve().parent  # the named studies: <name>.yaml here


class StudyError(ValueError):
    """A study that cannot run; raised before any training starts."""


_POWER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:\^|\*\*)\s*(-?\d+(?:\.\d+)?)\s*$")


def parse_number(text: str) -> float:
    """A float, or a power written as ``2^-8`` / ``2**-8``."""
    match = _POWER.match(text)
    if match:
        return float(match.group(1)) ** float(match.group(2))
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number (write e.g. 0.004, 2^-8 or 2**-8)") from None


def _parse_value(name: str, value: Any) -> Any:
    if name in ("base_lr", "weight_decay", "warmup_fraction", "lr_decay", "momentum",
                "divergence_loss", "eval_growth", "stop_accuracy") and isinstance(value, str):
        return parse_number(value)
    if name == "lr_milestones":
        return tuple(value)
    return value


def _axis_values(name: str, values: Any) -> tuple:
    if isinstance(values, Mapping) and set(values) == {"pow2"}:
        low, high = values["pow2"]
        return tuple(2.0 ** exponent for exponent in range(int(low), int(high) + 1))
    if not isinstance(values, (list, tuple)):
        raise StudyError(f"grid axis {name!r} must be a list of values or {{pow2: [low, high]}}, "
                         f"got {values!r}")
    return tuple(_parse_value(name, value) for value in values)


@dataclass(frozen=True)
class Study:
    """A named grid of runs at one scale. ``trials()`` expands it."""

    name: str
    scale: str
    base: TrainConfig
    blocks: tuple[tuple[tuple[str, tuple], ...], ...]  # grids: ((field, values), ...) each
    description: str = ""

    @property
    def results_dir(self) -> Path:
        """<$SMALLBATCH_RESULTS or repo/results>/<name>/<scale>."""
        return study_dir(self.name, self.scale)

    def trials(self) -> list[TrainConfig]:
        """Every combination of each block's axes, blocks in order, each trial once."""
        trials: dict[TrainConfig, None] = {}
        for block in self.blocks:
            names = [name for name, _ in block]
            for combo in itertools.product(*(values for _, values in block)):
                trials.setdefault(self.base.replace(**dict(zip(names, combo))))
        return list(trials)

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any], scale: str, source: str = "") -> "Study":
        """Build from a parsed study file, applying the overrides of ``scale``."""
        check_scale(scale)
        where = f" in {source}" if source else ""
        unknown = set(spec) - {"name", "description", "base", "grid", "scales"}
        if unknown:
            raise StudyError(f"unknown study key(s) {sorted(unknown)}{where}; known: name, "
                             "description, base, grid, scales")
        if "name" not in spec:
            raise StudyError(f"a study needs a name{where}")
        base = dict(spec.get("base") or {})
        override = (spec.get("scales") or {}).get(scale) or {}
        base.update(override.get("base") or {})
        blocks = _grid_blocks(spec.get("grid"), where)
        if "grid" in override:
            changed = override["grid"]
            if isinstance(changed, Mapping):  # update every block's axes
                blocks = [{**block, **changed} for block in blocks]
            else:  # a list of blocks replaces the grid
                blocks = _grid_blocks(changed, where)
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        parsed = []
        for grid in blocks:
            for key in list(base) + list(grid):
                if key not in fields:
                    raise StudyError(f"unknown TrainConfig field {key!r}{where}; known fields: "
                                     f"{', '.join(sorted(fields))}")
            overlap = set(base) & set(grid)
            if overlap:
                raise StudyError(f"field(s) {sorted(overlap)} are both fixed in base and varied "
                                 f"in the grid{where}; keep each in one place")
            axes = tuple((name, _axis_values(name, values)) for name, values in grid.items())
            empty = [name for name, values in axes if not values]
            if not axes or empty:
                raise StudyError(f"empty grid{where}: " + (
                    f"axis {empty} has no values" if empty
                    else "give at least one axis, e.g. batch_size: [32]"))
            parsed.append(axes)
        try:
            base_config = TrainConfig(**{k: _parse_value(k, v) for k, v in base.items()})
        except TypeError as error:
            raise StudyError(f"bad base config{where}: {error}") from error
        return cls(name=str(spec["name"]), scale=scale, base=base_config, blocks=tuple(parsed),
                   description=str(spec.get("description", "")))


def _grid_blocks(grid: Any, where: str) -> list[dict]:
    """A study's grid as a list of blocks: a mapping is one block, a list several."""
    if grid is None or isinstance(grid, Mapping):
        return [dict(grid or {})]
    if isinstance(grid, (list, tuple)) and grid and all(isinstance(b, Mapping) for b in grid):
        return [dict(b) for b in grid]
    raise StudyError(f"grid{where} must be a mapping of axes or a non-empty list of such "
                     f"mappings, got {grid!r}")


def study_names() -> list[str]:
    """The named studies shipped with the package."""
    return sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))


def load_study(study: str | os.PathLike, scale: str = "scaled") -> Study:
    """A named study (``smallbatch/studies/<name>.yaml``) or a YAML file, at ``scale``."""
    import yaml

    path = Path(study)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = STUDIES_DIR / f"{study}.yaml"
    if not path.is_file():
        raise StudyError(f"unknown study {str(study)!r}: not a YAML file and not one of the "
                         f"named studies ({', '.join(study_names()) or 'none'})")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StudyError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(spec, Mapping):
        raise StudyError(f"{path}: a study file is a mapping with name, base and grid")
    return Study.from_mapping(spec, scale, source=str(path))


def validate_study(study: Study) -> list[TrainConfig]:
    """Expand and check every trial before anything trains; return the trials."""
    from ..data import DataError, train_size

    trials = study.trials()
    problems = []
    for config in trials:
        try:
            validate(config, num_train=train_size(config.data, config.train_subset))
        except (ConfigError, DataError) as error:
            problems.append(f"m={config.batch_size}, eta_tilde={config.base_lr:g}: {error}")
    if problems:
        shown = "\n  ".join(sorted(set(problems))[:10])
        raise StudyError(f"study {study.name} ({study.scale}) has {len(problems)} invalid "
                         f"trial(s):\n  {shown}")
    hashes = [config_hash(c) for c in trials]
    if len(set(hashes)) != len(hashes):
        raise StudyError(f"study {study.name} lists the same trial more than once")
    return trials


def training_examples(config: TrainConfig) -> int | None:
    """Examples a run trains on (steps per epoch x m x epochs); None if the data set's size
    is known only from its files."""
    from ..data import train_size

    size = train_size(config.data, config.train_subset)
    if size is None:
        return None
    return (size // config.batch_size) * config.batch_size * config.num_epochs


