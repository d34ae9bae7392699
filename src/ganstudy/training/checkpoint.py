"""Training's side of checkpoints: the resume key a checkpoint must match, and the data digest.

The checkpoint file itself (format, save, load) is ``ganstudy.runs``, re-exported here: the
stages after train read run folders without importing the loop.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ganstudy.codebase import PACKAGE, PACKAGE_DIR, closure
from ganstudy.names import CHECKPOINT_NAME as CHECKPOINT_NAME
from ganstudy.runs import FORMAT as FORMAT
from ganstudy.runs import RESTART as RESTART
from ganstudy.runs import load_checkpoint as load_checkpoint
from ganstudy.runs import save_checkpoint as save_checkpoint


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
