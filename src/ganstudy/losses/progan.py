"""ProGAN's game (Karras et al. 2017, §A.1; GANs in Action ch. 6): WGAN-GP plus a drift term."""

from dataclasses import dataclass

import torch
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, Stats, WassersteinGP, gradient_penalty


@GAMES.add
@dataclass
class ProGAN(WassersteinGP):
    """Karras et al. 2017: WGAN-GP's critic loss + drift * E[D(x)^2] on reals, one D step per G."""

    name = "progan"
    description = (
        "ProGAN: WGAN-GP (gp_weight 10) + drift * E[D(x)^2] on D's real scores (drift 0.001), "
        "n_critic 1"
    )
    arch = "progan"
    # epsilon_drift: keeps D's scores near 0 (the official code's D_wgangp_acgan, wgan_epsilon).
    drift: float = 0.001
    d_steps: int = 1  # the paper alternates one D and one G step (n_critic 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        value = self.drift
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise GanstudyError(f"drift must be a number >= 0 (got {value!r})")

    def d_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        # D sees all-real then all-fake batches, so its minibatch std groups never mix the two.
        # Its groups make samples interact in D, so the penalty's gradient of the summed scores
        # has cross-sample terms; the official code takes the same gradient.
        d_real, d_fake = D(real), D(fake)  # (B,) scores
        distance = d_real.mean() - d_fake.mean()
        penalty, norm = gradient_penalty(D, real, fake)
        penalty = self.gp_weight * penalty
        drift = self.drift * d_real.pow(2).mean()
        stats = {
            "D/wasserstein": distance.detach(),
            "D/gradient_penalty": penalty.detach(),
            "D/grad_norm": norm.mean().detach(),
            "D/drift": drift.detach(),
        }
        return -distance + penalty + drift, stats
