import warnings

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance

from ganstudy.errors import GanstudyError
from ganstudy.metrics import count_label, metric_name
from ganstudy.metrics.fid import (
    frechet_distance,
    frechet_distance_reference,
    gaussian_stats,
    load_stats,
    save_stats,
    trace_sqrt_product,
)
from ganstudy.metrics.inception_score import inception_score
from ganstudy.metrics.kid import kernel_inception_distance
from ganstudy.metrics.precision_recall import precision_recall


def correlated(rng: np.random.Generator, n: int, dim: int, mix: np.ndarray, shift=0.0):
    """(n, dim) Gaussian features with covariance mix^T mix (non-diagonal)."""
    return rng.normal(size=(n, dim)) @ mix + shift


def stats_of(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():  # rank-deficient cases are wanted here
        warnings.simplefilter("ignore")
        return gaussian_stats(x)


@pytest.mark.parametrize("n", [500, 5])  # full rank, and rank 4 of 8
def test_fid_of_identical_statistics_is_zero(n):
    x = np.random.default_rng(0).normal(size=(n, 8))
    mu, sigma = stats_of(x)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)


def test_fid_closed_form_for_commuting_covariances():
    # Diagonal covariances: FID = |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("c", [0.5, 1.0, 3.0])
def test_fid_closed_form_for_scaled_covariance(c):
    # S2 = c^2 S1 (non-diagonal): Tr((S1 S2)^{1/2}) = c Tr(S1), so
    # FID = |mu1-mu2|^2 + (1 - c)^2 Tr(S1).
    rng = np.random.default_rng(3)
    mix = rng.normal(size=(32, 32))
    s1 = mix.T @ mix
    mu1, mu2 = rng.normal(size=32), rng.normal(size=32)
    expected = np.sum((mu1 - mu2) ** 2) + (1 - c) ** 2 * np.trace(s1)
    ours = frechet_distance(mu1, s1, mu2, c**2 * s1)
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-9 * np.trace(s1))


def test_fid_closed_form_for_non_commuting_2x2():
    # For a 2x2 matrix X with non-negative eigenvalues, (Tr X^{1/2})^2 = Tr X + 2 sqrt(det X).
    s1 = np.array([[2.0, 1.0], [1.0, 3.0]])
    s2 = np.array([[1.0, 0.5], [0.5, 2.0]])
    assert not np.allclose(s1 @ s2, s2 @ s1)
    x = s1 @ s2
    tr_sqrt = np.sqrt(np.trace(x) + 2 * np.sqrt(np.linalg.det(x)))
    mu1, mu2 = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    expected = 8.0 + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-12)
    assert trace_sqrt_product(s1, s2) == pytest.approx(tr_sqrt, rel=1e-12)


# Rank-deficient (n < dim) and full-rank covariances; sqrtm of singular products is slow, so
# those stay small.
@pytest.mark.parametrize("dim, n", [(8, 4), (64, 32), (128, 64), (8, 32), (64, 256), (256, 1024)])
def test_fid_equals_pytorch_fid_on_random_statistics(dim, n):
    rng = np.random.default_rng(dim)
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    x = correlated(rng, n, dim, mix)
    pairs = {
        "shifted": correlated(rng, n, dim, 1.2 * mix, shift=0.3),
        "same distribution": correlated(rng, n, dim, mix),  # nearly identical statistics
    }
    s1 = stats_of(x)
    for name, y in pairs.items():
        s2 = stats_of(y)
        ours = frechet_distance(*s1, *s2)
        reference = calculate_frechet_distance(*s1, *s2)
        assert ours == pytest.approx(reference, rel=1e-6), name
        assert ours > 0.0


def test_fid_reference_is_pytorch_fids_function():
    rng = np.random.default_rng(11)
    s1, s2 = gaussian_stats(rng.normal(size=(40, 8))), gaussian_stats(rng.normal(size=(40, 8)))
    assert frechet_distance_reference(*s1, *s2) == calculate_frechet_distance(*s1, *s2)


@pytest.mark.parametrize("dim", [16, 128])
def test_fid_of_nearly_identical_statistics_matches_the_stable_closed_form(dim):
    # S2 = S1 + d I shares S1's eigenvectors: FID = |dmu|^2 + sum (sqrt(l + d) - sqrt(l))^2,
    # written below without cancellation; the trace formula subtracts numbers ~1e6 times larger.
    rng = np.random.default_rng(4)
    mu, s1 = stats_of(correlated(rng, 4 * dim, dim, rng.normal(size=(dim, dim)) / np.sqrt(dim)))
    delta, dmu = 1e-4, np.full(dim, 1e-3)
    evals = np.clip(np.linalg.eigvalsh(s1), 0.0, None)
    expected = dmu @ dmu + np.sum(delta**2 / (np.sqrt(evals + delta) + np.sqrt(evals)) ** 2)
    ours = frechet_distance(mu, s1, mu + dmu, s1 + delta * np.eye(dim))
    assert ours == pytest.approx(expected, rel=1e-5)
    assert ours == pytest.approx(
        frechet_distance_reference(mu, s1, mu + dmu, s1 + delta * np.eye(dim)), rel=1e-5
    )


def test_fid_rejects_degenerate_or_mismatched_statistics():
    mu, sigma = np.zeros(3), np.eye(3)
    with pytest.raises(GanstudyError, match="not finite"):
        frechet_distance(mu, np.full((3, 3), np.nan), mu, sigma)
    with pytest.raises(GanstudyError, match="do not match"):
        frechet_distance(mu, sigma, np.zeros(4), np.eye(4))


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


def test_inception_score_rejects_more_splits_than_samples():
    probs = np.full((3, 4), 0.25)
    with pytest.raises(GanstudyError, match="N >= splits=10"):
        inception_score(probs, splits=10)
    with pytest.raises(GanstudyError, match="N, K"):
        inception_score(probs[0], splits=1)


def test_metric_names_carry_the_protocol():
    assert count_label(10_000) == "10k" and count_label(1500) == "1500"
    assert metric_name("fid", "domain", 10_000, "test") == "fid_domain_10k_test"


def test_kid_is_near_zero_for_one_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(5)
    mix = rng.normal(size=(16, 16)) / 4
    real, same = correlated(rng, 1000, 16, mix), correlated(rng, 1000, 16, mix)
    shifted = correlated(rng, 1000, 16, mix, shift=0.3)
    kw = {"subsets": 20, "subset_size": 500}
    same_mean, same_std = kernel_inception_distance(same, real, **kw)
    shifted_mean, shifted_std = kernel_inception_distance(shifted, real, **kw)
    assert shifted_mean > 5 * shifted_std > 0
    assert abs(same_mean) < 0.05 * shifted_mean and same_std > 0


def test_kid_equals_the_direct_unbiased_estimator_on_a_tiny_example():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(6, 3)), rng.normal(0.5, 1.0, size=(6, 3))

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    m = len(x)
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    expected = within / (m * (m - 1)) - 2 * across / m**2
    # One subset of the whole set (any order: the estimator is permutation invariant); the
    # subset size clips to the sample count.
    mean, std = kernel_inception_distance(x, y, subsets=1, subset_size=1000)
    assert mean == pytest.approx(expected, rel=1e-12) and std == 0.0


def test_kid_is_seeded_and_rejects_bad_input():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(40, 4))
    assert kernel_inception_distance(x, y, 5, 20, seed=1) == kernel_inception_distance(
        x, y, 5, 20, seed=1
    )
    with pytest.raises(GanstudyError, match="feature sets"):
        kernel_inception_distance(x, rng.normal(size=(40, 5)))
    with pytest.raises(GanstudyError, match="2 samples"):
        kernel_inception_distance(x[:1], y)


def four_modes(rng: np.random.Generator, n: int, modes: int = 4) -> np.ndarray:
    """(n * modes, 2) samples of unit Gaussians at the corners of a square of side 10."""
    corners = 10.0 * np.array([[0, 0], [1, 0], [0, 1], [1, 1]])[:modes]
    return np.concatenate([c + rng.normal(size=(n, 2)) for c in corners])


def test_precision_recall_of_a_set_against_itself_is_one():
    x = np.random.default_rng(8).normal(size=(300, 5))
    assert precision_recall(x, x) == (1.0, 1.0)


def test_precision_recall_of_far_apart_sets_is_zero():
    rng = np.random.default_rng(9)
    real, fake = rng.normal(size=(200, 4)), rng.normal(100.0, 1.0, size=(200, 4))
    assert precision_recall(real, fake) == (0.0, 0.0)


def test_half_the_modes_give_full_precision_and_half_recall():
    rng = np.random.default_rng(10)
    real, fake = four_modes(rng, 500), four_modes(rng, 500, modes=2)
    precision, recall = precision_recall(real, fake, k=3)
    assert precision > 0.95
    assert recall == pytest.approx(0.5, abs=0.05)
    # Small distance blocks (a few rows each) give exactly the same answer.
    assert precision_recall(real, fake, k=3, max_block=5000) == (precision, recall)


def test_precision_recall_rejects_bad_input():
    x = np.zeros((3, 2))
    with pytest.raises(GanstudyError, match="more than k=3"):
        precision_recall(x, np.ones((10, 2)))
    with pytest.raises(GanstudyError, match="feature sets"):
        precision_recall(np.ones((10, 2)), np.ones((10, 3)))


def test_registry_computes_every_metric_with_protocol_names():
    from ganstudy.config import EvaluateConfig
    from ganstudy.metrics.reference import ReferenceSet
    from ganstudy.metrics.registry import METRICS, compute_all
    from tests.conftest import tiny_params

    rng = np.random.default_rng(12)
    real, fake = rng.normal(size=(150, 8)), rng.normal(0.2, 1.0, size=(120, 8))
    logits = rng.normal(size=(120, 10))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # (120, 10)
    ref = ReferenceSet("test", *gaussian_stats(real), real.astype(np.float32))
    cfg = EvaluateConfig(**tiny_params()["evaluate"])
    values = compute_all(fake, probs, ref, cfg)
    assert METRICS.names() == [
        "fid",
        "fid_per_class",
        "is",
        "kid",
        "memorisation",
        "precision_recall",
    ]
    assert set(values) == {
        "fid_domain_120_test",
        "is_domain_120_mean",
        "is_domain_120_std",
        "kid_domain_120_test_mean",
        "kid_domain_120_test_std",
        "precision_domain_120_test",
        "recall_domain_120_test",
    }
    assert all(isinstance(v, float) and np.isfinite(v) for v in values.values())
    assert values["fid_domain_120_test"] == frechet_distance(
        *gaussian_stats(fake), ref.mu, ref.sigma
    )
    assert 0 <= values["precision_domain_120_test"] <= 1


def test_inception_backbone_is_named_for_it_and_skipped_without_probabilities():
    """With the TF classifier's (N, 1008) probabilities the ``inception`` backbone gets
    is_inception_*; without probabilities (inception-ts, weights without fc) no IS at all."""
    from ganstudy.config import EvaluateConfig
    from ganstudy.metrics.reference import ReferenceSet
    from ganstudy.metrics.registry import compute_all
    from tests.conftest import tiny_params

    rng = np.random.default_rng(14)
    real, fake = rng.normal(size=(150, 8)), rng.normal(0.2, 1.0, size=(120, 8))
    logits = 3 * rng.normal(size=(120, 1008))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # (120, 1008)
    ref = ReferenceSet("test", *gaussian_stats(real), real.astype(np.float32))
    cfg = EvaluateConfig(**{**tiny_params()["evaluate"], "backbone": "inception"})
    with_probs = compute_all(fake, probs, ref, cfg)
    mean, std = inception_score(probs, cfg.is_splits)
    assert with_probs["is_inception_120_mean"] == mean > 1.0
    assert with_probs["is_inception_120_std"] == std
    without = compute_all(fake, None, ref, cfg)
    assert set(with_probs) - set(without) == {"is_inception_120_mean", "is_inception_120_std"}
    assert "fid_inception_120_test" in without and not any(k.startswith("is_") for k in without)


def test_reference_features_round_trip_and_missing_file(tmp_path):
    from ganstudy.io import write_npy
    from ganstudy.metrics.reference import feats_name, load_reference, stats_name

    feats = np.random.default_rng(13).normal(size=(30, 4)).astype(np.float32)
    save_stats(tmp_path / stats_name("val"), feats)
    with pytest.raises(GanstudyError, match="features missing; run the reference stage"):
        load_reference(tmp_path, "val")
    write_npy(tmp_path / feats_name("val"), feats)
    ref = load_reference(tmp_path, "val")
    assert ref.split == "val" and ref.feats.dtype == np.float32
    assert np.array_equal(ref.feats, feats) and np.allclose(ref.mu, feats.mean(0))
    write_npy(tmp_path / feats_name("val"), feats[:10])
    with pytest.raises(GanstudyError, match="do not match"):
        load_reference(tmp_path, "val")
