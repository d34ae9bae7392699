"""Inception Score (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)), over splits.

As openai/improved-gan's ``inception_score/model.py``: contiguous splits, p(y) the mean of each
split's p(y|x), and the mean and std of the per-split scores. The probabilities come from the
backbone (``backbones``): the domain classifier, or the TF Inception's 1008-way softmax.
"""

import numpy as np

from ganstudy.errors import GanstudyError


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Mean and std over ``splits`` chunks of (N, K) class probabilities."""
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or not 1 <= splits <= len(probs):
        raise GanstudyError(
            f"Inception Score: need (N, K) probabilities with N >= splits={splits}, "
            f"got {probs.shape}"
        )
    scores = []
    for part in np.array_split(probs, splits):
        marginal = part.mean(axis=0, keepdims=True)  # p(y) over this split, (1, K)
        kl = np.sum(part * (np.log(part + 1e-12) - np.log(marginal + 1e-12)), axis=1)  # (n,)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
