"""Decoders for the raw formats of the registered datasets. All return uint8 NHWC arrays."""

import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ganstudy.errors import GanstudyError

IDX_IMAGES, IDX_LABELS = 2051, 2049  # magic numbers of the IDX format (MNIST family)


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: images -> (N, H, W, 1) uint8, labels -> (N,) int64."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise GanstudyError(f"{path}: cannot read ({err})") from None
    magic = int.from_bytes(data[:4], "big")
    if magic == IDX_IMAGES:
        n, h, w = (int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
        body, shape = data[16:], (n, h, w, 1)
    elif magic == IDX_LABELS:
        n = int.from_bytes(data[4:8], "big")
        body, shape = data[8:], (n,)
    else:
        raise GanstudyError(f"{path}: not an IDX image or label file (magic {magic})")
    if len(body) != int(np.prod(shape)):
        raise GanstudyError(f"{path}: truncated ({len(body)} bytes for shape {shape})")
    array = np.frombuffer(body, np.uint8).reshape(shape)
    return array.astype(np.int64) if magic == IDX_LABELS else array.copy()


def read_cifar10(archive: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the python version of CIFAR-10 (a checksum-verified tar.gz of pickles)."""
    splits: dict[str, list] = {"train": [], "test": []}
    with tarfile.open(archive, "r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            stem = Path(member.name).name
            split = (
                "train"
                if stem.startswith("data_batch")
                else "test"
                if stem == "test_batch"
                else None
            )
            if split is None:
                continue
            batch = pickle.load(tar.extractfile(member), encoding="bytes")  # noqa: S301 (md5-checked)
            images = (
                np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            )
            splits[split].append((images, np.asarray(batch[b"labels"], np.int64)))
    return {
        s: (np.concatenate([b[0] for b in parts]), np.concatenate([b[1] for b in parts]))
        for s, parts in splits.items()
    }


def read_medmnist(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read a MedMNIST .npz (keys ``<split>_images``/``<split>_labels``)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise GanstudyError(f"{path}: not a readable .npz ({err})") from None
    splits = {}
    for split in ("train", "val", "test"):
        if f"{split}_images" not in arrays or f"{split}_labels" not in arrays:
            raise GanstudyError(f"{path}: missing {split}_images/{split}_labels")
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise GanstudyError(f"{path}: {split}_images must be uint8 (N,H,W[,C])")
        if labels.ndim == 2 and labels.shape[1] != 1:
            raise GanstudyError(f"{path}: multi-label sets are not supported")
        images = images[..., None] if images.ndim == 3 else images
        splits[split] = (images, labels.reshape(-1).astype(np.int64))
    return splits
