"""The semi-supervised GAN game (Salimans et al. 2016 §5; GANs in Action ch. 7, listing 7.9).

D is a K-class classifier whose real/fake logit is logsumexp of its class logits (arch sgan).
D minimises a supervised cross-entropy on a batch of the few labelled images plus the
unsupervised cross-entropy of real (target 1) against fake (target 0); G plays the
non-saturating game on the real/fake logit. The loop hands the labelled batch as
``Batch.labelled`` and hides every other label (``Batch.y`` is None).

Game sgan is a loss game whose D step adds the supervised term to its real/fake loss. Game
sgan-supervised, a step game with no loss on D's scores, is the book's baseline (§7.3): the same
D trained on the labelled batch's cross-entropy alone, G left as built; the book's table compares
their class heads on the test set.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, Batch, LossGame, Noise, Stats, StepGame, Update

D_UPDATES = ("joint", "separate")


def supervised_loss(
    D: nn.Module, images: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, Stats]:
    """Cross-entropy of D's class logits on labelled images (book listing 7.6's softmax head)."""
    _, logits = D(images)  # (B, K)
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.argmax(1) == labels).float().mean()
    return loss, {"D/supervised_loss": loss.detach(), "D/class_accuracy": accuracy}


def unsupervised_term(D: nn.Module, x: torch.Tensor, is_real: bool) -> torch.Tensor:
    """BCE of D(x) = Z/(Z+1) against 1 (real) or 0 (fake), on D's logit logsumexp(l)."""
    logit, _ = D(x)  # (B,)
    # -log(Z/(Z+1)) = softplus(-logit); -log(1/(Z+1)) = softplus(logit).
    return F.softplus(-logit if is_real else logit).mean()


@GAMES.add
@dataclass
class SemiSupervised(LossGame):
    """Salimans et al. 2016 semi-supervised GAN: supervised CE + real/fake BCE for D, NS for G."""

    name = "sgan"
    description = (
        "semi-supervised GAN: D min class CE on the labelled batch + BCE(Z/(Z+1)) real vs fake, "
        "Z = sum exp(class logits); G max log D(G(z))"
    )
    needs_classifier = True
    needs_labelled_batch = True
    arch = "sgan"
    # joint: one D update on the summed loss; separate: the book's Keras order (listing 7.9),
    # one update on the labelled batch, then one on the real batch, then one on the fakes.
    d_update: str = "joint"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.d_update not in D_UPDATES:
            raise GanstudyError(f"d_update must be joint or separate (got {self.d_update!r})")

    def d_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        """One D step; separate passes per batch, so BatchNorm sees each batch on its own."""
        if batch.labelled is None:
            raise GanstudyError("game 'sgan' needs a labelled batch (variant `labelled`)")
        images, labels = batch.labelled  # (B, C, H, W), (B,)
        fake = self.d_fakes(G, batch)  # (B, C, H, W); the book's: made before any D update
        labelled, real, fake = noise(images), noise(batch.real), noise(fake)
        if self.d_update == "joint":
            supervised, stats = supervised_loss(D, labelled, labels)
            unsupervised, unsup_stats = self.d_loss(D, real, fake)
            loss = supervised + unsupervised
            update(loss)
            return loss, stats | unsup_stats
        supervised, stats = supervised_loss(D, labelled, labels)
        update(supervised)
        loss_real = unsupervised_term(D, real, is_real=True)  # D after its supervised update
        update(loss_real)
        loss_fake = unsupervised_term(D, fake, is_real=False)  # after its real update
        update(loss_fake)
        stats |= {"D/loss_real": loss_real.detach(), "D/loss_fake": loss_fake.detach()}
        return (supervised + loss_real + loss_fake).detach(), stats

    def d_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        """The unsupervised loss: -log D(x) - log(1 - D(G(z))) with D = Z/(Z+1)."""
        (d_real, _), (d_fake, _) = D(real), D(fake)  # (B,) logits each
        loss_real, loss_fake = F.softplus(-d_real).mean(), F.softplus(d_fake).mean()
        accuracy = 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean()).detach()
        stats = {"D/loss_real": loss_real.detach(), "D/loss_fake": loss_fake.detach()}
        return loss_real + loss_fake, stats | {"D/accuracy": accuracy}

    def g_loss(
        self, D: nn.Module, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        """Non-saturating: -log D(G(z)) on the real/fake logit (book: the gan model, target 1)."""
        d_fake, _ = D(fake)  # (B,) logits
        return F.softplus(-d_fake).mean(), {"D/score_fake": torch.sigmoid(d_fake).mean().detach()}


@GAMES.add
@dataclass
class SupervisedOnly(StepGame):
    """GANs in Action §7.3 baseline: SGAN's D trained on the labelled batch's class CE only."""

    name = "sgan-supervised"
    description = (
        "supervised baseline of the SGAN (book §7.3): D min class CE on the labelled batch; "
        "G is built but never updated"
    )
    needs_classifier = True
    needs_labelled_batch = True
    arch = "sgan"
    # G never changes (its phase makes no update).
    trains_generator: ClassVar[bool] = False
    fakes_reusable: ClassVar[bool] = False  # no fakes: its D step never runs G

    def d_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        """One update on supervised_loss alone: the book's classifier fit on the 100 labels."""
        if batch.labelled is None:
            raise GanstudyError(
                "game 'sgan-supervised' needs a labelled batch (variant `labelled`)"
            )
        images, labels = batch.labelled  # (B, C, H, W), (B,)
        loss, stats = supervised_loss(D, noise(images), labels)
        update(loss)
        return loss, stats

    def g_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        """No G step: G is not run and ``update`` is not called, so G keeps its initial weights."""
        return torch.zeros((), device=batch.real.device), {}
