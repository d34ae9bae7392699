"""The only module that talks to MLflow. Everyone else reports named scalars and files here.

One experiment per study (``ganstudy/<study>``), one run per variant x seed. The tracking URI is
``tracking.uri`` from ``params.yaml`` unless ``MLFLOW_TRACKING_URI`` is set.
"""

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import torch

from ganstudy.config import TrackingConfig
from ganstudy.errors import GanstudyError

# Bounded retries, so a tracking server that is down fails a stage in seconds, not minutes.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")

import mlflow  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


def tracking_uri(cfg: TrackingConfig, root: str | Path = ".") -> str:
    """The URI in force; a relative ``sqlite:///`` path is anchored at the project root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.uri
    match = re.fullmatch(r"sqlite:///(?!/)(.+)", uri)
    if match:
        uri = f"sqlite:///{(Path(root) / match.group(1)).resolve()}"
    return uri


def experiment_name(cfg: TrackingConfig, study: str) -> str:
    return f"{cfg.experiment_prefix}/{study}"


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"train.batch_size": "64", ...}`` as MLflow params want."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


class Run:
    """An active MLflow run; methods mirror what the loop and stages report."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        flat = flatten(params)
        existing = mlflow.get_run(self.run_id).data.params
        mlflow.log_params({k: v for k, v in flat.items() if k not in existing})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        mlflow.log_artifact(str(path), artifact_path=folder)

    def log_generator(self, G: torch.nn.Module, name: str = "generator") -> str:
        """Log G as an MLflow PyTorch model; returns its model URI."""
        import mlflow.pytorch

        import ganstudy

        # Pickle is deliberate (the class ships in code_paths); its caution is logged as a warning.
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
        info = mlflow.pytorch.log_model(
            G.cpu().eval(),
            name=name,
            serialization_format="pickle",  # pt2 would need an input example and more time
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],  # skips slow inference
            code_paths=[str(Path(ganstudy.__file__).parent)],  # loadable without ganstudy installed
        )
        return info.model_uri


@contextmanager
def start_run(
    cfg: TrackingConfig,
    study: str,
    run_name: str,
    tags: Mapping[str, str],
    run_id: str | None = None,
    root: str | Path = ".",
) -> Iterator[Run]:
    """Start (or resume, given ``run_id``) a run in the study's experiment."""
    uri = tracking_uri(cfg, root)
    try:
        mlflow.set_tracking_uri(uri)
        name = experiment_name(cfg, study)
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            artifacts = None
            if uri.startswith("sqlite:"):
                artifacts = (Path(root) / cfg.artifacts).resolve().as_uri()
            experiment_id = mlflow.create_experiment(name, artifact_location=artifacts)
        else:
            experiment_id = experiment.experiment_id
        if run_id is not None and not _run_exists(run_id, experiment_id):
            run_id = None  # the store was reset; start afresh rather than fail
        active = mlflow.start_run(
            run_id=run_id,
            experiment_id=experiment_id,
            run_name=None if run_id else run_name,
            tags=dict(tags),
        )
    except (MlflowException, OSError) as err:
        raise GanstudyError(f"MLflow tracking at {uri} is unavailable: {_short(err)}") from None
    status = "FAILED"
    try:
        yield Run(active.info.run_id)
        status = "FINISHED"
    except MlflowException as err:  # e.g. the tracking server went down mid-run
        raise GanstudyError(
            f"MLflow tracking at {uri} failed: {_short(err)} (local outputs are kept; "
            "rerun to resume)"
        ) from None
    finally:
        with suppress(MlflowException):  # an unreachable store: the error above says so
            mlflow.end_run(status=status)


def _run_exists(run_id: str, experiment_id: str) -> bool:
    try:
        return mlflow.get_run(run_id).info.experiment_id == experiment_id
    except MlflowException:
        return False


def _short(err: Exception) -> str:
    return str(err).strip().splitlines()[0][:300]


def experiment_id(cfg: TrackingConfig, study: str, root: str | Path = ".") -> str | None:
    """The study's MLflow experiment id; None when it does not exist or the store is down."""
    try:
        mlflow.set_tracking_uri(tracking_uri(cfg, root))
        experiment = mlflow.get_experiment_by_name(experiment_name(cfg, study))
    except (MlflowException, OSError):
        return None
    return None if experiment is None else experiment.experiment_id
