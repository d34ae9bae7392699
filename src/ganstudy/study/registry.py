"""The report stage's MLflow side: register the study's best generator (lowest primary FID)
as ``models:/ganstudy-<study>@champion``, give the study execution's parent run the study's
summary and report page, and close it."""

import math
from pathlib import Path

import pandas as pd

from ganstudy.config import StudyConfig, TrackingConfig
from ganstudy.metrics import PER_CLASS
from ganstudy.names import PARAMS_FILE
from ganstudy.runs import read_per_class, read_run_id
from ganstudy.study.provenance import ui_link


def primary_fid(runs: pd.DataFrame) -> str | None:
    """The study's FID column (``fid_domain_10k_test``): the first ``fid_*`` that is not a
    per-class one; None when evaluate computed no FID."""
    return next((c for c in runs.columns if c.startswith("fid_") and "_class" not in c), None)


def candidates(runs: pd.DataFrame, models_dir: str | Path) -> list:
    """A ``tracking.Candidate`` per run of one generator (per-class runs have several) with an
    MLflow run and a finite primary FID."""
    from ganstudy.tracking import Candidate

    metric = primary_fid(runs)
    if metric is None:
        return []
    found = []
    for row in runs.itertuples(index=False):
        run_dir = Path(models_dir) / str(row.variant) / str(row.seed)
        value = float(getattr(row, metric))
        if read_per_class(run_dir) is not None or not math.isfinite(value):
            continue
        run_id = read_run_id(run_dir)
        if run_id:
            found.append(Candidate(run_id, metric, value, str(row.variant), int(row.seed)))
    return found


def record_execution(
    runs: pd.DataFrame,
    study: StudyConfig,
    models_dir: str | Path,
    tracking: TrackingConfig,
    params_path: str | Path = PARAMS_FILE,
) -> list[tuple[str, str]]:
    """Find the execution's parent run, register the champion; (what, value) rows saying so
    for the report's provenance (``close_execution`` closes the parent once the page is
    written). A tracking store that is down is one clear error."""
    from ganstudy.tracking import experiment_id, find_study_run, register_champion

    parent = find_study_run(tracking, study.name, params_path=params_path)
    eid = experiment_id(tracking, study.name)
    link = ui_link(eid, parent) if parent else "none (no item ran)"
    rows = [("MLflow parent run", link)]
    champion = register_champion(tracking, study.name, candidates(runs, models_dir))
    if champion is None:
        return [*rows, ("MLflow model", "none registered (no run with one generator and a FID)")]
    best = champion.candidate
    what = "registered" if champion.changed else "unchanged"
    rows.append(
        (
            "MLflow model",
            f"{champion.uri} = {champion.name} version {champion.version} ({what}): "
            f"{best.variant} seed {best.seed}, {best.metric} {best.value:.4g}, "
            f"run {best.run_id}",
        )
    )
    return rows


def summary_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """The report table's per-variant means as parent-run metrics ``<metric>/<variant>``: the
    UI groups charts by the part before the slash, so each metric's section holds a chart per
    variant. Per-class values and undefined means (no finite value) are left out."""
    return {
        f"{row.metric}/{row.variant}": float(row.mean)
        for row in summary.itertuples(index=False)
        if not PER_CLASS.search(str(row.metric)) and math.isfinite(row.mean)
    }


def close_execution(
    summary: pd.DataFrame,
    study: StudyConfig,
    tracking: TrackingConfig,
    report_dir: str | Path,
    params_path: str | Path = PARAMS_FILE,
) -> str | None:
    """Log the study summary (``summary_metrics``) and the report folder into the execution's
    parent run and close it (see ``tracking.finish_study_run``); its id, or None when no item
    of this execution ran."""
    from ganstudy.tracking import finish_study_run

    return finish_study_run(
        tracking,
        study.name,
        params_path=params_path,
        metrics=summary_metrics(summary),
        report_dir=report_dir,
    )
