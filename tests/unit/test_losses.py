import math

import pytest
import torch
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, build_game


class FixedD(nn.Module):
    """A 'discriminator' that returns given logits, so losses can be checked by hand."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits * x.mean()  # x is all ones below: returns the logits


ONES = torch.ones(3, 1, 2, 2)


def test_nonsaturating_values_at_chance():
    game = build_game("nonsaturating", {})
    d_loss, stats = game.d_loss(FixedD(torch.zeros(3)), ONES, ONES)
    g_loss, _ = game.g_loss(FixedD(torch.zeros(3)), ONES)
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
    g_loss, _ = game.g_loss(FixedD(logits), ONES)
    assert g_loss.item() == pytest.approx((-torch.log(p)).mean().item(), rel=1e-6)


def test_gradient_signs():
    game = build_game("nonsaturating", {})
    # D's loss on real images falls as D's real logits rise.
    d = FixedD(torch.zeros(3))
    loss = game.d_loss(d, ONES, torch.zeros_like(ONES))[0]  # fake term: logits * 0 = 0
    loss.backward()
    assert (d.logits.grad < 0).all()
    # G's loss falls as D's logits on fakes rise; it stays large where D is sure (non-saturating).
    d = FixedD(torch.tensor([-8.0, 0.0, 8.0]))
    game.g_loss(d, ONES)[0].backward()
    grad = d.logits.grad
    assert (grad < 0).all() and abs(grad[0]) > abs(grad[2]) * 100


def test_registry_and_bad_args():
    assert "nonsaturating" in GAMES
    with pytest.raises(GanstudyError, match="nonsaturating"):
        build_game("nonsaturating", {"smoothing": 0.1})
