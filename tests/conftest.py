"""Test environment: offline, quiet, and isolated from the user's stores and caches."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

_TMP = Path(tempfile.mkdtemp(prefix="ganstudy-tests-"))
os.environ.update(
    {
        # Isolate every store and cache this project or its libraries touch.
        "MLFLOW_TRACKING_URI": f"sqlite:///{_TMP / 'mlflow.db'}",
        "GANSTUDY_DATA_HOME": str(_TMP / "data-home"),
        "PREFECT_HOME": str(_TMP / "prefect"),
        "TORCH_HOME": str(_TMP / "torch"),
        "XDG_CONFIG_HOME": str(_TMP / "config"),
        # Quiet and offline: no telemetry, no update checks.
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "DVC_NO_ANALYTICS": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "TQDM_DISABLE": "1",
    }
)
os.environ.pop("PREFECT_API_URL", None)

from ganstudy._torchvision import ensure_torchvision_imports  # noqa: E402

ensure_torchvision_imports()  # lets torchvision (and pytorch-fid) import on the CPU torch

ROOT = Path(__file__).resolve().parents[1]
_MLFLOW_TEMPLATE = _TMP / "mlflow-template.db"


def fresh_mlflow_uri(folder: Path) -> str:
    """An empty sqlite MLflow store in `folder`, copied from one made once per session: MLflow
    builds a new store's schema with its alembic migrations (seconds), a copy takes milliseconds."""
    if not _MLFLOW_TEMPLATE.exists():
        import mlflow

        mlflow.MlflowClient(f"sqlite:///{_MLFLOW_TEMPLATE}").search_experiments()
    shutil.copyfile(_MLFLOW_TEMPLATE, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def tiny_params() -> dict:
    """The real params.yaml shrunk to seconds on a CPU: sklearn digits, a few iterations."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["study"].update(name="tiny", seeds=[0, 1])
    params["download"].update(dataset="digits")
    params["preprocess"].update(image_size=28, n_per_class=12)
    params["augment"].update(copies=1)
    params["reference"].update(epochs=1, batch_size=32, feature_dim=16)
    params["train"].update(
        iterations=4, batch_size=8, log_every=1, sample_every=2, checkpoint_every=2, grid_size=4
    )
    params["evaluate"].update(num_samples=120, batch_size=60, is_splits=2)
    return params


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    return path
