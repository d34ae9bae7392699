import pytest
import torch
from torch.nn.utils.parametrize import is_parametrized

from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, Batch, build_game
from ganstudy.models import (
    ARCHITECTURES,
    ImageSpec,
    build_gan,
    has_classifier,
    is_conditional,
    make_fakes,
    set_progress,
    translates,
)

# Parameter counts the book gives (GANs in Action, listings 3.3/3.4, 4.3/4.4 and 8.3/8.4, 28x28x1).
BOOK_PARAMS = {
    "dcgan": (1_636_737, 95_105),
    "gan": (114_064, 100_609),
    "cgan": (1_637_737, 122_273),
}
IMAGE = ImageSpec(channels=1, size=28, num_classes=10)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def judge(D: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """D's (B,) scores, and its (B, K) class logits when it has an auxiliary classifier."""
    out = D(x, y) if is_conditional(D) else D(x)
    return out if has_classifier(D) else (out,)


def game_for(arch: str) -> str:
    """The game made for ``arch`` (e.g. cyclegan's), else the book's non-saturating game."""
    made_for = [name for name in GAMES if GAMES.get(name).arch == arch]
    return made_for[0] if made_for else "nonsaturating"


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
def test_shapes_and_gradients(arch):
    image = ARCHITECTURES.get(arch).example
    torch.manual_seed(0)
    G, D = build_gan(arch, image, {})
    shape = (4, image.channels, image.size, image.size)
    z, y = torch.randn(4, G.z_dim), torch.tensor([0, 1, 1, 0]) % image.num_classes
    real = torch.rand(shape) * 2 - 1  # also an image-to-image G's input
    set_progress((G, D), 1, 1)  # networks that grow do so by the end: every layer in use
    fake = make_fakes(G, z, y, real)
    assert fake.shape == shape and fake.abs().max() <= 1
    logits, *classes = judge(D, fake, y)
    assert logits.shape[0] == 4
    assert [c.shape for c in classes] == ([(4, D.aux_classes)] if has_classifier(D) else [])

    # A D step and a G step of its game, gradients accumulated, no optimizer step: every
    # parameter of both players (auxiliary heads, encoders, layers of every resolution) learns.
    # Networks that grow are checked along their schedule: each layer learns in its time.
    game = build_game(game_for(arch), {})
    uses_labels = ARCHITECTURES.get(arch).uses_labels and not game.needs_labelled_batch
    batch = Batch(real, y if uses_labels else None, z, labelled=(real, y))
    no_noise = lambda x: x  # noqa: E731
    grows = hasattr(G, "set_progress") or hasattr(D, "set_progress")
    for fraction in [i / 8 for i in range(9)] if grows else [1.0]:
        set_progress((G, D), fraction, 1)
        if game.adversarial:
            game.d_step(G, D, batch, no_noise, lambda loss: loss.backward())
        game.g_step(G, D, batch, no_noise, lambda loss: loss.backward())
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


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
def test_conditioning_is_a_property_of_the_architecture(arch):
    G, D = build_gan(arch, ARCHITECTURES.get(arch).example, {})
    uses_labels = is_conditional(G) or is_conditional(D) or has_classifier(D) or translates(G)
    assert ARCHITECTURES.get(arch).uses_labels == uses_labels


@pytest.mark.parametrize("arch", ["cgan", "acgan"])
@pytest.mark.parametrize("size", sorted(DCGAN_IMAGES))
def test_labels_change_the_output_and_the_same_labels_repeat_it(arch, size):
    torch.manual_seed(0)
    image = DCGAN_IMAGES[size]
    G, D = build_gan(arch, image, {})
    G.eval(), D.eval()  # BatchNorm on running statistics: each sample on its own
    z = torch.randn(4, G.z_dim).repeat(2, 1)  # (8, z_dim): the same four codes twice
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    other = torch.tensor([4, 5, 6, 7, 0, 1, 2, 3])
    with torch.no_grad():
        a, b = G(z, y), G(z, other)
        assert a.shape == (8, image.channels, size, size)
        assert torch.equal(a[:4], a[4:])  # same z, same y: same images
        assert torch.equal(a[4:], b[4:])
        assert all(not torch.allclose(a[i], b[i]) for i in range(4))  # same z, other y
        if is_conditional(D):  # cgan's D scores the pair (x, y)
            assert not torch.allclose(D(a, y), D(a, other))
            assert torch.equal(D(a, y)[:4], D(a, y)[4:])


def test_cgan_follows_the_book_layout():
    G, D = build_gan("cgan", IMAGE, {})
    assert G.embed.weight.shape == (10, 100) and D.embed.weight.shape == (10, 28 * 28)
    convs = modules_of(D, torch.nn.Conv2d)
    assert [(c.in_channels, c.out_channels) for c in convs] == [(2, 64), (64, 64), (64, 128)]
    assert len(modules_of(D, torch.nn.BatchNorm2d)) == 2
    assert (count(G.base), count(D.base)) == (1_636_737, 122_273 - 7_840)  # DCGAN G; D's stack


def test_conditional_architectures_need_classes():
    for arch in ("cgan", "acgan"):
        with pytest.raises(GanstudyError, match=f"{arch}.*labelled data"):
            build_gan(arch, ImageSpec(1, 28, 0), {})
