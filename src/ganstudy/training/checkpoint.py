"""Self-describing checkpoints: state dicts plus everything needed to rebuild the models.

Loaded with ``torch.load(..., weights_only=True)``: only tensors, numbers, strings and
containers are stored, never pickled code.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ganstudy.errors import GanstudyError
from ganstudy.io import save_torch

FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"


def resume_key(resolved: dict[str, Any]) -> str:
    """What a checkpoint must match to be resumed: the resolved config (data digest included)
    and the training code. A finished run re-triggered by changed code or data starts afresh."""
    h = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode())
    package = Path(__file__).resolve().parents[1]
    for path in sorted(
        [*package.glob("training/*.py"), *package.glob("models/*.py"), *package.glob("losses/*.py")]
    ):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def tensor_digest(x: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes (zero-copy through a memoryview)."""
    array = x.detach().cpu().contiguous().numpy()
    return hashlib.sha256(memoryview(array).cast("B")).hexdigest()[:16]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    save_torch(path, {"format": FORMAT, **state})


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GanstudyError(f"{path}: checkpoint missing; run the train stage first (dvc repro)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 (torch raises many types for corrupt files)
        raise GanstudyError(
            f"{path}: corrupt or unreadable checkpoint ({type(err).__name__})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GanstudyError(f"{path}: not a ganstudy checkpoint of format {FORMAT}")
    return state
