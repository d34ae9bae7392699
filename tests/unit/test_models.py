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
    with pytest.raises(GanstudyError, match=r"28, 32, 64 .*48x48.*preprocess\.image_size"):
        build_gan("dcgan", ImageSpec(1, 48, 10), {})


def modules_of(module: torch.nn.Module, kind: type) -> list[torch.nn.Module]:
    return [m for m in module.modules() if isinstance(m, kind)]


# dcgan's configuration is picked by image size: 28 the book's ch. 4, 32 the Deep Learning with
# Python frog DCGAN (CIFAR-10, RGB), 64 Frid-Adar et al.'s 5x5-kernel DCGAN (grey CT ROIs).
DCGAN_IMAGES = {28: IMAGE, 32: ImageSpec(3, 32, 10), 64: ImageSpec(1, 64, 10)}
# Parameter counts the sources give, at each configuration's defaults: the book (listings 4.3/4.4)
# and the notes on Chollet's notebook (G 6,264,579 / D 790,913). Frid-Adar's are not given.
DCGAN_SOURCE_PARAMS = {28: (1_636_737, 95_105), 32: (6_264_579, 790_913)}
# Per size: (BatchNorms in G, BatchNorms in D with norm "batch", conv/linear layers in D).
DCGAN_LAYOUT = {28: (2, 2, 4), 32: (0, 3, 5), 64: (4, 3, 5)}


@pytest.mark.parametrize("norm", ["batch", "spectral", "none"])
@pytest.mark.parametrize("size", sorted(DCGAN_IMAGES))
def test_dcgan_configurations_for_every_norm(size, norm):
    torch.manual_seed(0)
    image = DCGAN_IMAGES[size]
    G, D = build_gan("dcgan", image, {"norm": norm})
    g_norms, d_norms, d_weighted = DCGAN_LAYOUT[size]
    assert len(modules_of(G, torch.nn.BatchNorm2d)) == g_norms  # G is its source's in every case
    batch_norms = modules_of(D, torch.nn.modules.batchnorm._BatchNorm)
    assert len(batch_norms) == (d_norms if norm == "batch" else 0)
    weighted = modules_of(D, torch.nn.Conv2d) + modules_of(D, torch.nn.Linear)
    assert len(weighted) == d_weighted
    assert all(is_parametrized(m, "weight") == (norm == "spectral") for m in weighted)
    fake = G(torch.randn(2, G.z_dim))
    assert fake.shape == (2, image.channels, size, size) and fake.abs().max() <= 1
    logits = D(fake)
    assert logits.shape == (2,)
    logits.sum().backward()  # every parameter (SN's `original` weights too) gets a gradient
    for name, p in [*G.named_parameters(), *D.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("size", sorted(DCGAN_SOURCE_PARAMS))
def test_dcgan_parameter_counts_match_the_sources(size):
    G, D = build_gan("dcgan", DCGAN_IMAGES[size], {})
    assert (count(G), count(D)) == DCGAN_SOURCE_PARAMS[size]


def test_dcgan_unset_arguments_take_the_sources_values():
    G, D = build_gan("dcgan", DCGAN_IMAGES[32], {})  # Chollet: latent 32, LeakyReLU 0.3, dropout
    assert G.z_dim == 32 and not modules_of(D, torch.nn.BatchNorm2d)
    assert {m.negative_slope for m in modules_of(D, torch.nn.LeakyReLU)} == {0.3}
    assert [m.p for m in modules_of(D, torch.nn.Dropout)] == [0.4]
    G, D = build_gan("dcgan", DCGAN_IMAGES[64], {"z_dim": 64})
    assert G.z_dim == 64 and G(torch.randn(2, 64)).shape == (2, 1, 64, 64)
    convs = modules_of(G, torch.nn.ConvTranspose2d) + modules_of(D, torch.nn.Conv2d)
    assert {m.kernel_size for m in convs} == {(5, 5)}  # Frid-Adar et al.: 5x5 kernels


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
