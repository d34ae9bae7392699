import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, Labelled, build_game, gradient_penalty

HERE = Path(__file__).parent


class FixedD(nn.Module):
    """A 'discriminator' that returns given logits, so losses can be checked by hand."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits * x.mean()  # x is all ones below: returns the logits


class PairD(nn.Module):
    """FixedD with separate hand-made logits: ``real`` on REAL (all +1), ``fake`` on FAKE (all -1).

    Differentiable in x, per sample, so the gradient penalty works: on an interpolate with pixel
    mean m it returns real*relu(m) + fake*relu(-m), whose input-gradient norm is |logit|/2 here.
    """

    def __init__(self, real: torch.Tensor, fake: torch.Tensor) -> None:
        super().__init__()
        self.real = nn.Parameter(real.clone())
        self.fake = nn.Parameter(fake.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(1)  # (B,)
        return self.real * torch.relu(m) + self.fake * torch.relu(-m)  # (B,) logits


class LinearD(nn.Module):
    """D(x) = (w * x).sum() per sample: its gradient w.r.t. every input is w, norm ||w||."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.w * x).flatten(1).sum(1)  # (B,) scores


ONES = torch.ones(3, 1, 2, 2)
REAL, FAKE = ONES, -ONES
R = torch.tensor([2.0, -1.0, 0.5])  # hand-made D outputs on the real batch
F = torch.tensor([0.3, -2.0, 1.5])  # ... and on the fake batch


def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.sigmoid(x))


# (D's loss, G's loss) written straight from each paper's formula, on real and fake outputs r, f.
FORMULAS = {
    "nonsaturating": lambda r, f: (
        -(log_sigmoid(r).mean() + torch.log(1 - torch.sigmoid(f)).mean()),
        -log_sigmoid(f).mean(),
    ),
    "minimax": lambda r, f: (
        -(log_sigmoid(r).mean() + torch.log(1 - torch.sigmoid(f)).mean()),
        torch.log(1 - torch.sigmoid(f)).mean(),
    ),
    "wasserstein": lambda r, f: (f.mean() - r.mean(), -f.mean()),
    "wgan-gp": lambda r, f: (f.mean() - r.mean(), -f.mean()),  # plus the penalty, checked apart
    "least-squares": lambda r, f: (
        0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean(),
        0.5 * ((f - 1) ** 2).mean(),
    ),
    "hinge": lambda r, f: (
        torch.clamp(1 - r, min=0).mean() + torch.clamp(1 + f, min=0).mean(),
        -f.mean(),
    ),
    "relativistic": lambda r, f: (
        -log_sigmoid(r - f.mean()).mean() - torch.log(1 - torch.sigmoid(f - r.mean())).mean(),
        -log_sigmoid(f - r.mean()).mean() - torch.log(1 - torch.sigmoid(r - f.mean())).mean(),
    ),
}


def test_every_registered_game_has_a_formula_test_and_a_description():
    elsewhere = {"acgan", "sgan-supervised"}  # test_acgan_losses_by_formula, test_sgan_baseline.py
    for name in GAMES:  # a game family: its own file
        assert name in FORMULAS or name in elsewhere or (HERE / f"test_{name}.py").is_file(), name
    for name in GAMES:
        cls = GAMES.get(name)
        assert cls.description and "\n" not in cls.description
        assert cls.__doc__ and "\n" not in cls.__doc__.strip()


def test_nonsaturating_values_at_chance():
    game = build_game("nonsaturating", {})
    d_loss, stats = game.d_loss(FixedD(torch.zeros(3)), ONES, ONES)
    g_loss, _ = game.g_loss(FixedD(torch.zeros(3)), ONES, ONES)
    # D(x) = 1/2 everywhere: -log 1/2 - log 1/2 for D, -log 1/2 for G.
    assert d_loss.item() == pytest.approx(2 * math.log(2))
    assert g_loss.item() == pytest.approx(math.log(2))
    assert stats["D/loss_real"] == pytest.approx(math.log(2))


def test_nonsaturating_values_by_formula():
    game = build_game("nonsaturating", {})
    logits = torch.tensor([2.0, -1.0, 0.5])
    p = torch.sigmoid(logits)
    d_loss, _ = game.d_loss(FixedD(logits), ONES, ONES)  # the same logits for real and fake
    expected = (-torch.log(p) - torch.log(1 - p)).mean()
    assert d_loss.item() == pytest.approx(expected.item(), rel=1e-6)
    g_loss, _ = game.g_loss(FixedD(logits), ONES, ONES)
    assert g_loss.item() == pytest.approx((-torch.log(p)).mean().item(), rel=1e-6)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_values_by_formula(name):
    game = build_game(name, {})
    d_loss, stats = game.d_loss(PairD(R, F), REAL, FAKE)
    g_loss, _ = game.g_loss(PairD(R, F), FAKE, REAL)
    expected_d, expected_g = FORMULAS[name](R, F)
    d_value = d_loss.item() - stats.get("D/gradient_penalty", 0.0)
    assert d_value == pytest.approx(expected_d.item(), rel=1e-5, abs=1e-6)
    assert g_loss.item() == pytest.approx(expected_g.item(), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_gradient_signs(name):
    # An undecided D (0.5 on both: inside LSGAN's targets and the hinge margins). wgan-gp: at 2
    # the input-gradient norm is 1 on every interpolate, so the penalty is stationary there.
    start = torch.full((3,), 2.0 if name == "wgan-gp" else 0.5)
    game = build_game(name, {})
    # D's loss falls as D's real logits rise and as its fake logits fall.
    d = PairD(start, start)
    game.d_loss(d, REAL, FAKE)[0].backward()
    assert (d.real.grad < 0).all() and (d.fake.grad > 0).all()
    # G's loss falls as D's logits on fakes rise.
    d = PairD(start, start)
    game.g_loss(d, FAKE, REAL)[0].backward()
    assert (d.fake.grad < 0).all()


def test_nonsaturating_and_minimax_saturate_at_opposite_ends():
    # NS: G's gradient stays large where D is sure of the fake (-8); minimax: it vanishes there.
    grads = {}
    for name in ("nonsaturating", "minimax"):
        d = FixedD(torch.tensor([-8.0, 0.0, 8.0]))
        build_game(name, {}).g_loss(d, ONES, ONES)[0].backward()
        grads[name] = d.logits.grad
        assert (grads[name] < 0).all()
    assert abs(grads["nonsaturating"][0]) > abs(grads["nonsaturating"][2]) * 100
    assert abs(grads["minimax"][2]) > abs(grads["minimax"][0]) * 100


def test_relativistic_g_loss_uses_the_real_batch():
    game = build_game("relativistic", {})
    low = game.g_loss(PairD(torch.full((3,), -3.0), F), FAKE, REAL)[0]
    high = game.g_loss(PairD(torch.full((3,), 3.0), F), FAKE, REAL)[0]
    assert high.item() > low.item()  # fakes look less real next to more convincing reals


W = torch.tensor([[[3.0, 0.0], [0.0, 4.0]]])  # (1, 2, 2), ||W|| = 5


def test_gradient_penalty_on_a_linear_critic():
    torch.manual_seed(0)
    real, fake = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    penalty, norm = gradient_penalty(LinearD(W), real, fake)
    assert torch.allclose(norm, torch.full((4,), 5.0))
    assert penalty.item() == pytest.approx((5 - 1) ** 2)

    game = build_game("wgan-gp", {"gp_weight": 10.0})
    D = LinearD(W)
    loss, stats = game.d_loss(D, real, fake)
    critic = (D(fake).mean() - D(real).mean()).item()
    assert stats["D/gradient_penalty"] == pytest.approx(10.0 * (5 - 1) ** 2)
    assert loss.item() == pytest.approx(critic + 160.0)
    # create_graph=True: the penalty's own gradient reaches D, d/dw 10(||w|| - 1)^2.
    loss.backward()
    expected = (fake - real).mean(0) + 10.0 * 2 * (5 - 1) * W / 5
    assert torch.allclose(D.w.grad, expected, atol=1e-5)


def test_gradient_penalty_interpolates_with_one_uniform_eps_per_sample():
    class HalfSquare(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * (x**2).flatten(1).sum(1)  # (B,); input-gradient x, norm ||x||

    real, fake = torch.ones(5, 1, 2, 2), torch.zeros(5, 1, 2, 2)  # x_hat = eps * real
    torch.manual_seed(3)
    _, norm = gradient_penalty(HalfSquare(), real, fake)
    torch.manual_seed(3)
    eps = torch.rand(5)
    assert torch.allclose(norm, eps * 2.0)  # ||eps * ones(4)|| = 2 eps


def test_weight_clipping_after_each_d_step():
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in D.parameters():
            p.uniform_(-1.0, 1.0)
    inside = D[0].weight.detach().abs() <= 0.05
    kept = D[0].weight.detach()[inside].clone()
    game = build_game("wasserstein", {"clip": 0.05})
    game.after_d_step(D)
    for p in D.parameters():
        assert p.abs().max() <= 0.05
    assert (D[2].weight.abs() == 0.05).any()
    assert torch.equal(D[0].weight.detach()[inside], kept)  # values inside stay as they were


def test_other_games_do_nothing_after_a_d_step():
    D = nn.Linear(4, 1)
    before = [p.detach().clone() for p in D.parameters()]
    for name in GAMES:
        if name != "wasserstein":
            build_game(name, {}).after_d_step(D)
    assert all(torch.equal(a, b) for a, b in zip(before, D.parameters(), strict=True))


def test_options_are_dataclass_fields():
    game = build_game("wasserstein", {"clip": 0.02, "d_steps": 3})
    assert (game.clip, game.d_steps) == (0.02, 3)
    assert build_game("wgan-gp", {}).d_steps == 5 and build_game("hinge", {}).d_steps == 1
    assert build_game("wgan-gp", {"gp_weight": 1}).gp_weight == 1


@pytest.mark.parametrize("name", [g for g in GAMES if GAMES.get(g).adversarial])
def test_every_adversarial_game_takes_d_steps(name):
    assert build_game(name, {"d_steps": 3}).d_steps == 3
    with pytest.raises(GanstudyError, match=rf"game '{name}': d_steps must be an integer >= 1"):
        build_game(name, {"d_steps": 0})


@pytest.mark.parametrize("name", ["nonsaturating", "minimax"])
def test_one_sided_label_smoothing(name):
    y = 0.9
    d_loss, stats = build_game(name, {"real_label": y}).d_loss(PairD(R, F), REAL, FAKE)
    # BCE with target y on the reals; the fakes' target stays 0 (one-sided).
    expected_real = -(y * log_sigmoid(R) + (1 - y) * torch.log(1 - torch.sigmoid(R))).mean()
    expected_fake = -torch.log(1 - torch.sigmoid(F)).mean()
    assert stats["D/loss_real"] == pytest.approx(expected_real.item(), rel=1e-6)
    assert stats["D/loss_fake"] == pytest.approx(expected_fake.item(), rel=1e-6)
    assert d_loss.item() == pytest.approx((expected_real + expected_fake).item(), rel=1e-6)
    # The smoothed target pulls an over-confident D back: the gradient on a large real logit
    # changes sign (to descend, the logit falls towards logit(0.9) = 2.2).
    d = PairD(torch.full((3,), 5.0), F)
    build_game(name, {"real_label": y}).d_loss(d, REAL, FAKE)[0].backward()
    assert (d.real.grad > 0).all()
    assert build_game(name, {}).real_label == 1.0  # off by default: the book's hard labels


@pytest.mark.parametrize(
    "name, args, word",
    [
        ("wasserstein", {"clip": -0.01}, "clip"),
        ("wasserstein", {"clip": 0}, "clip"),
        ("wasserstein", {"clip": "small"}, "clip"),
        ("wasserstein", {"d_steps": 0}, "d_steps"),
        ("wasserstein", {"d_steps": True}, "d_steps"),
        ("wgan-gp", {"gp_weight": -10.0}, "gp_weight"),
        ("wgan-gp", {"gp_weight": float("nan")}, "gp_weight"),
        ("wgan-gp", {"d_steps": 2.5}, "d_steps"),
        ("hinge", {"clip": 0.01}, "clip"),
        ("hinge", {"d_steps": -1}, "d_steps"),
        ("nonsaturating", {"real_label": 0.5}, "real_label"),
        ("nonsaturating", {"real_label": 1.1}, "real_label"),
        ("minimax", {"real_label": float("nan")}, "real_label"),
        ("minimax", {"real_label": "0.9"}, "real_label"),
        ("hinge", {"real_label": 0.9}, "real_label"),
    ],
)
def test_bad_options_are_one_line_errors(name, args, word):
    with pytest.raises(GanstudyError, match=rf"game '{name}'.*{word}") as info:
        build_game(name, args)
    assert "\n" not in str(info.value)


def test_registry_and_bad_args():
    assert "nonsaturating" in GAMES
    with pytest.raises(GanstudyError, match="nonsaturating"):
        build_game("nonsaturating", {"smoothing": 0.1})


class ClassifyingD(nn.Module):
    """PairD with an auxiliary head: class logits ``real_c`` on REAL, ``fake_c`` on FAKE."""

    def __init__(self, real, fake, real_c, fake_c) -> None:
        super().__init__()
        self.aux_classes = real_c.shape[1]
        self.pair = PairD(real, fake)
        self.real_c = nn.Parameter(real_c.clone())
        self.fake_c = nn.Parameter(fake_c.clone())

    def forward(self, x):
        m = x.flatten(1).mean(1)[:, None]  # (B, 1): +1 on REAL, -1 on FAKE
        return self.pair(x), self.real_c * torch.relu(m) + self.fake_c * torch.relu(-m)


RC = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [-2.0, 1.0, 0.0]])  # (B, K) on REAL
FC = torch.tensor([[0.0, 1.0, 0.0], [1.5, -0.5, 2.0], [0.3, 0.3, -3.0]])  # (B, K) on FAKE
Y = torch.tensor([0, 2, 1])


def class_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-mean log softmax(logits)[y], written out."""
    log_p = logits - torch.log(torch.exp(logits).sum(1, keepdim=True))
    return -log_p[torch.arange(len(y)), y].mean()


def test_acgan_losses_by_formula():
    w = 0.5
    game = build_game("acgan", {"aux_weight": w})
    assert game.needs_classifier and not build_game("nonsaturating", {}).needs_classifier
    D = Labelled(ClassifyingD(R, F, RC, FC), Y)
    d_source, g_source = FORMULAS["nonsaturating"](R, F)
    d_loss, stats = game.d_loss(D, REAL, FAKE)
    aux_d = w * (class_ce(RC, Y) + class_ce(FC, Y))  # Odena et al.: L_C on real and fake
    assert stats["D/aux_loss"] == pytest.approx(aux_d.item(), rel=1e-6)
    assert d_loss.item() == pytest.approx((d_source + aux_d).item(), rel=1e-6)
    assert stats["D/class_accuracy"] == 1.0  # argmax of RC rows: 0, 2, 1 = Y
    g_loss, stats = game.g_loss(D, FAKE, REAL)
    aux_g = w * class_ce(FC, Y)  # G: the fakes' class term only
    assert stats["G/aux_loss"] == pytest.approx(aux_g.item(), rel=1e-6)
    assert g_loss.item() == pytest.approx((g_source + aux_g).item(), rel=1e-6)
    assert D(REAL).shape == (3,)  # the D a game sees gives the scores alone


def test_acgan_needs_an_auxiliary_classifier_and_a_positive_weight():
    with pytest.raises(GanstudyError, match="auxiliary classifier"):
        build_game("acgan", {}).d_loss(Labelled(PairD(R, F), Y), REAL, FAKE)
    with pytest.raises(GanstudyError, match="game 'acgan'.*aux_weight"):
        build_game("acgan", {"aux_weight": 0})


def test_labelled_binds_the_labels_of_a_conditional_d():
    class SumD(nn.Module):
        num_classes = 3

        def forward(self, x, y):
            return x.flatten(1).mean(1) + 10 * y

    assert torch.equal(Labelled(SumD(), Y)(REAL), torch.tensor([1.0, 21.0, 11.0]))
