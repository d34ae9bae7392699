"""Conditional GAN (Mirza & Osindero 2014) as in GANs in Action ch. 8 (listings 8.3/8.4).

G: the label's embedding (num_classes x z_dim) multiplied element-wise into z, then the ch. 4
DCGAN generator (book: 1,637,737 parameters = DCGAN G + 1,000 embedding weights).
D: the label embedded to an HxW map, concatenated to the image as an extra channel, then the ch. 4
discriminator with in_channels + 1 and its first conv widened from 32 to 64 (book: 122,273
parameters with the 7,840 embedding weights). Keras defaults: embeddings U(-0.05, 0.05).
At 32 and 64 pixels (our generalisation, not in the book) both networks are dcgan's for that size,
D with the extra label channel.
"""

import torch
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.models import ARCHITECTURES, Architecture, ImageSpec, dcgan
from ganstudy.models.dcgan import KERAS_BN, d_block, glorot_init, init_d


def keras_embedding(num: int, dim: int) -> nn.Embedding:
    embed = nn.Embedding(num, dim)
    nn.init.uniform_(embed.weight, -0.05, 0.05)  # Keras's Embedding default
    return embed


class Generator(nn.Module):
    """G(z, y) = base(z * embed(y))."""

    def __init__(self, base: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.z_dim = base.z_dim
        self.num_classes = num_classes
        self.embed = keras_embedding(num_classes, base.z_dim)
        self.base = base

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.base(z * self.embed(y))  # (B, C, H, W)


class Discriminator(nn.Module):
    """D(x, y) = base(concat(x, embed(y) as an HxW map)) on the channel axis."""

    def __init__(self, base: nn.Module, num_classes: int, size: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.size = size
        self.embed = keras_embedding(num_classes, size * size)
        self.base = base

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        label_map = self.embed(y).view(-1, 1, self.size, self.size)  # (B, 1, H, W)
        return self.base(torch.cat([x, label_map], 1))  # (B,) logits


def book28_d(in_channels: int, slope: float, norm: str) -> dcgan.Discriminator:
    """Listing 8.4's conv stack: the ch. 4 D with a 64-wide first conv."""

    def down(c_in: int, c_out: int) -> nn.Module:  # k3 s2 'same'
        return nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)

    D = dcgan.Discriminator(
        nn.Sequential(
            down(in_channels, 64),  # (B, 64, 14, 14); no BN on the input layer
            nn.LeakyReLU(slope),
            *d_block(down(64, 64), norm, KERAS_BN, nn.LeakyReLU(slope)),  # (B, 64, 7, 7)
            *d_block(down(64, 128), norm, KERAS_BN, nn.LeakyReLU(slope)),  # (B, 128, 4, 4)
            nn.Flatten(),  # (B, 2048)
            nn.Linear(128 * 4 * 4, 1),  # (B, 1)
        )
    )
    return init_d(D, glorot_init, norm)


def check_classes(name: str, image: ImageSpec) -> None:
    if image.num_classes < 1:
        raise GanstudyError(f"architecture {name!r} needs labelled data (num_classes >= 1)")


def build(
    image: ImageSpec,
    z_dim: int | None = None,
    slope: float | None = None,
    norm: str | None = None,
) -> tuple[nn.Module, nn.Module]:
    check_classes("cgan", image)
    base_g, base_d = dcgan.build(image, z_dim, slope, norm)  # checks norm and size
    if image.size == 28:
        args = dcgan.DEFAULTS[28]
        base_d = book28_d(
            image.channels + 1,
            args["slope"] if slope is None else slope,
            args["norm"] if norm is None else norm,
        )
    else:
        label_image = ImageSpec(image.channels + 1, image.size, image.num_classes)
        _, base_d = dcgan.build(label_image, z_dim, slope, norm)
    G = Generator(base_g, image.num_classes)
    return G, Discriminator(base_d, image.num_classes, image.size)


ARCHITECTURES.add(
    Architecture(
        "cgan",
        "conditional GAN of GANs in Action ch. 8: z * embed(y) into the DCGAN G, label map as an "
        "extra D channel (G 1,637,737 / D 122,273 params at 28x28x1, 10 classes)",
        build,
        uses_labels=True,
    ),
)
