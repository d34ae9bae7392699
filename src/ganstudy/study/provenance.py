"""What produced a report: the command, the git and DVC revisions, the MLflow runs."""

import hashlib
import os
import subprocess
from pathlib import Path

import yaml

from ganstudy.config import StudyConfig, TrackingConfig
from ganstudy.names import PARAMS_FILE
from ganstudy.runs import read_run_id

UI = "http://127.0.0.1:5000"  # `make mlflow-ui` (MLFLOW_PORT 5000)
# MLflow 3.17's UI shows an experiment in its GenAI view unless the browser picked "Model
# training" (it ignores the experiment's mlflow.experimentKind tag); links select it.
TRAINING_VIEW = "?workflowType=machine_learning"


def ui_link(experiment: str, run_id: str | None = None) -> str:
    """The MLflow UI's page of an experiment, or of one of its runs, in the training view."""
    run = f"/runs/{run_id}" if run_id else ""
    return f"{UI}/#/experiments/{experiment}{run}{TRAINING_VIEW}"


def git_revision(root: str | Path = ".") -> str:
    """``<commit>`` plus a note when the working tree differs from it (a `dvc exp run`
    workspace experiment always does: its params live in params.yaml until committed).
    Changes DVC makes itself do not count: the rewritten ``dvc.lock`` and the stages' outputs
    (listed in it) that git tracks, such as metrics and this report, differ after any run
    from a clean checkout."""
    try:
        commit = _git(root, "rev-parse", "HEAD")
        status = _git(root, "status", "--porcelain", "-z", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    outputs = dvc_outputs(Path(root) / "dvc.lock")
    changed = [
        path
        for path in _porcelain_paths(status)
        if path != "dvc.lock" and not any(path == o or path.startswith(f"{o}/") for o in outputs)
    ]
    return commit + (" with uncommitted changes" if changed else "")


def _porcelain_paths(status: str) -> list[str]:
    """Paths of ``git status --porcelain -z`` (``XY path``; a rename adds its old path)."""
    entries, paths = status.split("\0"), []
    i = 0
    while i < len(entries):
        entry = entries[i]
        if entry:
            paths.append(entry[3:])
            if entry[0] in "RC":  # the next field is the rename's or copy's source
                paths.append(entries[i + 1])
                i += 1
        i += 1
    return paths


def dvc_outputs(lock: Path) -> list[str]:
    """The output paths of every stage in ``dvc.lock`` (none when it is missing or unreadable:
    then every change counts)."""
    try:
        stages = yaml.safe_load(lock.read_text(encoding="utf-8")).get("stages", {})
        return [
            str(out["path"]).rstrip("/")
            for stage in stages.values()
            for out in stage.get("outs", [])
        ]
    except (OSError, yaml.YAMLError, AttributeError, TypeError, KeyError):
        return []


def _git(root: str | Path, *args: str) -> str:
    # Not stripped: -z output ends in a NUL and a path may start with a space.
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return out.stdout.rstrip("\n")


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
            experiment_name(tracking, study.name) + (f" ({ui_link(eid)})" if eid else ""),
        )
    ]
    for variant in study.variants:
        for seed in study.seeds:
            run_id = read_run_id(models_dir / variant / str(seed))
            if run_id:
                link = ui_link(eid, run_id) if eid else run_id
                rows.append((f"MLflow run {variant} seed {seed}", link))
    return rows
