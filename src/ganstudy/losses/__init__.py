"""The GAN games. A game owns the objective: what D and G minimise and how many D steps it takes.

The training loop only schedules: it asks the game for D's step ``d_steps`` times (calling
``after_d_step`` after each D update, e.g. for weight clipping), then G's.
D returns raw scores (B,): logits for the cross-entropy games, critic values for the others.
Options are dataclass fields, set from ``game_args`` in params.yaml and checked on construction;
every game has ``d_steps`` (the D:G update ratio, book §5.4.4).

Conditional GANs (CGAN, ACGAN) leave the game API as it is: a game always gets a D that maps
images to (B,) scores. For a run with labels the loop pairs every fake batch with the labels of
the real batch it is judged with (book listing 8.6: fakes are generated for the real batch's
labels), and hands the game ``Labelled(D, labels)``: D bound to that batch's labels, so
``D(real)``, ``D(fake)`` and the gradient penalty's ``D(x_hat)`` all mean D(x | y). Games that
need the labels themselves (the ACGAN auxiliary classifier) read ``D.labels`` and call
``D.classify(x)`` for (scores, class logits); they declare ``needs_classifier`` so the loop can
refuse an architecture without an auxiliary head up front.

Two kinds of game. A ``LossGame`` writes only ``d_loss`` / ``g_loss`` on D's scores of a real
and a fake batch; its ``d_step`` / ``g_step`` (one iteration step of a player) make the fakes,
call the losses and update, which is all a plain GAN game needs. A ``StepGame`` owns its steps
and has no losses on D's scores alone: CycleGAN's cycle loss needs G, a VAE's ELBO the encoder,
InfoGAN's mutual information the latent codes, the SGAN's supervised baseline a labelled batch
and no G. Families live in their own modules of this package, registered on import; every game
class carries its ``name`` and registers with ``@GAMES.add``. ``update(loss)`` is the loop's:
backward and one optimizer step of the phase's player; a step may call it more than once (the
book's separate real and fake D updates).

A variant's ``game_args`` are the game's dataclass fields (``Game.keywords``); an unknown key is
a one-line error naming the accepted ones, a bad value one from the game's ``__post_init__``.

Statistics are detached 0-d tensors on the step's device, never Python floats read with
``.item()``: reading a value waits for the device, and the loop reads them only every
``train.log_every`` iterations (a GPU then runs ahead instead of stopping every iteration).

One G forward per iteration (``reuse_fakes``, pytorch/examples' dcgan): the loop hands the G step
the batch of the last D step, whose fakes the D step made with G's graph (``Batch.keep_fake``);
G's loss then judges those same fakes with the updated D, as the examples do, and G runs forward
once instead of twice. A game whose G step needs more than the D step's fakes (its own codes, a
cycle, no D step) sets ``fakes_reusable = False`` and always draws a fresh batch.
"""

import importlib
import math
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.models import make_fakes
from ganstudy.registry import Registry, check_keywords

Stats = dict[str, torch.Tensor | float]  # detached 0-d tensors (no host sync) or constants
Update = Callable[[torch.Tensor], None]  # backward + one optimizer step of the phase's player
Noise = Callable[[torch.Tensor], torch.Tensor]  # the loop's instance noise at this iteration


@dataclass
class Batch:
    """What the loop draws for one step, from its checkpointed sampler."""

    real: torch.Tensor  # (B, C, H, W) in [-1, 1], drawn with replacement
    y: torch.Tensor | None  # (B,) int64 labels of ``real``; None in a run without labels
    z: torch.Tensor  # (B, z_dim) latent codes, N(0, 1)
    # Semi-supervised games (``needs_labelled_batch``): a batch of the labelled subset,
    # (B, C, H, W) images and (B,) labels; ``y`` is then None: the other labels are hidden.
    labelled: tuple[torch.Tensor, torch.Tensor] | None = None
    # Set by the loop on the last D step's batch when the game reuses D's fakes for G's step:
    # the D step then makes its fakes with G's graph and leaves them in ``fake`` for the G step,
    # which the loop gives this same batch.
    keep_fake: bool = False
    fake: torch.Tensor | None = None  # (B, C, H, W), with G's graph; taken by the G step


@dataclass
class Game(ABC):
    """One GAN objective: a ``LossGame`` or a ``StepGame``. Subclasses add options as dataclass
    fields, checked in __post_init__; a registered class sets ``name``."""

    name: ClassVar[str]  # its name in GAMES (params.yaml's variants.<v>.game)
    description: ClassVar[str] = ""
    needs_classifier: ClassVar[bool] = False  # needs D's auxiliary class head (see Labelled)
    needs_labelled_batch: ClassVar[bool] = False  # semi-supervised: Batch.labelled, no Batch.y
    adversarial: ClassVar[bool] = True  # False: no D phase (d_steps 0), e.g. a VAE
    trains_generator: ClassVar[bool] = True  # False: G is built, never updated (a D-only baseline)
    # Whether G's step may judge the D step's fakes (it is a function of D's scores of G(z) for
    # the batch's z alone); False where G's step needs its own forward passes.
    fakes_reusable: ClassVar[bool] = True
    arch: ClassVar[str] = "dcgan"  # the architecture it is made for; its automatic tests use it
    d_steps: int = 1  # D updates per G update (book §5.4.4: 5 is a common ratio for critics)
    # G's step on the last D step's fakes and real batch (one G forward per iteration, the
    # pytorch/examples way) instead of a fresh batch and z; None: yes where the game allows it.
    # The -book presets set false: the book's loops draw a fresh z for the generator's update.
    reuse_fakes: bool | None = None

    def __post_init__(self) -> None:
        if self.adversarial:
            _check_steps("d_steps", self.d_steps)
        elif self.d_steps != 0:
            raise GanstudyError(
                f"d_steps must be 0 for a non-adversarial game (got {self.d_steps})"
            )
        if self.reuse_fakes is None:
            self.reuse_fakes = self.fakes_reusable and self.adversarial
        elif not isinstance(self.reuse_fakes, bool):
            raise GanstudyError(f"reuse_fakes must be true or false (got {self.reuse_fakes!r})")
        elif self.reuse_fakes and not (self.fakes_reusable and self.adversarial):
            raise GanstudyError(
                "reuse_fakes: this game's G step needs its own fresh batch (set it false)"
            )

    def d_fakes(self, G: nn.Module, batch: Batch) -> torch.Tensor:
        """The fakes for D's step (B, C, H, W), without G's graph. With ``batch.keep_fake`` they
        are made with G's graph, which is kept on the batch for G's step."""
        if batch.keep_fake:
            batch.fake = make_fakes(G, batch.z, batch.y, batch.real)  # (B, C, H, W)
            return batch.fake.detach()
        with torch.no_grad():
            return make_fakes(G, batch.z, batch.y, batch.real)  # (B, C, H, W)

    def g_fakes(self, G: nn.Module, batch: Batch) -> torch.Tensor:
        """The fakes for G's step (B, C, H, W), with G's graph: the D step's when it kept them
        (taken from the batch: one G step per graph), else a fresh forward pass."""
        if batch.fake is not None:
            fake, batch.fake = batch.fake, None
            return fake
        return make_fakes(G, batch.z, batch.y, batch.real)  # (B, C, H, W)

    @classmethod
    def keywords(cls) -> tuple[str, ...]:
        """The ``game_args`` keys it accepts: its dataclass fields."""
        return tuple(f.name for f in fields(cls) if f.init)

    @abstractmethod
    def d_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        """One D step on ``batch``: D's loss (detached or not) and statistics; calls ``update``."""

    @abstractmethod
    def g_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        """One G step on ``batch``: G's loss and statistics; calls ``update`` (or not)."""

    def after_d_step(self, D: nn.Module) -> None:  # noqa: B027 (optional hook, no-op default)
        """Runs right after each optimizer step on D (e.g. weight clipping); default: nothing."""


@dataclass
class LossGame(Game):
    """A game defined by its losses on D's scores; the steps around them are this class's."""

    def d_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        """One D step: fakes for the batch (no graph to G), D's loss, one update."""
        real, fake = noise(batch.real), noise(self.d_fakes(G, batch))  # (B, C, H, W) each
        loss, stats = self.d_loss(judge(D, batch.y), real, fake)
        update(loss)
        return loss, stats

    def g_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        """One G step: fakes for the batch with G's graph, G's loss, one update."""
        real = noise(batch.real)
        fake = noise(self.g_fakes(G, batch))  # (B, C, H, W)
        loss, stats = self.g_loss(judge(D, batch.y), fake, real)
        update(loss)
        return loss, stats

    @abstractmethod
    def d_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        """D's loss on a real batch and a (detached) fake batch."""

    @abstractmethod
    def g_loss(
        self, D: nn.Module, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        """G's loss on a fake batch that still carries G's graph, and a fresh real batch."""


@dataclass
class StepGame(Game):
    """A game that owns its steps (``d_step``, ``g_step``) and has no losses on D's scores."""


GAMES: Registry[type[Game]] = Registry("game")


class Labelled(nn.Module):
    """D bound to one batch's labels (B,): what a game sees in a run with labels.

    Calling it gives D's (B,) scores: D(x, labels) for a conditional D (one that takes labels),
    D(x) otherwise. D may also return (scores, class logits (B, K)) when it has an auxiliary
    classifier head; ``classify`` returns both, calling D once.
    """

    def __init__(self, D: nn.Module, labels: torch.Tensor) -> None:
        super().__init__()
        self.D = D
        self.labels = labels  # (B,) int64

    def classify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.D(x, self.labels) if getattr(self.D, "num_classes", 0) > 0 else self.D(x)
        if not isinstance(out, tuple):
            raise GanstudyError("this game needs a D with an auxiliary classifier (arch acgan)")
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.D(x, self.labels) if getattr(self.D, "num_classes", 0) > 0 else self.D(x)
        return out[0] if isinstance(out, tuple) else out


def judge(D: nn.Module, y: torch.Tensor | None) -> nn.Module:
    """The D a game sees: D itself, or D bound to the batch's labels in a run with labels."""
    return D if y is None else Labelled(D, y)


def build_game(name: str, game_args: dict, what: str | None = None) -> Game:
    """The game ``name`` with ``game_args``; bad arguments are one-line errors, starting with
    ``what`` (default: the game)."""
    cls = GAMES.get(name)
    check_keywords(what or f"game {name!r}: game_args", game_args, cls.keywords())
    try:
        return cls(**game_args)
    except (TypeError, GanstudyError) as err:
        raise GanstudyError(f"game {name!r}: {err}") from None


def _check_steps(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GanstudyError(f"{name} must be an integer >= 1 (got {value!r})")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise GanstudyError(f"{name} must be a finite number > 0 (got {value!r})")


# Cross-entropy games: D(x) = sigmoid(logit), written on logits for numerical stability.


def _logistic_d_loss(
    D: nn.Module, real: torch.Tensor, fake: torch.Tensor, real_label: float = 1.0
) -> tuple[torch.Tensor, Stats]:
    """BCE(D(x), real_label) + BCE(D(G(z)), 0); at real_label 1: -[log D(x) + log(1 - D(G(z)))]."""
    # Separate passes, as in the book: BatchNorm sees all-real then all-fake statistics.
    return _logistic_terms(D(real), D(fake), real_label)  # (B,) logits each


def _logistic_terms(
    d_real: torch.Tensor, d_fake: torch.Tensor, real_label: float
) -> tuple[torch.Tensor, Stats]:
    """_logistic_d_loss on D's (B,) logits for the real and the fake batch."""
    # One-sided smoothing (Salimans et al. 2016): only the real target moves; fakes stay at 0.
    target = torch.full_like(d_real, real_label)  # (B,)
    loss_real = F.binary_cross_entropy_with_logits(d_real, target)
    loss_fake = F.softplus(d_fake).mean()  # -log(1 - sigmoid(d_fake))
    stats = {
        "D/loss_real": loss_real.detach(),
        "D/loss_fake": loss_fake.detach(),
        "D/accuracy": 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean()).detach(),
    }
    return loss_real + loss_fake, stats


@dataclass
class CrossEntropyGame(LossGame):
    """D of the minimax and non-saturating games: a classifier with (optionally smoothed) labels."""

    real_label: float = 1.0  # D's target on real images; 0.9 = one-sided label smoothing
    # joint: one D update on the real and the fake batch's summed loss; separate: the book's
    # Keras order, one update on the real batch, then one on the fake batch (book listing 3.5).
    d_update: str = "joint"

    def __post_init__(self) -> None:
        super().__post_init__()
        value = self.real_label
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.5 < value <= 1:
            raise GanstudyError(f"real_label must be a number in (0.5, 1] (got {value!r})")
        if self.d_update not in ("joint", "separate"):
            raise GanstudyError(f"d_update must be joint or separate (got {self.d_update!r})")

    def d_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        return _logistic_d_loss(D, real, fake, self.real_label)

    def d_term(self, D: nn.Module, x: torch.Tensor, is_real: bool) -> tuple[torch.Tensor, Stats]:
        """D's loss on one all-real or all-fake batch (the separate update order)."""
        logits = D(x)  # (B,)
        if is_real:
            target = torch.full_like(logits, self.real_label)
            return F.binary_cross_entropy_with_logits(logits, target), {}
        return F.softplus(logits).mean(), {}  # -log(1 - sigmoid(logit))

    def d_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        if self.d_update == "joint":
            return super().d_step(G, D, batch, noise, update)
        real, fake = noise(batch.real), noise(self.d_fakes(G, batch))  # (B, C, H, W) each
        D = judge(D, batch.y)
        loss_real, stats_real = self.d_term(D, real, is_real=True)
        update(loss_real)
        loss_fake, stats_fake = self.d_term(D, fake, is_real=False)  # D after its real update
        update(loss_fake)
        stats = {"D/loss_real": loss_real.detach(), "D/loss_fake": loss_fake.detach()}
        return (loss_real + loss_fake).detach(), stats | stats_real | stats_fake


@GAMES.add
@dataclass
class NonSaturating(CrossEntropyGame):
    """Goodfellow et al. 2014, the heuristic G loss -log D(G(z)) (book eq. 5.3/5.4)."""

    name = "nonsaturating"
    description = "non-saturating GAN: D max log D(x) + log(1 - D(G(z))), G max log D(G(z))"

    def g_loss(
        self, D: nn.Module, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        d_fake = D(fake)  # (B,) logits
        return F.softplus(-d_fake).mean(), {"D/score_fake": torch.sigmoid(d_fake).mean().detach()}


@GAMES.add
@dataclass
class Minimax(CrossEntropyGame):
    """Goodfellow et al. 2014, the original saturating minimax game (book eqs. 5.1/5.2)."""

    name = "minimax"
    description = "minimax GAN: D max log D(x) + log(1 - D(G(z))), G min log(1 - D(G(z)))"

    def g_loss(
        self, D: nn.Module, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        d_fake = D(fake)  # (B,) logits
        # log(1 - sigmoid(l)) = -softplus(l): flat where D is sure, hence "saturating".
        return -F.softplus(d_fake).mean(), {"D/score_fake": torch.sigmoid(d_fake).mean().detach()}


@GAMES.add
@dataclass
class ACGAN(CrossEntropyGame):
    """Odena et al. 2017, AC-GAN: the non-saturating game plus an auxiliary class cross-entropy."""

    name = "acgan"
    description = (
        "AC-GAN: non-saturating game + aux_weight * class cross-entropy of D's auxiliary head "
        "(D on real and fake, G on fake)"
    )
    needs_classifier = True
    arch = "acgan"
    aux_weight: float = 1.0  # weight of the class cross-entropy L_C (Odena et al.: 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive("aux_weight", self.aux_weight)

    def d_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        (d_real, c_real), (d_fake, c_fake) = D.classify(real), D.classify(fake)  # (B,), (B, K)
        loss, stats = _logistic_terms(d_real, d_fake, self.real_label)
        # D minimises -L_C on both batches: it learns the classes of reals and of fakes.
        aux = self.aux_weight * (
            F.cross_entropy(c_real, D.labels) + F.cross_entropy(c_fake, D.labels)
        )
        stats["D/aux_loss"] = aux.detach()
        stats["D/class_accuracy"] = (c_real.argmax(1) == D.labels).float().mean()
        return loss + aux, stats

    def d_term(self, D: nn.Module, x: torch.Tensor, is_real: bool) -> tuple[torch.Tensor, Stats]:
        logits, classes = D.classify(x)  # (B,), (B, K)
        source, _ = super().d_term(lambda _: logits, x, is_real)
        aux = self.aux_weight * F.cross_entropy(classes, D.labels)
        return source + aux, {f"D/aux_loss_{'real' if is_real else 'fake'}": aux.detach()}

    def g_loss(
        self, D: nn.Module, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        d_fake, c_fake = D.classify(fake)  # (B,) logits, (B, K) class logits
        aux = self.aux_weight * F.cross_entropy(c_fake, D.labels)  # G also maximises L_C
        stats = {"D/score_fake": torch.sigmoid(d_fake).mean().detach(), "G/aux_loss": aux.detach()}
        return F.softplus(-d_fake).mean() + aux, stats


def _sum_with_stats(loss_real: torch.Tensor, loss_fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    stats = {"D/loss_real": loss_real.detach(), "D/loss_fake": loss_fake.detach()}
    return loss_real + loss_fake, stats


# Critic games: D outputs an unbounded score; G raises the critic's score on fakes.


def _critic_d_loss(
    D: nn.Module, real: torch.Tensor, fake: torch.Tensor
) -> tuple[torch.Tensor, Stats]:
    """mean C(G(z)) - mean C(x): minus the critic's estimate of the Wasserstein distance."""
    d_real, d_fake = D(real), D(fake)  # (B,) scores
    distance = d_real.mean() - d_fake.mean()
    return -distance, {"D/wasserstein": distance.detach()}


def _critic_g_loss(D: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    score = D(fake).mean()  # D's (B,) scores, averaged
    return -score, {"D/score_fake": score.detach()}


def gradient_penalty(
    D: nn.Module, real: torch.Tensor, fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """E[(||grad D(x_hat)||_2 - 1)^2] on x_hat = eps*real + (1-eps)*fake, and the (B,) norms."""
    # eps from the CPU generator: the one the loop checkpoints, so resumed runs stay exact.
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)  # (B, 1, 1, 1) for images
    eps = torch.rand(shape).to(real.device, real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    # Summing is exact while samples do not interact in D (no BatchNorm, as in the paper).
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)  # like x_hat
    norm = torch.linalg.vector_norm(grad.flatten(1), dim=1)  # (B,)
    return ((norm - 1) ** 2).mean(), norm


@GAMES.add
@dataclass
class Wasserstein(LossGame):
    """Arjovsky et al. 2017, WGAN: a weight-clipped critic (book eqs. 5.5/5.6)."""

    name = "wasserstein"
    description = "WGAN: critic max E D(x) - E D(G(z)) with weight clipping, G max E D(G(z))"
    clip: float = 0.01  # critic parameters are clamped into [-clip, clip]
    d_steps: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive("clip", self.clip)

    def d_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        return _critic_d_loss(D, real, fake)

    def g_loss(
        self, D: nn.Module, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        return _critic_g_loss(D, fake)

    @torch.no_grad()
    def after_d_step(self, D: nn.Module) -> None:
        for param in D.parameters():  # all of them, BatchNorm's affine too, as in the paper
            param.clamp_(-self.clip, self.clip)


@GAMES.add
@dataclass
class WassersteinGP(LossGame):
    """Gulrajani et al. 2017, WGAN-GP: the Wasserstein game with a gradient penalty on D."""

    name = "wgan-gp"
    description = "WGAN-GP: WGAN with penalty gp_weight*(||grad D(x_hat)|| - 1)^2, no clipping"
    gp_weight: float = 10.0  # lambda
    d_steps: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive("gp_weight", self.gp_weight)

    def d_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        loss, stats = _critic_d_loss(D, real, fake)
        penalty, norm = gradient_penalty(D, real, fake)
        penalty = self.gp_weight * penalty
        stats |= {"D/gradient_penalty": penalty.detach(), "D/grad_norm": norm.mean().detach()}
        return loss + penalty, stats

    def g_loss(
        self, D: nn.Module, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        return _critic_g_loss(D, fake)


@GAMES.add
@dataclass
class LeastSquares(LossGame):
    """Mao et al. 2017, LSGAN with a=0, b=1, c=1: squared errors on D's raw output."""

    name = "least-squares"
    description = "LSGAN: D min (D(x) - 1)^2 + D(G(z))^2, G min (D(G(z)) - 1)^2, halved"

    def d_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        d_real, d_fake = D(real), D(fake)  # (B,) scores
        loss_real = 0.5 * ((d_real - 1) ** 2).mean()
        loss_fake = 0.5 * (d_fake**2).mean()
        return _sum_with_stats(loss_real, loss_fake)

    def g_loss(
        self, D: nn.Module, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        d_fake = D(fake)  # (B,) scores
        return 0.5 * ((d_fake - 1) ** 2).mean(), {"D/score_fake": d_fake.mean().detach()}


@GAMES.add
@dataclass
class Hinge(LossGame):
    """Lim & Ye 2017 (Geometric GAN), the hinge game later used by SN-GAN, SAGAN and BigGAN."""

    name = "hinge"
    description = "hinge: D min relu(1 - D(x)) + relu(1 + D(G(z))), G max E D(G(z))"

    def d_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        d_real, d_fake = D(real), D(fake)  # (B,) scores
        loss_real = F.relu(1 - d_real).mean()
        loss_fake = F.relu(1 + d_fake).mean()
        return _sum_with_stats(loss_real, loss_fake)

    def g_loss(
        self, D: nn.Module, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        return _critic_g_loss(D, fake)


def _relativistic_terms(
    d_real: torch.Tensor, d_fake: torch.Tensor, real_label: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE-with-logits of C(x) - mean C(fake) vs real_label, of C(fake) - mean C(x) vs the other."""
    real_vs_fake = d_real - d_fake.mean()  # (B,)
    fake_vs_real = d_fake - d_real.mean()  # (B,)
    bce = F.binary_cross_entropy_with_logits
    loss_real = bce(real_vs_fake, torch.full_like(real_vs_fake, real_label))
    loss_fake = bce(fake_vs_real, torch.full_like(fake_vs_real, 1 - real_label))
    return loss_real, loss_fake


@GAMES.add
@dataclass
class Relativistic(LossGame):
    """Jolicoeur-Martineau 2018, relativistic average standard GAN, RaSGAN (book §12.2.1)."""

    name = "relativistic"
    description = "RaSGAN: D judges if x is more real than the average fake; G the reverse"

    def d_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        d_real, d_fake = D(real), D(fake)  # (B,) scores C(.)
        loss_real, loss_fake = _relativistic_terms(d_real, d_fake, real_label=1.0)
        return _sum_with_stats(loss_real, loss_fake)

    def g_loss(
        self, D: nn.Module, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, Stats]:
        with torch.no_grad():  # a constant for G: its gradient flows through the fake scores
            d_real = D(real)  # (B,) scores
        d_fake = D(fake)  # (B,) scores
        loss_real, loss_fake = _relativistic_terms(d_real, d_fake, real_label=0.0)
        return loss_real + loss_fake, {"D/score_fake": d_fake.mean().detach()}


# Game families in their own modules (sgan, cyclegan, vae, ...) register themselves on import.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
