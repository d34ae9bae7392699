"""The GAN games. A game owns the objective: what D and G minimise and how many D steps it takes.

The training loop only schedules: it asks the game for D's loss ``d_steps`` times, then G's.
D returns logits (B,); games that need probabilities apply the sigmoid themselves.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.registry import Registry

Stats = dict[str, float]


class Game(ABC):
    """One GAN objective. Subclasses take their options as constructor keywords."""

    description: str = ""
    d_steps: int = 1  # D updates per G update

    @abstractmethod
    def d_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        """D's loss on a real batch and a (detached) fake batch."""

    @abstractmethod
    def g_loss(self, D: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        """G's loss on a fake batch that still carries G's graph."""


GAMES: Registry[type[Game]] = Registry("game")


def build_game(name: str, game_args: dict) -> Game:
    cls = GAMES.get(name)
    try:
        return cls(**game_args)
    except TypeError as err:
        raise GanstudyError(f"game {name!r}: {err}") from None


@GAMES.register("nonsaturating")
@dataclass
class NonSaturating(Game):
    """Goodfellow et al. 2014, the heuristic G loss -log D(G(z)) (book eq. 5.3/5.4)."""

    description = "non-saturating GAN: D max log D(x) + log(1 - D(G(z))), G max log D(G(z))"

    def d_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        # Separate passes, as in the book: BatchNorm sees all-real then all-fake statistics.
        d_real, d_fake = D(real), D(fake)  # (B,) logits
        loss_real = F.softplus(-d_real).mean()  # -log sigmoid(d_real)
        loss_fake = F.softplus(d_fake).mean()  # -log(1 - sigmoid(d_fake))
        stats = {
            "D/loss_real": loss_real.item(),
            "D/loss_fake": loss_fake.item(),
            "D/accuracy": 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean()).item(),
        }
        return loss_real + loss_fake, stats

    def g_loss(self, D: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        d_fake = D(fake)
        return F.softplus(-d_fake).mean(), {"D/score_fake": torch.sigmoid(d_fake).mean().item()}
