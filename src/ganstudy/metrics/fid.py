"""Fréchet distance between Gaussians fitted to features (Heusel et al. 2017), float64."""

import warnings
from pathlib import Path

import numpy as np
from pytorch_fid.fid_score import calculate_frechet_distance

from ganstudy.errors import GanstudyError
from ganstudy.io import write_npz


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) features, in float64."""
    features = np.asarray(features, np.float64)
    n, dim = features.shape
    if n < 2:
        raise GanstudyError(f"need at least 2 samples for feature statistics, got {n}")
    if n <= dim:
        warnings.warn(
            f"{n} samples for {dim}-d features: the covariance is rank-deficient and the FID is "
            "biased; use more samples than feature dimensions",
            stacklevel=2,
        )
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """pytorch-fid's ``calculate_frechet_distance``; never a complex number or NaN."""
    with warnings.catch_warnings():  # pytorch-fid 0.3.0 passes scipy's deprecated `disp`
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*disp.*")
        value = float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
    if not np.isfinite(value):
        raise GanstudyError("FID is not finite: the feature statistics are degenerate")
    return max(value, 0.0)  # sqrtm round-off can give -1e-12 for identical statistics


def save_stats(path: str | Path, features: np.ndarray) -> Path:
    mu, sigma = gaussian_stats(features)
    return write_npz(path, mu=mu, sigma=sigma, n=np.array(len(features)))


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    path = Path(path)
    if not path.is_file():
        raise GanstudyError(f"{path}: reference statistics missing; run the reference stage")
    with np.load(path) as npz:
        return npz["mu"], npz["sigma"], int(npz["n"])
