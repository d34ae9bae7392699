import math
from dataclasses import fields

import pytest
import torch

from ganstudy.config import OptimizerConfig, TrainConfig, VariantConfig
from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, NonSaturating, build_game
from ganstudy.models import ImageSpec, build_gan
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ganstudy.training.loop import make_optimizer, train_gan

IMAGE = ImageSpec(1, 28, 10)
VARIANT = VariantConfig(
    arch="dcgan",
    arch_args={"z_dim": 16},
    game="nonsaturating",
    optimizer={"lr_g": 2e-4, "lr_d": 2e-4},
)


def cfg(iterations: int, **kw) -> TrainConfig:
    base = dict(
        iterations=iterations,
        batch_size=8,
        log_every=1,
        sample_every=2,
        checkpoint_every=2,
        grid_size=4,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


def weights(G: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in G.parameters()])


def test_training_changes_weights_and_writes_checkpoint(images, tmp_path):
    torch.manual_seed(0)
    before = weights(build_gan("dcgan", IMAGE, {"z_dim": 16})[0])
    result = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(3), seed=0, out_dir=tmp_path)
    assert not torch.equal(before, weights(result.G))
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)  # weights_only=True inside
    assert state["step"] == 3 and state["arch"] == "dcgan" and state["variant"] == "dcgan"
    assert list(result.history["step"]) == [1, 2, 3]


def test_same_seed_same_weights_other_seed_differs(images, tmp_path):
    a = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(3), 7, tmp_path / "a")
    b = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(3), 7, tmp_path / "b")
    c = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(3), 8, tmp_path / "c")
    assert torch.equal(weights(a.G), weights(b.G))
    assert not torch.equal(weights(a.G), weights(c.G))


def test_resume_gives_the_same_result_as_an_uninterrupted_run(images, tmp_path):
    straight = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(4), 3, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train_gan(
            images,
            IMAGE,
            "dcgan",
            VARIANT,
            cfg(4),
            3,
            tmp_path / "resumed",
            on_samples=lambda step, _: (
                (_ for _ in ()).throw(KeyboardInterrupt) if step == 2 else None
            ),
        )
    assert load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME)["step"] == 2
    resumed = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(4), 3, tmp_path / "resumed")
    assert resumed.resumed_from == 2
    assert torch.equal(weights(straight.G), weights(resumed.G))
    assert list(resumed.history["step"]) == [1, 2, 3, 4]


def test_checkpoint_of_another_config_or_data_is_not_resumed(images, tmp_path):
    train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2), 3, tmp_path)
    assert train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2), 3, tmp_path).resumed_from == 2
    other = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2, batch_size=4), 3, tmp_path)
    assert other.resumed_from == 0
    new_data = train_gan(images.flip(0), IMAGE, "dcgan", VARIANT, cfg(2, batch_size=4), 3, tmp_path)
    assert new_data.resumed_from == 0


@pytest.mark.parametrize("game", GAMES.names())
def test_every_game_trains(images, tmp_path, game):
    torch.manual_seed(0)  # train_gan seeds the same way: G0, D0 are its initial networks
    G0, D0 = build_gan("dcgan", IMAGE, {"z_dim": 16})
    # Two D steps (not the critics' default 5): still several per G step, at less test time.
    args = {"d_steps": 2} if "d_steps" in {f.name for f in fields(GAMES.get(game))} else {}
    variant = VARIANT.model_copy(update={"game": game, "game_args": args})
    result = train_gan(images, IMAGE, game, variant, cfg(2), seed=0, out_dir=tmp_path)
    D_after = load_checkpoint(tmp_path / CHECKPOINT_NAME)["D"]
    assert not torch.equal(weights(G0), weights(result.G))
    assert any(not torch.equal(p, D_after[name]) for name, p in D0.named_parameters())
    losses = result.history[["Loss/D", "Loss/G"]].to_numpy().ravel()
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    clip = getattr(build_game(game, args), "clip", None)
    if clip is not None:  # the loop called after_d_step: the critic's parameters are clipped
        assert all(D_after[name].abs().max() <= clip for name, _ in D0.named_parameters())


def test_make_optimizer_builds_the_configured_optimizer():
    params = [torch.nn.Parameter(torch.zeros(2))]
    rms_cfg = OptimizerConfig(name="rmsprop", lr_g=5e-5, lr_d=5e-5, eps=1e-6)
    rms = make_optimizer(params, 5e-5, rms_cfg, fused=False)
    assert isinstance(rms, torch.optim.RMSprop)
    assert rms.defaults["lr"] == 5e-5 and rms.defaults["eps"] == 1e-6
    adam_cfg = OptimizerConfig(lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9))
    adam = make_optimizer(params, 1e-4, adam_cfg, fused=False)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["betas"] == (0.0, 0.9)


class Exploding(NonSaturating):
    def g_loss(self, D, fake, real):
        loss, stats = super().g_loss(D, fake, real)
        return loss * float("nan"), stats


def test_divergence_stops_with_step_and_keeps_last_good_checkpoint(images, tmp_path, monkeypatch):
    train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2), 0, tmp_path)
    good = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    monkeypatch.setitem(GAMES._entries, "exploding", Exploding)
    bad = VARIANT.model_copy(update={"game": "exploding"})
    with pytest.raises(GanstudyError, match="diverged at iteration 1"):
        train_gan(images, IMAGE, "dcgan", bad, cfg(2), 0, tmp_path)
    kept = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert kept["step"] == good["step"] and torch.equal(
        kept["G"]["project.weight"], good["G"]["project.weight"]
    )


def test_corrupt_checkpoint_is_clear_error(tmp_path):
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"garbage")
    with pytest.raises(GanstudyError, match="corrupt or unreadable"):
        load_checkpoint(tmp_path / CHECKPOINT_NAME)
