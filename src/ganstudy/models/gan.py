"""The fully connected GAN of GANs in Action, ch. 3 (after Goodfellow et al. 2014).

One hidden layer of 128 units in each network, LeakyReLU 0.01, tanh output, Glorot init.
D returns logits; the game applies the sigmoid.
"""

import torch
from torch import nn

from ganstudy.models import ARCHITECTURES, Architecture, ImageSpec
from ganstudy.models.dcgan import glorot_init


class Generator(nn.Module):
    def __init__(
        self, image: ImageSpec, z_dim: int = 100, hidden: int = 128, slope: float = 0.01
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.shape = (image.channels, image.size, image.size)
        self.net = nn.Sequential(
            nn.Linear(z_dim, hidden),  # (B, hidden)
            nn.LeakyReLU(slope),
            nn.Linear(hidden, image.channels * image.size**2),  # (B, C*H*W)
            nn.Tanh(),
        )
        self.apply(glorot_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.shape)  # (B, C, H, W)


class Discriminator(nn.Module):
    def __init__(self, image: ImageSpec, hidden: int = 128, slope: float = 0.01) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),  # (B, C*H*W)
            nn.Linear(image.channels * image.size**2, hidden),
            nn.LeakyReLU(slope),
            nn.Linear(hidden, 1),
        )
        self.apply(glorot_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (B,) logits


def build(
    image: ImageSpec, z_dim: int = 100, hidden: int = 128, slope: float = 0.01
) -> tuple[nn.Module, nn.Module]:
    return Generator(image, z_dim, hidden, slope), Discriminator(image, hidden, slope)


ARCHITECTURES.add(
    Architecture(
        "gan",
        "fully connected GAN of GANs in Action ch. 3 (any size; G 114,064 / D 100,609 params "
        "at 28x28x1)",
        build,
    ),
)
