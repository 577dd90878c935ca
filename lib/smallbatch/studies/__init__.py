"""Studies (book: "The sweep engine"): grids of runs, specified apart from how they run.

- :mod:`.spec`: a study's YAML (base config, grid blocks, overrides per scale) expanded
  into TrainConfigs and checked; runs nothing. The named studies are the ``*.yaml`` files
  in this folder (their header comments state every protocol choice).
- :mod:`.run`: the trials grouped into lock-step ensembles and trained by an executor
  (in-process, local processes, Dask), resumably; the dry run and the rate calibration.
"""

from .run import (ENSEMBLE_LIMITS, EXECUTORS, MAX_STEP_EXAMPLES, SweepReport, calibrate_rates,
                  dry_run, ensemble_groups, ensemble_limits, run_study, seed_major,
                  train_group, train_or_load)
from .spec import (Study, StudyError, load_study, parse_number, study_names,
                   training_examples, validate_study)

__all__ = ["EXECUTORS", "MAX_STEP_EXAMPLES", "Study", "StudyError", "SweepReport",
           "calibrate_rates", "dry_run", "ensemble_groups", "load_study", "parse_number",
           "run_study", "seed_major", "study_names", "train_group", "train_or_load", "training_examples",
           "validate_study"]
