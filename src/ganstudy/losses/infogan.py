"""InfoGAN's game (Chen et al. 2016): the non-saturating GAN plus lambda * L_I(G, Q).

L_I(G, Q) = E[log Q(c | G(z, c))] + H(c) is a variational lower bound of the mutual information
I(c; G(z, c)); the paper's objective is min over G and Q, max over D, of V(D, G) - lambda L_I.
H(c) is fixed by the codes' priors, so G and Q both minimise lambda * E[-log Q(c | x)] on G's
samples; Q is D's second head, updated in D's step. The categorical code's term is the
cross-entropy, the continuous codes' the negative log-likelihood of a Gaussian of unit standard
deviation, 0.5 * sum_j (c_j - mu_j)^2 without its constant (the official code's fixed-std
Gaussian: openai/InfoGAN, launchers/run_mnist_exp.py). Weights: 1 for the categorical code, as in
the paper; the paper takes "a smaller lambda" for continuous codes, whose differential entropy
has another scale (its Implementation section): 0.1 here, our choice.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.losses import (
    GAMES,
    Batch,
    Noise,
    Stats,
    StepGame,
    Update,
    _check_positive,
    _logistic_terms,
)

QOutput = tuple[torch.Tensor, torch.Tensor]  # categorical logits (B, K), continuous means (B, n)
Codes = tuple[torch.Tensor, torch.Tensor]  # categorical code (B,) int64, continuous codes (B, n)


def information_loss(
    q: QOutput, codes: Codes, categorical_weight: float, continuous_weight: float
) -> tuple[torch.Tensor, Stats]:
    """lambda_cat * CE(Q's logits, c) + lambda_cont * mean_b 0.5 * sum_j (c_j - Q's mean_j)^2."""
    logits, means = q
    category, continuous = codes
    categorical = F.cross_entropy(logits, category)  # -log Q(c | x), batch mean
    continuous_nll = 0.5 * ((means - continuous) ** 2).sum(1).mean()  # unit-std Gaussian NLL
    loss = categorical_weight * categorical + continuous_weight * continuous_nll
    stats = {
        "Q/categorical": categorical.detach(),
        "Q/continuous": continuous_nll.detach(),
        "Q/accuracy": (logits.argmax(1) == category).float().mean(),
    }
    return loss, stats


def _check_players(G: nn.Module, D: nn.Module) -> None:
    if not (hasattr(G, "codes") and hasattr(D, "with_q")):
        raise GanstudyError(
            "game 'infogan' needs arch infogan (a G with latent codes and a D with a Q head)"
        )


@GAMES.add
@dataclass
class InfoGAN(StepGame):
    """Chen et al. 2016, InfoGAN: the non-saturating game plus a mutual-information term."""

    name = "infogan"
    description = (
        "InfoGAN: non-saturating game + categorical_weight * CE + continuous_weight * Gaussian NLL"
        " of Q's guess of G's codes (G and D's Q head)"
    )
    arch = "infogan"
    categorical_weight: float = 1.0  # lambda of the categorical code (Chen et al. 2016: 1)
    continuous_weight: float = 0.1  # lambda of the continuous codes (the paper: smaller than 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive("categorical_weight", self.categorical_weight)
        _check_positive("continuous_weight", self.continuous_weight)

    def information(self, q: QOutput, codes: Codes) -> tuple[torch.Tensor, Stats]:
        return information_loss(q, codes, self.categorical_weight, self.continuous_weight)

    def d_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        """D on real and (detached) fakes, plus Q's information loss on the fakes: one update."""
        _check_players(G, D)
        fake = self.d_fakes(G, batch)  # (B, C, H, W): G(z), G's codes are read from z
        d_real = D(noise(batch.real))  # (B,); separate passes: BatchNorm sees one kind each
        d_fake, q = D.with_q(noise(fake))  # (B,), Q's outputs
        loss, stats = _logistic_terms(d_real, d_fake, real_label=1.0)
        info, q_stats = self.information(q, G.codes(batch.z))
        update(loss + info)
        return (loss + info).detach(), stats | q_stats

    def g_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        """-log D(G(z)) plus the information loss, both with G's graph: one update of G."""
        _check_players(G, D)
        d_fake, q = D.with_q(noise(self.g_fakes(G, batch)))  # (B,), Q's outputs
        info, _ = self.information(q, G.codes(batch.z))
        loss = F.softplus(-d_fake).mean() + info
        update(loss)
        stats = {
            "D/score_fake": torch.sigmoid(d_fake).mean().detach(),
            "G/information": info.detach(),
        }
        return loss.detach(), stats
