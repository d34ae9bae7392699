"""Preprocess: decode raw files to uint8 arrays, select classes, split, subsample, resize."""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from ganstudy.config import PreprocessConfig
from ganstudy.data.arrays import Split, save_split, write_manifest
from ganstudy.data.datasets import DATASETS, load_raw
from ganstudy.errors import GanstudyError
from ganstudy.io import atomic_dir


def stratified_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split off ``fraction`` of ``split`` with class proportions kept."""
    x, y = split
    try:
        idx_keep, idx_out = train_test_split(
            np.arange(len(y)), test_size=fraction, random_state=seed, stratify=y
        )
    except ValueError as err:  # too few images of a class for a stratified split
        counts = np.bincount(y).tolist()
        raise GanstudyError(
            f"cannot split {fraction:g} off {len(y)} images stratified by class ({counts} a "
            f"class): {err}; add images or change preprocess.val_fraction/test_fraction"
        ) from None
    return (x[np.sort(idx_keep)], y[np.sort(idx_keep)]), (x[np.sort(idx_out)], y[np.sort(idx_out)])


def subsample_per_class(split: Split, n_per_class: int, seed: int) -> Split:
    """Keep ``n_per_class`` images of every class (fewer if a class is smaller)."""
    x, y = split
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y == c))[:n_per_class] for c in np.unique(y)]
    idx = np.sort(np.concatenate(keep))
    return x[idx], y[idx]


def select_classes(split: Split, classes: list[int]) -> Split:
    """Keep the given classes and renumber them 0..k-1 in the given order."""
    x, y = split
    mask = np.isin(y, classes)
    remap = {c: i for i, c in enumerate(classes)}
    return x[mask], np.array([remap[c] for c in y[mask]], np.int64)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Resize (N, H, W, C) uint8 images to size x size with antialiased bilinear filtering.

    An (N,) object array of (H, W, C) images of different sizes (dataset `folder`) is resized
    one image at a time; a non-square image is stretched to the square (nothing cropped)."""
    if images.dtype == object:
        channels = images[0].shape[2] if len(images) else 1
        resized = [resize(image[None], size) for image in images]  # each (1, size, size, C)
        return np.concatenate(resized) if resized else np.empty((0, size, size, channels), np.uint8)
    if images.shape[1] == images.shape[2] == size:
        return images
    out = []
    for chunk in np.array_split(images, max(1, len(images) // 4096)):
        t = torch.from_numpy(chunk).permute(0, 3, 1, 2).float()  # (N, C, H, W)
        t = F.interpolate(
            t, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out.append(t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def make_splits(splits: dict[str, Split], cfg: PreprocessConfig) -> dict[str, Split]:
    """Official splits where the dataset has them; stratified splits where it does not."""
    splits = dict(splits)
    if "all" in splits:
        splits["train"], splits["test"] = stratified_split(
            splits.pop("all"), cfg.test_fraction, cfg.seed
        )
    if "val" not in splits:
        splits["train"], splits["val"] = stratified_split(
            splits["train"], cfg.val_fraction, cfg.seed
        )
    return {k: splits[k] for k in ("train", "val", "test")}


def split_origin(splits: dict[str, Split], cfg: PreprocessConfig) -> dict[str, str]:
    """How ``make_splits`` makes each split of a dataset's raw ``splits``: for the manifest."""
    test = f"stratified {cfg.test_fraction:g} of all images (seed {cfg.seed})"
    origin = {"train": "official" if "train" in splits else f"the rest after test ({test})"}
    origin["test"] = "official" if "test" in splits else test
    val = f"stratified {cfg.val_fraction:g} of train (seed {cfg.seed})"
    origin["val"] = "official" if "val" in splits else val
    return origin


def preprocess(
    dataset: str, raw_dir: str | Path, out_dir: str | Path, cfg: PreprocessConfig
) -> Path:
    """Write ``train/val/test.npz`` and ``manifest.json`` for ``dataset`` into ``out_dir``."""
    spec = DATASETS.get(dataset)
    # `folder`: the classes are the user's class folders, and the manifest records the source.
    source = spec.summary(Path(raw_dir)) if spec.summary is not None else None
    classes = list(source["classes"] if source is not None else spec.classes)
    splits = load_raw(dataset, raw_dir)
    if cfg.classes is not None:
        bad = [c for c in cfg.classes if not 0 <= c < len(classes)]
        if bad or len(set(cfg.classes)) != len(cfg.classes):
            last = len(classes) - 1
            raise GanstudyError(
                f"preprocess.classes: {cfg.classes} must be distinct indices in 0..{last}"
            )
        splits = {k: select_classes(v, cfg.classes) for k, v in splits.items()}
        classes = [classes[c] for c in cfg.classes]
    origin = split_origin(splits, cfg)
    splits = make_splits(splits, cfg)
    if cfg.n_per_class is not None:
        splits["train"] = subsample_per_class(splits["train"], cfg.n_per_class, cfg.seed)
    if cfg.val_per_class is not None:  # a low-data study validates on a set like its train set
        splits["val"] = subsample_per_class(splits["val"], cfg.val_per_class, cfg.seed)
    splits = {k: (resize(x, cfg.image_size), y) for k, (x, y) in splits.items()}
    with atomic_dir(out_dir) as tmp:
        for name, split in splits.items():
            save_split(tmp / f"{name}.npz", split)
        extra = {"preprocess": cfg.model_dump(), "split_origin": origin}
        extra.update({} if source is None else {"source": source})
        write_manifest(tmp, dataset, classes, splits, extra=extra)
    return Path(out_dir)
