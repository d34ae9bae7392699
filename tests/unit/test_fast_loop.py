"""The loop's speed contract: one G forward per iteration where the game allows it (reuse_fakes)
and no host sync per iteration (statistics stay on the device; divergence is found when they are
read, at logging and before every checkpoint)."""

from pathlib import Path

import pytest
import torch

from ganstudy.config import TrainConfig, VariantConfig, load_params
from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, Batch, NonSaturating, build_game
from ganstudy.models import ARCHITECTURES, ImageSpec, build_gan
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ganstudy.training.loop import DivergenceWatch, train_gan

IMAGE = ImageSpec(1, 28, 10)


def variant(game: str = "nonsaturating", **game_args) -> VariantConfig:
    return VariantConfig(
        arch="dcgan",
        arch_args={"z_dim": 16},
        game=game,
        game_args=game_args,
        optimizer={"lr_g": 2e-4, "lr_d": 2e-4},
    )


def cfg(iterations: int, **kw) -> TrainConfig:
    base = dict(
        iterations=iterations,
        batch_size=8,
        log_every=1,
        sample_every=100,
        checkpoint_every=100,
        grid_size=4,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


def recording(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Registers the game "recording" (non-saturating), noting D's real and fake inputs."""
    calls = []

    class Recording(NonSaturating):
        def d_loss(self, D, real, fake):
            calls.append(("d", real.detach().clone(), fake.detach().clone()))
            return super().d_loss(D, real, fake)

        def g_loss(self, D, fake, real):
            assert fake.requires_grad  # G's graph is there for its update
            calls.append(("g", real.detach().clone(), fake.detach().clone()))
            return super().g_loss(D, fake, real)

    monkeypatch.setitem(GAMES._entries, "recording", Recording)
    return calls


def count_g_forwards(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the dcgan generator's forward (training and sampling alike)."""
    G, _ = build_gan("dcgan", IMAGE, {"z_dim": 16})
    cls, calls = type(G), []
    original = cls.forward

    def forward(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "forward", forward)
    return calls


@pytest.mark.parametrize("d_steps", [1, 3])
def test_reused_fakes_one_g_forward_and_g_judges_the_last_d_batch(
    images, tmp_path, monkeypatch, d_steps
):
    calls = recording(monkeypatch)
    forwards = count_g_forwards(monkeypatch)
    train_gan(images, IMAGE, "r", variant("recording", d_steps=d_steps), cfg(2), 0, tmp_path)
    assert "".join(c[0] for c in calls) == ("d" * d_steps + "g") * 2
    assert len(forwards) == 2 * d_steps  # one per D step; the G step runs none of its own
    for i in (d_steps - 1, 2 * d_steps):  # the last D step of each iteration, then G's step
        (_, d_real, d_fake), (_, g_real, g_fake) = calls[i], calls[i + 1]
        assert torch.equal(d_real, g_real) and torch.equal(d_fake, g_fake)


def test_fresh_fakes_two_g_forwards_and_a_new_batch(images, tmp_path, monkeypatch):
    calls = recording(monkeypatch)
    forwards = count_g_forwards(monkeypatch)
    train_gan(images, IMAGE, "r", variant("recording", reuse_fakes=False), cfg(2), 0, tmp_path)
    assert len(forwards) == 4
    (_, d_real, d_fake), (_, g_real, g_fake) = calls[0], calls[1]
    assert not torch.equal(d_real, g_real) and not torch.equal(d_fake, g_fake)


def test_fresh_and_reused_fakes_train_differently_but_each_repeats(images, tmp_path):
    runs = {
        name: train_gan(images, IMAGE, "v", variant(**args), cfg(3), 0, tmp_path / name).G
        for name, args in [("a", {}), ("b", {}), ("fresh", {"reuse_fakes": False})]
    }
    weights = {k: torch.cat([p.flatten() for p in G.parameters()]) for k, G in runs.items()}
    assert torch.equal(weights["a"], weights["b"])
    assert not torch.equal(weights["a"], weights["fresh"])


def test_reuse_fakes_default_and_refusal():
    assert build_game("nonsaturating", {}).reuse_fakes is True  # the examples' way by default
    assert (
        build_game("nonsaturating", {"d_update": "separate", "reuse_fakes": False}).reuse_fakes
        is False
    )
    assert build_game("wgan-gp", {}).reuse_fakes is True
    assert build_game("vae", {}).reuse_fakes is False  # no D step, no fakes to reuse
    assert build_game("cyclegan", {}).reuse_fakes is False  # G's step runs G three times
    with pytest.raises(GanstudyError, match="game 'cyclegan': reuse_fakes"):
        build_game("cyclegan", {"reuse_fakes": True})
    with pytest.raises(GanstudyError, match="reuse_fakes must be true or false"):
        build_game("hinge", {"reuse_fakes": "yes"})


@pytest.mark.parametrize("game", GAMES.names())
def test_every_game_returns_statistics_as_device_tensors(game):
    """No .item() in the games: a Python float would have waited for the device."""
    cls = GAMES.get(game)
    image = ARCHITECTURES.get(cls.arch).example
    torch.manual_seed(0)
    G, D = build_gan(cls.arch, image, {})
    g = build_game(game, {})
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(4, image.channels, image.size, image.size, generator=gen) * 2 - 1
    y = torch.arange(4) % image.num_classes
    labelled = (real, y) if cls.needs_labelled_batch else None
    batch = Batch(real, None if labelled else y, torch.randn(4, G.z_dim), labelled)
    batch.keep_fake = g.reuse_fakes  # the loop's last D step: G's step then reuses the fakes

    def update(loss: torch.Tensor) -> None:
        loss.backward()

    stats = {}
    if cls.adversarial:
        _, stats = g.d_step(G, D, batch, lambda x: x, update)
    _, g_stats = g.g_step(G, D, batch, lambda x: x, update)
    stats |= g_stats
    assert stats or not cls.trains_generator
    for name, value in stats.items():
        assert isinstance(value, torch.Tensor) and value.dim() == 0, name
        assert not value.requires_grad, name  # detached: no graph kept until it is read


class NanAt(NonSaturating):
    """The non-saturating game whose G loss turns NaN at its third call."""

    calls = 0

    def g_loss(self, D, fake, real):
        loss, stats = super().g_loss(D, fake, real)
        NanAt.calls += 1
        return (loss * float("nan") if NanAt.calls == 3 else loss), stats


def test_divergence_is_found_at_the_next_read_and_names_its_iteration(
    images, tmp_path, monkeypatch
):
    NanAt.calls = 0
    monkeypatch.setitem(GAMES._entries, "nan-at-3", NanAt)
    seen = []
    train = cfg(10, log_every=5, checkpoint_every=2)
    with pytest.raises(GanstudyError, match=r"diverged at iteration 3: \{'Loss/G': nan\}"):
        train_gan(
            images,
            IMAGE,
            "v",
            variant("nan-at-3"),
            train,
            0,
            tmp_path,
            sink=lambda s, _: seen.append(s),
        )
    assert seen == []  # nothing logged before step 5
    # Read before the checkpoint of iteration 4: the last good one (iteration 2) stays.
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["step"] == 2


def test_watch_reads_the_latest_values_in_order_and_keeps_the_first_bad_iteration():
    watch = DivergenceWatch(torch.device("cpu"))
    watch.record(1, {"a": torch.tensor(1.0), "noise": 0.5, "b": torch.tensor(2.0)})
    assert watch.read(None) == {"a": 1.0, "noise": 0.5, "b": 2.0}
    watch.record(2, {"a": torch.tensor(float("inf")), "noise": 0.4, "b": torch.tensor(3.0)})
    watch.record(3, {"a": torch.tensor(float("nan")), "noise": 0.3, "b": torch.tensor(4.0)})
    with pytest.raises(GanstudyError, match=r"iteration 2: \{'a': inf\}; last good checkpoint x"):
        watch.read("x")


def test_book_presets_draw_a_fresh_z_for_g_and_the_others_reuse_d_fakes():
    params = load_params(Path(__file__).parents[2] / "params.yaml")
    for name, entry in params.variants.items():
        game = build_game(entry.game, entry.game_args)
        if name.endswith("-book") and game.adversarial and game.trains_generator:
            assert game.reuse_fakes is False, name  # the book's loops draw a new z for G
        if name == "dcgan":
            assert game.reuse_fakes is True  # the default study: one G forward an iteration


def test_channels_last_trains_resumes_exactly_and_its_checkpoint_evaluates(images, tmp_path):
    from ganstudy.metrics.evaluate import generate

    train = cfg(4, channels_last=True, checkpoint_every=2)
    straight = train_gan(images, IMAGE, "v", variant(), train, 3, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train_gan(
            images,
            IMAGE,
            "v",
            variant(),
            train,
            3,
            tmp_path / "resumed",
            sink=lambda step, _: (_ for _ in ()).throw(KeyboardInterrupt) if step == 3 else None,
        )
    resumed = train_gan(images, IMAGE, "v", variant(), train, 3, tmp_path / "resumed")
    assert resumed.resumed_from == 2
    for a, b in zip(straight.G.parameters(), resumed.G.parameters(), strict=True):
        assert torch.equal(a, b)
    plain = train_gan(images, IMAGE, "v", variant(), cfg(4), 3, tmp_path / "plain")
    # The first D loss comes before any update: the same to round-off (later ones drift apart,
    # Adam's early steps being about lr times the sign of a gradient, round-off included).
    first = straight.history.iloc[0]["Loss/D"], plain.history.iloc[0]["Loss/D"]
    assert first[0] == pytest.approx(first[1], rel=1e-5)
    generated, _ = generate(tmp_path / "straight", 4, 4, torch.device("cpu"))  # an NCHW G
    assert generated.shape == (4, 1, 28, 28) and generated.isfinite().all()
