"""CycleGAN (Zhu et al. 2017) as GANs in Action ch. 9 builds it (listings 9.2, 9.4, 9.5).

A two-domain dataset is a labelled one with two classes: label 0 = domain A, 1 = domain B
(``preprocess.classes: [a, b]`` keeps two classes of a dataset and renumbers them 0/1).
G holds the two U-Net generators, ``G_AB``: A -> B and ``G_BA``: B -> A; ``G(x, y)`` translates
each image x[i] of domain y[i] into the other domain. D holds the two PatchGAN discriminators,
``D_A`` and ``D_B``; ``D.judge(x, d)`` is the (B, H/16, W/16) patch-score map of domain d's
discriminator, and ``D(x, y)`` scores each image x[i] with the discriminator of domain y[i].
Train with game ``cyclegan``: the other games would judge a translation by its source domain's D.

The book's networks (128x128x3, gf 32, df 64: 1,545,425 parameters per generator, 2,764,743 per
discriminator, which these builders reproduce):
- U-Net: four down blocks conv k4 s2 -> LeakyReLU 0.2 -> norm with gf, 2gf, 4gf, 8gf filters;
  three up blocks nearest x2 upsampling -> conv k4 s1 -> ReLU -> norm -> concatenation with the
  mirrored down block's output (4gf, 2gf, gf filters); x2 upsampling -> conv k4 s1 to C -> tanh.
- PatchGAN: conv k4 s2 -> LeakyReLU 0.2 -> norm (none on the first) with df, 2df, 4df, 8df
  filters, then a linear conv k4 s1 to one channel: one score per patch.
Keras 'same' padding: k4 s2 pads 1 on each side, k4 s1 pads 1 before and 2 after (``SameConv``).
Keras's init: Glorot-uniform weights, zero biases; norm scale 1, shift 0.

``norm``: "book" is keras_contrib's ``InstanceNormalization()`` as the book's code calls it
(axis=None): each sample normalised over all of C, H and W, (x - mean) / (std + 1e-3), with one
scalar scale and shift per layer (the 2 parameters a layer in the book's counts). "instance" is
per-channel instance norm (Ulyanov et al. 2016; nn.InstanceNorm2d with a per-channel affine).
Sizes: four stride-2 halvings and the skip concatenations need a side divisible by 16; the book's
128, and 32 or 64 for small data (any multiple of 16 from 32 builds).
"""

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.models import ARCHITECTURES, Architecture, ImageSpec
from ganstudy.models.dcgan import glorot_init

NORMS = ("book", "instance")
DOWNSAMPLINGS = 4  # stride-2 convs in both networks: the side must divide by 2**4 = 16
MIN_SIZE = 32  # at 16 the U-Net's bottleneck and the patch map would be 1x1


class WholeInstanceNorm(nn.Module):
    """keras_contrib InstanceNormalization(axis=None): per sample over (C, H, W), scalar affine."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(()))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
        var = x.var(dim=(1, 2, 3), keepdim=True, correction=0)  # (B, 1, 1, 1), as K.std
        # The floor keeps sqrt's gradient finite on a constant map (a blank image, zero biases).
        std = var.clamp_min(1e-12).sqrt()
        return (x - mean) / (std + self.eps) * self.weight + self.bias  # (B, C, H, W)


class SameConv(nn.Conv2d):
    """Conv k4 s1 with Keras's 'same' padding for an even kernel: 1 pixel before, 2 after."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (1, 2, 1, 2)))  # (left, right, top, bottom): same H, W


def make_norm(norm: str, channels: int) -> nn.Module:
    return WholeInstanceNorm() if norm == "book" else nn.InstanceNorm2d(channels, affine=True)


def down(c_in: int, c_out: int, norm: str | None) -> nn.Sequential:
    """conv k4 s2 'same' -> LeakyReLU 0.2 -> norm (the book's conv2d / d_layer): halves H, W."""
    layers = [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, *([make_norm(norm, c_out)] if norm else []))


class Up(nn.Module):
    """x2 nearest upsampling -> conv k4 s1 'same' -> ReLU -> norm, then concat the skip."""

    def __init__(self, c_in: int, c_out: int, norm: str) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Upsample(scale_factor=2),
            SameConv(c_in, c_out),
            nn.ReLU(),
            make_norm(norm, c_out),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.net(x), skip], 1)  # (B, c_out + skip channels, 2H, 2W)


class UNet(nn.Module):
    """The book's U-Net generator (listing 9.4): one direction of translation."""

    def __init__(self, channels: int, gf: int, norm: str) -> None:
        super().__init__()
        widths = [gf * 2**i for i in range(DOWNSAMPLINGS)]  # gf, 2gf, 4gf, 8gf
        self.downs = nn.ModuleList(
            down(c_in, c_out, norm) for c_in, c_out in pairwise([channels, *widths])
        )
        # Each up block is concatenated with the down block of its size, doubling its width: it
        # takes 8gf from the bottleneck, then twice the previous up block's width.
        outs = widths[-2::-1]  # 4gf, 2gf, gf
        ins = [widths[-1]] + [2 * c for c in outs[:-1]]  # 8gf, 8gf, 4gf
        self.ups = nn.ModuleList(
            Up(c_in, c_out, norm) for c_in, c_out in zip(ins, outs, strict=True)
        )
        self.out = nn.Sequential(
            nn.Upsample(scale_factor=2),
            SameConv(2 * gf, channels),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.downs:  # (B, gf, H/2, W/2) ... (B, 8gf, H/16, W/16)
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in self.ups:  # (B, 8gf, H/8, W/8), (B, 4gf, H/4, W/4), (B, 2gf, H/2, W/2)
            x = block(x, skips.pop())
        return self.out(x)  # (B, C, H, W)


class PatchGAN(nn.Module):
    """The book's PatchGAN discriminator (listing 9.5): a linear score per image patch."""

    def __init__(self, channels: int, df: int, norm: str) -> None:
        super().__init__()
        widths = [df * 2**i for i in range(DOWNSAMPLINGS)]  # df, 2df, 4df, 8df
        self.net = nn.Sequential(
            *(
                down(c_in, c_out, norm if i > 0 else None)  # no norm on the input layer
                for i, (c_in, c_out) in enumerate(pairwise([channels, *widths]))
            ),  # (B, 8df, H/16, W/16)
            SameConv(widths[-1], 1),  # (B, 1, H/16, W/16)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (B, H/16, W/16) patch scores


def by_domain(nets: tuple[nn.Module, nn.Module], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """nets[d] applied to the images x[y == d] only, the results put back in batch order."""
    index = [(y == d).nonzero().squeeze(1) for d in (0, 1)]  # (B_A,), (B_B,)
    if sum(len(i) for i in index) != len(y):
        raise GanstudyError("architecture 'cyclegan': domain labels must be 0 (A) or 1 (B)")
    parts = [(i, net(x[i])) for net, i in zip(nets, index, strict=True) if len(i)]
    first = parts[0][1]
    out = first.new_empty(len(y), *first.shape[1:])  # (B, ...) like each part
    for i, part in parts:
        out[i] = part  # index_put: the gradient flows back to each part
    return out


class Translator(nn.Module):
    """Both generators: G(x, y) = G_AB(x[i]) where y[i] = 0 (A), G_BA(x[i]) where y[i] = 1 (B)."""

    translates = True  # image-to-image: make_fakes passes the source images
    z_dim = 0  # no latent code
    num_classes = 2  # the domains

    def __init__(self, G_AB: nn.Module, G_BA: nn.Module) -> None:
        super().__init__()
        self.G_AB = G_AB
        self.G_BA = G_BA

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return by_domain((self.G_AB, self.G_BA), x, y)  # (B, C, H, W) in the other domains


class Discriminators(nn.Module):
    """Both discriminators: D(x, y) scores x[i] with D_A where y[i] = 0, D_B where y[i] = 1."""

    num_classes = 2  # the domains

    def __init__(self, D_A: nn.Module, D_B: nn.Module) -> None:
        super().__init__()
        self.D_A = D_A
        self.D_B = D_B

    def judge(self, x: torch.Tensor, domain: int) -> torch.Tensor:
        """The patch scores of domain ``domain``'s discriminator on every image of x."""
        return (self.D_A, self.D_B)[domain](x)  # (B, P, P)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return by_domain((self.D_A, self.D_B), x, y)  # (B, P, P)


def check_args(image: ImageSpec, gf: int, df: int, norm: str) -> None:
    if norm not in NORMS:
        raise GanstudyError(
            f"architecture 'cyclegan': norm must be one of {', '.join(NORMS)} (got {norm!r})"
        )
    for name, value in (("gf", gf), ("df", df)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GanstudyError(f"architecture 'cyclegan': {name} must be an integer >= 1")
    if image.num_classes != 2:
        raise GanstudyError(
            f"architecture 'cyclegan' translates between two domains, the data has "
            f"{image.num_classes} classes (keep two with preprocess.classes: [a, b])"
        )
    step = 2**DOWNSAMPLINGS
    if image.size % step or image.size < MIN_SIZE:
        raise GanstudyError(
            f"architecture 'cyclegan' builds 32, 64 or 128 pixel images (a multiple of {step} "
            f"from {MIN_SIZE}), data is {image.size}x{image.size} (set preprocess.image_size)"
        )


def build(
    image: ImageSpec, gf: int = 32, df: int = 64, norm: str = "book"
) -> tuple[nn.Module, nn.Module]:
    """(G, D) of the book: gf, df the first layers' filters (listing 9.2: 32, 64)."""
    check_args(image, gf, df, norm)
    G = Translator(*(UNet(image.channels, gf, norm) for _ in range(2)))
    D = Discriminators(*(PatchGAN(image.channels, df, norm) for _ in range(2)))
    G.apply(glorot_init)
    D.apply(glorot_init)
    return G, D


ARCHITECTURES.add(
    Architecture(
        "cyclegan",
        "CycleGAN of GANs in Action ch. 9: two U-Net generators (1,545,425 params each at "
        "128x128x3), two PatchGAN Ds (2,764,743 each); classes 0/1 = domains A/B; game cyclegan",
        build,
        uses_labels=True,
        example=ImageSpec(1, 32, 2),
    ),
)
