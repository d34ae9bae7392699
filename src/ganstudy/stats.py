"""Statistics over seeds: mean and Student-t confidence intervals."""

import math

import numpy as np
from scipy import stats


def mean_ci(values: list[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float, int]:
    """Mean, half-width of the two-sided t interval (NaN for n < 2), and n."""
    x = np.asarray(values, np.float64)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n < 2:
        return float(x[0]), math.nan, 1
    half = stats.t.ppf(0.5 + confidence / 2, df=n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


def format_ci(mean: float, half: float, digits: int = 2) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if math.isnan(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"
