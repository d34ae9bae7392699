"""The on-disk form of a split (``<split>.npz`` with uint8 NHWC images) and its manifest."""

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganstudy.errors import GanstudyError
from ganstudy.io import REBUILD, array_digest, read_json, read_npz, write_json, write_npz
from ganstudy.names import MANIFEST_NAME

Split = tuple[np.ndarray, np.ndarray]  # images (N, H, W, C) uint8, labels (N,) int64


def save_split(path: Path, split: Split) -> None:
    write_npz(path, images=split[0], labels=split[1])


def load_split(folder: str | Path, name: str) -> Split:
    arrays = read_npz(Path(folder) / f"{name}.npz", ["images", "labels"])
    return arrays["images"], arrays["labels"]


def write_manifest(
    folder: Path, dataset: str, classes: list[str], splits: dict[str, Split], extra: dict[str, Any]
) -> None:
    """Counts per class and content hashes of every split, for humans and for checks."""
    any_images = next(iter(splits.values()))[0]
    write_json(
        folder / MANIFEST_NAME,
        {
            "dataset": dataset,
            "classes": classes,
            "image_shape": list(any_images.shape[1:]),  # (H, W, C)
            "splits": {
                name: {
                    "n": len(y),
                    "per_class": np.bincount(y, minlength=len(classes)).tolist(),
                    "sha256_images": array_digest(x),
                    "sha256_labels": array_digest(y),
                }
                for name, (x, y) in splits.items()
            },
            **extra,
        },
    )


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise GanstudyError(f"{path}: missing; run the stage that produces it (dvc repro)")
    manifest = read_json(path)
    if absent := [k for k in ("dataset", "classes") if k not in manifest]:
        raise GanstudyError(f"{path}: no {', '.join(absent)} in this manifest; {REBUILD}")
    return manifest


def to_model_range(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [-1, 1], the range every model here uses."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
