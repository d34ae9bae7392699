"""Decoders for the raw formats of the registered datasets. All return uint8 NHWC arrays."""

import gzip
import io
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

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


# CycleGAN-style two-domain zips: <root>/{trainA,trainB,testA,testB}/*.jpg (Zhu et al. 2017).
TWO_DOMAIN_FOLDERS = {  # folder -> (split, label)
    "trainA": ("train", 0),
    "trainB": ("train", 1),
    "testA": ("test", 0),
    "testB": ("test", 1),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError)


def _domain_members(names: list[str], archive: Path, root: str) -> dict[str, list[str]]:
    """Image members of each domain folder, sorted; every folder must hold at least one."""
    folders: dict[str, list[str]] = {f: [] for f in TWO_DOMAIN_FOLDERS}
    for name in names:
        parts = PurePosixPath(name).parts  # __MACOSX/... and other roots are skipped
        is_image = len(parts) == 3 and parts[2].lower().endswith(IMAGE_SUFFIXES)
        if is_image and parts[0] == root and parts[1] in folders:
            folders[parts[1]].append(name)
    if empty := [f"{root}/{f}/" for f, members in folders.items() if not members]:
        raise GanstudyError(f"{archive}: no images in {', '.join(empty)}; not a {root} zip")
    return {f: sorted(members) for f, members in folders.items()}


def check_two_domain_zip(archive: Path, root: str) -> dict[str, int]:
    """Check every member's CRC and the folder layout; return the image count per folder."""
    try:
        with zipfile.ZipFile(archive) as zf:
            bad, names = zf.testzip(), zf.namelist()
    except _ZIP_ERRORS as err:
        raise GanstudyError(f"{archive}: not a valid zip ({err})") from None
    if bad is not None:
        raise GanstudyError(f"{archive}: corrupt zip ({bad} fails its CRC check)")
    return {f: len(m) for f, m in _domain_members(names, archive, root).items()}


def _decode(zf: zipfile.ZipFile, member: str, archive: Path) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(zf.read(member))) as image:
            # A few horse2zebra photos are greyscale JPEGs: convert gives 3 equal channels.
            return np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
    except (*_ZIP_ERRORS, Image.DecompressionBombError) as err:
        raise GanstudyError(f"{archive}: cannot decode {member} ({err})") from None


def read_two_domain_zip(archive: Path, root: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode a CycleGAN dataset zip: label 0 = domain A (trainA/testA), 1 = domain B.

    Splits are the official train (trainA + trainB) and test (testA + testB), A before B,
    each folder in file-name order. All images must share one size (256x256 in the
    published sets); resizing is the preprocess stage's job.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except _ZIP_ERRORS as err:
        raise GanstudyError(f"{archive}: not a valid zip ({err})") from None
    with zf:
        folders = _domain_members(zf.namelist(), archive, root)
        splits = {}
        for split in ("train", "test"):
            parts = [(f, folders[f]) for f, (s, _) in TWO_DOMAIN_FOLDERS.items() if s == split]
            members = [m for _, folder in parts for m in folder]
            labels = np.concatenate(
                [np.full(len(folder), TWO_DOMAIN_FOLDERS[f][1], np.int64) for f, folder in parts]
            )
            splits[split] = (_decode_all(zf, members, archive), labels)
    return splits


def _decode_all(zf: zipfile.ZipFile, members: list[str], archive: Path) -> np.ndarray:
    """Decode into one preallocated (N, H, W, 3) array (about 200 kB per 256 px photo)."""
    first = _decode(zf, members[0], archive)
    images = np.empty((len(members), *first.shape), np.uint8)  # (N, H, W, 3)
    images[0] = first
    for i, member in enumerate(members[1:], start=1):
        image = _decode(zf, member, archive)
        if image.shape != first.shape:
            raise GanstudyError(
                f"{archive}: {member} is {image.shape[1]}x{image.shape[0]}, {members[0]} is "
                f"{first.shape[1]}x{first.shape[0]}; all images must share one size"
            )
        images[i] = image
    return images
