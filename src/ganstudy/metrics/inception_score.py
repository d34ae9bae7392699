"""Inception Score (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)), over splits."""

import numpy as np


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Mean and std over ``splits`` chunks of (N, K) class probabilities."""
    probs = np.asarray(probs, np.float64)
    scores = []
    for part in np.array_split(probs, splits):
        marginal = part.mean(axis=0, keepdims=True)  # p(y) over this split, (1, K)
        kl = np.sum(part * (np.log(part + 1e-12) - np.log(marginal + 1e-12)), axis=1)  # (n,)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
