"""The CycleGAN game (Zhu et al. 2017) as GANs in Action ch. 9 trains it (listings 9.3, 9.6).

For architecture ``cyclegan``. The loop draws mixed batches: images x (B, C, H, W) and their
domains y (B,), 0 = A, 1 = B; G(x, y) translates each image into the other domain, and
D(x, d) scores each image with the PatchGAN of domain d[i]. Every term below is a mean over the
images of one domain (squared or absolute errors averaged over patches or pixels), and the two
domains' terms are added, as the book's Keras model adds one loss per output (listing 9.3: outputs
D_A(G_BA(b)), D_B(G_AB(a)), G_BA(G_AB(a)), G_AB(G_BA(b)), G_BA(a), G_AB(b), losses mse, mse, mae,
mae, mae, mae, weights 1, 1, 10, 10, 9, 9):

- D (least squares; Table 9.1 writes the log form, the code uses MSE: book erratum §9.3),
  halved per D as the paper does ("we divide the objective by 2 while optimizing D"):
  L_D = sum_d 0.5 * [mean (D_d(x_d) - 1)^2 + mean D_d(G(x_{other}))^2].
- G: sum_d mean (D_d(G(x_{other})) - 1)^2            adversarial, both directions
     + cycle_weight * sum_d mean |G(G(x_d)) - x_d|    A -> B -> A and B -> A -> B
     + identity_weight * sum_d mean |G_{into d}(x_d) - x_d|  (G_BA(a) = a, G_AB(b) = b).

``d_update``: "joint", one D update on L_D (D_A and D_B share no parameters: both step at once);
"separate", the book's listing 9.6 order: four updates on unhalved MSE terms, D_A on reals of A,
D_A on translations into A, D_B on reals of B, D_B on translations into B.
The loop's instance noise is applied to everything D sees; the cycle and identity terms compare
clean images. Not implemented: the paper's history buffer of 50 past translations shown to D
(the book's code has none either; the loop checkpoints networks, optimizers and random states but
no game state, so a buffer would break exact resume) and its linear learning-rate decay.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, Batch, Noise, Stats, StepGame, Update
from ganstudy.models import translates

D_UPDATES = ("joint", "separate")


def squared_error(scores: torch.Tensor, target: float) -> torch.Tensor:
    """Per-image mean of (score - target)^2 over D's patch map (B, P, P): (B,)."""
    return ((scores - target) ** 2).flatten(1).mean(1)


def absolute_error(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image mean |x - target| over (C, H, W): (B,)."""
    return (x - target).abs().flatten(1).mean(1)


def domain_means(values: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """(2,): the mean of per-image ``values`` (B,) over the images of domain 0 and of domain 1;
    0 for a domain with no image in the batch."""
    onehot = F.one_hot(domains, 2).to(values.dtype)  # (B, 2)
    return (values[:, None] * onehot).sum(0) / onehot.sum(0).clamp_min(1)  # (2,)


def _check_non_negative(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise GanstudyError(f"{name} must be a finite number >= 0 (got {value!r})")


def _check_players(G: nn.Module, D: nn.Module, batch: Batch) -> torch.Tensor:
    """The batch's domains (B,); one clear error for networks this game cannot train."""
    if not translates(G) or not hasattr(D, "judge") or batch.y is None:
        raise GanstudyError("game 'cyclegan' needs architecture cyclegan and two-domain labels")
    return batch.y


@GAMES.add
@dataclass
class CycleGAN(StepGame):
    """Zhu et al. 2017, CycleGAN (book ch. 9): LSGAN both ways + L1 cycle and identity losses."""

    name = "cyclegan"
    description = (
        "CycleGAN: least squares on both PatchGANs + cycle_weight * L1(F(G(x)), x) + "
        "identity_weight * L1(G_into_d(x_d), x_d), summed over both domains"
    )
    arch = "cyclegan"
    # G's step runs G three times (translation, cycle, identity) on its own real batch.
    fakes_reusable: ClassVar[bool] = False
    cycle_weight: float = 10.0  # lambda_cyc (book listing 9.2 and the paper: 10)
    identity_weight: float = 9.0  # book: 0.9 * lambda_cyc = 9; paper: 0.5 * lambda_cyc = 5
    d_update: str = "joint"  # joint: one D update; separate: the book's four (listing 9.6)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_non_negative("cycle_weight", self.cycle_weight)
        _check_non_negative("identity_weight", self.identity_weight)
        if self.d_update not in D_UPDATES:
            raise GanstudyError(f"d_update must be joint or separate (got {self.d_update!r})")

    def d_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        y = _check_players(G, D, batch)  # (B,) domains
        with torch.no_grad():
            fake = G(batch.real, y)  # (B, C, H, W): image i now in domain 1 - y[i]
        real, fake = noise(batch.real), noise(fake)
        if self.d_update == "separate":
            return self._separate_d_step(D, real, fake, y, update)
        real_terms = domain_means(squared_error(D(real, y), 1.0), y)  # (2,) D_A, D_B on reals
        fake_terms = domain_means(squared_error(D(fake, 1 - y), 0.0), 1 - y)  # on translations
        per_d = 0.5 * (real_terms + fake_terms)  # (2,) L_D_A, L_D_B
        loss = per_d.sum()
        update(loss)
        return loss, _d_stats(real_terms.detach(), fake_terms.detach())

    def _separate_d_step(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        """Listing 9.6: D_A real, D_A fake, D_B real, D_B fake, each judged after the last step."""
        zero = real.new_zeros(())  # a missing term's value, on the device as the others
        terms = {True: [zero, zero], False: [zero, zero]}  # is_real -> [domain A, domain B]
        for d in (0, 1):
            # Domain d's reals, then the translations into domain d (from images of 1 - d).
            for is_real, images in ((True, real[y == d]), (False, fake[y == 1 - d])):
                if len(images):  # a small batch may miss a domain: no term, no update
                    term = squared_error(D.judge(images, d), float(is_real)).mean()
                    update(term)
                    terms[is_real][d] = term.detach()
        loss = 0.5 * (sum(terms[True]) + sum(terms[False]))  # L_D as in the joint update
        return loss, _d_stats(terms[True], terms[False])

    def g_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        y = _check_players(G, D, batch)  # (B,) domains
        x = batch.real  # (B, C, H, W)
        fake = G(x, y)  # (B, C, H, W): image i now in domain 1 - y[i]
        scores = D(noise(fake), 1 - y)  # (B, P, P): each by the D of its new domain
        adversarial = domain_means(squared_error(scores, 1.0), 1 - y).sum()
        # A term with weight 0 is still measured (without a graph), so ablations log it too.
        with torch.set_grad_enabled(self.cycle_weight > 0):
            cycle = domain_means(absolute_error(G(fake, 1 - y), x), y).sum()  # back into y
        with torch.set_grad_enabled(self.identity_weight > 0):
            # G(x, 1 - y) is the generator into domain y: it should leave x as it is.
            identity = domain_means(absolute_error(G(x, 1 - y), x), y).sum()
        loss = adversarial + self.cycle_weight * cycle + self.identity_weight * identity
        update(loss)
        stats = {
            "G/adversarial": adversarial.detach(),
            "G/cycle": cycle.detach(),
            "G/identity": identity.detach(),
            "D/score_fake": scores.mean().detach(),
        }
        return loss, stats


def _d_stats(
    real: Sequence[torch.Tensor] | torch.Tensor, fake: Sequence[torch.Tensor] | torch.Tensor
) -> Stats:
    """D's terms: per D (0.5 * (real + fake), as L_D) and per kind (summed over both Ds)."""
    return {
        "D/loss_A": 0.5 * (real[0] + fake[0]),
        "D/loss_B": 0.5 * (real[1] + fake[1]),
        "D/loss_real": real[0] + real[1],
        "D/loss_fake": fake[0] + fake[1],
    }
