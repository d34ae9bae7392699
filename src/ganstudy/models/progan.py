"""Progressive GAN (Karras et al. 2017, ProGAN; GANs in Action ch. 6): networks that grow from 4x4
to the data's size during training, fading each new resolution in.

The four ch. 6 ingredients: progressive growing with a smooth fade-in α (§6.2.1), the minibatch
standard deviation feature in D (§6.2.3), the equalised learning rate (§6.2.4) and pixel-wise
feature normalisation in G (§6.2.5). The layout follows the paper's Table 2 and its official code
(tkarras/progressive_growing_of_gans, networks.py, read for this): 3x3 conv pairs per resolution,
LeakyReLU 0.2, nearest up-sampling in G, average pooling in D, 1x1 toRGB/fromRGB layers.

To the rest of ganstudy G always outputs and D always takes images of the data's full size. At
resolution r below it G's image is up-sampled (nearest) to the full size and D first averages its
input down to r, which recovers G's r x r image exactly. Training time reaches the networks through
``set_progress(fraction)``: the stage (current resolution) and α live in buffers, so a checkpoint
restores them. Every layer, also of resolutions not reached yet, is a parameter from the start, so
the optimizers' parameter lists never change; a layer not in use gets no gradient and no update.
Unlike the official code the optimizers' state is not reset at each new resolution (the loop owns
the optimizers).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.models import ARCHITECTURES, Architecture, ImageSpec

SIZES = (16, 32, 64, 128)  # full resolutions it grows to, from 4x4
SLOPE = 0.2  # LeakyReLU slope of every hidden layer (paper §A.1)
EPS = 1e-8  # pixel norm's epsilon (book eq. 6.1) and the minibatch std's


class EqualConv2d(nn.Module):
    """A 'same' convolution with the equalised learning rate (book §6.2.4): weights stored as
    N(0, 1) and multiplied at runtime by He's constant gain / sqrt(fan_in), fan_in = C_in k k."""

    def __init__(self, c_in: int, c_out: int, kernel: int, gain: float = math.sqrt(2)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in * kernel * kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.weight.shape[-1] // 2
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=pad)  # (B, C_out, H, W)


class EqualLinear(nn.Module):
    """A linear layer with the equalised learning rate: N(0, 1) weights, times gain/sqrt(fan_in)."""

    def __init__(
        self, f_in: int, f_out: int, gain: float = math.sqrt(2), bias: bool = True
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(f_out, f_in))
        self.bias = nn.Parameter(torch.zeros(f_out)) if bias else None
        self.scale = gain / math.sqrt(f_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)  # (B, F_out)


def pixel_norm(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Book eq. 6.1: each pixel's feature vector over the channels (dim 1) to unit mean square."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)  # like x


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Book §6.2.3: append one feature map, the average standard deviation over a group.

    Per group of ``group_size`` samples: the std over the group of every feature and pixel,
    averaged to one number, tiled to H x W. Sample b is in group b mod (B / group), as in the
    official code. Our choice: where B is not a multiple of ``group_size`` the largest group size
    under it that divides B is used (the official code requires a multiple).
    """
    B, C, H, W = x.shape
    group = max(g for g in range(1, min(group_size, B) + 1) if B % g == 0)
    y = x.view(group, B // group, C, H, W)  # (G, M, C, H, W)
    y = torch.sqrt(y.var(dim=0, unbiased=False) + EPS)  # (M, C, H, W)
    s = y.mean(dim=(1, 2, 3))  # (M,)
    s = s.repeat(group).view(B, 1, 1, 1).expand(B, 1, H, W)  # (B, 1, H, W)
    return torch.cat([x, s], dim=1)  # (B, C + 1, H, W)


def phase_at(
    fraction: float, num_stages: int, fade_fraction: float, growth_fraction: float
) -> tuple[int, float]:
    """(stage, α) after ``fraction`` of training; stage s trains at 4 * 2^s pixels.

    Growing takes the first ``growth_fraction`` of training, cut evenly (the paper's equal image
    counts per phase): every resolution after the first gets one slot, its first
    ``fade_fraction`` fading in (α 0 to 1, linearly), the rest stabilising (α 1); the first
    resolution only stabilises, for a slot's stabilising part. The full resolution then keeps
    training to the end. With fade_fraction 0.5 and growth_fraction 1 every phase has the same
    length, as in the paper.
    """
    if num_stages == 1:
        return 0, 1.0
    slot = growth_fraction / (num_stages - fade_fraction)  # one resolution's share of training
    t = fraction / slot - (1 - fade_fraction)  # slots since the first resolution's end
    if t < 0:
        return 0, 1.0
    stage = min(1 + math.floor(t), num_stages - 1)
    within = t - (stage - 1)  # slots since this stage's fade began
    alpha = 1.0 if fade_fraction == 0 else min(within / fade_fraction, 1.0)
    return stage, alpha


class Progressive(nn.Module):
    """Holds the growth state: ``stage`` and ``alpha`` are persistent buffers (in state_dict)."""

    def __init__(self, size: int, fade_fraction: float, growth_fraction: float) -> None:
        super().__init__()
        self.size = size
        self.num_stages = int(math.log2(size)) - 1  # 4x4, 8x8, ..., size
        self.fade_fraction = fade_fraction
        self.growth_fraction = growth_fraction
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))
        self.register_buffer("alpha", torch.ones(()))
        # Python copies for control flow (no device sync per forward), kept by a load hook.
        self._stage, self._fading = 0, False
        self.register_load_state_dict_post_hook(_sync_phase)

    def set_progress(self, fraction: float) -> None:
        stage, alpha = phase_at(fraction, self.num_stages, self.fade_fraction, self.growth_fraction)
        self.stage.fill_(stage)
        self.alpha.fill_(alpha)
        self._stage, self._fading = stage, alpha < 1.0

    @property
    def resolution(self) -> int:
        """The resolution the network works at now (pixels)."""
        return 4 * 2**self._stage


def _sync_phase(module: nn.Module, _incompatible: object) -> None:
    module._stage, module._fading = int(module.stage), bool(module.alpha < 1.0)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, SLOPE)


class GBlock(nn.Module):
    """G at one resolution above 4x4: up x2 (nearest), then two 3x3 convs, LeakyReLU, pixel norm."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(c_in, c_out, 3)
        self.conv1 = EqualConv2d(c_out, c_out, 3)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(h, scale_factor=2, mode="nearest")  # (B, C_in, 2H, 2W)
        h = pixel_norm(lrelu(self.conv0(h)))  # (B, C_out, 2H, 2W)
        return pixel_norm(lrelu(self.conv1(h)))


class GStart(nn.Module):
    """G at 4x4: pixel-normed z -> dense to (C, 4, 4) -> 3x3 conv, LeakyReLU and pixel norm."""

    def __init__(self, z_dim: int, c: int) -> None:
        super().__init__()
        self.c = c
        # Gain sqrt(2)/4: the official code's override "to match the original Theano
        # implementation" (the paper's 4x4 conv on a 1x1 latent).
        self.dense = EqualLinear(z_dim, 16 * c, gain=math.sqrt(2) / 4, bias=False)
        self.bias = nn.Parameter(torch.zeros(c))  # one per channel, as the official code
        self.conv = EqualConv2d(c, c, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dense(pixel_norm(z)).view(-1, self.c, 4, 4)  # (B, C, 4, 4)
        h = pixel_norm(lrelu(h + self.bias.view(1, -1, 1, 1)))
        return pixel_norm(lrelu(self.conv(h)))  # (B, C, 4, 4)


class Generator(Progressive):
    """z -> 4x4 block -> one block per doubling up to the stage's resolution -> toRGB -> tanh.

    During a fade-in (book §6.2.1): x = (1 - α) up2(toRGB_old(h)) + α toRGB_new(block(h)).
    Our choice: tanh on the image (the paper's G is linear; ganstudy's images lie in [-1, 1]).
    """

    def __init__(
        self,
        z_dim: int,
        widths: list[int],
        image_channels: int,
        size: int,
        fade_fraction: float,
        growth_fraction: float,
    ) -> None:
        super().__init__(size, fade_fraction, growth_fraction)
        self.z_dim = z_dim
        self.start = GStart(z_dim, widths[0])
        # blocks[s - 1] doubles resolution 4 * 2^(s-1) to stage s's; to_rgb[s] is stage s's.
        self.blocks = nn.ModuleList(GBlock(widths[s - 1], widths[s]) for s in range(1, len(widths)))
        self.to_rgb = nn.ModuleList(EqualConv2d(c, image_channels, 1, gain=1.0) for c in widths)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        stage = self._stage
        h = self.start(z)  # (B, C_0, 4, 4)
        for block in self.blocks[: max(stage - 1, 0)]:
            h = block(h)  # up to (B, C_s-1, r/2, r/2)
        if stage == 0:
            x = self.to_rgb[0](h)  # (B, C, 4, 4)
        else:
            x = self.to_rgb[stage](self.blocks[stage - 1](h))  # (B, C, r, r)
            if self._fading:
                old = F.interpolate(self.to_rgb[stage - 1](h), scale_factor=2, mode="nearest")
                x = torch.lerp(old, x, self.alpha)  # (1 - α) old + α new
        x = torch.tanh(x)
        factor = self.size // self.resolution
        return F.interpolate(x, scale_factor=factor, mode="nearest") if factor > 1 else x


class DBlock(nn.Module):
    """D at one resolution above 4x4: two 3x3 convs with LeakyReLU, then 2x2 average pooling."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(c_in, c_in, 3)
        self.conv1 = EqualConv2d(c_in, c_out, 3)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = lrelu(self.conv1(lrelu(self.conv0(h))))  # (B, C_out, H, W)
        return F.avg_pool2d(h, 2)  # (B, C_out, H/2, W/2)


class DEnd(nn.Module):
    """D at 4x4: minibatch std (+1 channel), 3x3 conv, dense, dense to one score."""

    def __init__(self, c: int, group_size: int) -> None:
        super().__init__()
        self.group_size = group_size
        self.conv = EqualConv2d(c + 1, c, 3)
        self.dense = EqualLinear(16 * c, c)
        self.out = EqualLinear(c, 1, gain=1.0)  # linear output: He's gain 1

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = minibatch_stddev(h, self.group_size)  # (B, C + 1, 4, 4)
        h = lrelu(self.conv(h))  # (B, C, 4, 4)
        h = lrelu(self.dense(h.flatten(1)))  # (B, C)
        return self.out(h).squeeze(1)  # (B,) scores


class Discriminator(Progressive):
    """G's mirror: average-pool to the stage's resolution -> fromRGB -> blocks down to 4x4 -> end.

    During a fade-in: h = (1 - α) fromRGB_old(pool2(x)) + α block(fromRGB_new(x)).
    """

    def __init__(
        self,
        widths: list[int],
        image_channels: int,
        size: int,
        fade_fraction: float,
        growth_fraction: float,
        group_size: int,
    ) -> None:
        super().__init__(size, fade_fraction, growth_fraction)
        self.from_rgb = nn.ModuleList(EqualConv2d(image_channels, c, 1) for c in widths)
        # blocks[s - 1] takes stage s's resolution down to half; end is the 4x4 block.
        self.blocks = nn.ModuleList(DBlock(widths[s], widths[s - 1]) for s in range(1, len(widths)))
        self.end = DEnd(widths[0], group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stage = self._stage
        factor = self.size // self.resolution
        x = F.avg_pool2d(x, factor) if factor > 1 else x  # (B, C, r, r)
        h = lrelu(self.from_rgb[stage](x))  # (B, C_s, r, r)
        for s in range(stage, 0, -1):
            h = self.blocks[s - 1](h)  # (B, C_s-1, r_s / 2, r_s / 2)
            if s == stage and self._fading:
                old = lrelu(self.from_rgb[stage - 1](F.avg_pool2d(x, 2)))
                h = torch.lerp(old, h, self.alpha)  # (1 - α) old + α new
        return self.end(h)  # (B,) scores


def widths_for(size: int, channels: int, channels_until: int) -> list[int]:
    """Channels at 4, 8, ..., size: ``channels`` up to ``channels_until`` pixels, halving at each
    doubling after it (the paper: 512 up to 32x32, then 256, 128, ...), at least 1."""
    resolutions = [4 * 2**s for s in range(int(math.log2(size)) - 1)]
    return [
        channels if r <= channels_until else max(channels * channels_until // r, 1)
        for r in resolutions
    ]


def _check(name: str, ok: bool, expected: str, value: object) -> None:
    if not ok:
        raise GanstudyError(f"architecture 'progan': {name} must be {expected} (got {value!r})")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def build(
    image: ImageSpec,
    z_dim: int | None = None,
    channels: int = 128,
    channels_until: int = 16,
    fade_fraction: float = 0.5,
    growth_fraction: float = 1.0,
    mbstd_group: int = 4,
) -> tuple[nn.Module, nn.Module]:
    """ProGAN's (G, D) for ``image``.

    Args:
        image: the data; its size must be one of ``SIZES``.
        z_dim: latent size; None = ``channels`` (the paper: 512 = its channels).
        channels: channels at 4x4 and up to ``channels_until`` (the paper: 512).
        channels_until: last resolution at full ``channels``; halved per doubling after (paper 32).
        fade_fraction: share of each resolution's slot spent fading in, in [0, 1) (paper: 0.5).
        growth_fraction: share of training spent growing, in (0, 1]; the rest at full size.
        mbstd_group: minibatch standard deviation group size (paper: 4).
    """
    _check("z_dim", z_dim is None or (_is_int(z_dim) and z_dim >= 1), "an integer >= 1", z_dim)
    _check("channels", _is_int(channels) and channels >= 1, "an integer >= 1", channels)
    ok = _is_int(channels_until) and channels_until >= 4
    _check("channels_until", ok, "an integer >= 4", channels_until)
    ok = _is_number(fade_fraction) and 0 <= fade_fraction < 1
    _check("fade_fraction", ok, "a number in [0, 1)", fade_fraction)
    ok = _is_number(growth_fraction) and 0 < growth_fraction <= 1
    _check("growth_fraction", ok, "a number in (0, 1]", growth_fraction)
    _check("mbstd_group", _is_int(mbstd_group) and mbstd_group >= 2, "an integer >= 2", mbstd_group)
    if image.size not in SIZES:
        sizes = ", ".join(str(s) for s in SIZES)
        raise GanstudyError(
            f"architecture 'progan' grows to {sizes} pixel images, data is "
            f"{image.size}x{image.size} (set preprocess.image_size to one of {sizes})"
        )
    widths = widths_for(image.size, channels, channels_until)
    schedule = (image.size, fade_fraction, growth_fraction)
    G = Generator(z_dim or channels, widths, image.channels, *schedule)
    D = Discriminator(widths, image.channels, *schedule, mbstd_group)
    return G, D


ARCHITECTURES.add(
    Architecture(
        "progan",
        "ProGAN (Karras et al. 2017; book ch. 6): grows 4x4 to the data's size (16-128) with "
        "fade-in, minibatch std, equalised LR, pixel norm; train with game progan",
        build,
        example=ImageSpec(1, 16, 10),
    ),
)
