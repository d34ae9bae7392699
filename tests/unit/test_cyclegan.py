"""CycleGAN (GANs in Action ch. 9): two-domain networks, the game's losses, training, evaluate."""

import pytest
import torch
from torch import nn

from ganstudy.config import TrainConfig, VariantConfig
from ganstudy.errors import GanstudyError
from ganstudy.losses import Batch, build_game
from ganstudy.metrics.evaluate import generate
from ganstudy.models import ImageSpec, build_gan
from ganstudy.models.cyclegan import Discriminators, Translator, WholeInstanceNorm
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ganstudy.training.loop import train_gan

IMAGE = ImageSpec(1, 32, 2)
SMALL = {"gf": 4, "df": 4}  # the book's layout at a fraction of its width: fast on a CPU
VARIANT = VariantConfig(
    arch="cyclegan",
    arch_args={"gf": 8, "df": 8},
    game="cyclegan",
    optimizer={"lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999)},  # book listing 9.2
)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def weights(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def cfg(iterations: int, **kw) -> TrainConfig:
    base = dict(
        iterations=iterations,
        batch_size=8,
        log_every=1,
        sample_every=iterations,
        checkpoint_every=iterations,
        grid_size=4,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convolutions gain nothing from threads, and spinning ones crawl on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def domains() -> tuple[torch.Tensor, torch.Tensor]:
    """32 images (32, 1, 32, 32) in [-1, 1]: domain A (label 0) a horizontal bright bar on a dark
    ground, domain B (label 1) a vertical one, at random places."""
    gen = torch.Generator().manual_seed(0)
    rows = torch.randint(2, 30, (32,), generator=gen).tolist()
    x = torch.full((32, 1, 32, 32), -1.0)
    y = torch.arange(32) % 2
    for i, r in enumerate(rows):
        if y[i] == 0:
            x[i, 0, r - 2 : r + 2, :] = 1.0
        else:
            x[i, 0, :, r - 2 : r + 2] = 1.0
    return x, y


# Networks.


def test_book_parameter_counts_and_norm_layout():
    G, D = build_gan("cyclegan", ImageSpec(3, 128, 2), {})  # listing 9.2: 128x128x3, gf 32, df 64
    assert count(G.G_AB) == count(G.G_BA) == 1_545_425  # the book's generator summary
    assert count(D.D_A) == count(D.D_B) == 2_764_743  # the book's discriminator summary
    assert (count(G), count(D)) == (2 * 1_545_425, 2 * 2_764_743)
    # keras_contrib InstanceNormalization(): one scalar scale and shift, 7 in a G, 3 in a D.
    norms = [m for m in G.G_AB.modules() if isinstance(m, WholeInstanceNorm)]
    assert len(norms) == 7 and all(p.shape == () for m in norms for p in m.parameters())
    assert len([m for m in D.D_A.modules() if isinstance(m, WholeInstanceNorm)]) == 3
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    assert D.judge(x, 0).shape == (2, 8, 8)  # disc_patch = 128 / 2**4 = 8


@pytest.mark.parametrize("norm", ["book", "instance"])
@pytest.mark.parametrize("size", [32, 64, 48])
def test_shapes_at_supported_sizes(size, norm):
    G, D = build_gan("cyclegan", ImageSpec(3, size, 2), {**SMALL, "norm": norm})
    x, y = torch.rand(4, 3, size, size) * 2 - 1, torch.tensor([0, 1, 1, 0])
    fake = G(x, y)
    assert fake.shape == x.shape and fake.abs().max() <= 1
    assert D(fake, y).shape == (4, size // 16, size // 16)
    if norm == "instance":
        assert not any(isinstance(m, WholeInstanceNorm) for m in G.modules())


@pytest.mark.parametrize(
    "image, args, match",
    [
        (ImageSpec(1, 28, 2), {}, r"32, 64 or 128 .*28x28.*preprocess\.image_size"),
        (ImageSpec(1, 16, 2), {}, r"32, 64 or 128 .*16x16"),
        (ImageSpec(1, 40, 2), {}, r"multiple of 16.*40x40"),
        (ImageSpec(1, 32, 10), {}, r"two domains.*10 classes.*preprocess\.classes"),
        (IMAGE, {"norm": "batch"}, r"norm must be one of book, instance.*'batch'"),
        (IMAGE, {"gf": 0}, r"gf must be an integer >= 1"),
        (IMAGE, {"df": 8.5}, r"df must be an integer >= 1"),
        (IMAGE, {"ngf": 8}, r"cyclegan.*unexpected keyword"),
    ],
)
def test_bad_sizes_and_arguments_are_one_line_errors(image, args, match):
    with pytest.raises(GanstudyError, match=match) as info:
        build_gan("cyclegan", image, args)
    assert "\n" not in str(info.value)


def test_each_image_is_translated_by_the_generator_of_its_domain():
    torch.manual_seed(0)
    G, D = build_gan("cyclegan", IMAGE, SMALL)
    x = torch.rand(6, 1, 32, 32) * 2 - 1
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    a, b = y == 0, y == 1
    with torch.no_grad():
        fake = G(x, y)
        assert torch.allclose(fake[a], G.G_AB(x[a]), atol=1e-6)  # A -> B
        assert torch.allclose(fake[b], G.G_BA(x[b]), atol=1e-6)  # B -> A
        assert not torch.allclose(fake[a], G.G_BA(x[a]), atol=1e-3)  # the two differ
        # Per-sample normalisation: an image's translation does not depend on its batch.
        assert torch.allclose(G(x[1:2], y[1:2]), fake[1:2], atol=1e-6)
        scores = D(x, y)  # each image by the discriminator of its domain
        assert torch.allclose(scores[a], D.judge(x[a], 0), atol=1e-6)
        assert torch.allclose(scores[b], D.D_B(x[b]), atol=1e-6)
        assert torch.allclose(G(x[a], y[a]), G.G_AB(x[a]), atol=1e-6)  # one domain only
    with pytest.raises(GanstudyError, match="domain labels must be 0 .A. or 1 .B."):
        G(x, torch.tensor([0, 1, 2, 0, 1, 0]))


def test_whole_instance_norm_is_the_keras_contrib_formula():
    norm = WholeInstanceNorm()
    with torch.no_grad():
        norm.weight.fill_(2.0)
        norm.bias.fill_(0.5)
    x = torch.randn(2, 3, 4, 4) * 3 + 1
    flat = x.flatten(1)  # over all of C, H, W per sample; population std; eps added to the std
    mean, std = flat.mean(1), flat.std(1, correction=0)
    expected = (flat - mean[:, None]) / (std[:, None] + 1e-3) * 2.0 + 0.5
    assert torch.allclose(norm(x).flatten(1), expected, atol=1e-5)
    blank = torch.zeros(1, 3, 4, 4, requires_grad=True)  # a constant map: finite gradients
    norm(blank).sum().backward()
    assert blank.grad.isfinite().all()


# The game's losses, on hand-made networks.


class Affine(nn.Module):
    """A 'generator' x -> a * x + b."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * x + self.b


class PatchMap(nn.Module):
    """A 'discriminator' whose (B, 2, 2) patch scores are w times the (B, 1, 2, 2) image."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x[:, 0]


X = torch.tensor([[0.2, -0.4, 0.6, 0.1], [-0.3, 0.5, 0.9, -0.8], [0.7, 0.0, -0.2, 0.4]])
X = X.view(3, 1, 2, 2)
Y = torch.tensor([0, 1, 1])  # one image of domain A, two of domain B
A, B = X[:1], X[1:]


def hand_made() -> tuple[Translator, Discriminators]:
    G = Translator(Affine(2.0, 0.0), Affine(0.5, 0.25))  # G_AB, G_BA
    D = Discriminators(PatchMap(1.0), PatchMap(-0.5))  # D_A, D_B
    return G, D


def shift(x: torch.Tensor) -> torch.Tensor:  # stands in for the loop's instance noise
    return x + 0.1


def mse(x: torch.Tensor, target: float) -> torch.Tensor:
    return ((x - target) ** 2).mean()


def mae(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (x - target).abs().mean()


def run_step(step: str, game_args: dict) -> tuple[list[torch.Tensor], dict, tuple]:
    """Runs the game's d_step or g_step on the hand-made networks; the losses it updates on."""
    G, D = hand_made()
    updates: list[torch.Tensor] = []
    game = build_game("cyclegan", game_args)
    batch = Batch(X, Y, torch.zeros(3, 0))
    loss, stats = getattr(game, step)(G, D, batch, shift, updates.append)
    return updates, stats | {"loss": loss.item()}, (G, D)


def test_d_loss_is_least_squares_on_each_domains_reals_and_translations():
    updates, stats, (G, D) = run_step("d_step", {})
    G_AB, G_BA, D_A, D_B = G.G_AB, G.G_BA, D.D_A, D.D_B
    with torch.no_grad():
        fake_A, fake_B = G_BA(B), G_AB(A)  # translations into A (from B) and into B (from A)
        a_real, a_fake = mse(D_A(shift(A)), 1), mse(D_A(shift(fake_A)), 0)
        b_real, b_fake = mse(D_B(shift(B)), 1), mse(D_B(shift(fake_B)), 0)
    expected = 0.5 * (a_real + a_fake) + 0.5 * (b_real + b_fake)  # the paper's halved D loss
    assert len(updates) == 1 and updates[0].item() == pytest.approx(expected.item(), rel=1e-6)
    assert stats["D/loss_A"] == pytest.approx(0.5 * (a_real + a_fake).item(), rel=1e-6)
    assert stats["D/loss_real"] == pytest.approx((a_real + b_real).item(), rel=1e-6)
    assert stats["D/loss_fake"] == pytest.approx((a_fake + b_fake).item(), rel=1e-6)
    updates[0].backward()  # the translations are detached: D's step leaves G alone
    assert all(p.grad is None for p in G.parameters())
    assert all(p.grad is not None for p in D.parameters())


def test_separate_d_update_is_the_books_four_updates_in_order():
    updates, stats, (G, D) = run_step("d_step", {"d_update": "separate"})
    with torch.no_grad():  # listing 9.6: D_A real, D_A fake, D_B real, D_B fake; Keras MSE
        expected = [
            mse(D.D_A(shift(A)), 1),
            mse(D.D_A(shift(G.G_BA(B))), 0),
            mse(D.D_B(shift(B)), 1),
            mse(D.D_B(shift(G.G_AB(A))), 0),
        ]
    assert [u.item() for u in updates] == pytest.approx([e.item() for e in expected], rel=1e-6)
    assert stats["loss"] == pytest.approx(0.5 * sum(e.item() for e in expected), rel=1e-6)


@pytest.mark.parametrize("identity_weight", [9.0, 0.0])
def test_g_loss_is_adversarial_plus_weighted_cycle_and_identity(identity_weight):
    updates, stats, (G, D) = run_step("g_step", {"identity_weight": identity_weight})
    G_AB, G_BA, D_A, D_B = G.G_AB, G.G_BA, D.D_A, D.D_B
    fake_B, fake_A = G_AB(A), G_BA(B)
    adversarial = mse(D_B(shift(fake_B)), 1) + mse(D_A(shift(fake_A)), 1)  # both directions
    cycle = mae(G_BA(fake_B), A) + mae(G_AB(fake_A), B)  # clean: no noise outside D
    identity = mae(G_BA(A), A) + mae(G_AB(B), B)  # the generator into each image's domain
    expected = adversarial + 10 * cycle + identity_weight * identity  # book weights 1, 10, 9
    assert len(updates) == 1 and updates[0].item() == pytest.approx(expected.item(), rel=1e-6)
    # The same gradients for G as the formula's: every term reaches G through every path.
    grads = torch.stack(torch.autograd.grad(updates[0], [G_AB.a, G_BA.a]))  # (2,)
    assert torch.allclose(grads, torch.stack(torch.autograd.grad(expected, [G_AB.a, G_BA.a])))
    assert stats["G/adversarial"] == pytest.approx(adversarial.item(), rel=1e-6)
    assert stats["G/cycle"] == pytest.approx(cycle.item(), rel=1e-6)
    # The identity term is optional (book §9.3); off, it is still measured and logged.
    assert stats["G/identity"] == pytest.approx(identity.item(), rel=1e-6)


def test_game_options_are_checked_and_need_the_cyclegan_networks():
    game = build_game("cyclegan", {})
    assert (game.cycle_weight, game.identity_weight, game.d_update) == (10.0, 9.0, "joint")
    assert build_game("cyclegan", {"identity_weight": 5}).identity_weight == 5  # the paper's
    for args, word in [
        ({"cycle_weight": -1}, "cycle_weight"),
        ({"cycle_weight": float("nan")}, "cycle_weight"),
        ({"identity_weight": "9"}, "identity_weight"),
        ({"identity_weight": True}, "identity_weight"),
        ({"d_update": "both"}, "d_update"),
        ({"pool_size": 50}, "pool_size"),
    ]:
        with pytest.raises(GanstudyError, match=f"game 'cyclegan'.*{word}"):
            build_game("cyclegan", args)
    G, D = build_gan("dcgan", ImageSpec(1, 28, 10), {})
    batch = Batch(torch.zeros(2, 1, 28, 28), torch.tensor([0, 1]), torch.zeros(2, G.z_dim))
    with pytest.raises(GanstudyError, match="needs architecture cyclegan"):
        game.d_step(G, D, batch, shift, lambda loss: None)


# Training and evaluation.


def test_cycle_loss_falls_in_a_short_run_and_below_a_run_without_it(domains, tmp_path):
    x, y = domains
    cycles = {}
    # No identity term: it would also pull G towards reconstructing its input. The run without
    # the cycle term draws the same batches: the adversarial game alone also changes the error.
    for weight in (10.0, 0.0):
        args = {"identity_weight": 0, "cycle_weight": weight}
        variant = VARIANT.model_copy(update={"game_args": args})
        result = train_gan(
            x, IMAGE, "cyclegan", variant, cfg(10), 0, tmp_path / str(weight), labels=y
        )
        cycles[weight] = result.history["G/cycle"].to_numpy()  # the first value: the initial G's
    trained, untrained = cycles[10.0], cycles[0.0]
    assert trained[0] == untrained[0]  # the same start
    assert trained[-3:].mean() < trained[:3].mean()
    assert trained[-3:].mean() < untrained[-3:].mean()
    assert {"G/adversarial", "G/identity", "D/loss_A", "D/loss_real", "Loss/D"} <= set(
        result.history.columns
    )


def test_same_seed_same_weights_and_the_book_update_order_trains(domains, tmp_path):
    x, y = domains
    a = train_gan(x, IMAGE, "cyclegan", VARIANT, cfg(2), 3, tmp_path / "a", labels=y)
    b = train_gan(x, IMAGE, "cyclegan", VARIANT, cfg(2), 3, tmp_path / "b", labels=y)
    c = train_gan(x, IMAGE, "cyclegan", VARIANT, cfg(2), 4, tmp_path / "c", labels=y)
    assert torch.equal(weights(a.G), weights(b.G))
    assert not torch.equal(weights(a.G), weights(c.G))
    book = VARIANT.model_copy(update={"game_args": {"d_update": "separate"}})
    torch.manual_seed(3)  # train_gan seeds the same way: D0 is its initial D
    _, D0 = build_gan("cyclegan", IMAGE, VARIANT.arch_args)
    train_gan(x, IMAGE, "cyclegan", book, cfg(2), 3, tmp_path / "book", labels=y)
    D_book = load_checkpoint(tmp_path / "book" / CHECKPOINT_NAME)["D"]
    D_joint = load_checkpoint(tmp_path / "a" / CHECKPOINT_NAME)["D"]
    for name, p in D0.named_parameters():  # both Ds learn, and the two orders differ
        assert not torch.equal(p, D_book[name]), name
    assert any(not torch.equal(D_book[k], D_joint[k]) for k in D_book)


def test_evaluate_translates_source_images(domains, tmp_path):
    x, y = domains
    train_gan(x, IMAGE, "cyclegan", VARIANT, cfg(2), 0, tmp_path, labels=y)
    out, _ = generate(tmp_path, 6, 4, torch.device("cpu"), source=(x, y))
    G, _ = build_gan("cyclegan", IMAGE, VARIANT.arch_args)
    G.load_state_dict(load_checkpoint(tmp_path / CHECKPOINT_NAME)["G"])
    with torch.no_grad():
        translations = G.eval()(x, y)  # (32, 1, 32, 32): every source image, translated
    assert out.shape == (6, 1, 32, 32)
    # Each generated image is the translation of one source image (drawn with replacement).
    distance = (out.flatten(1)[:, None] - translations.flatten(1)[None]).abs().amax(-1)  # (6, 32)
    assert (distance.min(1).values < 1e-5).all()
    with pytest.raises(GanstudyError, match="needs source images"):
        generate(tmp_path, 6, 4, torch.device("cpu"))


def test_sample_grid_pairs_sources_of_both_domains_with_their_translations(tmp_path):
    """Sorted data (all of A, then all of B) still give a grid with both directions."""
    image = ImageSpec(1, 32, 2)
    x = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = torch.arange(16) // 8  # (16,): 8 of domain A, then 8 of domain B
    variant = VariantConfig(
        arch="cyclegan",
        arch_args={"gf": 4, "df": 4},
        game="cyclegan",
        optimizer={"lr_g": 2e-4, "lr_d": 2e-4},
    )
    cfg = TrainConfig(
        iterations=1,
        batch_size=4,
        log_every=1,
        sample_every=1,
        checkpoint_every=1,
        grid_size=4,
        device="cpu",
    )
    grids = []
    train_gan(
        x,
        image,
        "cyclegan",
        variant,
        cfg,
        0,
        tmp_path,
        labels=y,
        on_samples=lambda step, g: grids.append(g),
    )
    sources = grids[0][0::2]  # (4, 1, 32, 32): source, translation, source, ...
    assert torch.equal(sources, x[[0, 1, 8, 9]])
