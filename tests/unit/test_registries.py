"""One registration style, two kinds of game, checked variant arguments, the checkpoint's
training state described once (#16)."""

from dataclasses import dataclass

import pytest
import torch
import yaml

from ganstudy.config import OptimizerConfig, VariantConfig
from ganstudy.data.datasets import DATASETS
from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, LossGame, StepGame, build_game
from ganstudy.metrics.backbones import BACKBONES
from ganstudy.metrics.registry import METRICS
from ganstudy.models import ARCHITECTURES, ImageSpec, build_gan
from ganstudy.registry import Registry
from ganstudy.training.checkpoint import TrainingState
from ganstudy.training.loop import check_variant_args, make_optimizer, train_gan
from tests.unit.test_training import cfg

REGISTRIES = [ARCHITECTURES, GAMES, METRICS, BACKBONES, DATASETS]


@dataclass(frozen=True)
class Entry:
    name: str


def test_add_reads_the_entry_name_and_returns_the_entry():
    registry: Registry[Entry] = Registry("thing")
    entry = Entry("a")
    assert registry.add(entry) is entry and registry.get("a") is entry
    with pytest.raises(ValueError, match="thing 'a' registered twice"):
        registry.add(Entry("a"))
    for bad in ("", " a", "a b"):
        with pytest.raises(ValueError, match="bad thing name"):
            registry.add(Entry(bad))


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_every_entry_carries_the_name_it_is_registered_under(registry):
    assert registry.names()
    assert all(registry.get(name).name == name for name in registry)


def test_a_game_class_registers_with_its_own_name(monkeypatch):
    monkeypatch.setattr("ganstudy.losses.GAMES", Registry("game"))
    from ganstudy import losses

    @losses.GAMES.add
    @dataclass
    class Mine(StepGame):
        name = "mine"

        def d_step(self, G, D, batch, noise, update):
            return torch.zeros(()), {}

        def g_step(self, G, D, batch, noise, update):
            return torch.zeros(()), {}

    assert losses.GAMES.get("mine") is Mine


def test_a_step_game_needs_no_losses_and_a_loss_game_needs_both():
    @dataclass
    class OnlySteps(StepGame):
        def d_step(self, G, D, batch, noise, update):
            return torch.zeros(()), {}

        def g_step(self, G, D, batch, noise, update):
            return torch.zeros(()), {}

    OnlySteps()  # no d_loss / g_loss to write

    @dataclass
    class OnlyDLoss(LossGame):
        def d_loss(self, D, real, fake):
            return torch.zeros(()), {}

    with pytest.raises(TypeError, match="g_loss"):
        OnlyDLoss()


def test_the_step_games_are_step_games_without_losses():
    steps = {n for n in GAMES if issubclass(GAMES.get(n), StepGame)}
    assert steps == {"cyclegan", "infogan", "vae", "sgan-supervised"}
    for name in GAMES:
        cls = GAMES.get(name)
        assert issubclass(cls, StepGame) != issubclass(cls, LossGame)
        assert hasattr(cls, "d_loss") == issubclass(cls, LossGame)


def test_accepted_keys_come_from_the_signatures():
    assert ARCHITECTURES.get("gan").keywords == ("z_dim", "hidden", "slope")
    assert set(GAMES.get("wasserstein").keywords()) == {"d_steps", "reuse_fakes", "clip"}
    assert "beta" in GAMES.get("vae").keywords()


@pytest.mark.parametrize(
    "changes, line",
    [
        (
            {"arch_args": {"z_dim": 4, "zdim": 8}},
            "variant 'mine': arch_args of architecture 'gan': unexpected keyword 'zdim'; "
            "accepted: hidden, slope, z_dim",
        ),
        (
            {"game_args": {"smoothing": 0.1}},
            "variant 'mine': game_args of game 'nonsaturating': unexpected keyword 'smoothing'; "
            "accepted: d_steps, d_update, real_label, reuse_fakes",
        ),
    ],
)
def test_an_unknown_key_is_one_line_naming_variant_key_and_accepted(tmp_path, changes, line):
    variant = VariantConfig(
        arch="gan",
        arch_args={"z_dim": 4},
        game="nonsaturating",
        optimizer={"lr_g": 1e-3, "lr_d": 1e-3},
    ).model_copy(update=changes)
    with pytest.raises(GanstudyError) as info:
        check_variant_args("mine", variant)
    assert str(info.value) == line
    images = torch.zeros(8, 1, 8, 8)
    with pytest.raises(GanstudyError) as info:
        train_gan(images, ImageSpec(1, 8, 10), "mine", variant, cfg(1), 0, tmp_path / "run")
    assert str(info.value) == line
    assert not (tmp_path / "run").exists()


def test_check_names_the_variant_of_an_unknown_key(capsys, tmp_path):
    from tests.conftest import tiny_params
    from tests.unit.test_cli import run

    params = tiny_params()
    params["variants"]["dcgan"]["arch_args"] = {"width": 3}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    code, _, err = run(capsys, "check", "--params", str(tmp_path / "p.yaml"))
    assert code == 2 and err.count("\n") == 1
    assert "variant 'dcgan'" in err and "'width'" in err and "accepted: norm, slope, z_dim" in err


def test_build_functions_name_the_registry_entry_without_a_variant():
    with pytest.raises(GanstudyError, match=r"^architecture 'vae': arch_args: unexpected keyword"):
        build_gan("vae", ImageSpec(1, 8, 10), {"beta": 1})
    with pytest.raises(
        GanstudyError, match=r"^game 'vae': game_args: unexpected keywords 'a', 'b'"
    ):
        build_game("vae", {"a": 1, "b": 2})


def test_the_training_state_saves_and_restores_the_same_keys():
    torch.manual_seed(0)
    G, D, ema = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1), torch.nn.Linear(2, 2)
    o = OptimizerConfig(lr_g=1e-3, lr_d=1e-3)
    opt_G = make_optimizer(G.parameters(), 1e-3, o, False)
    opt_D = make_optimizer(D.parameters(), 1e-3, o, False)
    sampler = torch.Generator().manual_seed(1)
    state = TrainingState(G, D, opt_G, opt_D, ema, sampler, torch.device("cpu"))
    saved = state.state_dict()
    assert set(saved) == {"G_eval", "G", "G_ema", "D", "opt_G", "opt_D", "rng_cpu", "rng_sampler"}
    assert saved["G_eval"] == "G_ema"
    expected = torch.rand(3, generator=sampler), torch.rand(3)  # after the saved states
    with torch.no_grad():
        for p in (*G.parameters(), *D.parameters(), *ema.parameters()):
            p.add_(1.0)
    state.load_state_dict(saved)
    assert torch.equal(G.weight, saved["G"]["weight"]) and torch.equal(D.bias, saved["D"]["bias"])
    assert torch.equal(ema.weight, saved["G_ema"]["weight"])
    assert torch.equal(torch.rand(3, generator=sampler), expected[0])
    assert torch.equal(torch.rand(3), expected[1])
    plain = TrainingState(G, D, opt_G, None, None, sampler, torch.device("cpu")).state_dict()
    assert plain["G_eval"] == "G" and "G_ema" not in plain and plain["opt_D"] == {}
