"""Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds of features.

Each sample set spans a manifold: the union of balls around its points, each ball's radius the
distance to the point's k-th nearest neighbour in its own set. Precision is the share of fake
samples inside the real manifold (quality); recall the share of real samples inside the fake
manifold (coverage). Distances are computed in row blocks so memory stays bounded (about
``max_block`` float64 values per temporary array) for 10k x 10k sets.
"""

from collections.abc import Iterator

import numpy as np

from ganstudy.errors import GanstudyError

MAX_BLOCK = 2**22  # float64 values per distance block: 32 MiB


def _row_blocks(n_rows: int, n_cols: int, max_block: int) -> Iterator[slice]:
    step = max(1, max_block // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _sq_distances(a: np.ndarray, b: np.ndarray, b_sq_norms: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (M, N) between the rows of (M, D) ``a`` and (N, D) ``b``."""
    # |a|^2 + |b|^2 - 2 a.b: one matrix product, then in-place updates (no (M, N) temporaries).
    d2 = a @ b.T  # (M, N)
    d2 *= -2.0
    d2 += np.sum(a * a, axis=1)[:, None]
    d2 += b_sq_norms[None, :]
    return np.maximum(d2, 0.0, out=d2)  # round-off can give tiny negatives


def knn_sq_radii(feats: np.ndarray, k: int, max_block: int = MAX_BLOCK) -> np.ndarray:
    """Squared distance (N,) from each row of (N, D) ``feats`` to its k-th nearest other row."""
    radii, sq_norms = np.empty(len(feats)), np.sum(feats * feats, axis=1)  # (N,), (N,)
    for rows in _row_blocks(len(feats), len(feats), max_block):
        d2 = _sq_distances(feats[rows], feats, sq_norms)  # (B, N); the point itself is a 0
        radii[rows] = np.partition(d2, k, axis=1)[:, k]  # index 0 is the point itself
    return radii


def manifold_shares(
    real: np.ndarray,
    fake: np.ndarray,
    real_sq_radii: np.ndarray,
    fake_sq_radii: np.ndarray,
    max_block: int = MAX_BLOCK,
) -> tuple[float, float]:
    """Share of fake rows inside the real balls, and of real rows inside the fake balls.

    One pass over the fake x real distances serves both directions.
    """
    fake_inside = np.empty(len(fake), dtype=bool)  # (N_fake,)
    real_inside = np.zeros(len(real), dtype=bool)  # (N_real,), accumulated over blocks
    real_sq_norms = np.sum(real * real, axis=1)  # (N_real,)
    for rows in _row_blocks(len(fake), len(real), max_block):
        d2 = _sq_distances(fake[rows], real, real_sq_norms)  # (B, N_real)
        fake_inside[rows] = (d2 <= real_sq_radii[None, :]).any(axis=1)
        real_inside |= (d2 <= fake_sq_radii[rows, None]).any(axis=0)
    return float(fake_inside.mean()), float(real_inside.mean())


def precision_recall(
    real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3, *, max_block: int = MAX_BLOCK
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall
    Metric for Assessing Generative Models") of fake features against real ones, in float64.

    Args:
        real_feats: (N_real, D) features of real images.
        fake_feats: (N_fake, D) features of generated images.
        k: the neighbour whose distance is a ball's radius (the paper uses 3).
        max_block: float64 values per temporary distance block (memory bound).

    Returns:
        (precision, recall), each in [0, 1]: the share of fake samples within the real k-NN
        manifold, and the share of real samples within the fake k-NN manifold.

    Raises:
        GanstudyError: dimensions differ, a set has <= k samples, or a feature is not finite.
    """
    real = np.asarray(real_feats, np.float64)  # (N_real, D)
    fake = np.asarray(fake_feats, np.float64)  # (N_fake, D)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise GanstudyError(
            f"precision/recall need two (N, D) feature sets, got {real.shape} and {fake.shape}"
        )
    if k < 1 or min(len(real), len(fake)) <= k:
        raise GanstudyError(
            f"precision/recall need k >= 1 and more than k={k} samples per set, "
            f"got {len(real)} real and {len(fake)} fake"
        )
    if not (np.isfinite(real).all() and np.isfinite(fake).all()):
        raise GanstudyError("precision/recall: the features are not finite")
    real_radii, fake_radii = knn_sq_radii(real, k, max_block), knn_sq_radii(fake, k, max_block)
    return manifold_shares(real, fake, real_radii, fake_radii, max_block)
