"""Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel."""

import numpy as np

from ganstudy.errors import GanstudyError


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 between the rows of (M, D) ``x`` and (N, D) ``y``: (M, N)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 estimate of two equally sized samples under ``polynomial_kernel``.

    Binkowski et al. 2018, "Demystifying MMD GANs", eq. (2): the within-sample means leave out
    the diagonal k(x_i, x_i), which is what makes the estimator unbiased (it can be negative).

    Args:
        x: (M, D) first sample, M >= 2.
        y: (M, D) second sample.

    Returns:
        The estimate: means over i != j of k(x_i, x_j) and k(y_i, y_j), minus twice the mean
        over all i, j of k(x_i, y_j).
    """
    m = len(x)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.mean())


def kernel_inception_distance(
    feats1: np.ndarray,
    feats2: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID of two feature sets (Binkowski et al. 2018, "Demystifying MMD GANs"), in float64.

    The unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
    ``subsets`` random subsets (without replacement) of each set. Unlike FID it has an unbiased
    estimator, so values from small samples (medical data) are comparable.

    Args:
        feats1: (N1, D) features, e.g. of generated images.
        feats2: (N2, D) features, e.g. of a real split.
        subsets: number of random subset pairs.
        subset_size: samples per subset; clipped to min(N1, N2).
        seed: seed of the subset draws (the same seed gives the same value).

    Returns:
        Mean and standard deviation (ddof 0) of the MMD^2 estimates over the subsets. The mean
        is near 0 for samples of one distribution and may be slightly negative.

    Raises:
        GanstudyError: dimensions differ, fewer than 2 samples, ``subsets`` < 1, or a feature is
            not finite.
    """
    x, y = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)  # (N1, D), (N2, D)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise GanstudyError(f"KID needs two (N, D) feature sets, got {x.shape} and {y.shape}")
    m = min(subset_size, len(x), len(y))
    if m < 2 or subsets < 1:
        raise GanstudyError(f"KID needs >= 2 samples per set and >= 1 subset (m={m})")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise GanstudyError("KID: the features are not finite")
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(
            x[rng.choice(len(x), m, replace=False)], y[rng.choice(len(y), m, replace=False)]
        )
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))
