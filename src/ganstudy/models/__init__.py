"""The architectures registry. A variant in ``params.yaml`` names an architecture and a game."""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.registry import Registry


@dataclass(frozen=True)
class ImageSpec:
    channels: int
    size: int  # square side, pixels
    num_classes: int


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str  # one line, shown by `ganstudy variants`
    build: Callable[..., tuple[nn.Module, nn.Module]]  # (ImageSpec, **arch_args) -> (G, D)
    uses_labels: bool = False  # trains on (image, label) pairs: its runs depend on the labels


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def build_gan(arch: str, image: ImageSpec, arch_args: dict) -> tuple[nn.Module, nn.Module]:
    """Build (G, D) for ``arch``; bad arguments are one-line errors."""
    entry = ARCHITECTURES.get(arch)
    try:
        return entry.build(image, **arch_args)
    except TypeError as err:  # an unknown or missing keyword in arch_args
        raise GanstudyError(f"architecture {arch!r}: {err}") from None


def is_conditional(module: nn.Module) -> bool:
    """Whether ``module`` takes class labels: G(z, y) or D(x, y) (a ``num_classes`` > 0)."""
    return getattr(module, "num_classes", 0) > 0


def has_classifier(D: nn.Module) -> bool:
    """Whether D has an auxiliary classifier head: it returns (scores (B,), class logits (B, K))."""
    return getattr(D, "aux_classes", 0) > 0


from ganstudy.models import acgan, cgan, dcgan, gan  # noqa: E402,F401  (registers their entries)
