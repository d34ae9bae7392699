"""The variational autoencoder of GANs in Action ch. 2 (Kingma & Welling 2014), the book's
non-adversarial baseline.

Encoder: flattened image -> Dense(hidden, ReLU) -> (mu, log sigma^2), each Dense(z_dim), linear.
Decoder: z -> Dense(hidden, ReLU) -> Dense(C*H*W, sigmoid): a Bernoulli mean p per pixel.
Fully connected, so any C x H x W works. Keras's default init (Glorot-uniform, zero bias).

To fit the GAN pipeline, G is the whole VAE: ``G(z)`` decodes and returns 2p - 1 in [-1, 1] (the
data's range), so the loop's grids, evaluate's ``generate`` and the metrics treat it as any
generator; ``G.encode`` and ``G.decode_logits`` serve the ``vae`` game (losses/vae.py). D is a
placeholder without parameters: the loop then makes no D optimizer and the game takes no D step.
"""

import math

import torch
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.models import ARCHITECTURES, Architecture, ImageSpec
from ganstudy.models.dcgan import glorot_init


class Encoder(nn.Module):
    """q(z | x): images in [-1, 1] -> (mu, log sigma^2), each (B, z_dim) (book listing 2.3)."""

    def __init__(self, pixels: int, z_dim: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, z_dim)
        self.logvar = nn.Linear(hidden, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body((x + 1) / 2)  # (B, hidden); the book's input is x / 255, in [0, 1]
        return self.mu(h), self.logvar(h)  # (B, z_dim) each


class VAE(nn.Module):
    """The encoder and the decoder; called on z, the decoder's images in [-1, 1]."""

    def __init__(self, image: ImageSpec, z_dim: int = 2, hidden: int = 256) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.shape = (image.channels, image.size, image.size)
        pixels = math.prod(self.shape)
        self.encoder = Encoder(pixels, z_dim, hidden)
        # Ends in logits: the game's cross-entropy is computed on them, stable where p is near 0/1.
        self.decoder = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, pixels))
        self.apply(glorot_init)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) in [-1, 1] -> (mu, log sigma^2) of q(z | x), each (B, z_dim)."""
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (B, z_dim) -> Bernoulli logits (B, C*H*W) of p(x | z)."""
        return self.decoder(z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.decode_logits(z))  # (B, C*H*W) in [0, 1]
        return (2 * p - 1).view(-1, *self.shape)  # (B, C, H, W) in [-1, 1]


class NoCritic(nn.Module):
    """The VAE's D: no parameters, never trained (the vae game has no D phase). Generic code that
    scores images still runs: it returns each image's mean pixel, (B,), differentiable in x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(1)  # (B,)


def build(image: ImageSpec, z_dim: int = 2, hidden: int = 256) -> tuple[nn.Module, nn.Module]:
    for name, value in (("z_dim", z_dim), ("hidden", hidden)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GanstudyError(f"vae: {name} must be an integer >= 1 (got {value!r})")
    return VAE(image, z_dim, hidden), NoCritic()


ARCHITECTURES.add(
    Architecture(
        "vae",
        "variational autoencoder of GANs in Action ch. 2 (fully connected, any size; encoder "
        "201,988 / decoder 202,256 params at 28x28x1, z_dim 2); train with game vae",
        build,
    ),
)
