"""Accuracy of a trained D's class head: the numbers of GANs in Action ch. 7's table.

The book scores the SGAN's supervised head (§7.2.8: ~89% on the MNIST test set with 100 labels)
against the same network trained on the same labels alone (§7.3: ~70%, game sgan-supervised).
"""

from pathlib import Path

import torch

from ganstudy.models import ImageSpec, build_gan, has_classifier, is_conditional
from ganstudy.models.sgan import HEAD_STATS_IMAGES, classifier_accuracy
from ganstudy.names import CHECKPOINT_NAME, PER_CLASS_FILE
from ganstudy.runs import load_checkpoint


def head_accuracy(
    run_dir: str | Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    batch_size: int = 500,
    stats_images: torch.Tensor | None = None,
) -> float | None:
    """Accuracy of the run's final D's class head (argmax of its class logits) on ``images``,
    under the head protocol (``models.sgan.HEAD_PROTOCOL``) when ``stats_images`` are given.

    Args:
        run_dir: a training run's folder, holding its checkpoint.
        images: (N, C, H, W) images in [-1, 1], e.g. the processed test split.
        labels: (N,) int class of each image.
        device: where D runs.
        batch_size: images per forward pass.
        stats_images: (M, C, H, W) real training images in [-1, 1]; the first
            ``HEAD_STATS_IMAGES`` re-estimate D's BatchNorm statistics before it is scored. None
            scores D's own running statistics (not the protocol: for comparisons only).

    Returns:
        The fraction of images classified right, in [0, 1]; None when the run has no single
        classifier of images: a D without a class head (dcgan, ...), a D that takes the labels
        as input, or a per-class run (one D per class).
    """
    run_dir = Path(run_dir)
    if (run_dir / PER_CLASS_FILE).is_file():
        return None
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    _, D = build_gan(state["arch"], ImageSpec(*state["image"]), state["arch_args"])
    if not has_classifier(D) or is_conditional(D):
        return None
    D.load_state_dict(state["D"])
    if stats_images is not None:
        stats_images = stats_images[:HEAD_STATS_IMAGES]
    return classifier_accuracy(D.to(device), images, labels, batch_size, stats_images)
