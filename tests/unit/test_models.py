import pytest
import torch

from ganstudy.errors import GanstudyError
from ganstudy.models import ARCHITECTURES, ImageSpec, build_gan

# Parameter counts the book gives (GANs in Action, listings 3.3/3.4 and 4.3/4.4, 28x28x1).
BOOK_PARAMS = {"dcgan": (1_636_737, 95_105), "gan": (114_064, 100_609)}
IMAGE = ImageSpec(channels=1, size=28, num_classes=10)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
def test_shapes_and_gradients(arch):
    torch.manual_seed(0)
    G, D = build_gan(arch, IMAGE, {})
    z = torch.randn(4, G.z_dim)
    fake = G(z)
    assert fake.shape == (4, 1, 28, 28) and fake.abs().max() <= 1
    logits = D(fake)
    assert logits.shape == (4,)
    logits.sum().backward()
    for name, p in [*G.named_parameters(), *D.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("arch", sorted(BOOK_PARAMS))
def test_parameter_counts_match_the_book(arch):
    G, D = build_gan(arch, IMAGE, {})
    assert (count(G), count(D)) == BOOK_PARAMS[arch]


def test_bad_architecture_arguments_are_clear():
    with pytest.raises(GanstudyError, match="dcgan.*unexpected keyword"):
        build_gan("dcgan", IMAGE, {"zdim": 64})
    with pytest.raises(GanstudyError, match="28x28"):
        build_gan("dcgan", ImageSpec(1, 32, 10), {})
