"""DCGAN (Radford et al. 2015) in three configurations, picked by the data's image size.

- 28: GANs in Action ch. 4 (listings 4.3/4.4), for MNIST-like 28x28 images.
- 32: the CIFAR-10 frog DCGAN of Deep Learning with Python (Chollet) §8.5, for 32x32 images.
- 64: Frid-Adar et al. 2018's DCGAN for 64x64 liver-lesion ROIs, 5x5 kernels (book §11.1).

Channels come from the data. Arguments left unset (``z_dim``, ``slope``, ``norm``) take the
configuration's own value (``DEFAULTS``). D returns logits; the game applies the sigmoid.
D's normalisation is an option, ``norm``: "batch" (BatchNorm after every D conv but the first, the
DCGAN layout and the book's), "spectral" (Miyato et al. 2018: spectral norm on every D conv/linear
weight, no BatchNorm) or "none". G is always its source's network.
"""

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganstudy.errors import GanstudyError
from ganstudy.models import ARCHITECTURES, Architecture, ImageSpec

KERAS_BN = {"momentum": 0.01, "eps": 1e-3}  # Keras momentum 0.99 is PyTorch momentum 0.01
NORMS = ("batch", "spectral", "none")  # D's normalisation (arch_args.norm)
Networks = tuple[nn.Module, nn.Module]


def glorot_init(module: nn.Module) -> None:
    """Keras's defaults: Glorot-uniform weights, zero biases."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def radford_init(module: nn.Module) -> None:
    """Radford et al. 2015: weights from N(0, 0.02). Ours: zero biases, BatchNorm at 1 and 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z -> Linear -> reshape to ``start`` (C, H, W) -> ``net``."""

    def __init__(
        self, z_dim: int, start: tuple[int, int, int], net: nn.Sequential, bias: bool = True
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.start = start
        self.project = nn.Linear(z_dim, math.prod(start), bias=bias)
        self.net = net

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, *self.start))  # (B, C, H, W)


class Discriminator(nn.Module):
    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (B,) logits


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise GanstudyError(
            f"architecture 'dcgan': norm must be one of {', '.join(NORMS)} (got {norm!r})"
        )


# Shared blocks. Each returns the layers of one block; the callers comment the output shape.


def bn_block(conv: nn.Module, bn_args: dict, act: nn.Module) -> list[nn.Module]:
    """conv -> BatchNorm -> activation (G's hidden layers)."""
    return [conv, nn.BatchNorm2d(conv.out_channels, **bn_args), act]


def d_block(conv: nn.Module, norm: str, bn_args: dict, act: nn.Module) -> list[nn.Module]:
    """conv -> BatchNorm if norm is "batch" -> activation (D's hidden layers)."""
    bn = [nn.BatchNorm2d(conv.out_channels, **bn_args)] if norm == "batch" else []
    return [conv, *bn, act]


def init_g(G: Generator, init: Callable[[nn.Module], None]) -> Generator:
    G.apply(init)
    return G


def init_d(D: Discriminator, init: Callable[[nn.Module], None], norm: str) -> Discriminator:
    D.apply(init)  # before spectral_norm: it initialises the raw weights
    if norm == "spectral":
        for layer in D.net:
            if isinstance(layer, nn.Conv2d | nn.Linear):
                spectral_norm(layer)  # W / sigma(W), 1 power step per training forward
    return D


def book28(channels: int, z_dim: int, slope: float, norm: str) -> Networks:
    """GANs in Action ch. 4, exactly: Keras defaults (BatchNorm momentum 0.99, eps 1e-3; Glorot
    init; biases everywhere). Book erratum: D's last conv gives 4x4x128, flatten 2048, not 1152."""

    def lrelu() -> nn.Module:
        return nn.LeakyReLU(slope)

    def up(c_in: int, c_out: int, stride: int) -> nn.Module:  # k3 'same'
        return nn.ConvTranspose2d(c_in, c_out, 3, stride, padding=1, output_padding=stride - 1)

    G = Generator(
        z_dim,
        (256, 7, 7),  # projection: (B, 256, 7, 7)
        nn.Sequential(
            *bn_block(up(256, 128, 2), KERAS_BN, lrelu()),  # (B, 128, 14, 14)
            *bn_block(up(128, 64, 1), KERAS_BN, lrelu()),  # (B, 64, 14, 14)
            up(64, channels, 2),  # (B, C, 28, 28); no BN on the output layer
            nn.Tanh(),
        ),
    )
    G = init_g(G, glorot_init)

    def down(c_in: int, c_out: int) -> nn.Module:  # k3 s2 'same'
        return nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)

    D = Discriminator(
        nn.Sequential(
            down(channels, 32),  # (B, 32, 14, 14); no BN on the input layer
            lrelu(),
            *d_block(down(32, 64), norm, KERAS_BN, lrelu()),  # (B, 64, 7, 7)
            *d_block(down(64, 128), norm, KERAS_BN, lrelu()),  # (B, 128, 4, 4)
            nn.Flatten(),  # (B, 2048)
            nn.Linear(128 * 4 * 4, 1),  # (B, 1)
        )
    )
    return G, init_d(D, glorot_init, norm)


def frog32(channels: int, z_dim: int, slope: float, norm: str) -> Networks:
    """Deep Learning with Python §8.5, the CIFAR-10 frog DCGAN (notes SEED-002, the notebook's
    code): every layer, kernel, stride, padding and the Dropout(0.4) come from the source, as do
    latent 32, LeakyReLU 0.3 (Keras's default alpha) and Keras's Glorot init. The source has no
    BatchNorm in either network (= norm "none"). Our choice: with norm "batch", D's strided convs
    get Keras-default BatchNorm in place of their (then redundant) biases."""

    def lrelu() -> nn.Module:
        return nn.LeakyReLU(slope)

    def conv(c_in: int, c_out: int, k: int) -> nn.Module:  # stride 1, 'same'
        return nn.Conv2d(c_in, c_out, k, padding=k // 2)

    G = Generator(
        z_dim,
        (128, 16, 16),  # projection: (B, 128, 16, 16)
        nn.Sequential(
            lrelu(),  # the source's LeakyReLU before the reshape: elementwise, the same here
            conv(128, 256, 5),  # (B, 256, 16, 16)
            lrelu(),
            nn.ConvTranspose2d(256, 256, 4, stride=2, padding=1),  # (B, 256, 32, 32); k4 s2 'same'
            lrelu(),
            conv(256, 256, 5),  # (B, 256, 32, 32)
            lrelu(),
            conv(256, 256, 5),  # (B, 256, 32, 32)
            lrelu(),
            conv(256, channels, 7),  # (B, C, 32, 32)
            nn.Tanh(),
        ),
    )
    G = init_g(G, glorot_init)

    def down(c_in: int, c_out: int) -> nn.Module:  # k4 s2 'valid'
        return nn.Conv2d(c_in, c_out, 4, stride=2, bias=norm != "batch")

    D = Discriminator(
        nn.Sequential(
            nn.Conv2d(channels, 128, 3),  # (B, 128, 30, 30); 'valid'
            lrelu(),
            *d_block(down(128, 128), norm, KERAS_BN, lrelu()),  # (B, 128, 14, 14)
            *d_block(down(128, 128), norm, KERAS_BN, lrelu()),  # (B, 128, 6, 6)
            *d_block(down(128, 128), norm, KERAS_BN, lrelu()),  # (B, 128, 2, 2)
            nn.Flatten(),  # (B, 512)
            nn.Dropout(0.4),
            nn.Linear(128 * 2 * 2, 1),  # (B, 1)
        )
    )
    return G, init_d(D, glorot_init, norm)


def fridadar64(channels: int, z_dim: int, slope: float, norm: str) -> Networks:
    """Frid-Adar et al. 2018 (book §11.1): the notes give only a ch. 4-style DCGAN at 64x64 with 5x5
    kernels. Everything else is our choice, Radford et al. 2015's 64x64 DCGAN: z 100 projected to
    4x4x1024, four stride-2 5x5 transposed convs (512, 256, 128, C) with BatchNorm + ReLU and a tanh
    output; D four stride-2 5x5 convs (64, 128, 256, 512) with BatchNorm (not on the input layer)
    and LeakyReLU 0.2, then a linear logit; N(0, 0.02) init; PyTorch BatchNorm defaults; no bias
    on a layer that BatchNorm follows."""

    def up(c_in: int, c_out: int, bias: bool = False) -> nn.Module:  # k5 s2 'same'
        return nn.ConvTranspose2d(c_in, c_out, 5, 2, padding=2, output_padding=1, bias=bias)

    G = Generator(
        z_dim,
        (1024, 4, 4),  # projection: (B, 1024, 4, 4)
        nn.Sequential(
            nn.BatchNorm2d(1024),
            nn.ReLU(),
            *bn_block(up(1024, 512), {}, nn.ReLU()),  # (B, 512, 8, 8)
            *bn_block(up(512, 256), {}, nn.ReLU()),  # (B, 256, 16, 16)
            *bn_block(up(256, 128), {}, nn.ReLU()),  # (B, 128, 32, 32)
            up(128, channels, bias=True),  # (B, C, 64, 64); no BN on the output layer
            nn.Tanh(),
        ),
        bias=False,
    )
    G = init_g(G, radford_init)

    def lrelu() -> nn.Module:
        return nn.LeakyReLU(slope)

    def down(c_in: int, c_out: int, bias: bool) -> nn.Module:  # k5 s2 'same'
        return nn.Conv2d(c_in, c_out, 5, stride=2, padding=2, bias=bias)

    bias = norm != "batch"
    D = Discriminator(
        nn.Sequential(
            down(channels, 64, bias=True),  # (B, 64, 32, 32); no BN on the input layer
            lrelu(),
            *d_block(down(64, 128, bias), norm, {}, lrelu()),  # (B, 128, 16, 16)
            *d_block(down(128, 256, bias), norm, {}, lrelu()),  # (B, 256, 8, 8)
            *d_block(down(256, 512, bias), norm, {}, lrelu()),  # (B, 512, 4, 4)
            nn.Flatten(),  # (B, 8192)
            nn.Linear(512 * 4 * 4, 1),  # (B, 1)
        )
    )
    return G, init_d(D, radford_init, norm)


CONFIGS: dict[int, Callable[[int, int, float, str], Networks]] = {
    28: book28,
    32: frog32,
    64: fridadar64,
}
# Each configuration's own z_dim, LeakyReLU slope and D normalisation (sources: see the builders).
DEFAULTS = {
    28: {"z_dim": 100, "slope": 0.01, "norm": "batch"},
    32: {"z_dim": 32, "slope": 0.3, "norm": "none"},
    64: {"z_dim": 100, "slope": 0.2, "norm": "batch"},
}


def build(
    image: ImageSpec,
    z_dim: int | None = None,
    slope: float | None = None,
    norm: str | None = None,
) -> Networks:
    if norm is not None:
        check_norm(norm)  # before the image check: a bad option is the first thing to fix
    if image.size not in CONFIGS:
        sizes = ", ".join(str(s) for s in CONFIGS)
        raise GanstudyError(
            f"architecture 'dcgan' builds {sizes} pixel images, data is {image.size}x{image.size}"
            f" (set preprocess.image_size to one of {sizes})"
        )
    args = {"z_dim": z_dim, "slope": slope, "norm": norm}
    args = {k: v if v is not None else DEFAULTS[image.size][k] for k, v in args.items()}
    return CONFIGS[image.size](image.channels, **args)


ARCHITECTURES.add(
    Architecture(
        "dcgan",
        "DCGAN by image size: 28 GANs in Action ch. 4 (G 1,636,737 / D 95,105 params at 1 channel);"
        " 32 DLwP frog (6,264,579 / 790,913 at 3); 64 Frid-Adar, 5x5 kernels",
        build,
    ),
)
