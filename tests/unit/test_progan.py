import math

import pytest
import torch
import torch.nn.functional as F

from ganstudy.config import TrainConfig, VariantConfig
from ganstudy.errors import GanstudyError
from ganstudy.losses import build_game
from ganstudy.metrics.evaluate import generate
from ganstudy.models import ImageSpec, build_gan
from ganstudy.models.progan import (
    EqualConv2d,
    EqualLinear,
    minibatch_stddev,
    phase_at,
    pixel_norm,
)
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ganstudy.training.loop import train_gan

IMAGE = ImageSpec(1, 16, 10)  # grows 4 -> 8 -> 16: three stages
SMALL = {"channels": 16}  # few channels: fast, the same layout


def networks(**arch_args) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return build_gan("progan", IMAGE, {**SMALL, **arch_args})


def at(fraction: float, *modules: torch.nn.Module) -> None:
    for module in modules:
        module.set_progress(fraction)


def up(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="nearest")


def is_blocky(x: torch.Tensor, k: int) -> bool:
    """Whether x (B, C, H, W) is constant over every k x k block: an up-sampled (H/k)^2 image."""
    return torch.equal(x, up(x[..., ::k, ::k], k))


# Three stages, fade_fraction 0.5: five equal phases of 0.2 (stabilise 4x4, fade in 8x8,
# stabilise 8x8, fade in 16x16, stabilise 16x16), as the paper's equal image counts per phase.
EVEN = [
    (0.0, 0, 1.0),
    (0.19, 0, 1.0),
    (0.2, 1, 0.0),
    (0.25, 1, 0.25),
    (0.3, 1, 0.5),
    (0.39, 1, 0.95),
    (0.5, 1, 1.0),
    (0.65, 2, 0.25),
    (0.9, 2, 1.0),
    (1.0, 2, 1.0),
]


@pytest.mark.parametrize(("fraction", "stage", "alpha"), EVEN)
def test_even_schedule_fades_and_stabilises_in_equal_phases(fraction, stage, alpha):
    got_stage, got_alpha = phase_at(fraction, 3, fade_fraction=0.5, growth_fraction=1.0)
    assert got_stage == stage and got_alpha == pytest.approx(alpha, abs=1e-9)


def test_schedule_options_move_the_switches():
    # growth_fraction 0.5: the same five phases in the first half, then the full size to the end.
    assert phase_at(0.15, 3, 0.5, 0.5) == pytest.approx((1, 0.5))
    assert phase_at(0.35, 3, 0.5, 0.5) == pytest.approx((2, 0.5))
    assert phase_at(0.6, 3, 0.5, 0.5) == (2, 1.0)
    # fade_fraction 0: no fade, three equal stages switched abruptly at 1/3 and 2/3.
    assert [phase_at(f, 3, 0.0, 1.0) for f in (0.3, 0.34, 0.66, 0.67)] == [
        (0, 1.0),
        (1, 1.0),
        (1, 1.0),
        (2, 1.0),
    ]
    # fade_fraction 0.75: slots of 1 / (3 - 0.75); 4x4 only for the first quarter slot.
    slot = 1 / 2.25
    assert phase_at(0.25 * slot - 1e-9, 3, 0.75, 1.0)[0] == 0
    assert phase_at(0.25 * slot + 0.375 * slot, 3, 0.75, 1.0) == pytest.approx((1, 0.5))


def test_networks_work_at_the_resolution_of_their_stage():
    G, D = networks()
    z = torch.randn(4, G.z_dim)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        for fraction, resolution in [(0.1, 4), (0.5, 8), (0.9, 16)]:
            at(fraction, G, D)
            assert (G.resolution, D.resolution) == (resolution, resolution)
            fake = G(z)  # always (B, C, 16, 16): nearest up-sampled from resolution^2 pixels
            k = 16 // resolution
            assert fake.shape == (4, 1, 16, 16)
            assert is_blocky(fake, k) and (k == 1 or not is_blocky(fake, 2 * k))
            # D sees only resolution^2 block means: detail inside the blocks changes nothing.
            coarse = up(F.avg_pool2d(x, max(k, 2)), max(k, 2))
            assert torch.allclose(D(x), D(coarse), atol=1e-5) == (k > 1)


def test_fade_in_blends_the_old_and_the_new_output():
    G, D = networks()
    z = torch.randn(4, G.z_dim)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    at(0.65, G, D)  # stage 2 (16x16), alpha 0.25
    alpha = 0.25
    assert G.alpha.item() == pytest.approx(alpha) and D.alpha.item() == pytest.approx(alpha)
    with torch.no_grad():
        h = G.blocks[0](G.start(z))  # (B, C, 8, 8)
        old, new = up(G.to_rgb[1](h), 2), G.to_rgb[2](G.blocks[1](h))  # (B, 1, 16, 16) each
        assert torch.allclose(G(z), torch.tanh((1 - alpha) * old + alpha * new), atol=1e-6)
        lrelu = torch.nn.LeakyReLU(0.2)
        old = lrelu(D.from_rgb[1](F.avg_pool2d(x, 2)))  # (B, C, 8, 8)
        new = D.blocks[1](lrelu(D.from_rgb[2](x)))  # (B, C, 8, 8)
        expected = D.end(D.blocks[0]((1 - alpha) * old + alpha * new))  # (B,)
        assert torch.allclose(D(x), expected, atol=1e-5)


def test_growing_is_continuous_where_a_fade_begins():
    G, D = networks()
    z = torch.randn(4, G.z_dim)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        at(0.19, G, D)  # 4x4, just before the switch
        before = G(z), D(x)
        at(0.2, G, D)  # 8x8 at alpha 0: only the old path counts
        assert G.resolution == 8 and G.alpha.item() == 0.0
        assert torch.allclose(G(z), before[0], atol=1e-6)
        assert torch.allclose(D(x), before[1], atol=1e-5)
        at(0.3, G, D)  # halfway: the new layers now change both outputs
        assert not torch.allclose(G(z), before[0], atol=1e-3)


def test_minibatch_stddev_appends_each_groups_mean_std():
    x = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 4, 4, 4) and torch.equal(out[:, :3], x)
    # Two groups of four: samples 0, 2, 4, 6 and 1, 3, 5, 7 (sample b in group b mod 2).
    for m in range(2):
        members = x[m::2]  # (4, 3, 4, 4)
        std = (members.var(0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(out[m::2, 3], std.expand(4, 4, 4), atol=1e-5)
    same = minibatch_stddev(x[:1].expand(4, 3, 4, 4), 4)[:, 3]  # four equal images: std 0
    assert torch.allclose(same, torch.full_like(same, 1e-4))  # sqrt(eps)
    odd = minibatch_stddev(x[:6], 4)  # 6 samples: groups of 3 (the largest divisor <= 4)
    expected = (x[:6].view(3, 2, 3, 4, 4).var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))
    assert torch.allclose(odd[:, 3, 0, 0], expected.repeat(3), atol=1e-5)


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = torch.randn(2, 16, 5, 5) * torch.rand(2, 1, 5, 5) * 10  # per-pixel scales
    y = pixel_norm(x)
    assert torch.allclose(y.pow(2).mean(1), torch.ones(2, 5, 5), atol=1e-5)
    assert torch.allclose(pixel_norm(3 * x), y, atol=1e-5)  # scale-free
    assert torch.allclose(y * x.pow(2).mean(1, keepdim=True).sqrt(), x, atol=1e-4)  # direction


def test_equalised_learning_rate_stores_unit_normal_weights_scaled_at_runtime():
    torch.manual_seed(0)
    G, D = build_gan("progan", IMAGE, {})  # the default, wider layers: good statistics
    layers = [m for m in [*G.modules(), *D.modules()] if isinstance(m, EqualConv2d | EqualLinear)]
    weights = torch.cat([m.weight.detach().flatten() for m in layers])
    assert weights.mean().item() == pytest.approx(0.0, abs=0.01)
    assert weights.std().item() == pytest.approx(1.0, abs=0.01)
    conv = G.blocks[0].conv0  # 3x3, 128 -> 128: He's constant sqrt(2 / (128 * 3 * 3))
    assert conv.scale == pytest.approx(math.sqrt(2 / (128 * 9)))
    h = torch.randn(2, 128, 8, 8)
    expected = F.conv2d(h, conv.weight * conv.scale, conv.bias, padding=1)
    assert torch.allclose(conv(h), expected, atol=1e-5)
    assert G.to_rgb[0].scale == pytest.approx(1 / math.sqrt(128))  # linear outputs: gain 1
    assert D.end.out.scale == pytest.approx(1 / math.sqrt(128))


def test_equalised_learning_rate_gives_every_layer_the_same_relative_update():
    G, D = networks(channels=64, channels_until=8)  # 64, 64, 32 channels at 4, 8, 16 pixels
    at(1.0, G, D)
    layers = {  # fan_in 64 (gain sqrt(2)/4), 64 * 9 and 32 * 9: constants 0.044, 0.059, 0.083
        "dense": G.start.dense,
        "conv 8x8": G.blocks[0].conv0,
        "conv 16x16": G.blocks[1].conv1,
    }
    before = {name: (m.weight * m.scale).detach().clone() for name, m in layers.items()}
    opt = torch.optim.Adam(G.parameters(), lr=0.01, betas=(0.0, 0.99))
    D(G(torch.randn(4, G.z_dim))).mean().backward()
    opt.step()
    # Adam's first step moves each stored weight by about lr; the weights in use move by lr
    # times their layer's constant, the same share of their size in every layer.
    for name, m in layers.items():
        change = torch.linalg.vector_norm(m.weight * m.scale - before[name])
        relative = (change / torch.linalg.vector_norm(before[name])).item()
        assert relative == pytest.approx(0.01, rel=0.05), name


def test_layers_not_reached_yet_are_parameters_but_get_no_update():
    G, D = networks()
    at(0.1, G, D)  # 4x4
    names = [name for name, _ in G.named_parameters()]
    assert any(n.startswith("blocks.1.") for n in names)  # 16x16 layers exist from the start
    opt = torch.optim.Adam(G.parameters(), lr=0.1, betas=(0.0, 0.99))
    before = {n: p.detach().clone() for n, p in G.named_parameters()}
    D(G(torch.randn(4, G.z_dim))).mean().backward()
    opt.step()
    for name, p in G.named_parameters():
        in_use = name.startswith(("start.", "to_rgb.0."))
        assert (p.grad is not None) == in_use, name
        assert torch.equal(p, before[name]) != in_use, name


def test_checkpoint_round_trip_restores_stage_and_alpha(tmp_path):
    G, D = networks()
    at(0.65, G, D)  # stage 2, alpha 0.25
    assert {"stage", "alpha"} <= G.state_dict().keys() and {
        "stage",
        "alpha",
    } <= D.state_dict().keys()
    torch.save({"G": G.state_dict(), "D": D.state_dict()}, tmp_path / "ckpt.pt")
    torch.manual_seed(1)
    G2, D2 = build_gan("progan", IMAGE, SMALL)  # another init, at stage 0
    assert G2.resolution == 4
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    G2.load_state_dict(state["G"])
    D2.load_state_dict(state["D"])
    for net in (G2, D2):
        assert net.resolution == 16 and net.stage.item() == 2
        assert net.alpha.item() == pytest.approx(0.25)
    z, x = torch.randn(4, G.z_dim), torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(G(z), G2(z)) and torch.equal(D(x), D2(x))


def test_progan_game_adds_the_drift_term():
    game = build_game("progan", {})
    assert (game.gp_weight, game.drift, game.d_steps) == (10.0, 0.001, 1)  # the paper's

    class LinearD(torch.nn.Module):  # D(x) = <w, x>: input-gradient norm ||w|| everywhere
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.full((1, 2, 2), 0.25))  # ||w|| = 0.5

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (self.w * x).flatten(1).sum(1)  # (B,)

    real, fake = torch.rand(3, 1, 2, 2), -torch.rand(3, 1, 2, 2)
    loss, stats = game.d_loss(LinearD(), real, fake)
    r, f = real.flatten(1).sum(1) / 4, fake.flatten(1).sum(1) / 4  # D's scores
    expected = f.mean() - r.mean() + 10 * (0.5 - 1) ** 2 + 0.001 * (r**2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert stats["D/drift"] == pytest.approx(0.001 * (r**2).mean().item(), rel=1e-6)
    g_loss, _ = game.g_loss(LinearD(), fake, real)  # WGAN's G loss: -E[D(G(z))]
    assert g_loss.item() == pytest.approx(-f.mean().item(), rel=1e-6)
    with pytest.raises(GanstudyError, match="drift must be a number >= 0"):
        build_game("progan", {"drift": -1})


def test_bad_sizes_and_arguments_are_clear():
    with pytest.raises(GanstudyError, match=r"16, 32, 64, 128 .*28x28.*preprocess\.image_size"):
        build_gan("progan", ImageSpec(1, 28, 10), {})
    with pytest.raises(GanstudyError, match=r"fade_fraction must be a number in \[0, 1\)"):
        build_gan("progan", IMAGE, {"fade_fraction": 1.0})
    with pytest.raises(GanstudyError, match="progan.*unexpected keyword"):
        build_gan("progan", IMAGE, {"fade": 0.5})
    G, D = build_gan("progan", ImageSpec(3, 64, 10), {"channels": 32, "channels_until": 8})
    assert [conv.weight.shape[0] for conv in D.from_rgb] == [32, 32, 16, 8, 4]  # 4 .. 64 px
    assert G.z_dim == 32 and G(torch.randn(2, 32)).shape == (2, 3, 64, 64)


def test_a_short_run_grows_checkpoints_and_evaluates(tmp_path):
    images = torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    variant = VariantConfig(
        arch="progan",
        arch_args=SMALL,
        game="progan",
        optimizer={"lr_g": 1e-3, "lr_d": 1e-3, "betas": (0.0, 0.99)},
    )
    cfg = TrainConfig(
        iterations=3,
        batch_size=8,
        log_every=1,
        sample_every=3,
        checkpoint_every=3,
        grid_size=4,
        device="cpu",
        ema_beta=0.9,
    )
    G0, D0 = networks()
    grids = []
    result = train_gan(
        images,
        IMAGE,
        "progan",
        variant,
        cfg,
        seed=0,
        out_dir=tmp_path,
        on_samples=lambda step, grid: grids.append((step, grid.shape)),
    )
    assert not torch.equal(G0.start.dense.weight, result.G.start.dense.weight)
    history = result.history
    assert len(history) == 3 and history["D/drift"].notna().all()
    assert grids == [(3, (4, 1, 16, 16))]
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    for entry in ("G", "G_ema", "D"):  # the end of training: 16x16, fully faded in
        assert state[entry]["stage"].item() == 2 and state[entry]["alpha"].item() == 1.0
    assert any(not torch.equal(p, state["D"][n]) for n, p in D0.named_parameters())
    generated, _ = generate(tmp_path, 4, 4, torch.device("cpu"))
    assert generated.shape == (4, 1, 16, 16) and not is_blocky(generated, 2)
