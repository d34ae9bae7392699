import pytest
import torch
from torch import nn

from ganstudy.config import TrainConfig, VariantConfig
from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, Batch, build_game
from ganstudy.losses.sgan import SemiSupervised
from ganstudy.models import ImageSpec, build_gan, has_classifier
from ganstudy.models.sgan import Discriminator, classifier_accuracy
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ganstudy.training.loop import labelled_subset, train_gan

IMAGE = ImageSpec(1, 28, 10)
BLOCKS = ImageSpec(1, 28, 4)  # the synthetic four-class data below
# Book listing 7.5 (D) and listing 7.4 = the ch. 4 generator (G), 28x28x1, 10 classes.
BOOK_PARAMS = (1_636_737, 113_546)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def blocks(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, 28, 28) images in [-1, 1], class c (of 4) a bright 10x10 block in quadrant c, under
    N(0, 0.5^2) pixel noise; (n,) labels, classes in turn."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = torch.full((n, 1, 28, 28), -1.0)
    for i, c in enumerate(labels.tolist()):
        row, col = 2 + 14 * (c // 2), 2 + 14 * (c % 2)
        images[i, 0, row : row + 10, col : col + 10] = 1.0
    return (images + 0.5 * torch.randn(images.shape, generator=gen)).clamp(-1, 1), labels


def variant(d_update: str = "joint", labelled: int = 8) -> VariantConfig:
    return VariantConfig(
        arch="sgan",
        arch_args={"z_dim": 16},
        game="sgan",
        game_args={"d_update": d_update},
        optimizer={"lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.9, 0.999], "eps": 1e-7},
        labelled=labelled,
    )


def cfg(iterations: int) -> TrainConfig:
    return TrainConfig(
        iterations=iterations,
        batch_size=8,
        log_every=1,
        sample_every=iterations,
        checkpoint_every=iterations,
        grid_size=4,
        device="cpu",
    )


def trained_d(run_dir, image: ImageSpec = BLOCKS) -> nn.Module:
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    _, D = build_gan("sgan", image, state["arch_args"])
    D.load_state_dict(state["D"])
    return D


# Architecture.


def test_parameter_counts_match_the_book():
    G, D = build_gan("sgan", IMAGE, {})
    assert (count(G), count(D)) == BOOK_PARAMS
    dcgan_g, _ = build_gan("dcgan", IMAGE, {})
    assert G.state_dict().keys() == dcgan_g.state_dict().keys()  # the ch. 4 generator


@pytest.mark.parametrize("image", [IMAGE, ImageSpec(3, 32, 10), ImageSpec(1, 64, 4)])
def test_shapes_and_one_dropout_after_the_conv_stack(image):
    torch.manual_seed(0)
    G, D = build_gan("sgan", image, {})
    assert has_classifier(D) and D.aux_classes == image.num_classes
    fake = G(torch.randn(3, G.z_dim))
    assert fake.shape == (3, image.channels, image.size, image.size)
    score, logits = D(fake)
    assert score.shape == (3,) and logits.shape == (3, image.num_classes)
    kinds = [type(m) for m in D.features]
    assert kinds[-2:] == [nn.Dropout, nn.Flatten] and kinds.count(nn.Dropout) == 1
    assert D.features[-2].p == 0.5  # book listing 7.5


def test_unsupervised_head_is_z_over_z_plus_one():
    torch.manual_seed(0)
    _, D = build_gan("sgan", IMAGE, {})
    D.eval()
    with torch.no_grad():
        score, logits = D(torch.rand(5, 1, 28, 28) * 2 - 1)
    Z = logits.double().exp().sum(1)  # (5,): the book's Lambda, Z = sum_k exp(l_k)
    assert torch.allclose(torch.sigmoid(score.double()), Z / (Z + 1), atol=1e-6)


def test_unsupervised_logit_is_finite_where_z_overflows():
    classes = nn.Linear(2, 3)
    with torch.no_grad():
        classes.weight.copy_(torch.tensor([[500.0, 0.0], [0.0, 500.0], [0.0, 0.0]]))
        classes.bias.zero_()
    D = Discriminator(nn.Sequential(nn.Identity()), classes)
    score, logits = D(torch.tensor([[2.0, 0.0], [-2.0, -2.0]]))  # (1000, 0, 0), (-1000, -1000, 0)
    Z = logits.exp().sum(1)  # (2,)
    assert (Z / (Z + 1))[0].isnan()  # the book's head, written out, overflows in float32
    assert torch.equal(score, torch.tensor([1000.0, 0.0]))  # log(e^1000 + 2), log(1 + 2e^-1000)
    assert torch.sigmoid(score)[0] == 1


def test_bad_architecture_arguments_are_clear():
    with pytest.raises(GanstudyError, match="'sgan' needs labelled data"):
        build_gan("sgan", ImageSpec(1, 28, 0), {})
    with pytest.raises(GanstudyError, match=r"dropout must be in \[0, 1\)"):
        build_gan("sgan", IMAGE, {"dropout": 1.0})


# The game, on hand-made logits: images (B, 1, 1, K) are D's class logits, G's z its fakes'.


class LogitD(nn.Module):
    aux_classes = 3

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = x.flatten(1)  # (B, K)
        return torch.logsumexp(logits, 1), logits


class LogitG(nn.Module):
    z_dim = 3

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(-1, 1, 1, 3)  # (B, 1, 1, K)


LABELLED = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 3.0], [1.0, -1.0, 0.0]])
LABELS = torch.tensor([0, 2, 2, 1])  # argmax right for the first and the third: accuracy 0.5
REAL = torch.tensor([[1.0, -2.0, 0.0], [0.0, 0.0, 0.0], [3.0, 1.0, -1.0], [-1.0, -1.0, -1.0]])
FAKE = torch.tensor([[-3.0, -2.0, -4.0], [0.0, 1.0, 0.0], [-1.0, 0.5, -2.0], [2.0, -3.0, 1.0]])


def book_values() -> tuple[float, float, float, float]:
    """(supervised CE, -mean log D(x), -mean log(1 - D(G(z))), -mean log D(G(z))), written
    with D = Z/(Z+1), Z = sum_k exp(l_k), in float64."""
    lab, real, fake = LABELLED.double(), REAL.double(), FAKE.double()
    softmax = lab.exp() / lab.exp().sum(1, keepdim=True)  # (B, K)
    ce = -softmax[torch.arange(4), LABELS].log().mean()
    z_real, z_fake = real.exp().sum(1), fake.exp().sum(1)  # (B,)
    d_real, d_fake = z_real / (z_real + 1), z_fake / (z_fake + 1)
    values = (ce, -d_real.log().mean(), -(1 - d_fake).log().mean(), -d_fake.log().mean())
    return tuple(v.item() for v in values)


def hand_batch() -> Batch:
    return Batch(REAL.view(4, 1, 1, 3), None, FAKE, (LABELLED.view(4, 1, 1, 3), LABELS))


def run_step(game: SemiSupervised, phase: str) -> tuple[list[float], float, dict]:
    updates: list[float] = []
    step = game.d_step if phase == "d" else game.g_step
    loss, stats = step(LogitG(), LogitD(), hand_batch(), lambda x: x, updates.append)
    return [u.item() for u in updates], loss.item(), stats


def test_joint_d_loss_is_supervised_plus_unsupervised_in_one_update():
    ce, real, fake, _ = book_values()
    updates, loss, stats = run_step(SemiSupervised(), "d")
    assert updates == pytest.approx([ce + real + fake], rel=1e-5) and loss == updates[0]
    assert stats["D/supervised_loss"] == pytest.approx(ce, rel=1e-5)
    assert stats["D/loss_real"] == pytest.approx(real, rel=1e-5)
    assert stats["D/loss_fake"] == pytest.approx(fake, rel=1e-5)
    assert stats["D/class_accuracy"] == 0.5
    # Z > 1 (D(x) > 1/2) for every real row; Z < 1 only for fake row 0.
    assert stats["D/accuracy"] == pytest.approx(0.5 * (4 / 4 + 1 / 4))


def test_separate_d_updates_follow_the_book_order():
    ce, real, fake, _ = book_values()
    updates, loss, stats = run_step(SemiSupervised(d_update="separate"), "d")
    assert updates == pytest.approx([ce, real, fake], rel=1e-5)  # supervised, real, fake
    assert loss == pytest.approx(ce + real + fake, rel=1e-5)
    assert stats["D/class_accuracy"] == 0.5


def test_g_loss_is_non_saturating_on_the_unsupervised_logit():
    *_, g = book_values()
    updates, loss, stats = run_step(SemiSupervised(), "g")
    assert updates == pytest.approx([g], rel=1e-5) and loss == pytest.approx(g, rel=1e-5)
    z_fake = FAKE.double().exp().sum(1)
    assert stats["D/score_fake"] == pytest.approx((z_fake / (z_fake + 1)).mean().item())


def test_game_options_and_needs():
    game = GAMES.get("sgan")
    assert game.needs_classifier and game.needs_labelled_batch and game.arch == "sgan"
    with pytest.raises(GanstudyError, match="game 'sgan': d_update must be joint or separate"):
        build_game("sgan", {"d_update": "both"})
    batch = hand_batch()
    batch.labelled = None
    with pytest.raises(GanstudyError, match="needs a labelled batch"):
        SemiSupervised().d_step(LogitG(), LogitD(), batch, lambda x: x, lambda _: None)


# Scoring the supervised head.


class FixedClassifier(nn.Module):
    """Predicts the class written in each image's first pixel (of 3); has a device."""

    def __init__(self, tuple_output: bool) -> None:
        super().__init__()
        self.tuple_output = tuple_output
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor):
        assert not self.training  # scored in eval mode
        logits = nn.functional.one_hot(x.flatten(1)[:, 0].long(), 3).float()  # (B, 3)
        return (logits.sum(1), logits) if self.tuple_output else logits


@pytest.mark.parametrize("tuple_output", [True, False], ids=["sgan-d", "plain-classifier"])
def test_classifier_accuracy_counts_argmax_hits_in_batches(tuple_output):
    images = torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0]).view(5, 1, 1, 1)
    labels = torch.tensor([0, 1, 0, 2, 0])  # 3 of 5 right
    D = FixedClassifier(tuple_output).train()
    assert classifier_accuracy(D, images, labels, batch_size=2) == pytest.approx(3 / 5)
    assert D.training  # the caller's mode comes back
    with pytest.raises(GanstudyError, match="as many labels as images"):
        classifier_accuracy(D, images, labels[:4])


# Training with the loop.


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return blocks(64, seed=0)


@pytest.mark.parametrize("d_update", ["joint", "separate"])
def test_supervised_head_learns_from_a_few_labels(data, tmp_path, d_update):
    images, labels = data
    result = train_gan(
        images, BLOCKS, "sgan", variant(d_update), cfg(10), 0, tmp_path, labels=labels
    )
    test_images, test_labels = blocks(200, seed=1)  # unseen images, 50 per class
    assert classifier_accuracy(trained_d(tmp_path), test_images, test_labels) >= 0.8  # chance .25
    assert {"D/supervised_loss", "D/class_accuracy", "D/loss_real", "Loss/G"} <= set(result.history)


def test_the_game_sees_only_the_labelled_subset(data, tmp_path, monkeypatch):
    images, labels = data
    seen: list[Batch] = []

    class Recording(SemiSupervised):
        def d_step(self, G, D, batch, noise, update):
            seen.append(batch)
            return super().d_step(G, D, batch, noise, update)

        def g_step(self, G, D, batch, noise, update):
            seen.append(batch)
            return super().g_step(G, D, batch, noise, update)

    monkeypatch.setitem(GAMES._entries, "recording-sgan", Recording)
    run = variant().model_copy(update={"game": "recording-sgan"})
    train_gan(images, BLOCKS, "sgan", run, cfg(3), 5, tmp_path, labels=labels)
    subset = labelled_subset(labels, 8, 5)  # (8,): two of each class
    assert len(seen) == 6 and all(batch.y is None for batch in seen)
    for batch in seen:
        shown, shown_labels = batch.labelled  # (B, 1, 28, 28), (B,)
        # Each labelled image is one of the subset's, with its own label.
        match = (shown.flatten(1)[:, None] == images[subset].flatten(1)[None]).all(-1)  # (B, 8)
        assert match.any(1).all()
        assert torch.equal(shown_labels, labels[subset][match.float().argmax(1)])


def test_same_seed_same_weights_and_book_order_takes_three_d_updates(data, tmp_path):
    images, labels = data
    runs = {
        name: (train_gan(images, BLOCKS, "sgan", v, cfg(2), s, tmp_path / name, labels=labels))
        for name, v, s in [
            ("a", variant(), 3),
            ("b", variant(), 3),
            ("c", variant(), 4),
            ("separate", variant("separate"), 3),
        ]
    }
    states = {name: load_checkpoint(tmp_path / name / CHECKPOINT_NAME) for name in runs}
    for key in ("G", "D"):
        a, b, c = (states[n][key] for n in "abc")
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a)
    # Adam's step count per D parameter: one update per iteration, or the book's three.
    assert {s["step"].item() for s in states["a"]["opt_D"]["state"].values()} == {2}
    assert {s["step"].item() for s in states["separate"]["opt_D"]["state"].values()} == {6}
