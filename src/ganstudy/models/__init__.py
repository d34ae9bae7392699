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


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def build_gan(arch: str, image: ImageSpec, arch_args: dict) -> tuple[nn.Module, nn.Module]:
    """Build (G, D) for ``arch``; bad arguments are one-line errors."""
    entry = ARCHITECTURES.get(arch)
    try:
        return entry.build(image, **arch_args)
    except TypeError as err:  # an unknown or missing keyword in arch_args
        raise GanstudyError(f"architecture {arch!r}: {err}") from None


from ganstudy.models import dcgan, gan  # noqa: E402,F401  (registers their entries)
