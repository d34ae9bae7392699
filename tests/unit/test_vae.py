"""The VAE baseline (GANs in Action ch. 2): architecture ``vae`` and game ``vae``."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from ganstudy.config import TrainConfig, VariantConfig
from ganstudy.errors import GanstudyError
from ganstudy.losses import Batch, build_game
from ganstudy.losses.vae import kl_to_standard_normal, reconstruction_nll
from ganstudy.metrics.evaluate import generate
from ganstudy.models import ImageSpec, build_gan
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ganstudy.training.loop import train_gan

BOOK = ImageSpec(1, 28, 10)  # MNIST, the book's data
TINY = ImageSpec(1, 12, 0)
VARIANT = VariantConfig(
    arch="vae",
    arch_args={"z_dim": 4, "hidden": 32},
    game="vae",
    optimizer={"name": "rmsprop", "lr_g": 1e-3, "lr_d": 1e-3},
)


def cfg(iterations: int, **kw) -> TrainConfig:
    base = dict(
        iterations=iterations,
        batch_size=16,
        log_every=1,
        sample_every=2,
        checkpoint_every=2,
        grid_size=4,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """64 images (1, 12, 12) in [-1, 1]: four bar patterns, pixels flipped with probability 0.05."""
    gen = torch.Generator().manual_seed(0)
    bars = -torch.ones(4, 12, 12)
    bars[0, 2:5], bars[1, 7:10], bars[2, :, 2:5], bars[3, :, 7:10] = 1, 1, 1, 1
    x = bars[torch.arange(64) % 4]  # (64, 12, 12)
    flip = torch.rand(x.shape, generator=gen) < 0.05
    return torch.where(flip, -x, x)[:, None]  # (64, 1, 12, 12)


def weights(G: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in G.parameters()])


def negative_elbo(G: torch.nn.Module, x: torch.Tensor, eps: torch.Tensor) -> float:
    """Mean over images of -ELBO, from torch's own BCE and Normal KL (not the game's code)."""
    with torch.no_grad():
        mu, logvar = G.encode(x)  # (B, z_dim) each
        std = (0.5 * logvar).exp()
        p = (G(mu + std * eps) + 1) / 2  # (B, C, H, W): decoder means in [0, 1]
        bce = F.binary_cross_entropy(p, (x + 1) / 2, reduction="sum") / len(x)
        kl = kl_divergence(Normal(mu, std), Normal(0.0, 1.0)).sum(1).mean()
    return (bce + kl).item()


def test_kl_matches_the_closed_form_on_hand_made_values():
    mu = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    logvar = torch.tensor([[0.0, 0.0], [math.log(4.0), 0.0]])
    # Row 0 is the prior itself. Row 1: 1/2 (4 + 1 - 1 - log 4) + 1/2 (1 + 4 - 1 - 0).
    expected = torch.tensor([0.0, 4.0 - math.log(2.0)])
    assert torch.allclose(kl_to_standard_normal(mu, logvar), expected, atol=1e-6)
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    reference = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(kl_to_standard_normal(mu, logvar), reference, atol=1e-5)


def test_reconstruction_is_the_books_784_times_mean_bce():
    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(3, 784, generator=gen)
    target = torch.rand(3, 1, 28, 28, generator=gen)  # grey levels in [0, 1], as x / 255
    # Book listing 2.7: original_dim * binary_crossentropy(x, x_decoded) (a mean over pixels).
    book = 784 * F.binary_cross_entropy(torch.sigmoid(logits), target.flatten(1), reduction="none")
    assert torch.allclose(reconstruction_nll(logits, target), book.mean(1), rtol=1e-5)


def test_networks_have_the_books_sizes_and_any_image_shape():
    G, D = build_gan("vae", BOOK, {})
    assert G.z_dim == 2 and not list(D.parameters())  # no D: the loop makes no D optimizer
    sizes = [sum(p.numel() for p in m.parameters()) for m in (G.encoder, G.decoder)]
    assert sizes == [201_988, 202_256]  # the book's encoder and decoder (computed, ch. 2)
    G, _ = build_gan("vae", ImageSpec(3, 5, 0), {"z_dim": 3, "hidden": 8})
    x = torch.rand(4, 3, 5, 5) * 2 - 1
    mu, logvar = G.encode(x)
    assert mu.shape == logvar.shape == (4, 3)
    images = G(torch.randn(4, 3) * 50)  # far out codes: the decoder's means saturate
    assert images.shape == (4, 3, 5, 5) and images.abs().max() <= 1
    p = torch.sigmoid(G.decode_logits(mu)).view(4, 3, 5, 5)
    assert torch.allclose(G(mu), 2 * p - 1)  # G(z) is the Bernoulli mean mapped to [-1, 1]


@pytest.mark.parametrize("args", [{"z_dim": 0}, {"hidden": 2.5}, {"z_dim": True}])
def test_bad_architecture_arguments_are_one_line_errors(args):
    with pytest.raises(GanstudyError, match=f"vae: {next(iter(args))} must be an integer"):
        build_gan("vae", BOOK, args)


@pytest.mark.parametrize("args", [{"beta": 0}, {"beta": -1.0}, {"beta": math.nan}, {"d_steps": 1}])
def test_bad_game_options_are_one_line_errors(args):
    with pytest.raises(GanstudyError, match=f"game 'vae': {next(iter(args))} must be"):
        build_game("vae", args)


def step(game, G, batch, noise=lambda x: x) -> tuple[float, dict]:
    """One g_step whose update only backpropagates."""
    loss, stats = game.g_step(G, None, batch, noise, lambda loss: loss.backward())
    return loss.item(), stats


def test_g_step_is_reconstruction_plus_beta_kl_with_the_batchs_epsilon(images):
    torch.manual_seed(0)
    G, _ = build_gan("vae", TINY, {"z_dim": 4, "hidden": 32})
    gen = torch.Generator().manual_seed(1)
    real, eps = images[:8], torch.randn(8, 4, generator=gen)
    loss, stats = step(build_game("vae", {"beta": 2.0}), G, Batch(real, None, eps))
    with torch.no_grad():
        mu, logvar = G.encode(real)
        logits = G.decode_logits(mu + (0.5 * logvar).exp() * eps)  # (8, 144)
        bce = F.binary_cross_entropy_with_logits(logits, (real.flatten(1) + 1) / 2, reduction="sum")
        std = (0.5 * logvar).exp()
        kl = kl_divergence(Normal(mu, std), Normal(0.0, 1.0)).sum() / 8
    assert stats["VAE/reconstruction"] == pytest.approx(bce.item() / 8, rel=1e-5)
    assert stats["VAE/kl"] == pytest.approx(kl.item(), rel=1e-5)
    assert loss == pytest.approx(bce.item() / 8 + 2 * kl.item(), rel=1e-5)
    other, _ = step(build_game("vae", {"beta": 2.0}), G, Batch(real, None, -eps))
    assert other != pytest.approx(loss, rel=1e-6)  # epsilon is batch.z
    # Instance noise is for D's inputs: with no D the VAE's step does not apply it.
    noisy, _ = step(build_game("vae", {"beta": 2.0}), G, Batch(real, None, eps), lambda x: x + 5)
    assert noisy == loss


def test_the_elbos_gradient_reaches_every_parameter():
    # Sampling (G(z)) uses the decoder alone; the encoder learns through the ELBO only.
    torch.manual_seed(0)
    G, _ = build_gan("vae", BOOK, {})
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(4, 1, 28, 28, generator=gen) * 2 - 1
    step(build_game("vae", {}), G, Batch(real, None, torch.randn(4, 2, generator=gen)))
    for name, p in G.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_the_game_has_no_d_phase_and_needs_an_encoder(images):
    game = build_game("vae", {})
    assert not game.adversarial and game.d_steps == 0
    G, D = build_gan("vae", TINY, {})
    batch = Batch(images[:4], None, torch.zeros(4, 2))
    with pytest.raises(GanstudyError, match="no D step"):
        game.d_step(G, D, batch, lambda x: x, lambda loss: None)
    G, D = build_gan("gan", TINY, {"z_dim": 2})
    with pytest.raises(GanstudyError, match=r"needs a VAE generator .*\(arch vae\)"):
        game.g_step(G, D, batch, lambda x: x, lambda loss: None)


def test_training_lowers_the_elbo_and_logs_its_terms(images, tmp_path):
    torch.manual_seed(0)  # train_gan seeds the same way: G0 is its initial VAE
    G0, _ = build_gan("vae", TINY, VARIANT.arch_args)
    eps = torch.randn(64, 4, generator=torch.Generator().manual_seed(5))  # one fixed epsilon
    train = cfg(20, sample_every=20, checkpoint_every=20)
    result = train_gan(images, TINY, "vae", VARIANT, train, 0, tmp_path)
    before, after = negative_elbo(G0, images, eps), negative_elbo(result.G, images, eps)
    assert after < 0.8 * before
    history = result.history
    assert "Loss/D" not in history and len(history) == 20
    terms = history["VAE/reconstruction"] + history["VAE/kl"]
    assert torch.allclose(torch.tensor(history["Loss/G"]), torch.tensor(terms), rtol=1e-5)
    assert history["Loss/G"][-5:].mean() < history["Loss/G"][:5].mean()
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["D"] == {} and state["opt_D"] == {} and state["z_dim"] == 4


def test_same_seed_same_weights_other_seed_differs(images, tmp_path):
    a = train_gan(images, TINY, "vae", VARIANT, cfg(3), 7, tmp_path / "a")
    b = train_gan(images, TINY, "vae", VARIANT, cfg(3), 7, tmp_path / "b")
    c = train_gan(images, TINY, "vae", VARIANT, cfg(3), 8, tmp_path / "c")
    assert torch.equal(weights(a.G), weights(b.G))
    assert not torch.equal(weights(a.G), weights(c.G))


def interrupt_at_2(step: int, _: torch.Tensor) -> None:
    if step == 2:
        raise KeyboardInterrupt


def test_resume_gives_the_same_result_as_an_uninterrupted_run(images, tmp_path):
    train = cfg(4)
    straight = train_gan(images, TINY, "vae", VARIANT, train, 3, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train_gan(images, TINY, "vae", VARIANT, train, 3, tmp_path / "r", on_samples=interrupt_at_2)
    assert load_checkpoint(tmp_path / "r" / CHECKPOINT_NAME)["step"] == 2
    resumed = train_gan(images, TINY, "vae", VARIANT, train, 3, tmp_path / "r")
    assert resumed.resumed_from == 2
    assert torch.equal(weights(straight.G), weights(resumed.G))
    assert list(resumed.history["step"]) == [1, 2, 3, 4]
    assert resumed.history["Loss/G"].tolist() == straight.history["Loss/G"].tolist()


def test_evaluate_samples_decoded_prior_codes_in_range(images, tmp_path):
    result = train_gan(images, TINY, "vae", VARIANT, cfg(2), 0, tmp_path)
    generated, _ = generate(tmp_path, 6, 6, torch.device("cpu"))
    assert generated.shape == (6, 1, 12, 12) and generated.abs().max() <= 1
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(0 + 20_000))  # as generate
    with torch.no_grad():
        p = torch.sigmoid(result.G.decode_logits(z)).view(6, 1, 12, 12)  # decoder means
    assert torch.allclose(generated, 2 * p - 1, atol=1e-6)
    assert not torch.allclose(generated[0], generated[1])
