import math

import pytest
import torch
from torch import nn

from ganstudy.config import TrainConfig, VariantConfig
from ganstudy.errors import GanstudyError
from ganstudy.losses import Batch, build_game
from ganstudy.losses.infogan import information_loss
from ganstudy.models import ImageSpec, build_gan
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ganstudy.training.loop import train_gan

IMAGE = ImageSpec(1, 28, 10)
# Small noise: in a run of a few steps the codes are then a large part of G's input.
ARCH_ARGS = {"noise_dim": 8, "categories": 10, "continuous": 2}
VARIANT = VariantConfig(
    arch="infogan",
    arch_args=ARCH_ARGS,
    game="infogan",
    optimizer={"lr_g": 1e-3, "lr_d": 1e-3},
)


def cfg(iterations: int) -> TrainConfig:
    return TrainConfig(
        iterations=iterations,
        batch_size=8,
        log_every=1,
        sample_every=1000,
        checkpoint_every=1000,
        grid_size=4,
        device="cpu",
    )


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


def weights(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def networks(seed: int = 0, **arch_args) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    return build_gan("infogan", IMAGE, {**ARCH_ARGS, **arch_args})


def test_latent_layout_and_sizes():
    G, D = networks(noise_dim=62, categories=10, continuous=2)  # the paper's MNIST setting
    assert G.z_dim == 74 and G.base.z_dim == 74
    z = torch.randn(5, 74)
    latent = G.latent(z)  # (5, 74): [noise, one-hot, continuous]
    category, continuous = G.codes(z)
    assert torch.equal(latent[:, :62], z[:, :62])
    assert torch.equal(latent[:, 62:72], nn.functional.one_hot(z[:, 62:72].argmax(1), 10).float())
    assert torch.equal(latent[:, 72:], continuous) and torch.equal(category, z[:, 62:72].argmax(1))
    logits, means = D.q(G(z))
    assert logits.shape == (5, 10) and means.shape == (5, 2) and D(G(z)).shape == (5,)


def test_categorical_code_is_uniform_and_continuous_codes_uniform_in_range():
    G, _ = networks()
    z = torch.randn(200_000, G.z_dim, generator=torch.Generator().manual_seed(1))
    category, continuous = G.codes(z)
    # Each frequency's std is sqrt(0.1 * 0.9 / 2e5) = 0.00067: 0.004 is 6 of them.
    freq = torch.bincount(category, minlength=10).float() / len(z)
    assert (freq - 0.1).abs().max() < 0.004
    assert continuous.shape == (200_000, 2)
    assert continuous.min() >= -1 and continuous.max() <= 1
    # U(-1, 1): ten equal bins of 0.1 each, mean 0, variance 1/3.
    hist = torch.histc(continuous, bins=10, min=-1, max=1) / continuous.numel()
    assert (hist - 0.1).abs().max() < 0.004
    assert continuous.mean().abs() < 0.005 and continuous.var().item() == pytest.approx(1 / 3, 0.01)


def test_codes_and_images_are_deterministic_in_z():
    G, _ = networks()
    G.eval()  # BatchNorm on running statistics: each sample on its own
    z = torch.randn(4, G.z_dim)
    a, b = G.codes(z), G.codes(z.clone())
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with torch.no_grad():
        assert torch.equal(G(z), G(z.clone()))


def test_only_the_argmax_of_the_categorical_part_matters():
    G, _ = networks()
    G.eval()
    z = torch.randn(4, G.z_dim)
    part = slice(8, 18)  # the categorical part of z
    same = z.clone()
    same[:, part] = z[:, part] * 0.5 + z[:, part].max(1, keepdim=True).values * 0.5  # same argmax
    other = z.clone()
    other[:, part] = z[:, part].roll(3, dims=1)  # the argmax moves by 3 categories
    assert torch.equal(G.codes(same)[0], G.codes(z)[0])
    assert torch.equal(G.codes(other)[0], (G.codes(z)[0] + 3) % 10)
    with torch.no_grad():
        x, x_same, x_other = G(z), G(same), G(other)
    assert torch.equal(x, x_same)  # what is not the argmax is not read
    assert all(not torch.allclose(x[i], x_other[i]) for i in range(4))


def test_information_loss_by_formula():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])  # (B=2, K=3)
    means = torch.tensor([[0.2, -0.4], [0.9, 0.0]])  # (B, n=2)
    category = torch.tensor([0, 2])
    continuous = torch.tensor([[0.0, -0.5], [1.0, 0.6]])

    def log_softmax(row: list[float], k: int) -> float:
        return row[k] - math.log(sum(math.exp(v) for v in row))

    ce = -(log_softmax([2.0, 0.0, -1.0], 0) + log_softmax([0.5, 1.5, 0.0], 2)) / 2
    # Unit-std Gaussian NLL without its constant: 0.5 * squared errors, summed over codes.
    nll = 0.5 * ((0.2**2 + 0.1**2) + (0.1**2 + 0.6**2)) / 2
    loss, stats = information_loss((logits, means), (category, continuous), 1.0, 0.1)
    assert loss.item() == pytest.approx(ce + 0.1 * nll, rel=1e-6)
    assert stats["Q/categorical"] == pytest.approx(ce, rel=1e-6)
    assert stats["Q/continuous"] == pytest.approx(nll, rel=1e-6)
    assert stats["Q/accuracy"] == 0.5  # row 0 right (argmax 0), row 1 wrong (argmax 1, not 2)
    weighted, _ = information_loss((logits, means), (category, continuous), 2.0, 3.0)
    assert weighted.item() == pytest.approx(2 * ce + 3 * nll, rel=1e-6)


def test_steps_train_q_with_d_and_g_through_the_codes():
    G, D = networks()
    game = build_game("infogan", {})
    z = torch.randn(8, G.z_dim)
    batch = Batch(torch.rand(8, 1, 28, 28) * 2 - 1, None, z)
    losses = []

    def backward(loss: torch.Tensor) -> None:
        losses.append(loss)
        loss.backward()

    _, stats = game.d_step(G, D, batch, lambda x: x, backward)
    assert all(p.grad is None for p in G.parameters())  # the fakes are detached in D's step
    assert all(p.grad is not None for p in D.q_net.parameters())  # Q learns in D's step
    assert {"Q/categorical", "Q/continuous", "Q/accuracy", "D/accuracy"} <= stats.keys()
    # D's loss: the logistic loss on real and fake plus Q's loss on the fakes' codes.
    with torch.no_grad():
        fake = G(z)
        d_real, (d_fake, q) = D(batch.real), D.with_q(fake)
    info, _ = information_loss(q, G.codes(z), 1.0, 0.1)
    gan = nn.functional.softplus(-d_real).mean() + nn.functional.softplus(d_fake).mean()
    assert losses[0].item() == pytest.approx((gan + info).item(), rel=1e-5)
    # G's loss: -log D(G(z)) plus the same information term, whose gradient reaches G.
    G.zero_grad()
    adversarial = nn.functional.softplus(-D(G(z))).mean()
    adversarial.backward()
    adversarial_grad = [p.grad.clone() for p in G.parameters()]
    G.zero_grad()
    game.g_step(G, D, batch, lambda x: x, backward)
    with torch.no_grad():
        _, q = D.with_q(G(z))
    info, _ = information_loss(q, G.codes(z), 1.0, 0.1)
    assert losses[1].item() == pytest.approx((adversarial + info).item(), rel=1e-5)
    assert any(
        not torch.allclose(p.grad, g) for p, g in zip(G.parameters(), adversarial_grad, strict=True)
    )


def test_game_needs_the_infogan_networks():
    G, D = build_gan("dcgan", IMAGE, {})
    batch = Batch(torch.zeros(2, 1, 28, 28), None, torch.randn(2, G.z_dim))
    with pytest.raises(GanstudyError, match="game 'infogan' needs arch infogan"):
        build_game("infogan", {}).d_step(G, D, batch, lambda x: x, lambda loss: None)


@pytest.mark.parametrize(
    "args, word",
    [
        ({"categorical_weight": -1.0}, "categorical_weight"),
        ({"categorical_weight": 0}, "categorical_weight"),
        ({"continuous_weight": float("nan")}, "continuous_weight"),
        ({"continuous_weight": "0.1"}, "continuous_weight"),
        ({"d_steps": 0}, "d_steps"),
    ],
)
def test_bad_game_options_are_one_line_errors(args, word):
    with pytest.raises(GanstudyError, match=rf"game 'infogan'.*{word}") as info:
        build_game("infogan", args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "args, word",
    [
        ({"categories": 1}, "categories must be an integer >= 2"),
        ({"continuous": -1}, "continuous must be an integer >= 0"),
        ({"noise_dim": 0}, "noise_dim must be an integer >= 1"),
        ({"noise_dim": 2.5}, "noise_dim"),
        ({"norm": "layer"}, "norm must be one of"),
        ({"z_dim": 100}, "unexpected keyword"),
    ],
)
def test_bad_architecture_arguments_are_one_line_errors(args, word):
    with pytest.raises(GanstudyError, match=word) as info:
        build_gan("infogan", IMAGE, args)
    assert "\n" not in str(info.value)


def test_options_and_paper_defaults():
    game = build_game("infogan", {})
    assert (game.categorical_weight, game.continuous_weight, game.d_steps) == (1.0, 0.1, 1)
    G, D = build_gan("infogan", IMAGE, {})
    assert (G.noise_dim, G.categories, G.continuous, G.z_dim) == (62, 10, 2, 74)
    assert D.q_net[-1].out_features == 12
    G, D = build_gan("infogan", ImageSpec(3, 32, 10), {"categories": 4, "continuous": 0})
    assert G(torch.randn(2, G.z_dim)).shape == (2, 3, 32, 32)
    logits, means = D.q(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 4) and means.shape == (2, 0)


@torch.no_grad()
def q_accuracy(G: nn.Module, D: nn.Module, n: int = 256) -> float:
    """How often Q's argmax is the categorical code of G's sample, on fresh codes. In training
    mode (BatchNorm on batch statistics), as in the run: a short run leaves the running ones."""
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(123))
    hits = 0
    for part in z.split(64):
        logits, _ = D.q(G.train()(part))
        hits += (logits.argmax(1) == G.codes(part)[0]).sum().item()
    return hits / n


def test_short_run_q_recovers_the_categorical_code(images, tmp_path):
    G0, D0 = networks(0)  # train_gan seeds the same way: its initial networks
    # 60 steps: at 30, Q's accuracy sits near 0.5 and which side depends on the thread count
    result = train_gan(images, IMAGE, "infogan", VARIANT, cfg(60), 0, tmp_path)
    _, D = networks(0)
    D.load_state_dict(load_checkpoint(tmp_path / CHECKPOINT_NAME)["D"])
    before, after = q_accuracy(G0, D0), q_accuracy(result.G, D)
    assert before < 0.2  # chance is 0.1
    assert after > 0.5  # G writes the code into its images and Q reads it back
    assert {"Q/categorical", "Q/continuous", "Q/accuracy"} <= set(result.history.columns)


def test_same_seed_same_weights_other_seed_differs(images, tmp_path):
    runs = {
        name: train_gan(images, IMAGE, "infogan", VARIANT, cfg(2), seed, tmp_path / name)
        for name, seed in [("a", 7), ("b", 7), ("c", 8)]
    }
    d = {name: load_checkpoint(tmp_path / name / CHECKPOINT_NAME)["D"] for name in runs}
    assert torch.equal(weights(runs["a"].G), weights(runs["b"].G))
    assert all(torch.equal(d["a"][k], d["b"][k]) for k in d["a"])
    assert not torch.equal(weights(runs["a"].G), weights(runs["c"].G))
