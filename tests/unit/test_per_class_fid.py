"""Per-class FID of conditional generators: the math, the registry names, the reference
stage's cached labels, and evaluate's wiring (balanced labels from ``generate``)."""

import warnings

import numpy as np
import pytest
import torch

from ganstudy.config import EvaluateConfig, ReferenceConfig, VariantConfig
from ganstudy.errors import GanstudyError
from ganstudy.metrics.fid import (
    frechet_distance,
    frechet_distance_features,
    gaussian_stats,
    per_class_frechet_distance,
)
from ganstudy.metrics.reference import ReferenceSet
from ganstudy.metrics.registry import METRICS, compute_all
from tests.conftest import tiny_params

CPU = torch.device("cpu")


def evaluate_cfg(**kw) -> EvaluateConfig:
    return EvaluateConfig(**{**tiny_params()["evaluate"], **kw})


def classes(rng: np.random.Generator, per_class: int, k: int, dim: int):
    """(k * per_class, dim) features, one Gaussian per class (class means 3 apart, shared
    non-diagonal covariance), and their (k * per_class,) labels."""
    means = 3.0 * rng.normal(size=(k, dim))  # (K, D)
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)  # (D, D)
    labels = np.repeat(np.arange(k), per_class)  # (N,)
    return means[labels] + rng.normal(size=(len(labels), dim)) @ mix, labels, means, mix


def quiet(fn, *args):
    with warnings.catch_warnings():  # rank-deficient cases are wanted here
        warnings.simplefilter("ignore")
        return fn(*args)


@pytest.mark.parametrize("n1, n2, dim", [(10, 15, 32), (5, 200, 32), (40, 30, 16), (3, 3, 8)])
def test_fid_from_features_equals_the_statistics_path(n1, n2, dim):
    # Rank-deficient sets take the (N1, N2) SVD path, full-rank ones the (D, D) one. The (D, D)
    # path of a rank-deficient covariance takes square roots of round-off eigenvalues (~1e-16
    # -> ~1e-8), hence 1e-7 relative; the closed-form test below pins the SVD path itself.
    rng = np.random.default_rng(n1 + n2)
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    x, y = rng.normal(size=(n1, dim)) @ mix, rng.normal(size=(n2, dim)) @ (1.3 * mix) + 0.2
    expected = quiet(lambda: frechet_distance(*gaussian_stats(x), *gaussian_stats(y)))
    assert quiet(frechet_distance_features, x, y) == pytest.approx(expected, rel=1e-7)
    assert quiet(frechet_distance_features, x, x) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("c", [0.5, 2.0])
def test_fid_from_rank_deficient_features_matches_the_closed_form(c):
    # y = c x: mu2 = c mu1 and S2 = c^2 S1, so FID = (1 - c)^2 (|mu1|^2 + Tr S1), at any rank.
    x = np.random.default_rng(5).normal(1.0, 1.0, size=(12, 64))  # rank 11 of 64
    mu, sigma = quiet(gaussian_stats, x)
    expected = (1 - c) ** 2 * (mu @ mu + np.trace(sigma))
    assert quiet(frechet_distance_features, x, c * x) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("per_class, dim", [(60, 8), (20, 64)])  # full rank; rank 19 of 64
def test_per_class_fid_of_real_features_against_themselves_is_zero(per_class, dim):
    feats, labels, _, _ = classes(np.random.default_rng(0), per_class, 4, dim)
    values = quiet(per_class_frechet_distance, feats, labels, feats, labels)
    assert list(values) == [0, 1, 2, 3]
    scale = np.trace(np.cov(feats, rowvar=False))
    assert all(abs(v) <= 1e-9 * scale for v in values.values())


def test_permuted_labels_leave_pooled_fid_unchanged_and_raise_per_class_fid():
    rng = np.random.default_rng(1)
    real, real_y, means, mix = classes(rng, 50, 4, 8)
    fake_y = np.repeat(np.arange(4), 30)  # a balanced conditional generator, 30 per class
    fake = means[fake_y] + rng.normal(size=(len(fake_y), 8)) @ mix  # (120, 8): right classes
    ref = ReferenceSet("test", *gaussian_stats(real), real.astype(np.float32), labels=real_y)
    cfg = evaluate_cfg()
    right = compute_all(fake, None, ref, cfg, fake_y)
    permuted = compute_all(fake, None, ref, cfg, (fake_y + 1) % 4)  # asked for k, drew k - 1
    per_class = [f"fid_domain_120_test_class{k}" for k in range(4)]
    assert {*per_class, "fid_domain_120_test_classmean"} <= set(right)
    assert permuted["fid_domain_120_test"] == right["fid_domain_120_test"]
    assert max(right[n] for n in per_class) < 0.1 * min(permuted[n] for n in per_class)
    assert right["fid_domain_120_test_classmean"] == pytest.approx(
        np.mean([right[n] for n in per_class]), rel=1e-12
    )


def test_unconditional_generators_get_no_per_class_entries():
    rng = np.random.default_rng(2)
    real, real_y, _, _ = classes(rng, 30, 3, 4)
    ref = ReferenceSet("test", *gaussian_stats(real), real.astype(np.float32), labels=real_y)
    values = compute_all(rng.normal(size=(60, 4)), None, ref, evaluate_cfg(), labels=None)
    assert "fid_domain_60_test" in values and not any("_class" in k for k in values)
    assert METRICS.get("fid_per_class").compute(real, None, ref, evaluate_cfg()) == {}


def test_inception_sized_classes_warn_once_and_stay_finite():
    # 30 images a class in 2048 dimensions: rank 29 of 2048.
    rng = np.random.default_rng(3)
    real, y, _, _ = classes(rng, 30, 3, 2048)
    fake = real + rng.normal(scale=0.5, size=real.shape)
    with pytest.warns(UserWarning, match="rank-deficient") as record:
        values = per_class_frechet_distance(fake, y, real, y)
    assert len(record) == 1 and "per-class FID" in str(record[0].message)
    assert all(isinstance(v, float) and np.isfinite(v) and v > 0 for v in values.values())


def test_missing_classes_or_reference_labels_are_clear_errors():
    rng = np.random.default_rng(4)
    real, y, _, _ = classes(rng, 10, 3, 4)
    with pytest.raises(GanstudyError, match="class 2 has 0 and 10 samples"):
        per_class_frechet_distance(real[y < 2], y[y < 2], real, y)
    with pytest.raises(GanstudyError, match="labels for"):
        per_class_frechet_distance(real, y[:-1], real, y)
    no_labels = ReferenceSet("test", *gaussian_stats(real), real.astype(np.float32))
    with pytest.raises(GanstudyError, match="no labels of the test split.*reference stage"):
        compute_all(real, None, no_labels, evaluate_cfg(), y)
    ref = ReferenceSet("test", *gaussian_stats(real), real.astype(np.float32), labels=y)
    one_each = np.array([0, 1, 2, 0, 1])  # 5 generated images, 1 of class 2
    with pytest.raises(GanstudyError, match=r"class 2 has 1 and 10 .*\(generated images, real"):
        compute_all(real[:5], None, ref, evaluate_cfg(), one_each)


def processed_folder(path, rng: np.random.Generator) -> None:
    """A processed dataset of 28x28 grey uint8 images, 10 classes: 80 train, 40 val, 40 test."""
    from ganstudy.data.arrays import write_manifest
    from ganstudy.io import write_npz

    splits = {}
    for name, n in (("train", 80), ("val", 40), ("test", 40)):
        splits[name] = (
            rng.integers(0, 256, size=(n, 28, 28, 1), dtype=np.uint8),
            rng.permutation(np.arange(n) % 10),
        )
        write_npz(path / f"{name}.npz", images=splits[name][0], labels=splits[name][1])
    write_manifest(path, "toy", [str(k) for k in range(10)], splits, {})


@pytest.fixture(scope="module")
def stage_folders(tmp_path_factory):
    """A processed dataset and the reference stage's folder built from it."""
    from ganstudy.metrics.reference import build_reference

    work = tmp_path_factory.mktemp("per_class")
    processed, reference = work / "processed", work / "reference"
    processed.mkdir()
    processed_folder(processed, np.random.default_rng(5))
    ref_cfg = ReferenceConfig(**{**tiny_params()["reference"], "device": "cpu"})
    build_reference(processed, reference, work / "reference.json", ref_cfg)
    return processed, reference


def test_reference_stage_caches_the_split_labels(stage_folders):
    from ganstudy.data.arrays import load_split
    from ganstudy.io import write_npy
    from ganstudy.metrics.reference import labels_name, load_reference

    processed, reference = stage_folders
    for split in ("val", "test"):
        labels = load_split(processed, split)[1]
        assert np.array_equal(np.load(reference / labels_name(split)), labels)
        assert np.array_equal(load_reference(reference, split).labels, labels)
    write_npy(reference / labels_name("val"), np.zeros(3, np.int64))  # wrong length
    with pytest.raises(GanstudyError, match="do not match the 40 features"):
        load_reference(reference, "val")


@pytest.mark.parametrize("arch", ["cgan", "dcgan"])
def test_evaluate_scores_each_class_of_a_conditional_generator(stage_folders, tmp_path, arch):
    from ganstudy.config import TrainConfig
    from ganstudy.data.arrays import load_split, to_model_range
    from ganstudy.metrics.evaluate import generate, score
    from ganstudy.models import ImageSpec
    from ganstudy.training.loop import train_gan

    processed, reference = stage_folders
    x, y = load_split(processed, "train")
    train = TrainConfig(
        iterations=1,
        batch_size=8,
        log_every=1,
        sample_every=1,
        checkpoint_every=1,
        grid_size=4,
        device="cpu",
    )
    variant = VariantConfig(
        arch=arch,
        arch_args={"z_dim": 8},
        game="nonsaturating",
        optimizer={"lr_g": 2e-4, "lr_d": 2e-4},
    )
    labels = torch.as_tensor(y, dtype=torch.long)
    train_gan(
        to_model_range(x), ImageSpec(1, 28, 10), arch, variant, train, 0, tmp_path, labels=labels
    )
    generated, state = generate(tmp_path, 40, 20, CPU)
    cfg = evaluate_cfg(num_samples=40, batch_size=20, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 4 images a class, 16-d features: rank-deficient
        values, _ = score(generated, reference, cfg, CPU, state["sample_labels"])
    names = {k for k in values if "_class" in k}
    if arch == "dcgan":  # unconditional: no classes asked for, no per-class values
        assert state["sample_labels"] is None and names == set()
        return
    assert torch.bincount(state["sample_labels"], minlength=10).tolist() == [4] * 10
    expected = {f"fid_domain_40_test_class{k}" for k in range(10)}
    assert names == expected | {"fid_domain_40_test_classmean"}
    assert all(np.isfinite(values[n]) and values[n] >= 0 for n in names)
