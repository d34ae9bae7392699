"""Statistics over seeds: mean and Student-t confidence intervals, paired (t, Wilcoxon) and
unpaired (Welch) comparisons, the smallest difference a design detects, ranks within seeds with
Kendall's W and Friedman's test, and a training length from a validation curve."""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
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


DETECT_POWER = 0.8  # the power at which a design's smallest detectable difference is stated


def detectable_difference(
    sd: float, n: int, confidence: float = 0.95, power: float = DETECT_POWER
) -> float:
    """The smallest true mean difference a two-sided paired t-test over ``n`` pairs with
    difference standard deviation ``sd`` detects with probability ``power`` at level
    1 - ``confidence``: the exact noncentral-t solution, not the normal approximation. NaN for
    n < 2 or sd NaN; 0 for sd 0 (any difference is seen)."""
    if n < 2 or math.isnan(sd):
        return math.nan
    if sd == 0:
        return 0.0
    df = n - 1
    crit = stats.t.ppf(0.5 + confidence / 2, df)

    def shortfall(effect: float) -> float:  # power at a true difference of ``effect`` sds
        nc = effect * math.sqrt(n)
        wrong_side = float(np.nan_to_num(stats.nct.cdf(-crit, df, nc)))  # ~0; NaN when tiny
        return float(stats.nct.sf(crit, df, nc)) + wrong_side - power

    from scipy.optimize import brentq

    high = 1.0
    while not shortfall(high) > 0:  # widen until the power is reached (NaN: nct gave up)
        high *= 2
        if high > 1e3:
            return math.nan
    return float(brentq(shortfall, 0.0, high) * sd)


@dataclass(frozen=True)
class PairedComparison:
    n: int  # pairs (seeds or folds)
    mean_diff: float  # mean of b - a
    ci_half: float  # half-width of the two-sided t interval of the mean difference
    ci_low: float
    ci_high: float
    t_pvalue: float  # two-sided paired t-test
    wilcoxon_pvalue: float  # two-sided Wilcoxon signed-rank; NaN when n < WILCOXON_MIN_N
    # The smallest true difference this design (n pairs, the observed spread of the
    # differences) detects with DETECT_POWER at the same level: what "inconclusive" can rule out.
    detectable: float = math.nan


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
    detect = detectable_difference(float(diff.std(ddof=1)), n, confidence)
    return PairedComparison(n, mean, half, mean - half, mean + half, t_p, w_p, detect)


LENGTH_TOLERANCE = 0.005  # within half a point of the best validation accuracy
LENGTH_WINDOW = 5  # checks in the rolling mean that smooths a validation curve


@dataclass(frozen=True)
class LengthChoice:
    steps: int  # the chosen number of iterations
    best_step: int  # where the smoothed curve peaks
    best: float  # its peak value
    value: float  # its value at ``steps``
    rule: str  # the rule, in words, for the page


def choose_length(
    steps: np.ndarray | list[int],
    values: np.ndarray | list[float],
    tolerance: float = LENGTH_TOLERANCE,
    window: int = LENGTH_WINDOW,
    what: str = "validation accuracy",
) -> LengthChoice:
    """A training length from a validation curve (higher is better): the first step whose
    rolling mean over ``window`` checks (centred; not defined at the ends) is within
    ``tolerance`` of the rolling mean's maximum. Smoothing keeps one lucky check on a small
    validation split from choosing the length; the tolerance prefers the shorter of two runs
    that validate alike (cheaper, and no selection on noise past the plateau). ``what`` names
    the curve in the rule's words (a lower-is-better curve goes in negated, e.g. -log FID)."""
    x = np.asarray(steps, np.int64)
    y = np.asarray(values, np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) == 0 or not np.isfinite(y).all():
        raise GanstudyError("choose_length needs a non-empty finite curve, one value a step")
    if window < 1 or tolerance < 0:
        raise GanstudyError(
            f"choose_length: window >= 1, tolerance >= 0 (got {window}, {tolerance})"
        )
    order = np.argsort(x)
    x, y = x[order], y[order]
    window = min(window, len(y))  # a curve shorter than the window: its plain mean
    # Centred, whole windows only: the first and last window // 2 checks are never chosen.
    smooth = pd.Series(y).rolling(window, center=True).mean().to_numpy()
    peak = int(np.nanargmax(smooth))
    first = int(np.flatnonzero(smooth >= smooth[peak] - tolerance)[0])  # NaN compares False
    rule = (
        f"the first iteration whose {what} (centred rolling mean of {window} "
        f"checks) is within {tolerance:g} of that mean's maximum"
    )
    return LengthChoice(
        int(x[first]), int(x[peak]), float(smooth[peak]), float(smooth[first]), rule
    )


@dataclass(frozen=True)
class WelchComparison:
    n: int  # values of the arm
    n_baseline: int  # values of the baseline
    diff: float  # mean(arm) - mean(baseline)
    ci_low: float  # the two-sided interval of the difference (Welch-Satterthwaite df)
    ci_high: float
    pvalue: float  # two-sided


def welch_test(
    x: list[float] | np.ndarray, baseline: list[float] | np.ndarray, confidence: float = 0.95
) -> WelchComparison | None:
    """Arm ``x`` against ``baseline``, unpaired with unequal variances (scipy's ``ttest_ind``
    with ``equal_var=False`` and its interval); None when a side has fewer than 2 values or
    neither has any spread (the test is not defined)."""
    a, b = np.asarray(x, np.float64), np.asarray(baseline, np.float64)
    if min(len(a), len(b)) < 2 or a.var() + b.var() == 0:
        return None
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(confidence)
    return WelchComparison(
        len(a), len(b), float(a.mean() - b.mean()), ci.low, ci.high, float(res.pvalue)
    )


def fid_ranks(runs: pd.DataFrame, fid: str) -> pd.DataFrame:
    """(seeds, variants) ranks of FID within each seed (1 = lowest; ties averaged), over the
    seeds where every variant has a value; ``runs`` has one row per variant x seed."""
    if runs.duplicated(["variant", "seed"]).any():
        raise GanstudyError("runs hold a variant twice for one seed")
    values = runs.assign(value=pd.to_numeric(runs[fid], errors="coerce"))
    wide = values.pivot(index="seed", columns="variant", values="value")
    wide = wide.reindex(columns=list(dict.fromkeys(runs["variant"]))).dropna()
    ranked = stats.rankdata(wide.to_numpy(), axis=1) if len(wide) else wide.to_numpy()
    return pd.DataFrame(ranked, index=wide.index, columns=wide.columns)


def kendall_w(ranks: np.ndarray) -> float:
    """Kendall's coefficient of concordance of (m raters, n objects) ranks, tie-corrected
    (Kendall & Babington Smith 1939): 1 = every rater ranks alike, 0 = no agreement. NaN for
    fewer than 2 raters or objects, or when every rater ties every object."""
    ranks = np.asarray(ranks, np.float64)
    m, n = ranks.shape if ranks.ndim == 2 else (0, 0)
    if m < 2 or n < 2:
        return math.nan
    spread = ((ranks.sum(axis=0) - m * (n + 1) / 2) ** 2).sum()
    counts = (np.unique(r, return_counts=True)[1] for r in ranks)  # tie groups per rater
    ties = sum(float((t**3 - t).sum()) for t in counts)
    denominator = m**2 * (n**3 - n) - m * ties
    return math.nan if denominator <= 0 else float(12 * spread / denominator)


def friedman_p(w: float, m: int, n: int) -> float:
    """Friedman's test of no consistent order of ``n`` objects over ``m`` raters, from their
    Kendall's W: chi2 = m (n - 1) W on n - 1 degrees of freedom."""
    return float(stats.chi2.sf(m * (n - 1) * w, n - 1))
