"""The book's SGAN table (GANs in Action §7.2.8/§7.3): the supervised-only baseline game
sgan-supervised and the class-head accuracy of a run (metrics/head.py)."""

import pytest
import torch
from torch import nn

from ganstudy.config import VariantConfig
from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, Batch, build_game
from ganstudy.losses.sgan import SupervisedOnly
from ganstudy.metrics.head import PER_CLASS_FILE, head_accuracy
from ganstudy.models import build_gan
from ganstudy.models.sgan import classifier_accuracy
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ganstudy.training.loop import train_gan
from tests.unit.test_sgan import BLOCKS, LABELLED, LABELS, LogitD, blocks, cfg, trained_d

CPU = torch.device("cpu")


def variant(game: str = "sgan-supervised", arch: str = "sgan") -> VariantConfig:
    """test_sgan's variant (Keras Adam, 8 labels) for ``game``."""
    return VariantConfig(
        arch=arch,
        arch_args={"z_dim": 16},
        game=game,
        optimizer={"lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.9, 0.999], "eps": 1e-7},
        labelled=8 if arch == "sgan" else None,
    )


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return blocks(64, seed=0)


@pytest.fixture(scope="module")
def held_out() -> tuple[torch.Tensor, torch.Tensor]:
    return blocks(200, seed=1)  # unseen images, 50 per class


# The game, on hand-made logits (test_sgan's LogitD: images (B, 1, 1, K) are D's class logits).


class UntouchableG(nn.Module):
    """A G that fails the test if it is ever run."""

    z_dim = 3

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        raise AssertionError("sgan-supervised ran G")


def hand_batch() -> Batch:
    real = torch.zeros(4, 1, 1, 3)  # never judged: the game sees only the labelled batch
    return Batch(real, None, torch.zeros(4, 3), (LABELLED.view(4, 1, 1, 3), LABELS))


def test_d_step_is_one_update_on_the_class_cross_entropy_alone():
    updates: list[torch.Tensor] = []
    seen: list[torch.Tensor] = []

    def noise(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return x

    loss, stats = SupervisedOnly().d_step(
        UntouchableG(), LogitD(), hand_batch(), noise, updates.append
    )
    ce = nn.functional.cross_entropy(LABELLED.double(), LABELS).item()
    assert [u.item() for u in updates] == pytest.approx([ce], rel=1e-6) and loss is updates[0]
    assert stats == {"D/supervised_loss": pytest.approx(ce, rel=1e-6), "D/class_accuracy": 0.5}
    assert len(seen) == 1 and torch.equal(seen[0], LABELLED.view(4, 1, 1, 3))  # noise on D's input


def test_g_step_runs_no_network_and_makes_no_update():
    updates: list[torch.Tensor] = []
    game = SupervisedOnly()
    loss, stats = game.g_step(UntouchableG(), LogitD(), hand_batch(), lambda x: x, updates.append)
    assert updates == [] and loss.item() == 0.0 and stats == {}


def test_game_needs_and_clear_errors():
    game = GAMES.get("sgan-supervised")
    assert game.needs_classifier and game.needs_labelled_batch and game.arch == "sgan"
    assert game.adversarial and not game.trains_generator and GAMES.get("sgan") is not game
    assert build_game("sgan-supervised", {"d_steps": 2}).d_steps == 2
    batch = hand_batch()
    batch.labelled = None
    with pytest.raises(GanstudyError, match="'sgan-supervised' needs a labelled batch"):
        SupervisedOnly().d_step(UntouchableG(), LogitD(), batch, lambda x: x, lambda _: None)
    # A step game: no real/fake loss for D and no G loss (G is never trained) to call by mistake.
    assert not hasattr(SupervisedOnly(), "d_loss") and not hasattr(SupervisedOnly(), "g_loss")


def test_refuses_a_d_without_a_class_head(data, tmp_path):
    with pytest.raises(GanstudyError, match="needs a D with an auxiliary classifier"):
        train_gan(data[0], BLOCKS, "sup", variant(arch="dcgan"), cfg(1), 0, tmp_path)


# Training with the loop.


def test_trains_the_head_and_leaves_g_as_built(data, held_out, tmp_path):
    images, labels = data
    result = train_gan(images, BLOCKS, "sup", variant(), cfg(10), 2, tmp_path, labels=labels)
    torch.manual_seed(2)  # train_gan seeds the same way before building: G0, D0 are its start
    G0, D0 = build_gan("sgan", BLOCKS, {"z_dim": 16})
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert same_state(state["G"], G0.state_dict())  # weights and BatchNorm buffers
    assert state["opt_G"]["state"] == {}  # G's optimizer never stepped
    assert not same_state(state["D"], D0.state_dict())
    assert {s["step"].item() for s in state["opt_D"]["state"].values()} == {10}
    assert classifier_accuracy(D0, *held_out) < 0.5
    assert classifier_accuracy(trained_d(tmp_path), *held_out) >= 0.8  # chance 0.25
    assert (result.history["Loss/G"] == 0).all()
    assert {"Loss/D", "D/supervised_loss", "D/class_accuracy"} <= set(result.history)


def test_same_seed_same_d_other_seed_differs(data, tmp_path):
    images, labels = data
    states = {}
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        train_gan(images, BLOCKS, "sup", variant(), cfg(2), seed, tmp_path / name, labels=labels)
        states[name] = load_checkpoint(tmp_path / name / CHECKPOINT_NAME)["D"]
    assert same_state(states["a"], states["b"])
    assert not same_state(states["a"], states["c"])


# The head's accuracy of a run, on held-out images.


def test_head_accuracy_of_sgan_and_its_baseline_is_their_ds_accuracy(data, held_out, tmp_path):
    images, labels = data
    for game in ("sgan", "sgan-supervised"):
        run = tmp_path / game
        train_gan(images, BLOCKS, game, variant(game), cfg(3), 0, run, labels=labels)
        accuracy = head_accuracy(run, *held_out, CPU, batch_size=64)
        assert accuracy == classifier_accuracy(trained_d(run), *held_out)
        assert 0 <= accuracy <= 1


def test_head_accuracy_is_none_without_a_single_class_head(data, held_out, tmp_path):
    images, _ = data
    train_gan(images, BLOCKS, "dcgan", variant("nonsaturating", "dcgan"), cfg(1), 0, tmp_path)
    assert head_accuracy(tmp_path, *held_out, CPU) is None  # D without a class head
    per_class = tmp_path / "per_class"
    (per_class / "class_0").mkdir(parents=True)
    (per_class / PER_CLASS_FILE).write_text("{}")
    assert head_accuracy(per_class, *held_out, CPU) is None  # one D per class
    with pytest.raises(GanstudyError, match="checkpoint missing"):
        head_accuracy(tmp_path / "nothing", *held_out, CPU)
