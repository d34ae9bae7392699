"""The VAE's objective, GANs in Action ch. 2 (listing 2.7; Kingma & Welling 2014): a
non-adversarial game, one update of the whole VAE (arch ``vae``) per iteration, no D.

Loss = reconstruction + beta * KL, both per image and averaged over the batch:
- reconstruction: Bernoulli negative log-likelihood of the image in [0, 1], summed over pixels
  (the book's ``original_dim * binary_crossentropy``, i.e. 784 x the pixel-mean BCE on MNIST);
- KL(q(z|x) || N(0, I)) = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
At beta 1 it is the negative ELBO, a bound on -log p(x) in nats per image (beta-VAE otherwise,
Higgins et al. 2017). The book's Keras clips p into [1e-7, 1 - 1e-7]; here the cross-entropy is
computed on the decoder's logits instead (the same value away from the clip, and stable).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.losses import GAMES, Batch, Noise, Stats, StepGame, Update, _check_positive


def reconstruction_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image Bernoulli NLL (B,): BCE of decoder logits (B, P) vs targets in [0, 1] (B, ...),
    summed over the P pixels."""
    bce = F.binary_cross_entropy_with_logits(logits, target.flatten(1), reduction="none")
    return bce.sum(1)  # (B,)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-image KL(N(mu, exp(logvar)) || N(0, I)) (B,), closed form, summed over latent dims."""
    return -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)  # (B,)


@GAMES.add
@dataclass
class VAE(StepGame):
    """Kingma & Welling 2014, the variational autoencoder's negative ELBO (book listing 2.7)."""

    name = "vae"
    description = (
        "VAE (non-adversarial baseline): min pixel-summed BCE reconstruction + beta * "
        "KL(q(z|x) || N(0, I)); no D"
    )
    adversarial = False
    arch = "vae"
    d_steps: int = 0
    beta: float = 1.0  # KL weight: 1 = the ELBO (the book); != 1 = beta-VAE

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive("beta", self.beta)

    def g_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        """One update of encoder and decoder on the real batch. ``noise`` (instance noise on D's
        inputs) is not applied: there is no D. ``batch.z`` is the reparameterisation's epsilon,
        drawn by the loop from its checkpointed sampler, so runs repeat and resume exactly."""
        if not hasattr(G, "encode"):
            raise GanstudyError("game 'vae' needs a VAE generator with an encoder (arch vae)")
        mu, logvar = G.encode(batch.real)  # (B, z_dim) each
        z = mu + (0.5 * logvar).exp() * batch.z  # (B, z_dim), reparameterised (book §2.7)
        x01 = (batch.real + 1) / 2  # (B, C, H, W) in [0, 1], the book's x / 255
        reconstruction = reconstruction_nll(G.decode_logits(z), x01).mean()
        kl = kl_to_standard_normal(mu, logvar).mean()
        loss = reconstruction + self.beta * kl
        update(loss)
        return loss, {"VAE/reconstruction": reconstruction.detach(), "VAE/kl": kl.detach()}

    def d_step(
        self, G: nn.Module, D: nn.Module, batch: Batch, noise: Noise, update: Update
    ) -> tuple[torch.Tensor, Stats]:
        raise GanstudyError("game 'vae' has no D step (d_steps is 0)")
