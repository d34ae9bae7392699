"""Semi-supervised GAN (Salimans et al. 2016) as in GANs in Action ch. 7 (listings 7.4-7.7).

G: the ch. 4 DCGAN generator (dcgan's G for the data's image size).
D: dcgan's D conv stack, then Dropout(0.5) (at 28: after the last BatchNorm block, as the book),
then one linear layer of K class logits l (book listing 7.5: 113,546 parameters at 28x28x1, 10
classes). Both heads share them: the supervised head is softmax(l); the unsupervised head is
D(x) = Z/(Z+1) with Z = sum_k exp(l_k) (listing 7.7), i.e. sigmoid(logsumexp(l)), so D returns
logsumexp(l) as its real/fake logit: D(x) = (real/fake logits (B,), class logits (B, K)).
Train with game sgan.
"""

import copy

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganstudy.errors import GanstudyError
from ganstudy.models import ARCHITECTURES, Architecture, ImageSpec, dcgan
from ganstudy.models.cgan import check_classes


class Discriminator(nn.Module):
    """features -> K class logits l; real/fake logit logsumexp(l) (Salimans et al. 2016 §5)."""

    def __init__(self, features: nn.Sequential, classes: nn.Linear) -> None:
        super().__init__()
        self.aux_classes = classes.out_features
        self.features = features
        self.classes = classes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.classes(self.features(x))  # (B, K)
        # sigmoid(logsumexp(l)) = Z/(Z+1): the book's Lambda head, without its overflow.
        return torch.logsumexp(logits, 1), logits  # (B,), (B, K)


def build(
    image: ImageSpec,
    z_dim: int | None = None,
    slope: float | None = None,
    norm: str | None = None,
    dropout: float = 0.5,
) -> tuple[nn.Module, nn.Module]:
    check_classes("sgan", image)
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise GanstudyError(f"architecture 'sgan': dropout must be in [0, 1) (got {dropout!r})")
    G, base_d = dcgan.build(image, z_dim, slope, norm)  # checks norm and size
    *stack, source = base_d.net
    # The book's Dropout sits after the conv stack, before Flatten. A source's own dropout (the
    # 32-pixel frog D's, after Flatten) is dropped, so every size has exactly this one.
    convs = [m for m in stack if not isinstance(m, nn.Dropout | nn.Flatten)]
    features = nn.Sequential(*convs, nn.Dropout(dropout), nn.Flatten())  # (B, F)
    classes = nn.Linear(source.in_features, image.num_classes)  # (B, K)
    (dcgan.radford_init if image.size == 64 else dcgan.glorot_init)(classes)  # as D's own init
    if (norm or dcgan.DEFAULTS[image.size]["norm"]) == "spectral":
        spectral_norm(classes)
    return G, Discriminator(features, classes)


# The head-accuracy protocol: BatchNorm statistics are re-estimated on at most this many real
# training images (the first of the split: its originals) before a head is scored.
HEAD_STATS_IMAGES = 10_000
HEAD_PROTOCOL = (
    "argmax of D's class logits in eval mode (dropout off), after BatchNorm running statistics "
    f"are re-estimated on the first {HEAD_STATS_IMAGES:,} real training images (no labels, no "
    "fakes; exact cumulative average over batches); the same for every arm"
)


@torch.no_grad()
def recompute_batchnorm(D: nn.Module, images: torch.Tensor, batch_size: int = 500) -> nn.Module:
    """A copy of ``D`` whose BatchNorm running statistics are re-estimated on ``images``.

    Why: a D's running statistics are an exponential average of its training batches. A briefly
    trained classifier (the book's baseline: 120 updates at Keras momentum 0.99) still carries
    much of their initial values, and an SGAN's mix real and fake batches; scored on them, a head
    measures how far the averages converged, not what it learnt. Re-estimating them on the same
    real images (the cumulative average with momentum None, as ``torch.optim.swa_utils.update_bn``,
    but with only the BatchNorm layers in train mode: Dropout stays off and draws nothing) scores
    every arm alike. D itself is not changed; the copy is in eval mode.

    Args:
        D: a network with or without BatchNorm layers (without, the copy scores as D).
        images: (N, C, H, W) real images in [-1, 1], N >= 1.
        batch_size: images per forward pass.
    """
    D = copy.deepcopy(D).eval()
    norms = [m for m in D.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return D
    device = next(D.parameters()).device
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
        m.train()
    for start in range(0, len(images), batch_size):
        D(images[start : start + batch_size].to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
        m.eval()
    return D


@torch.no_grad()
def classifier_accuracy(
    D: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 500,
    stats_images: torch.Tensor | None = None,
) -> float:
    """Accuracy of D's supervised head (argmax of its class logits) on labelled images.

    D runs in eval mode (dropout off, BatchNorm on its running statistics), as Keras's
    ``evaluate`` scores the book's classifier (§7.2.8); its mode is restored afterwards. With
    ``stats_images``, the running statistics are first re-estimated on them, in a copy of D
    (``recompute_batchnorm``): the project's protocol for every head number (``HEAD_PROTOCOL``).

    Args:
        D: an SGAN (or other auxiliary-classifier) D returning (scores (B,), class logits (B, K)),
            or a plain classifier returning class logits (B, K), e.g. a supervised baseline.
        images: (N, C, H, W) images in [-1, 1], on any device (batches move to D's).
        labels: (N,) int class of each image.
        batch_size: images per forward pass.
        stats_images: (M, C, H, W) real training images in [-1, 1], or None to score D's own
            running statistics.

    Returns:
        The fraction of images whose predicted class is their label, in [0, 1].
    """
    if len(images) == 0 or len(images) != len(labels):
        raise GanstudyError(
            f"classifier_accuracy needs as many labels as images, at least one "
            f"(got {len(images)} images, {len(labels)} labels)"
        )
    if batch_size < 1:
        raise GanstudyError(f"batch_size must be >= 1 (got {batch_size})")
    if stats_images is not None:
        if len(stats_images) == 0:
            raise GanstudyError("classifier_accuracy: stats_images is empty")
        D = recompute_batchnorm(D, stats_images, batch_size)
    device = next(D.parameters()).device
    was_training = D.training
    D.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        out = D(images[start : start + batch_size].to(device))
        logits = out[1] if isinstance(out, tuple) else out  # (b, K)
        truth = labels[start : start + batch_size].to(device)  # (b,)
        correct += (logits.argmax(1) == truth).sum().item()
    D.train(was_training)
    return correct / len(images)


ARCHITECTURES.add(
    Architecture(
        "sgan",
        "semi-supervised GAN of GANs in Action ch. 7: DCGAN G; DCGAN D + Dropout(0.5) -> K class "
        "logits, real/fake logit logsumexp (G 1,636,737 / D 113,546 params at 28x28x1, 10 "
        "classes); train with game sgan",
        build,
        uses_labels=True,
    ),
)
