"""Training's side of checkpoints: the state a checkpoint carries (``TrainingState``, described
once for saving and resuming), the resume key it must match, and the data digest.

The checkpoint file itself (format, save, load with ``weights_only=True``) is ``ganstudy.runs``,
re-exported here: the stages after train read run folders without importing the loop.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganstudy.codebase import PACKAGE, PACKAGE_DIR, closure
from ganstudy.names import CHECKPOINT_NAME as CHECKPOINT_NAME
from ganstudy.runs import FORMAT as FORMAT
from ganstudy.runs import RESTART as RESTART
from ganstudy.runs import load_checkpoint as load_checkpoint
from ganstudy.runs import save_checkpoint as save_checkpoint


@dataclass
class TrainingState:
    """Everything of a run in progress that a checkpoint saves and a resume restores: the
    networks, optimizers, G's moving average and the random states. Its entries are listed
    once (``_entries``): ``state_dict`` saves them, ``load_state_dict`` restores the same keys.
    ``G_eval`` names the entry evaluate scores (``G_ema`` when G is averaged, else ``G``)."""

    G: nn.Module
    D: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer | None  # None: no D to train (a VAE)
    G_ema: nn.Module | None  # the EMA of G (its module: no n_averaged), or None without EMA
    sampler: torch.Generator  # the loop's batch sampler
    device: torch.device

    def _entries(self) -> dict[str, tuple[Callable[[], Any], Callable[[Any], Any], bool]]:
        """key -> (save, restore, required on resume)."""
        entries = {
            "G": (self.G.state_dict, self.G.load_state_dict, True),  # raw weights, for resuming
            **(
                {}
                if self.G_ema is None
                else {"G_ema": (self.G_ema.state_dict, self.G_ema.load_state_dict, True)}
            ),
            "D": (self.D.state_dict, self.D.load_state_dict, True),
            "opt_G": (self.opt_G.state_dict, self.opt_G.load_state_dict, True),
            "opt_D": (
                (lambda: {}, lambda _: None, True)
                if self.opt_D is None
                else (self.opt_D.state_dict, self.opt_D.load_state_dict, True)
            ),
            "rng_cpu": (torch.get_rng_state, torch.set_rng_state, True),
            "rng_sampler": (self.sampler.get_state, self.sampler.set_state, True),
        }
        if self.device.type == "cuda":
            # On CUDA, Dropout draws from the device's own generator, not the CPU one: the run's
            # device only (resuming with fewer or more GPUs visible still works); a checkpoint
            # written on the CPU has none.
            entries["rng_cuda"] = (
                lambda: torch.cuda.get_rng_state(self.device),
                lambda state: torch.cuda.set_rng_state(state, self.device),
                False,
            )
        return entries

    def state_dict(self) -> dict[str, Any]:
        return {
            "G_eval": "G" if self.G_ema is None else "G_ema",
            **{key: save() for key, (save, _, _) in self._entries().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a checkpoint's ``state`` (loaded on the CPU: RNG states must stay there)."""
        for key, (_, restore, required) in self._entries().items():
            if required or key in state:
                restore(state[key])


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
