"""Analysis (book part "The experiments"): from stored trials to cells, verdicts and report
tables. Every number the experiments chapters print goes through here, computed from the
records in ``results/<study>/<scale>``: nothing is typed in by hand.

- :mod:`.cells`: the records as one frame; statistics per (m, eta_tilde) cell over seeds;
  the noise margin; each m's best, good range and window edges;
- :mod:`.runset`: one set of runs (a study, or one side of it) with that pipeline computed
  once: cells, its own noise margin, bests, ranges, edges, the held-out reading, chance;
- :mod:`.claims`: the paper's claims, the rule behind each verdict, and their caveats;
- :mod:`.selection`: each verdict's checks against the winner's curse: bests chosen on some
  seeds and scored on another, and a bootstrap over seeds; the readers that turn each
  claim's rule into a verdict from trials frames (:func:`assess`, :func:`assess_together`);
- :mod:`.experiments`: the experiments chapters' sections, one function each;
- :mod:`.report`: the published studies, protocol and cost tables, what is missing, and
  the claims table with its rules and discussion;
- :mod:`.tables`: the CSV tables the book links;
- :mod:`.costs`: the sweep engine's benchmarks and the full protocol's cost;
- :mod:`.explorer`: every stored run, by set of runs and cell, for the explorer;
- imported by module (``from smallbatch.analysis import budget``): :mod:`.budget` (steps
  and examples to a target against m, McCandlish's trade-off, the noise-scale recipe),
  :mod:`.budget_report` (the budget chapter's sections), :mod:`.steps` (steps to a
  validation target in the schedule-free study, and the rules on B_crit), :mod:`.findings`
  (the front page's computed findings).
"""

from .cells import (MARGIN_FLOOR, NEAR_BEST, best_first, best_per_batch, cell_columns,
                    cell_summary, compared_runs, count_curves, curve_columns, curves_by_batch,
                    curves_from_epochs, edges_overview, edges_reached, fall_with_m, ghost_cells,
                    ghost_table, good_range, load_or_run, noise_margin, seed_gap_grid,
                    seed_gaps, seed_spread, short_windows, spread_by_point, study_data,
                    study_label, StudyData, subset, variants, with_bn_batch)
from .runset import (CURVE, GHOST_CURVE, bn_pairs, frames, margins, run_sets, RunSet,
                     under_one_margin)
from .claims import (AGREES, CANNOT_DECIDE, CAVEATS, CLAIM_BN_BATCH_INDEPENDENT, CLAIM_BN_GAP,
                     CLAIM_CURVES, CLAIM_EQUAL_STEPS, CLAIM_RANGE_SHRINKS, CLAIM_SMALL_BEST,
                     CLAIM_SMALL_BN_BATCH, CLAIM_SMALLEST_BEST, CLAIM_WARMUP_GAP,
                     CLAIM_WARMUP_HELPS, DISAGREES, EQUAL_STEPS_SEEDS, EQUIVALENT,
                     LARGE_BATCHES, MIN_SEEDS, OUTCOMES, SMALL_BATCHES, SMALL_BN_BATCH,
                     SMALLEST_BATCHES, Verdict, verdict_bn_batch_independent,
                     verdict_bn_widens_gap, verdict_curves_small_ahead, verdict_equal_steps,
                     verdict_range_shrinks, verdict_small_batches_best, verdict_small_bn_batch,
                     verdict_smallest_best, verdict_warmup)
from .selection import (RESAMPLES, assess, assess_together, Assessed, bests, curves_reader,
                        equal_steps_reader, held_out_best, held_out_overview, on_bests,
                        range_reader, resample_seeds, warmup_reader)
from .experiments import (batch_lr_studies, batch_lr_verdicts, best_lr_table, curves_at_best,
                          curves_verdicts, fall_with_m_text, ghost_edges_text, ghost_verdicts,
                          last_epoch_table, lowest_loss_text, lowest_training_loss,
                          margins_style, protocol_tables, resting_margins, stored_trials,
                          study_notes, verdict_counts, warmup_edges, warmup_sets,
                          warmup_side_by_side, warmup_steps_text, warmup_verdicts,
                          weight_decay_table, window_edges)
from .report import (BATCH_LR_STUDIES, FULL_ONLY_STUDIES, ONE_POINT_SHARE, PUBLISHED_STUDIES,
                     SCALED_ONLY_STUDIES, SCALED_TARGET_CPU_HOURS, TRAINING_STUDIES,
                     claims_style, cost_summary, discussion, full_protocol_table,
                     margins_overview, missing_note, process_hours, scaled_costs,
                     seeds_overview, study_protocol, verdict_table)
from .tables import (MISSING, TABLE_KINDS, downloads_html, epochs_table, table_file_name,
                     trials_table, write_tables)
from .costs import (PAPER_GRID_BATCH_SIZES, TARGET_GRID_SPEEDUP, TARGET_RATE_RATIO,
                    BenchmarkRecords, captured_step, cost_check_table, cost_check_text,
                    engine_targets, EngineRecords, ensemble_cap_summary, ensemble_cap_text,
                    full_cost_shown, full_scale_status, gpu_against_cpu, gpu_against_cpu_text,
                    hours_by_study, hours_notes, load_benchmarks, load_engine_benchmarks,
                    machine, machine_lines, paper_grid_examples, paper_grid_hours,
                    reference_ceiling, seed_packing, throughput_machine, throughput_table,
                    vmap_against_grouped)
from .explorer import (best_cell, cell_text, explorer_data, explorer_sets)

__all__ = [
    # cells
    "MARGIN_FLOOR", "NEAR_BEST", "best_first", "best_per_batch", "cell_columns",
    "cell_summary", "compared_runs", "count_curves", "curve_columns", "curves_by_batch",
    "curves_from_epochs", "edges_overview", "edges_reached", "fall_with_m", "ghost_cells",
    "ghost_table", "good_range", "load_or_run", "noise_margin", "seed_gap_grid", "seed_gaps",
    "seed_spread", "short_windows", "spread_by_point", "study_data", "study_label",
    "StudyData", "subset", "variants", "with_bn_batch",
    # runset
    "CURVE", "GHOST_CURVE", "bn_pairs", "frames", "margins", "run_sets", "RunSet",
    "under_one_margin",
    # claims
    "AGREES", "CANNOT_DECIDE", "CAVEATS", "CLAIM_BN_BATCH_INDEPENDENT", "CLAIM_BN_GAP",
    "CLAIM_CURVES", "CLAIM_EQUAL_STEPS", "CLAIM_RANGE_SHRINKS", "CLAIM_SMALL_BEST",
    "CLAIM_SMALL_BN_BATCH", "CLAIM_SMALLEST_BEST", "CLAIM_WARMUP_GAP", "CLAIM_WARMUP_HELPS",
    "DISAGREES", "EQUAL_STEPS_SEEDS", "EQUIVALENT", "LARGE_BATCHES", "MIN_SEEDS", "OUTCOMES",
    "SMALL_BATCHES", "SMALL_BN_BATCH", "SMALLEST_BATCHES", "Verdict",
    "verdict_bn_batch_independent", "verdict_bn_widens_gap", "verdict_curves_small_ahead",
    "verdict_equal_steps", "verdict_range_shrinks", "verdict_small_batches_best",
    "verdict_small_bn_batch", "verdict_smallest_best", "verdict_warmup",
    # selection
    "RESAMPLES", "assess", "assess_together", "Assessed", "bests", "curves_reader",
    "equal_steps_reader", "held_out_best", "held_out_overview", "on_bests", "range_reader",
    "resample_seeds", "warmup_reader",
    # experiments
    "batch_lr_studies", "batch_lr_verdicts", "best_lr_table", "curves_at_best",
    "curves_verdicts", "fall_with_m_text", "ghost_edges_text", "ghost_verdicts",
    "last_epoch_table", "lowest_loss_text", "lowest_training_loss", "margins_style",
    "protocol_tables", "resting_margins", "stored_trials", "study_notes", "verdict_counts",
    "warmup_edges", "warmup_sets", "warmup_side_by_side", "warmup_steps_text",
    "warmup_verdicts", "weight_decay_table", "window_edges",
    # report
    "BATCH_LR_STUDIES", "FULL_ONLY_STUDIES", "ONE_POINT_SHARE", "PUBLISHED_STUDIES",
    "SCALED_ONLY_STUDIES", "SCALED_TARGET_CPU_HOURS", "TRAINING_STUDIES", "claims_style",
    "cost_summary", "discussion", "full_protocol_table", "margins_overview", "missing_note",
    "process_hours", "scaled_costs", "seeds_overview", "study_protocol", "verdict_table",
    # tables
    "MISSING", "TABLE_KINDS", "downloads_html", "epochs_table", "table_file_name",
    "trials_table", "write_tables",
    # costs
    "PAPER_GRID_BATCH_SIZES", "TARGET_GRID_SPEEDUP", "TARGET_RATE_RATIO", "BenchmarkRecords",
    "captured_step", "cost_check_table", "cost_check_text", "engine_targets", "EngineRecords",
    "ensemble_cap_summary", "ensemble_cap_text", "full_cost_shown", "full_scale_status",
    "gpu_against_cpu", "gpu_against_cpu_text", "hours_by_study", "hours_notes",
    "load_benchmarks", "load_engine_benchmarks", "machine", "machine_lines",
    "paper_grid_examples", "paper_grid_hours", "reference_ceiling", "seed_packing",
    "throughput_machine", "throughput_table", "vmap_against_grouped",
    # explorer
    "best_cell", "cell_text", "explorer_data", "explorer_sets",
]
