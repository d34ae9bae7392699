"""Memorisation: copies of the training set are caught; a fresh sample is not."""

import numpy as np
import pytest

from ganstudy.errors import GanstudyError
from ganstudy.metrics.memorisation import memorisation, nearest_distances


def data(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8))


def test_nearest_distances_match_brute_force():
    x, t = data(7, 0), data(11, 1)
    brute = np.sqrt(((x[:, None] - t[None]) ** 2).sum(-1)).min(1)
    assert np.allclose(nearest_distances(x, t, chunk=3), brute)


def test_a_generator_that_copies_the_training_set_is_caught():
    train, held_out = data(2000, 0), data(500, 1)
    copies = train[np.random.default_rng(2).choice(len(train), 300)]  # G returns train images
    ratio, close = memorisation(copies, train, held_out)
    assert ratio == pytest.approx(0.0, abs=1e-6) and close == pytest.approx(1.0)


def test_a_fresh_sample_of_the_same_distribution_is_not():
    train, held_out, fresh = data(2000, 0), data(500, 1), data(500, 3)
    ratio, close = memorisation(fresh, train, held_out)
    assert ratio == pytest.approx(1.0, abs=0.05) and close < 0.05


def test_a_held_out_split_of_duplicates_is_one_clear_error_whatever_the_rounding():
    # 100 x 10 rows: cdist takes its matrix-product path, whose distance between identical rows
    # is rounding (~1e-8), not 0; on some CPUs exactly 0
    train = data(100, 0) * 50
    held_out = np.concatenate([train[:60], data(40, 1)])  # 60% duplicates
    with pytest.raises(GanstudyError, match="over half the held-out images duplicate") as info:
        memorisation(data(30, 2), train, held_out)
    assert "\n" not in str(info.value)
    ratio, _ = memorisation(data(30, 2), train, np.concatenate([train[:40], data(60, 1)]))
    assert np.isfinite(ratio)  # 40% duplicates: the median is a real distance


def test_memorisation_metric_in_the_registry_and_bad_input():
    from ganstudy.config import EvaluateConfig
    from ganstudy.metrics.fid import gaussian_stats
    from ganstudy.metrics.reference import ReferenceSet
    from ganstudy.metrics.registry import METRICS
    from tests.conftest import tiny_params

    train, held_out = data(400, 0), data(100, 1)
    ref = ReferenceSet("test", *gaussian_stats(held_out), held_out, train)
    cfg = EvaluateConfig(**tiny_params()["evaluate"])
    values = METRICS.get("memorisation").compute(train[:120], None, ref, cfg)
    assert set(values) == {
        "memorisation_domain_120_test_ratio",
        "memorisation_domain_120_test_close_fraction",
    }
    assert values["memorisation_domain_120_test_close_fraction"] == 1.0
    no_train = ReferenceSet("test", *gaussian_stats(held_out), held_out)
    assert METRICS.get("memorisation").compute(train[:120], None, no_train, cfg) == {}
    with pytest.raises(GanstudyError, match="do not match"):
        nearest_distances(data(3, 0), data(3, 1)[:, :4])


def test_closest_pairs_picture_shows_copies_beside_their_originals(tmp_path):
    import torch
    from PIL import Image

    from ganstudy.metrics.memorisation import nearest, save_closest_pairs

    gen_rng = torch.Generator().manual_seed(0)
    train = torch.rand(20, 1, 8, 8, generator=gen_rng) * 2 - 1
    generated = torch.cat([torch.rand(5, 1, 8, 8, generator=gen_rng) * 2 - 1, train[[3, 7]]])
    flat = lambda x: x.flatten(1).double().numpy()  # noqa: E731 (pixel features)
    dist, idx = nearest(flat(generated), flat(train))
    assert list(idx[5:]) == [3, 7] and np.allclose(dist[5:], 0)
    path = save_closest_pairs(
        generated, flat(generated), train, flat(train), tmp_path / "m.png", k=3
    )
    pixels = np.asarray(Image.open(path))  # 2 rows x 3 columns of 8x8 tiles, pad 2, scale 2
    assert pixels.shape == (2 * (2 * 10 + 2), 2 * (3 * 10 + 2))
    top, bottom = pixels[4:20, 4:20], pixels[24:40, 4:20]  # first pair: a copy and its original
    assert np.array_equal(top, bottom)
