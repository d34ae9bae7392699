import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance

from ganstudy.metrics import count_label, metric_name
from ganstudy.metrics.fid import frechet_distance, gaussian_stats, load_stats, save_stats
from ganstudy.metrics.inception_score import inception_score


def test_fid_of_identical_statistics_is_zero():
    x = np.random.default_rng(0).normal(size=(500, 8))
    mu, sigma = gaussian_stats(x)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)


def test_fid_closed_form_for_commuting_covariances():
    # Diagonal covariances: FID = |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_fid_equals_pytorch_fid_on_random_statistics():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(400, 16)), rng.normal(0.3, 1.2, size=(400, 16))
    s1, s2 = gaussian_stats(x), gaussian_stats(y)
    ours = frechet_distance(*s1, *s2)
    assert ours == pytest.approx(calculate_frechet_distance(*s1, *s2), rel=1e-6)
    assert ours > 1.0


def test_rank_deficient_statistics_warn(recwarn):
    gaussian_stats(np.random.default_rng(0).normal(size=(10, 32)))
    assert any("rank-deficient" in str(w.message) for w in recwarn)


def test_stats_round_trip(tmp_path):
    x = np.random.default_rng(2).normal(size=(50, 4))
    save_stats(tmp_path / "s.npz", x)
    mu, sigma, n = load_stats(tmp_path / "s.npz")
    assert n == 50 and np.allclose(mu, x.mean(0)) and np.allclose(sigma, np.cov(x, rowvar=False))


def test_inception_score_known_answers():
    k = 5
    identical = np.tile(np.full(k, 1 / k), (100, 1))
    assert inception_score(identical, splits=4)[0] == pytest.approx(1.0)
    one_hot = np.eye(k)[np.arange(100) % k]
    mean, std = inception_score(one_hot, splits=4)
    assert mean == pytest.approx(k, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)


def test_metric_names_carry_the_protocol():
    assert count_label(10_000) == "10k" and count_label(1500) == "1500"
    assert metric_name("fid", "domain", 10_000, "test") == "fid_domain_10k_test"
