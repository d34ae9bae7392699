"""Auxiliary-classifier GAN (Odena et al. 2017) on the dcgan networks of the data's image size.

G: conditioned as cgan's (the label's embedding multiplied into z, then dcgan's G).
D: dcgan's D, unconditioned, with a second linear head of num_classes class logits next to the
real/fake logit: D(x) = (scores (B,), class logits (B, K)). The ``acgan`` game adds the class
cross-entropy to both players' losses.
"""

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganstudy.models import ARCHITECTURES, Architecture, ImageSpec, dcgan
from ganstudy.models.cgan import Generator, check_classes


class Discriminator(nn.Module):
    """features -> (source logit (B,), class logits (B, K))."""

    def __init__(self, features: nn.Sequential, source: nn.Linear, classes: nn.Linear) -> None:
        super().__init__()
        self.aux_classes = classes.out_features
        self.features = features
        self.source = source
        self.classes = classes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)  # (B, F)
        return self.source(h).squeeze(1), self.classes(h)  # (B,), (B, K)


def build(
    image: ImageSpec,
    z_dim: int | None = None,
    slope: float | None = None,
    norm: str | None = None,
) -> tuple[nn.Module, nn.Module]:
    check_classes("acgan", image)
    base_g, base_d = dcgan.build(image, z_dim, slope, norm)  # checks norm and size
    *features, source = base_d.net
    classes = nn.Linear(source.in_features, image.num_classes)
    (dcgan.radford_init if image.size == 64 else dcgan.glorot_init)(classes)  # as D's own init
    if (norm or dcgan.DEFAULTS[image.size]["norm"]) == "spectral":
        spectral_norm(classes)
    D = Discriminator(nn.Sequential(*features), source, classes)
    return Generator(base_g, image.num_classes), D


ARCHITECTURES.add(
    Architecture(
        "acgan",
        "AC-GAN (Odena et al. 2017): dcgan G conditioned as cgan's, dcgan D with an auxiliary "
        "num_classes head; train with game acgan",
        build,
        uses_labels=True,
    ),
)
