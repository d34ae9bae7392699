"""Fréchet distance between Gaussians fitted to features (Heusel et al. 2017), float64.

``frechet_distance`` computes the matrix square-root trace exactly from two symmetric
eigendecompositions, which is an order of magnitude faster than pytorch-fid's
``scipy.linalg.sqrtm`` of the non-symmetric product at 2048 dimensions and agrees with it to
round-off; ``frechet_distance_reference`` keeps pytorch-fid's function for cross-checks.
``frechet_distance_features`` gives the same value from the features themselves, through an
(N1, N2) SVD when a set has fewer samples than dimensions (per-class FID,
``per_class_frechet_distance``).
"""

import warnings
from pathlib import Path

import numpy as np

from ganstudy.errors import GanstudyError
from ganstudy.io import read_npz, write_npz


def gaussian_stats(features: np.ndarray, warn: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) features, in float64; ``warn``: say so when
    N <= D (callers that warn once for many sets pass False)."""
    features = np.asarray(features, np.float64)
    n, dim = features.shape
    if n < 2:
        raise GanstudyError(f"need at least 2 samples for feature statistics, got {n}")
    if warn and n <= dim:
        _warn_rank_deficient(n, dim)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _checked(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The statistics as float64 arrays of matching shapes, all values finite."""
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    dim = mu1.shape[0]
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise GanstudyError(
            f"feature statistics do not match: means {mu1.shape} and {mu2.shape}, "
            f"covariances {sigma1.shape} and {sigma2.shape}"
        )
    if not all(np.isfinite(a).all() for a in (mu1, sigma1, mu2, sigma2)):
        raise GanstudyError("FID is not finite: the feature statistics are degenerate")
    return mu1, sigma1, mu2, sigma2


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^{1/2}) of two PSD covariances, exactly, via symmetric eigendecompositions.

    With S1 = U diag(l) U^T and W = U diag(sqrt(l)) (so S1 = W W^T), S1 S2 = W (W^T S2) has the
    eigenvalues of (W^T S2) W = M (XY and YX share eigenvalues), a symmetric PSD matrix, so
    Tr((S1 S2)^{1/2}) = sum sqrt(eig(M)), the trace in Heusel et al. 2017's FID. M is
    U^T (A S2 A) U with A = S1^{1/2}, without forming A. ``eigh`` of symmetric matrices is much
    faster and better conditioned than ``sqrtm`` of the non-symmetric S1 S2.

    Args:
        sigma1: (D, D) covariance, symmetric positive semi-definite.
        sigma2: (D, D) covariance, symmetric positive semi-definite.

    Returns:
        The trace, >= 0. Round-off negatives of the eigenvalues are clipped to 0.
    """
    sym1, sym2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2  # exact symmetry for eigh
    evals, evecs = np.linalg.eigh(sym1)  # S1 = U diag(l) U^T
    w = evecs * np.sqrt(np.clip(evals, 0.0, None))  # (D, D): W = U diag(sqrt(l))
    m = w.T @ sym2 @ w  # (D, D), PSD
    m = (m + m.T) / 2  # the products leave ~1e-16 asymmetry
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(m), 0.0, None)).sum())


def frechet_distance_fast(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance of two Gaussians (Heusel et al. 2017, "GANs trained by a two time-scale
    update rule converge to a local Nash equilibrium"), computed exactly in float64.

    d^2 = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^{1/2}), with the last trace from
    symmetric eigendecompositions (see ``trace_sqrt_product``) instead of ``sqrtm``.

    Args:
        mu1: (D,) mean of the first feature set.
        sigma1: (D, D) covariance of the first feature set.
        mu2: (D,) mean of the second feature set.
        sigma2: (D, D) covariance of the second feature set.

    Returns:
        The distance: a finite float >= 0 (never complex or NaN).

    Raises:
        GanstudyError: shapes differ or a statistic is not finite.
    """
    mu1, sigma1, mu2, sigma2 = _checked(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2  # (D,)
    value = (
        diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    )
    return max(float(value), 0.0)  # round-off gives -1e-13 for identical statistics


def frechet_distance_reference(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """pytorch-fid's ``calculate_frechet_distance`` (``scipy.linalg.sqrtm``), as a cross-check.

    Slow at 2048 dimensions (about a minute on 2 cores); the pipeline uses ``frechet_distance``.

    Args:
        mu1: (D,) mean of the first feature set.
        sigma1: (D, D) covariance of the first feature set.
        mu2: (D,) mean of the second feature set.
        sigma2: (D, D) covariance of the second feature set.

    Returns:
        The distance: a finite float >= 0.

    Raises:
        GanstudyError: the value is not finite.
    """
    # Imported here: pytorch-fid pulls in torchvision, which the fast path does not need.
    from ganstudy._torchvision import ensure_torchvision_imports

    ensure_torchvision_imports()
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():  # pytorch-fid 0.3.0 passes scipy's deprecated `disp`
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*disp.*")
        value = float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
    if not np.isfinite(value):
        raise GanstudyError("FID is not finite: the feature statistics are degenerate")
    return max(value, 0.0)  # sqrtm round-off can give -1e-12 for identical statistics


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """The FID of the pipeline: ``frechet_distance_fast`` (exact; equals pytorch-fid's value).

    Args:
        mu1: (D,) mean of the first feature set.
        sigma1: (D, D) covariance of the first feature set.
        mu2: (D,) mean of the second feature set.
        sigma2: (D, D) covariance of the second feature set.

    Returns:
        The distance: a finite float >= 0.
    """
    return frechet_distance_fast(mu1, sigma1, mu2, sigma2)


def _warn_rank_deficient(n: int, dim: int, what: str = "") -> None:
    warnings.warn(
        f"{what}{n} samples for {dim}-d features: the covariance is rank-deficient and the FID "
        "is biased upward; compare values only at equal sample counts",
        stacklevel=3,
    )


def frechet_distance_features(feats1: np.ndarray, feats2: np.ndarray, warn: bool = True) -> float:
    """The FID of two feature sets: ``frechet_distance(*gaussian_stats(feats1),
    *gaussian_stats(feats2))``, computed without (D, D) matrices when a set has no more samples
    than dimensions (per-class FID of 2048-d Inception features: seconds, not minutes).

    With centred features A (N1, D) and B (N2, D), S1 = A^T A / (N1 - 1) and
    S2 = B^T B / (N2 - 1). S1 S2 has the non-zero eigenvalues of (A B^T)(A B^T)^T / c with
    c = (N1 - 1)(N2 - 1) (XY and YX share them), so Tr((S1 S2)^{1/2}) is the sum of the singular
    values of A B^T (N1, N2) over sqrt(c): exact, O(N1 N2 (D + min(N1, N2))) instead of O(D^3).

    Args:
        feats1: (N1, D) features, N1 >= 2.
        feats2: (N2, D) features, N2 >= 2.
        warn: warn when min(N1, N2) <= D (rank-deficient covariances).

    Returns:
        The distance: a finite float >= 0 (never complex or NaN).

    Raises:
        GanstudyError: shapes differ, fewer than 2 samples, or a feature is not finite.
    """
    x, y = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)  # (N1, D), (N2, D)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise GanstudyError(f"FID needs two (N, D) feature sets, got {x.shape} and {y.shape}")
    (n1, dim), n2 = x.shape, len(y)
    if min(n1, n2) < 2:
        raise GanstudyError(f"need at least 2 samples for feature statistics, got {min(n1, n2)}")
    if min(n1, n2) > dim:  # full rank: the (D, D) eigendecompositions are the cheaper path
        return frechet_distance(*gaussian_stats(x, warn=False), *gaussian_stats(y, warn=False))
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise GanstudyError("FID is not finite: the features are not finite")
    if warn:
        _warn_rank_deficient(min(n1, n2), dim)
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)  # (D,)
    a, b = x - mu1, y - mu2  # (N1, D), (N2, D)
    cross = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    value = diff @ diff + (a * a).sum() / (n1 - 1) + (b * b).sum() / (n2 - 1) - 2 * cross
    return max(float(value), 0.0)  # round-off gives -1e-13 for identical sets


def per_class_frechet_distance(
    feats1: np.ndarray, labels1: np.ndarray, feats2: np.ndarray, labels2: np.ndarray
) -> dict[int, float]:
    """FID between the class-k rows of two labelled feature sets, for every class k of either
    (e.g. a conditional generator's images of class k against the real images of class k).

    Warns once, not once per class, when a class has no more samples than feature dimensions
    (Inception's 2048 with a few hundred images a class): the values stay finite but are biased
    upward, so only values from equal sample counts compare.

    Args:
        feats1: (N1, D) features of the first set, e.g. generated images.
        labels1: (N1,) their integer classes.
        feats2: (N2, D) features of the second set, e.g. a real split.
        labels2: (N2,) their integer classes.

    Returns:
        Class -> FID (``frechet_distance_features``), classes ascending.

    Raises:
        GanstudyError: labels and features do not match, or a class has fewer than 2 samples in
            one of the sets.
    """
    labels1, labels2 = np.asarray(labels1).ravel(), np.asarray(labels2).ravel()
    if len(labels1) != len(feats1) or len(labels2) != len(feats2):
        raise GanstudyError(
            f"per-class FID: {len(labels1)} and {len(labels2)} labels for "
            f"{len(feats1)} and {len(feats2)} feature rows"
        )
    classes = [int(k) for k in np.union1d(labels1, labels2)]
    counts = {k: (int((labels1 == k).sum()), int((labels2 == k).sum())) for k in classes}
    for k, (c1, c2) in counts.items():
        if min(c1, c2) < 2:
            raise GanstudyError(
                f"per-class FID: class {k} has {c1} and {c2} samples in the two sets; "
                "each needs at least 2"
            )
    smallest, dim = min(min(c) for c in counts.values()), np.shape(feats1)[1]
    if smallest <= dim:
        _warn_rank_deficient(smallest, dim, "per-class FID: smallest class has ")
    return {
        k: frechet_distance_features(feats1[labels1 == k], feats2[labels2 == k], warn=False)
        for k in classes
    }


def save_stats(path: str | Path, features: np.ndarray) -> Path:
    mu, sigma = gaussian_stats(features)
    return write_npz(path, mu=mu, sigma=sigma, n=np.array(len(features)))


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    path = Path(path)
    if not path.is_file():
        raise GanstudyError(f"{path}: reference statistics missing; run the reference stage")
    stats = read_npz(path, ["mu", "sigma", "n"])
    return stats["mu"], stats["sigma"], int(stats["n"])
