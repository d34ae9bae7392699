"""Memorisation (GANs in Action fig. 5.3): are generated images copies of training images?

In the domain classifier's feature space, each generated sample's distance to its nearest
training sample is compared with the same distance for held-out real samples, which the
generator never saw: a generator that copies its training set sits much closer to it.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganstudy.errors import GanstudyError
from ganstudy.io import write_with

CLOSE_PERCENTILE = 1.0  # "suspiciously close": below this percentile of real held-out distances
DUPLICATE_TOLERANCE = 1e-6  # relative to a feature norm: distances below it are rounding of 0


def nearest(x: np.ndarray, train: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(N,) Euclidean distance of each row of ``x`` (N, D) to its nearest row of ``train``
    (M, D), float64, and that row's index, in chunks so that N x M never sits in memory."""
    if x.ndim != 2 or train.ndim != 2 or x.shape[1] != train.shape[1] or not len(train):
        raise GanstudyError(f"memorisation: feature sets {x.shape} and {train.shape} do not match")
    t = torch.from_numpy(np.ascontiguousarray(train, dtype=np.float64))
    out = [
        torch.cdist(torch.from_numpy(np.ascontiguousarray(c, dtype=np.float64)), t).min(1)
        for c in np.array_split(x, max(1, -(-len(x) // chunk)))
    ]
    return torch.cat([o.values for o in out]).numpy(), torch.cat([o.indices for o in out]).numpy()


def nearest_distances(x: np.ndarray, train: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(N,) distances of ``nearest``."""
    return nearest(x, train, chunk)[0]


def memorisation(
    generated: np.ndarray, train: np.ndarray, held_out: np.ndarray
) -> tuple[float, float]:
    """Ratio median(generated -> train NN distance) / median(held-out -> train NN distance),
    and the share of generated samples closer to the training set than the 1st percentile of
    the held-out distances. A copying generator gives (~0, ~1); an independent sample of the
    data distribution (~1, ~0.01)."""
    gen_d, real_d = nearest_distances(generated, train), nearest_distances(held_out, train)
    scale = float(np.median(real_d))
    # cdist's matrix-product path leaves ~1e-8 |x| for identical rows, not 0: a duplicate is
    # any distance below 1e-6 of a typical feature norm, whatever the CPU's rounding
    if scale <= DUPLICATE_TOLERANCE * float(np.median(np.linalg.norm(train, axis=1))):
        raise GanstudyError(
            "memorisation: over half the held-out images duplicate a training image "
            "(median nearest distance 0); remove the duplicates from the dataset"
        )
    close = float(np.mean(gen_d < np.percentile(real_d, CLOSE_PERCENTILE)))
    return float(np.median(gen_d)) / scale, close


def save_closest_pairs(
    generated: torch.Tensor,
    gen_feats: np.ndarray,
    train: torch.Tensor,
    train_feats: np.ndarray,
    path: str | Path,
    k: int = 8,
    scale: int = 2,
) -> Path:
    """PNG of the ``k`` generated images nearest to the training set (top row, nearest first)
    above their nearest training images (bottom row), distances in the given feature space.

    Args:
        generated: (N, C, H, W) generated images in [-1, 1].
        gen_feats: (N, D) their features.
        train: (M, C, H, W) training images in [-1, 1].
        train_feats: (M, D) their features (same space).
        path: the PNG to write.
    """
    from ganstudy.plots import grid_image  # matplotlib: only when a picture is drawn

    dist, idx = nearest(gen_feats, train_feats)
    order = np.argsort(dist, kind="stable")[:k]
    pairs = torch.cat([generated[order], train[idx[order]]])  # (2k, C, H, W)
    grid = grid_image(pairs, nrow=len(order))
    pil = Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid)
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    return write_with(path, lambda p: pil.save(p, format="PNG"))
