"""What produced a report: the command, the git and DVC revisions, the MLflow runs."""

import hashlib
import os
import subprocess
from pathlib import Path

from ganstudy.config import PARAMS_FILE, StudyConfig, TrackingConfig
from ganstudy.io import read_json
from ganstudy.training.run import RUN_FILE

UI = "http://127.0.0.1:5000"  # `make mlflow-ui` (MLFLOW_PORT 5000)


def git_revision(root: str | Path = ".") -> str:
    """``<commit>`` plus a note when the working tree differs from it (a `dvc exp run`
    workspace experiment always does: its params live in params.yaml until committed)."""
    try:
        commit = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return commit + (" with uncommitted changes" if dirty else "")


def _git(root: str | Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def provenance(
    study: StudyConfig,
    study_file: str | None,
    models_dir: str | Path,
    tracking: TrackingConfig | None,
    params_path: str | Path = PARAMS_FILE,
) -> list[tuple[str, str]]:
    """(what, value) rows for the report page."""
    size = study.name.removeprefix(f"{study_file}-") if study_file else None
    command = f"ganstudy study run {study_file} --size {size}" if study_file else "dvc repro"
    rows = [("command", command), ("git", git_revision())]
    for var, what in (("DVC_EXP_NAME", "DVC experiment"), ("DVC_EXP_BASELINE_REV", "DVC baseline")):
        if os.environ.get(var):  # set by `dvc exp run` for its stages
            rows.append((what, os.environ[var]))
    params = Path(params_path)
    if params.is_file():
        rows.append(("params.yaml sha256", hashlib.sha256(params.read_bytes()).hexdigest()[:16]))
    rows += _mlflow_rows(study, Path(models_dir), tracking)
    return rows


def _mlflow_rows(
    study: StudyConfig, models_dir: Path, tracking: TrackingConfig | None
) -> list[tuple[str, str]]:
    from ganstudy.tracking import experiment_id, experiment_name

    if tracking is None:
        return []
    eid = experiment_id(tracking, study.name)
    rows = [
        (
            "MLflow experiment",
            experiment_name(tracking, study.name) + (f" ({UI}/#/experiments/{eid})" if eid else ""),
        )
    ]
    for variant in study.variants:
        for seed in study.seeds:
            run_file = models_dir / variant / str(seed) / RUN_FILE
            run_id = read_json(run_file).get("run_id") if run_file.is_file() else None
            if run_id:
                link = f"{UI}/#/experiments/{eid}/runs/{run_id}" if eid else run_id
                rows.append((f"MLflow run {variant} seed {seed}", link))
    return rows
