"""Self-describing checkpoints: state dicts plus everything needed to rebuild the models.

Loaded with ``torch.load(..., weights_only=True)``: only tensors, numbers, strings and
containers are stored, never pickled code.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ganstudy.codebase import PACKAGE, PACKAGE_DIR, closure
from ganstudy.errors import GanstudyError
from ganstudy.io import save_torch

FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"
# Only the latest checkpoint is kept (each one replaces the last atomically, so a kill never
# leaves half a file); one that is damaged afterwards has no earlier one to fall back to.
RESTART = (
    "delete the run folder {} to train it from the start, "
    "or restore it with `dvc checkout` if DVC has it"
)


def resume_key(resolved: dict[str, Any]) -> str:
    """What a checkpoint must match to be resumed: the resolved config (data digest included)
    and the code the run executes (``code_files``). A finished run re-triggered by changed code
    or data starts afresh; a change to code the run does not load (another architecture's
    module, say) leaves it alone."""
    h = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode())
    variant = resolved["variant"]
    for path in code_files(variant["arch"], variant["game"]):
        # The file's place in the package too: a moved module is different code.
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def code_files(arch: str, game: str) -> list[Path]:
    """The package's source files a run of architecture ``arch`` and game ``game`` executes:
    what the training loop imports, and the modules defining the architecture and the game
    with what they import. The registries' other plugin modules are loaded too, only to
    register their names, so they are left out."""
    from ganstudy.losses import GAMES
    from ganstudy.models import ARCHITECTURES

    modules = {
        "ganstudy.training.loop",
        ARCHITECTURES.get(arch).build.__module__,
        *(cls.__module__ for cls in GAMES.get(game).__mro__),  # a game may extend another's
    }
    return sorted(closure([m for m in modules if m.split(".")[0] == PACKAGE], False))


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
        why = f"corrupt or unreadable checkpoint ({type(err).__name__})"
        raise GanstudyError(f"{path}: {why}; {RESTART.format(path.parent)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GanstudyError(
            f"{path}: not a ganstudy checkpoint of format {FORMAT}; {RESTART.format(path.parent)}"
        )
    return state
