import math

import pytest
import torch

from ganstudy.config import OptimizerConfig, TrainConfig, VariantConfig
from ganstudy.device import CPU_BF16_CHECKS, resolve_precision
from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, Labelled, NonSaturating, build_game
from ganstudy.metrics.evaluate import generate
from ganstudy.models import ARCHITECTURES, ImageSpec, build_gan
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ganstudy.training.loop import labelled_subset, make_optimizer, train_gan

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


@pytest.fixture(scope="module")
def labels() -> torch.Tensor:
    return torch.arange(64) % 10  # (64,): the class of each image


def weights(G: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in G.parameters()])


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


Calls = list[tuple[str, torch.Tensor, torch.Tensor]]  # (phase "d" | "g", real, fake)


def recording_game(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Registers the game "recording": the non-saturating game, noting what D is given."""
    calls: Calls = []

    class Recording(NonSaturating):
        def d_loss(self, D, real, fake):
            calls.append(("d", real.detach().clone(), fake.detach().clone()))
            return super().d_loss(D, real, fake)

        def g_loss(self, D, fake, real):
            calls.append(("g", real.detach().clone(), fake.detach().clone()))
            return super().g_loss(D, fake, real)

    monkeypatch.setitem(GAMES._entries, "recording", Recording)
    return calls


def is_data_row(x: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """(B,) bool: whether each image of x is exactly one of data's."""
    return (x.flatten(1)[:, None] == data.flatten(1)[None]).all(-1).any(-1)  # via (B, N, C*H*W)


def test_training_changes_weights_and_writes_checkpoint(images, tmp_path):
    torch.manual_seed(0)
    before = weights(build_gan("dcgan", IMAGE, {"z_dim": 16})[0])
    result = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(3), seed=0, out_dir=tmp_path)
    assert not torch.equal(before, weights(result.G))
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)  # weights_only=True inside
    assert state["step"] == 3 and state["arch"] == "dcgan" and state["variant"] == "dcgan"
    assert state["G_eval"] == "G" and "G_ema" not in state  # no EMA by default
    assert list(result.history["step"]) == [1, 2, 3]


def test_same_seed_same_weights_other_seed_differs(images, tmp_path):
    a = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(3), 7, tmp_path / "a")
    b = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(3), 7, tmp_path / "b")
    c = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(3), 8, tmp_path / "c")
    assert torch.equal(weights(a.G), weights(b.G))
    assert not torch.equal(weights(a.G), weights(c.G))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"instance_noise": 0.3},
        {"ema_beta": 0.9},
        pytest.param(
            {"device": "cuda", "compile": True, "precision": "bf16"},
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
            ],
        ),
    ],
    ids=["plain", "instance-noise", "ema", "gpu-compiled-bf16"],
)
def test_resume_gives_the_same_result_as_an_uninterrupted_run(images, tmp_path, options):
    train = cfg(4, **options)
    straight = train_gan(images, IMAGE, "dcgan", VARIANT, train, 3, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train_gan(
            images,
            IMAGE,
            "dcgan",
            VARIANT,
            train,
            3,
            tmp_path / "resumed",
            on_samples=lambda step, _: (
                (_ for _ in ()).throw(KeyboardInterrupt) if step == 2 else None
            ),
        )
    assert load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME)["step"] == 2
    resumed = train_gan(images, IMAGE, "dcgan", VARIANT, train, 3, tmp_path / "resumed")
    assert resumed.resumed_from == 2
    assert torch.equal(weights(straight.G), weights(resumed.G))
    assert list(resumed.history["step"]) == [1, 2, 3, 4]
    a, b = (load_checkpoint(tmp_path / run / CHECKPOINT_NAME) for run in ("straight", "resumed"))
    for entry in ("G", "G_ema", "D"):  # raw G, its average (when on) and D, buffers included
        assert (entry in a) == (entry in b) and (entry not in a or same_state(a[entry], b[entry]))


def test_checkpoint_of_another_config_or_data_is_not_resumed(images, tmp_path):
    train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2), 3, tmp_path)
    assert train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2), 3, tmp_path).resumed_from == 2
    other = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2, batch_size=4), 3, tmp_path)
    assert other.resumed_from == 0
    new_data = train_gan(images.flip(0), IMAGE, "dcgan", VARIANT, cfg(2, batch_size=4), 3, tmp_path)
    assert new_data.resumed_from == 0


@pytest.mark.parametrize("game", GAMES.names())
def test_every_game_trains(tmp_path, game):
    arch = GAMES.get(game).arch  # the architecture the game is made for (dcgan for most)
    image = ARCHITECTURES.get(arch).example
    gen = torch.Generator().manual_seed(0)
    data = torch.rand(32, image.channels, image.size, image.size, generator=gen) * 2 - 1
    labels = torch.arange(32) % image.num_classes  # (32,)
    torch.manual_seed(0)  # train_gan seeds the same way: G0, D0 are its initial networks
    G0, D0 = build_gan(arch, image, {})
    adversarial = GAMES.get(game).adversarial
    # Two D steps (not the critics' default 5): still several per G step, at less test time.
    args = {"d_steps": 2} if adversarial else {}  # an option of every adversarial game
    variant = VARIANT.model_copy(
        update={"arch": arch, "arch_args": {}, "game": game, "game_args": args}
    )
    result = train_gan(data, image, game, variant, cfg(2), seed=0, out_dir=tmp_path, labels=labels)
    D_after = load_checkpoint(tmp_path / CHECKPOINT_NAME)["D"]
    if GAMES.get(game).trains_generator:  # False: sgan-supervised's G
        assert not torch.equal(weights(G0), weights(result.G))
    if adversarial:
        assert any(not torch.equal(p, D_after[name]) for name, p in D0.named_parameters())
    columns = ["Loss/D", "Loss/G"] if adversarial else ["Loss/G"]
    losses = result.history[columns].to_numpy().ravel()
    assert len(losses) == 2 * len(columns) and all(math.isfinite(v) for v in losses)
    clip = getattr(build_game(game, args), "clip", None)
    if clip is not None:  # the loop called after_d_step: the critic's parameters are clipped
        assert all(D_after[name].abs().max() <= clip for name, _ in D0.named_parameters())


def test_loop_takes_d_steps_d_updates_per_g_update(images, tmp_path, monkeypatch):
    calls = recording_game(monkeypatch)
    variant = VARIANT.model_copy(update={"game": "recording", "game_args": {"d_steps": 3}})
    train_gan(images, IMAGE, "recording", variant, cfg(2), 0, tmp_path)
    assert "".join(phase for phase, _, _ in calls) == "dddg" * 2


def test_instance_noise_reaches_both_inputs_of_d_and_anneals_to_zero(images, tmp_path, monkeypatch):
    calls = recording_game(monkeypatch)
    variant = VARIANT.model_copy(update={"game": "recording"})
    plain = train_gan(images, IMAGE, "recording", variant, cfg(3), 0, tmp_path / "plain")
    assert "Noise/instance_std" not in plain.history  # off by default: nothing logged
    clean = list(calls)
    calls.clear()
    noisy = train_gan(images, IMAGE, "recording", variant, cfg(3, instance_noise=0.5), 0, tmp_path)
    # Both runs draw the same first real batch and codes: the difference is the noise alone.
    for x_clean, x_noisy in zip(clean[0][1:], calls[0][1:], strict=True):
        assert (x_noisy - x_clean).std().item() == pytest.approx(0.5, rel=0.05)
    # Std 0.5, 0.25, 0 over the three iterations: reals are off the data until the last one.
    assert list(noisy.history["Noise/instance_std"]) == [0.5, 0.25, 0.0]
    assert [phase for phase, _, _ in calls] == ["d", "g"] * 3
    on_data = [bool(is_data_row(real, images).any()) for _, real, _ in calls]
    assert on_data == [False, False, False, False, True, True]
    assert calls[1][2].abs().max() > 1  # in G's step too: fakes leave tanh's range [-1, 1]


def test_instance_noise_same_seed_same_weights(images, tmp_path):
    noise = cfg(3, instance_noise=0.3)
    a = train_gan(images, IMAGE, "dcgan", VARIANT, noise, 7, tmp_path / "a")
    b = train_gan(images, IMAGE, "dcgan", VARIANT, noise, 7, tmp_path / "b")
    c = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(3), 7, tmp_path / "c")
    assert torch.equal(weights(a.G), weights(b.G))
    assert not torch.equal(weights(a.G), weights(c.G))


def test_ema_of_g_follows_its_formula_and_is_the_result(images, tmp_path):
    torch.manual_seed(0)  # train_gan seeds the same way: G0 is its initial generator
    G0, _ = build_gan("dcgan", IMAGE, {"z_dim": 16})
    result = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(1, ema_beta=0.9), 0, tmp_path)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    raw, ema = state["G"], state["G_ema"]
    assert state["G_eval"] == "G_ema"
    assert ema.keys() == raw.keys()  # G's own keys: no "module." prefix, no n_averaged
    # One G step: EMA = beta * G0 + (1 - beta) * G1, BatchNorm statistics included.
    for key, start in G0.state_dict().items():
        if start.is_floating_point():
            assert torch.allclose(ema[key], 0.9 * start + 0.1 * raw[key], atol=1e-6), key
    assert not torch.equal(ema["project.weight"], raw["project.weight"])
    assert same_state(result.G.state_dict(), ema)  # what train_gan returns (and MLflow logs)


def test_evaluate_generates_with_the_ema_generator(images, tmp_path):
    result = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2, ema_beta=0.9), 0, tmp_path)
    generated, state = generate(tmp_path, 6, 6, torch.device("cpu"))
    z = torch.randn(6, 16, generator=torch.Generator().manual_seed(0 + 20_000))  # as generate
    raw, _ = build_gan("dcgan", IMAGE, {"z_dim": 16})
    raw.load_state_dict(state["G"])
    with torch.no_grad():
        assert torch.allclose(generated, result.G.eval()(z), atol=1e-6)
        assert not torch.allclose(generated, raw.eval()(z), atol=1e-3)


def test_spectral_norm_checkpoint_loads_weights_only_and_evaluates(images, tmp_path):
    arch_args = {"z_dim": 16, "norm": "spectral"}
    variant = VARIANT.model_copy(update={"arch_args": arch_args, "game": "hinge"})
    train_gan(images, IMAGE, "sngan", variant, cfg(2), 0, tmp_path)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)  # weights_only=True inside
    assert any("parametrizations.weight" in key for key in state["D"])
    G, D = build_gan("dcgan", IMAGE, state["arch_args"])
    D.load_state_dict(state["D"])  # strict: every SN tensor (original, _u, _v) matches
    G.load_state_dict(state["G"])
    generated, _ = generate(tmp_path, 4, 4, torch.device("cpu"))
    assert generated.shape == (4, 1, 28, 28) and generated.isfinite().all()


def test_make_optimizer_builds_the_configured_optimizer():
    params = [torch.nn.Parameter(torch.zeros(2))]
    rms_cfg = OptimizerConfig(name="rmsprop", lr_g=5e-5, lr_d=5e-5, eps=1e-6, alpha=0.9)
    rms = make_optimizer(params, 5e-5, rms_cfg, fused=False)
    assert isinstance(rms, torch.optim.RMSprop)
    assert rms.defaults["lr"] == 5e-5 and rms.defaults["eps"] == 1e-6
    assert rms.defaults["alpha"] == 0.9  # Keras's rho
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


CGAN = VARIANT.model_copy(update={"arch": "cgan"})
ACGAN = VARIANT.model_copy(update={"arch": "acgan", "game": "acgan"})


@pytest.mark.parametrize("variant", [CGAN, ACGAN], ids=["cgan", "acgan"])
def test_conditional_training_changes_weights_and_repeats_for_a_seed(
    images, labels, tmp_path, variant
):
    torch.manual_seed(0)
    G0, _ = build_gan(variant.arch, IMAGE, {"z_dim": 16})
    a = train_gan(images, IMAGE, "v", variant, cfg(2), 7, tmp_path / "a", labels=labels)
    b = train_gan(images, IMAGE, "v", variant, cfg(2), 7, tmp_path / "b", labels=labels)
    assert not torch.equal(weights(G0), weights(a.G))
    assert torch.equal(weights(a.G), weights(b.G))
    assert all(math.isfinite(v) for v in a.history.drop(columns="step").to_numpy().ravel())
    if variant is ACGAN:
        assert {"D/aux_loss", "G/aux_loss", "D/class_accuracy"} <= set(a.history)
    other = train_gan(images, IMAGE, "v", variant, cfg(2), 7, tmp_path / "c", labels=labels.flip(0))
    assert other.resumed_from == 0 and not torch.equal(weights(a.G), weights(other.G))


def test_conditional_resume_gives_the_same_result(images, labels, tmp_path):
    train = cfg(4, instance_noise=0.3, ema_beta=0.9)
    straight = train_gan(images, IMAGE, "v", ACGAN, train, 3, tmp_path / "straight", labels=labels)
    with pytest.raises(KeyboardInterrupt):
        train_gan(
            images,
            IMAGE,
            "v",
            ACGAN,
            train,
            3,
            tmp_path / "resumed",
            on_samples=lambda step, _: (
                (_ for _ in ()).throw(KeyboardInterrupt) if step == 2 else None
            ),
            labels=labels,
        )
    resumed = train_gan(images, IMAGE, "v", ACGAN, train, 3, tmp_path / "resumed", labels=labels)
    assert resumed.resumed_from == 2
    a, b = (load_checkpoint(tmp_path / run / CHECKPOINT_NAME) for run in ("straight", "resumed"))
    for entry in ("G", "G_ema", "D"):
        assert same_state(a[entry], b[entry])
    assert torch.equal(weights(straight.G), weights(resumed.G))


def test_fakes_take_the_labels_of_their_real_batch(images, labels, tmp_path, monkeypatch):
    seen = []

    class Recording(NonSaturating):
        def d_loss(self, D, real, fake):
            seen.append((D, real))
            return super().d_loss(D, real, fake)

    monkeypatch.setitem(GAMES._entries, "recording", Recording)
    variant = CGAN.model_copy(update={"game": "recording"})
    train_gan(images, IMAGE, "v", variant, cfg(1), 0, tmp_path, labels=labels)
    ((D, real),) = seen
    assert isinstance(D, Labelled) and D.labels.shape == (8,)
    index = (real.flatten(1)[:, None] == images.flatten(1)[None]).all(-1).int().argmax(1)
    assert torch.equal(D.labels, labels[index])  # each real image's own label


def test_unconditional_runs_ignore_labels(images, labels, tmp_path):
    a = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2), 7, tmp_path / "a")
    b = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2), 7, tmp_path / "b", labels=labels)
    assert torch.equal(weights(a.G), weights(b.G))
    keys = [load_checkpoint(tmp_path / r / CHECKPOINT_NAME)["resume_key"] for r in "ab"]
    assert keys[0] == keys[1]


def test_conditional_runs_need_labels_and_a_matching_game(images, labels, tmp_path):
    with pytest.raises(GanstudyError, match="'cgan' trains on labels"):
        train_gan(images, IMAGE, "v", CGAN, cfg(1), 0, tmp_path)
    wrong = CGAN.model_copy(update={"game": "acgan"})
    with pytest.raises(GanstudyError, match="'acgan' needs a D with an auxiliary classifier"):
        train_gan(images, IMAGE, "v", wrong, cfg(1), 0, tmp_path, labels=labels)


def test_evaluate_generates_balanced_classes_for_a_conditional_generator(images, labels, tmp_path):
    result = train_gan(images, IMAGE, "v", CGAN, cfg(1), 0, tmp_path, labels=labels)
    generated, _ = generate(tmp_path, 25, 10, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0 + 20_000)  # as generate: labels first, then codes
    y = (torch.arange(25) % 10)[torch.randperm(25, generator=gen)]
    assert torch.bincount(y, minlength=10).tolist() == [3] * 5 + [2] * 5
    z = torch.randn(25, 16, generator=gen)
    with torch.no_grad():
        assert torch.allclose(generated, result.G(z, y), atol=1e-6)
    again, _ = generate(tmp_path, 25, 7, torch.device("cpu"))  # batch size does not matter
    assert torch.allclose(generated, again, atol=1e-6)


def test_separate_d_updates_take_two_optimizer_steps_per_d_step(images, tmp_path):
    """The book's order (listing 3.5): D trains on the real batch, then on the fake batch."""
    variant = VARIANT.model_copy(update={"game_args": {"d_update": "separate", "d_steps": 2}})
    train_gan(images, IMAGE, "dcgan", variant, cfg(3), seed=0, out_dir=tmp_path / "sep")
    state = load_checkpoint(tmp_path / "sep" / CHECKPOINT_NAME)
    d_updates = next(iter(state["opt_D"]["state"].values()))["step"]
    g_updates = next(iter(state["opt_G"]["state"].values()))["step"]
    assert (int(d_updates), int(g_updates)) == (2 * 2 * 3, 3)
    joint = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(3), seed=0, out_dir=tmp_path / "joint")
    separate = load_checkpoint(tmp_path / "sep" / CHECKPOINT_NAME)["G"]
    assert not torch.equal(weights(joint.G), torch.cat([v.flatten() for v in separate.values()]))


def test_a_variant_sets_its_own_train_values(images, tmp_path):
    variant = VARIANT.model_copy(update={"train": {"iterations": 3, "batch_size": 4}})
    result = train_gan(images, IMAGE, "dcgan", variant, cfg(2), seed=0, out_dir=tmp_path)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert result.step == 3 and state["config"]["train"]["batch_size"] == 4
    with pytest.raises(GanstudyError, match="iterations"):
        VARIANT.model_copy(update={"train": {"iterations": 0}}).train_config(cfg(2))


def test_labelled_subset_is_class_balanced_seeded_and_checked(labels):
    first = labelled_subset(labels, 25, seed=0)
    assert len(first) == len(first.unique()) == 25
    counts = torch.bincount(labels[first], minlength=10)
    assert counts.tolist() == [3] * 5 + [2] * 5  # 25 = 10 * 2 + 5: the first 5 classes one more
    assert torch.equal(first, labelled_subset(labels, 25, seed=0))
    assert not torch.equal(first, labelled_subset(labels, 25, seed=1))
    with pytest.raises(GanstudyError, match="cannot cover 10 classes"):
        labelled_subset(labels, 5, seed=0)
    with pytest.raises(GanstudyError, match="only 7 images"):
        labelled_subset(labels, 80, seed=0)
    assert labelled_subset(labels, 25, seed=3, pick="first").tolist() == list(range(25))


def test_labelled_is_refused_for_a_game_without_a_labelled_batch(images, labels, tmp_path):
    variant = VARIANT.model_copy(update={"labelled": 20})
    with pytest.raises(GanstudyError, match="semi-supervised"):
        train_gan(images, IMAGE, "dcgan", variant, cfg(1), 0, tmp_path, labels=labels)


def test_bf16_autocast_trains_with_finite_losses(images, tmp_path):
    result = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2, precision="bf16"), 0, tmp_path)
    assert result.history[["Loss/D", "Loss/G"]].notna().all().all()
    assert all(p.dtype == torch.float32 for p in result.G.parameters())  # weights stay fp32


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_only_where_the_cpu_has_bf16_units(native, monkeypatch):
    for check in CPU_BF16_CHECKS:
        monkeypatch.setattr(torch.cpu, check, lambda n=native: n, raising=False)
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"  # as named, whatever the CPU
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_a_run_records_and_trains_in_the_precision_auto_resolves_to(images, tmp_path, monkeypatch):
    for check in CPU_BF16_CHECKS:
        monkeypatch.setattr(torch.cpu, check, lambda: True, raising=False)
    auto = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2, precision="auto"), 0, tmp_path / "a")
    saved = load_checkpoint(tmp_path / "a" / CHECKPOINT_NAME)
    assert saved["config"]["train"]["precision"] == "bf16"  # what ran, not "auto"
    bf16 = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2, precision="bf16"), 0, tmp_path / "b")
    fp32 = train_gan(images, IMAGE, "dcgan", VARIANT, cfg(2, precision="fp32"), 0, tmp_path / "c")
    assert auto.history["Loss/D"].tolist() == bf16.history["Loss/D"].tolist()
    assert auto.history["Loss/D"].tolist() != fp32.history["Loss/D"].tolist()
