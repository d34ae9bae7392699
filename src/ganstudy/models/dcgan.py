"""DCGAN (Radford et al. 2015) as built in GANs in Action, ch. 4, for 28x28 images.

Keras layer defaults are kept (BatchNorm momentum 0.99 and eps 1e-3, LeakyReLU 0.01, Glorot
initialisation). Book erratum: D's last conv outputs 4x4x128, so the flatten is 2048, not 1152.
D returns logits; the game applies the sigmoid.
D's normalisation is an option, ``norm``: "batch" (the book's layers), "spectral" (Miyato et al.
2018: spectral norm on every conv/linear weight, no BatchNorm) or "none". G always keeps BatchNorm.
"""

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganstudy.errors import GanstudyError
from ganstudy.models import ARCHITECTURES, Architecture, ImageSpec

KERAS_BN = {"momentum": 0.01, "eps": 1e-3}  # Keras momentum 0.99 is PyTorch momentum 0.01
NORMS = ("batch", "spectral", "none")  # D's normalisation (arch_args.norm)


def glorot_init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    def __init__(self, z_dim: int = 100, channels: int = 1, slope: float = 0.01) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.project = nn.Linear(z_dim, 256 * 7 * 7)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 3, stride=2, padding=1, output_padding=1),  # (B,128,14,14)
            nn.BatchNorm2d(128, **KERAS_BN),
            nn.LeakyReLU(slope),
            nn.ConvTranspose2d(128, 64, 3, stride=1, padding=1),  # (B, 64, 14, 14)
            nn.BatchNorm2d(64, **KERAS_BN),
            nn.LeakyReLU(slope),
            nn.ConvTranspose2d(
                64, channels, 3, stride=2, padding=1, output_padding=1
            ),  # (B,C,28,28)
            nn.Tanh(),
        )
        self.apply(glorot_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(-1, 256, 7, 7)  # (B, 256, 7, 7)
        return self.net(x)


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise GanstudyError(
            f"architecture 'dcgan': norm must be one of {', '.join(NORMS)} (got {norm!r})"
        )


class Discriminator(nn.Module):
    def __init__(self, channels: int = 1, slope: float = 0.01, norm: str = "batch") -> None:
        super().__init__()
        check_norm(norm)

        def bn(features: int) -> list[nn.Module]:  # BatchNorm only in the book's layout
            return [nn.BatchNorm2d(features, **KERAS_BN)] if norm == "batch" else []

        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=2, padding=1),  # (B, 32, 14, 14); no BN here
            nn.LeakyReLU(slope),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),  # (B, 64, 7, 7)
            *bn(64),
            nn.LeakyReLU(slope),
            nn.Conv2d(64, 128, 3, stride=2, padding=1),  # (B, 128, 4, 4)
            *bn(128),
            nn.LeakyReLU(slope),
            nn.Flatten(),  # (B, 2048)
            nn.Linear(128 * 4 * 4, 1),
        )
        self.apply(glorot_init)  # before spectral_norm: it initialises the raw weights
        if norm == "spectral":
            for layer in self.net:
                if isinstance(layer, nn.Conv2d | nn.Linear):
                    spectral_norm(layer)  # W / sigma(W), 1 power step per training forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (B,) logits


def build(
    image: ImageSpec, z_dim: int = 100, slope: float = 0.01, norm: str = "batch"
) -> tuple[nn.Module, nn.Module]:
    check_norm(norm)  # before the image check: a bad option is the first thing to fix
    if image.size != 28:
        raise GanstudyError(
            f"architecture 'dcgan' builds 28x28 images, data is {image.size}x{image.size}"
            " (set preprocess.image_size: 28)"
        )
    return Generator(z_dim, image.channels, slope), Discriminator(image.channels, slope, norm)


ARCHITECTURES.add(
    "dcgan",
    Architecture(
        "dcgan",
        "DCGAN of GANs in Action ch. 4 (28x28; G 1,636,737 / D 95,105 params at 1 channel)",
        build,
    ),
)
