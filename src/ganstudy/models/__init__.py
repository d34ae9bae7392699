"""The architectures registry. A variant in ``params.yaml`` names an architecture and a game.

Each module of this package defines architectures and registers them on import,
``ARCHITECTURES.add(Architecture("name", description, build))``. A variant's ``arch_args`` are
the keywords of ``build(image, **arch_args)``: the accepted keys are read off its signature
(``Architecture.keywords``), and an unknown one is a one-line error naming them. What the loop,
the games and evaluate may ask of a network is a capability, never an architecture name:
``num_classes`` (conditional: G(z, y) or D(x, y)), ``aux_classes`` (D has a class head),
``translates`` (an image-to-image G(x, y): x of domain y to the other domain, CycleGAN) and
``set_progress(fraction)`` (networks that change with training time, e.g. progressive growing;
they keep that state in a buffer, so a checkpoint restores it).
"""

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.registry import Registry, check_keywords, keywords


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
    # The smallest data it is built for in the automatic per-architecture tests.
    example: ImageSpec = field(default_factory=lambda: ImageSpec(1, 28, 10))

    @property
    def keywords(self) -> tuple[str, ...]:
        """The ``arch_args`` keys it accepts: ``build``'s keywords after the image."""
        return keywords(self.build, skip=1)


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def build_gan(
    arch: str, image: ImageSpec, arch_args: dict, what: str | None = None
) -> tuple[nn.Module, nn.Module]:
    """Build (G, D) for ``arch``; bad arguments are one-line errors, starting with ``what``
    (default: the architecture)."""
    entry = ARCHITECTURES.get(arch)
    check_keywords(what or f"architecture {arch!r}: arch_args", arch_args, entry.keywords)
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


def translates(G: nn.Module) -> bool:
    """Whether G maps images to images, G(x, y) with x of domain y (B,), instead of G(z)."""
    return getattr(G, "translates", False)


def make_fakes(
    G: nn.Module, z: torch.Tensor, y: torch.Tensor | None, source: torch.Tensor | None = None
) -> torch.Tensor:
    """G's images (B, C, H, W) for latent codes z (B, z_dim), labels y (B,) or None and, for an
    image-to-image G, source images (B, C, H, W) of domain y."""
    if translates(G):
        return G(source, y)
    return G(z, y) if y is not None and is_conditional(G) else G(z)


def set_progress(modules: tuple[nn.Module, ...], step: int, total: int) -> None:
    """Tell networks that change with training time how far training is (0 to 1)."""
    for module in modules:
        if hasattr(module, "set_progress"):
            module.set_progress(step / total)


for _module in pkgutil.iter_modules(__path__):  # every architecture module registers itself
    importlib.import_module(f"{__name__}.{_module.name}")
