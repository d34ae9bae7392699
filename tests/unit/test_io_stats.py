import math

import numpy as np
import pytest

from ganstudy.io import atomic_dir, atomic_path, read_json, write_json
from ganstudy.stats import format_ci, mean_ci, paired_test


def test_atomic_file_is_all_or_nothing(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "y").write_text("2")
        raise RuntimeError
    assert [p.name for p in target.iterdir()] == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_mean_ci_matches_t_table():
    mean, half, n = mean_ci([1.0, 2.0, 3.0], 0.95)
    # t(0.975, 2) = 4.302653; sd = 1; half = t * 1 / sqrt(3)
    assert (mean, n) == (2.0, 3) and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(mean_ci([5.0])[1])
    assert format_ci(2.0, 0.5) == "2.00 ± 0.50" and format_ci(2.0, math.nan) == "2.00"


def test_paired_test_matches_hand_computed_and_scipy_values():
    from scipy import stats

    a = [0.80, 0.82, 0.78, 0.81, 0.79, 0.83]
    b = [0.84, 0.85, 0.80, 0.86, 0.80, 0.89]  # b - a = .04 .03 .02 .05 .01 .06: all positive
    r = paired_test(a, b)
    # mean .035; sd of the differences sqrt(1.75e-3 / 5); se = sd / sqrt(6); t = mean / se.
    se = math.sqrt(1.75e-3 / 5) / math.sqrt(6)
    assert (r.n, r.mean_diff) == (6, pytest.approx(0.035))
    assert r.ci_half == pytest.approx(2.570582 * se, rel=1e-6)  # t(0.975, 5) = 2.570582
    assert (r.ci_low, r.ci_high) == pytest.approx((0.035 - r.ci_half, 0.035 + r.ci_half))
    assert r.t_pvalue == pytest.approx(2 * stats.t.sf(0.035 / se, df=5), rel=1e-6)
    assert r.t_pvalue == pytest.approx(stats.ttest_rel(b, a).pvalue)
    # Exact signed-rank test: all 6 signs positive has probability 2^-6, doubled (two-sided).
    assert r.wilcoxon_pvalue == pytest.approx(2 / 2**6)
    reverse = paired_test(b, a)
    assert reverse.mean_diff == pytest.approx(-0.035) and reverse.t_pvalue == r.t_pvalue


def test_paired_test_small_n_identical_arms_and_errors():
    from ganstudy.errors import GanstudyError

    r = paired_test([1.0, 2.0, 3.0], [1.5, 2.0, 3.7])
    assert r.n == 3 and math.isnan(r.wilcoxon_pvalue) and 0 < r.t_pvalue < 1
    same = paired_test([0.5] * 6, [0.5] * 6)
    assert (same.mean_diff, same.ci_half, same.t_pvalue, same.wilcoxon_pvalue) == (0, 0, 1, 1)
    with pytest.raises(GanstudyError, match="equal lengths"):
        paired_test([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(GanstudyError, match="at least 2 pairs"):
        paired_test([1.0], [2.0])
    with pytest.raises(GanstudyError, match="NaN"):
        paired_test([1.0, math.nan], [2.0, 3.0])


def test_torch_files_are_byte_reproducible(tmp_path):
    import torch

    from ganstudy.io import save_torch

    state = {"w": torch.arange(6.0).reshape(2, 3), "step": 3}
    save_torch(tmp_path / "a.pt", state)
    save_torch(tmp_path / "b.pt", state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.load(tmp_path / "a.pt", weights_only=True)["step"] == 3


def test_missing_or_corrupt_json_is_one_clear_error(tmp_path):
    from ganstudy.errors import GanstudyError

    with pytest.raises(GanstudyError, match="missing; run the stage"):
        read_json(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(GanstudyError, match="not readable JSON"):
        read_json(tmp_path / "bad.json")


def test_detectable_difference_has_the_stated_power_by_simulation():
    from scipy import stats as sps

    from ganstudy.stats import DETECT_POWER, detectable_difference

    n, sd = 10, 0.03
    delta = detectable_difference(sd, n)
    rng = np.random.default_rng(0)
    diffs = rng.normal(delta, sd, size=(20_000, n))  # true mean difference = delta
    p = sps.ttest_1samp(diffs, 0.0, axis=1).pvalue
    assert (p < 0.05).mean() == pytest.approx(DETECT_POWER, abs=0.015)
    assert detectable_difference(sd, 40) < delta  # more pairs resolve smaller differences
    assert detectable_difference(0.0, 5) == 0.0 and np.isnan(detectable_difference(sd, 1))
    assert paired_test([0.7, 0.72, 0.69], [0.75, 0.7, 0.73]).detectable > 0


def test_choose_length_takes_the_first_step_near_the_smoothed_peak():
    from ganstudy.errors import GanstudyError
    from ganstudy.stats import choose_length

    steps = list(range(100, 1100, 100))
    rising = [0.5, 0.6, 0.7, 0.8, 0.85, 0.86, 0.86, 0.86, 0.86, 0.86]
    choice = choose_length(steps, rising, tolerance=0.01, window=1)
    assert (choice.steps, choice.best) == (500, 0.86)  # 0.85 is within 0.01 of 0.86
    spike = [0.5, 0.5, 0.9, 0.5, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6]  # one lucky check
    assert choose_length(steps, spike, tolerance=0.0, window=5).steps != 300  # not the spike
    assert choose_length(steps, spike, tolerance=0.0, window=1).steps == 300
    # A lower-is-better curve goes in negated: FID within 5% of its minimum on the log scale.
    fid = np.array([200.0, 90.0, 50.0, 42.0, 40.5, 40.0, 41.0, 40.2, 40.4, 40.1])
    choice = choose_length(steps, -np.log(fid), np.log1p(0.05), window=1, what="-log FID")
    assert choice.steps == 400 and np.exp(-choice.best) == pytest.approx(40.0)  # 42 <= 1.05 * 40
    assert choice.rule.startswith("the first iteration whose -log FID")
    with pytest.raises(GanstudyError, match="non-empty finite curve"):
        choose_length([], [])


def test_welch_test_agrees_with_the_hand_formula_and_declines_without_spread():
    from scipy import stats

    from ganstudy.stats import welch_test

    x, base = np.array([18.0, 21.0, 19.0, 24.0]), np.array([30.0, 32.0, 31.0, 33.0])
    se2 = x.var(ddof=1) / 4 + base.var(ddof=1) / 4  # Welch-Satterthwaite by hand
    df = se2**2 / ((x.var(ddof=1) / 4) ** 2 / 3 + (base.var(ddof=1) / 4) ** 2 / 3)
    half = stats.t.ppf(0.975, df) * math.sqrt(se2)
    t = welch_test(x, base, 0.95)
    assert t is not None and (t.n, t.n_baseline) == (4, 4)
    assert t.diff == pytest.approx(-11.0)
    assert (t.ci_low, t.ci_high) == (pytest.approx(-11.0 - half), pytest.approx(-11.0 + half))
    assert t.pvalue == pytest.approx(2 * stats.t.sf(11.0 / math.sqrt(se2), df))
    assert welch_test([1.0], base) is None  # one value: no variance
    assert welch_test([2.0, 2.0], [3.0, 3.0]) is None  # no spread on either side


def test_friedman_p_from_kendalls_w():
    from scipy import stats

    from ganstudy.stats import friedman_p, kendall_w

    ranks = np.array([[1, 2, 3], [1, 3, 2], [2, 1, 3], [1, 2, 3]], np.float64)
    expected = stats.friedmanchisquare(*ranks.T).pvalue  # no ties: the same statistic
    assert friedman_p(kendall_w(ranks), *ranks.shape) == pytest.approx(expected)
