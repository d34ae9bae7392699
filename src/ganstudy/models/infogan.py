"""InfoGAN (Chen et al. 2016) on the dcgan networks of the data's image size.

G reads its codes off z, so the loop and evaluate keep drawing z ~ N(0, 1) of size ``G.z_dim``:
z = [noise (noise_dim) | categorical part (categories) | continuous part (continuous)], and G
feeds dcgan's G [noise, one-hot(argmax of the categorical part), 2 * Phi(continuous part) - 1].
The argmax of iid Gaussians is uniform over the categories and Phi (the normal CDF) of a standard
normal is uniform on [0, 1], so the codes have the paper's priors: Cat(K, 1/K) and U(-1, 1).
``G.codes(z)`` gives them to the ``infogan`` game, the targets of Q.

D: dcgan's D trunk with two heads, the real/fake logit (``D(x)``, (B,), so the other games work
too) and Q (``D.q(x)``: categorical logits (B, K) and the continuous codes' means (B, n)). Q is
the paper's MNIST head, FC 128 - BN - LeakyReLU - FC (Chen et al. 2016, appendix C.1; the
official code, openai/InfoGAN), on the trunk's flat features. It is trained with D's optimizer,
as in the paper, where Q shares D's convolutional layers. The trunk stays dcgan's (the
paper's own MNIST networks differ), so InfoGAN compares with the study's other variants.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.models import ARCHITECTURES, Architecture, ImageSpec, dcgan

Q_HIDDEN = 128  # Chen et al. 2016, appendix C.1: Q is FC 128-BN-lReLU-FC on D's features


class Generator(nn.Module):
    """G(z) = base([noise, one-hot categorical code, continuous codes]), codes read off z."""

    def __init__(self, base: dcgan.Generator, noise_dim: int, categories: int, continuous: int):
        super().__init__()
        self.z_dim = noise_dim + categories + continuous  # what the loop and evaluate draw
        self.noise_dim = noise_dim
        self.categories = categories
        self.continuous = continuous
        self.base = base  # its input is as wide as z

    def codes(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The codes of z (B, z_dim): categorical (B,) int64 in [0, K), continuous (B, n) in
        [-1, 1]; each a deterministic function of z with the paper's prior when z ~ N(0, 1)."""
        start = self.noise_dim + self.categories
        category = z[:, self.noise_dim : start].argmax(1)  # (B,): uniform over K, by symmetry
        continuous = 2 * torch.special.ndtr(z[:, start:]) - 1  # (B, n): Phi(N(0, 1)) ~ U(0, 1)
        return category, continuous

    def latent(self, z: torch.Tensor) -> torch.Tensor:
        """The base G's input (B, z_dim): [noise, one-hot categorical code, continuous codes]."""
        category, continuous = self.codes(z)
        one_hot = F.one_hot(category, self.categories).to(z.dtype)  # (B, K)
        return torch.cat([z[:, : self.noise_dim], one_hot, continuous.to(z.dtype)], 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.base(self.latent(z))  # (B, C, H, W)


class Discriminator(nn.Module):
    """features -> real/fake logit (B,); features -> Q -> (categorical logits, continuous means)."""

    def __init__(
        self, features: nn.Sequential, source: nn.Linear, q: nn.Sequential, categories: int
    ):
        super().__init__()
        self.categories = categories
        self.features = features
        self.source = source
        self.q_net = q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.source(self.features(x)).squeeze(1)  # (B,) logits

    def q(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q's guess of the codes of x: categorical logits (B, K), continuous means (B, n)."""
        return self.with_q(x)[1]

    def with_q(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """D(x) and Q(x) from one trunk pass (BatchNorm sees the batch once)."""
        h = self.features(x)  # (B, F)
        out = self.q_net(h)  # (B, K + n)
        logits = self.source(h).squeeze(1)  # (B,)
        return logits, (out[:, : self.categories], out[:, self.categories :])


def q_head(
    in_features: int, categories: int, continuous: int, slope: float, norm: str
) -> nn.Sequential:
    """Q's layers. BatchNorm (PyTorch's defaults) only when D's trunk has it: with spectral norm
    or none, D judges each sample on its own, and Q's shared trunk should stay that way."""
    bn = [nn.BatchNorm1d(Q_HIDDEN)] if norm == "batch" else []
    return nn.Sequential(
        nn.Linear(in_features, Q_HIDDEN, bias=norm != "batch"),  # (B, 128)
        *bn,
        nn.LeakyReLU(slope),
        nn.Linear(Q_HIDDEN, categories + continuous),  # (B, K + n)
    )


def check_count(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise GanstudyError(
            f"architecture 'infogan': {name} must be an integer >= {least} (got {value!r})"
        )


def build(
    image: ImageSpec,
    noise_dim: int = 62,  # incompressible noise; Chen et al. 2016 (MNIST): 62
    categories: int = 10,  # K of the categorical code; Chen et al. 2016 (MNIST): 10
    continuous: int = 2,  # continuous codes, U(-1, 1) each; Chen et al. 2016 (MNIST): 2
    slope: float | None = None,  # None: dcgan's value for the image size
    norm: str | None = None,  # D's normalisation; None: dcgan's value for the image size
) -> tuple[nn.Module, nn.Module]:
    check_count("noise_dim", noise_dim, 1)
    check_count("categories", categories, 2)  # one category would be a constant
    check_count("continuous", continuous, 0)
    z_dim = noise_dim + categories + continuous
    base_g, base_d = dcgan.build(image, z_dim, slope, norm)  # checks norm and size
    defaults = dcgan.DEFAULTS[image.size]
    slope = defaults["slope"] if slope is None else slope
    norm = defaults["norm"] if norm is None else norm
    *features, source = base_d.net
    q = q_head(source.in_features, categories, continuous, slope, norm)
    q.apply(dcgan.radford_init if image.size == 64 else dcgan.glorot_init)  # as D's own init
    D = Discriminator(nn.Sequential(*features), source, q, categories)
    return Generator(base_g, noise_dim, categories, continuous), D


ARCHITECTURES.add(
    Architecture(
        "infogan",
        "InfoGAN (Chen et al. 2016): dcgan G on [noise, categorical, continuous codes] read off z,"
        " dcgan D with a Q head guessing the codes; train with game infogan",
        build,
    ),
)
