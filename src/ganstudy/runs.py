"""A run folder's files as the stages after train read them: the self-describing checkpoint,
the link to the item's MLflow run, and a per-class run's index (names: ``ganstudy.names``).

Checkpoints hold state dicts plus everything needed to rebuild the models, and load with
``torch.load(..., weights_only=True)``: only tensors, numbers, strings and containers are
stored, never pickled code. Training writes them (``ganstudy.training``); evaluate, the
report and the studies read them through here without importing the loop.
"""

from pathlib import Path
from typing import Any

import torch

from ganstudy.errors import GanstudyError
from ganstudy.io import read_json, save_torch
from ganstudy.names import PER_CLASS_FILE, RUN_FILE

FORMAT = 1
# Only the latest checkpoint is kept (each one replaces the last atomically, so a kill never
# leaves half a file); one that is damaged afterwards has no earlier one to fall back to.
RESTART = (
    "delete the run folder {} to train it from the start, "
    "or restore it with `dvc checkout` if DVC has it"
)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    save_torch(path, {"format": FORMAT, **state})


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GanstudyError(f"{path}: checkpoint missing; run the train stage first (dvc repro)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 (torch raises many types for corrupt files)
        why = f"corrupt or unreadable checkpoint ({type(err).__name__})"
        raise GanstudyError(f"{path}: {why}; {RESTART.format(path.parent)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GanstudyError(
            f"{path}: not a ganstudy checkpoint of format {FORMAT}; {RESTART.format(path.parent)}"
        )
    return state


def read_per_class(run_dir: str | Path) -> dict[str, Any] | None:
    """A per-class run folder's ``per_class.json`` (seed, classes, names, folders, class seeds,
    training images per class); None for a run folder of one model."""
    path = Path(run_dir) / PER_CLASS_FILE
    return read_json(path) if path.is_file() else None


def read_run_id(run_dir: str | Path) -> str | None:
    """The MLflow run the run folder's ``run.json`` links it to; None without one."""
    path = Path(run_dir) / RUN_FILE
    return read_json(path).get("run_id") if path.is_file() else None
