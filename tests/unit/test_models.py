import pytest
import torch
from torch.nn.utils.parametrize import is_parametrized

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


def modules_of(module: torch.nn.Module, kind: type) -> list[torch.nn.Module]:
    return [m for m in module.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("norm", ["batch", "spectral", "none"])
def test_dcgan_discriminator_norm_option(norm):
    torch.manual_seed(0)
    G, D = build_gan("dcgan", IMAGE, {"norm": norm})
    batch_norms = modules_of(D, torch.nn.modules.batchnorm._BatchNorm)
    assert len(batch_norms) == (2 if norm == "batch" else 0)
    assert len(modules_of(G, torch.nn.BatchNorm2d)) == 2  # G keeps BatchNorm in every case
    weighted = modules_of(D, torch.nn.Conv2d) + modules_of(D, torch.nn.Linear)
    assert len(weighted) == 4
    assert all(is_parametrized(m, "weight") == (norm == "spectral") for m in weighted)
    logits = D(G(torch.randn(4, G.z_dim)))
    assert logits.shape == (4,)
    logits.sum().backward()  # every parameter (SN's `original` weights too) gets a gradient
    for name, p in D.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_spectral_norm_divides_a_weight_by_its_largest_singular_value():
    torch.manual_seed(0)
    _, D = build_gan("dcgan", IMAGE, {"norm": "spectral"})
    linear = D.net[-1].weight  # (1, 2048): rank 1, power iteration is exact at once
    assert torch.linalg.vector_norm(linear).item() == pytest.approx(1.0, rel=1e-4)
    assert torch.linalg.vector_norm(D.net[-1].parametrizations.weight.original).item() > 1.1


def test_invalid_norm_lists_the_choices():
    with pytest.raises(GanstudyError, match="norm must be one of batch, spectral, none.*'layer'"):
        build_gan("dcgan", IMAGE, {"norm": "layer"})


def test_spectral_discriminator_round_trips_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(0)
    _, D = build_gan("dcgan", IMAGE, {"norm": "spectral"})
    x = torch.randn(4, 1, 28, 28)
    D(x)  # a training-mode call updates the power-iteration vectors u, v (buffers)
    torch.save(D.state_dict(), tmp_path / "d.pt")
    assert any(key.endswith("_u") for key in D.state_dict())
    torch.manual_seed(1)  # another init: everything must come from the file
    _, D2 = build_gan("dcgan", IMAGE, {"norm": "spectral"})
    D2.load_state_dict(torch.load(tmp_path / "d.pt", weights_only=True))
    assert torch.equal(D.eval()(x), D2.eval()(x))
