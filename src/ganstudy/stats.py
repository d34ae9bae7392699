"""Statistics over seeds: mean and Student-t confidence intervals, and paired comparisons."""

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ganstudy.errors import GanstudyError

WILCOXON_MIN_N = 6  # below 6 pairs the exact two-sided signed-rank p-value cannot reach 0.05


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


@dataclass(frozen=True)
class PairedComparison:
    n: int  # pairs (seeds or folds)
    mean_diff: float  # mean of b - a
    ci_half: float  # half-width of the two-sided t interval of the mean difference
    ci_low: float
    ci_high: float
    t_pvalue: float  # two-sided paired t-test
    wilcoxon_pvalue: float  # two-sided Wilcoxon signed-rank; NaN when n < WILCOXON_MIN_N


def paired_test(
    a: list[float] | np.ndarray, b: list[float] | np.ndarray, confidence: float = 0.95
) -> PairedComparison:
    """Compare arm ``b`` with arm ``a`` on paired scores (same seed or fold at each position).

    The interval is ``mean_ci`` of the differences b - a; the p-values are scipy's
    ``ttest_rel`` and, from 6 pairs on, ``wilcoxon`` (its defaults: exact distribution for small
    n without ties, zero differences dropped). Differences that are all zero give p = 1.
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise GanstudyError(f"paired scores need equal lengths, got {x.shape} and {y.shape}")
    if len(x) < 2:
        raise GanstudyError(f"a paired test needs at least 2 pairs, got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise GanstudyError("paired scores contain NaN or infinite values")
    diff = y - x
    mean, half, n = mean_ci(diff, confidence)
    if not diff.any():  # identical arms: scipy would return NaN (0/0) with warnings
        t_p, w_p = 1.0, 1.0 if n >= WILCOXON_MIN_N else math.nan
    else:
        t_p = float(stats.ttest_rel(y, x).pvalue)
        w_p = float(stats.wilcoxon(y, x).pvalue) if n >= WILCOXON_MIN_N else math.nan
    return PairedComparison(n, mean, half, mean - half, mean + half, t_p, w_p)
