"""Decoders for the raw formats of the registered datasets. All return uint8 NHWC arrays."""

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

from ganstudy.errors import GanstudyError
from ganstudy.io import file_digest, read_npz

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
    arrays = read_npz(path, hint="delete it and fetch it again (dvc repro download)")
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
        raise GanstudyError(
            f"{archive}: cannot decode {member} ({err}); delete the zip and fetch it again "
            "(dvc repro download)"
        ) from None


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


# A folder of the user's own images (torchvision's ImageFolder layout) --------------------------
#
#   <root>/<class>/**/<image>                  preprocess makes stratified train/val/test splits
#   <root>/{train,val,test}/<class>/**/<image> official splits (train and test; val optional)
#
# Classes are the class folders' names in sorted (Python string) order, as ImageFolder numbers
# them; every split folder must hold the same ones. Images: PNG, JPEG, TIFF (Pillow; the EXIF
# orientation applied, alpha dropped) and DICOM (pydicom; `.dcm`/`.dicom`, or any other file
# with the DICM preamble: scanners often name files by UID, 1.2.840...). An image that cannot
# be decoded fails the whole folder, naming every such file: nothing is skipped silently, so the
# data a study ran on are exactly the folder's images. Other files (notes, .DS_Store, hidden
# files) are ignored and counted.

FOLDER_SPLITS = ("train", "val", "test")
FOLDER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom")
_PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
# Stated in the manifest: how pixels become uint8 grey or RGB.
CHANNEL_RULE = (
    "grey (1 channel) unless some image has colour, i.e. an RGB pixel whose channels differ "
    "(an RGB file with equal channels everywhere counts as grey); then every image is RGB, grey "
    "ones repeated to 3 channels"
)
DEPTH_RULE = "16-bit and float images (Pillow modes I;16, I, F) scaled min-max per image to 0..255"
DICOM_RULE = (
    "pixel values -> Modality LUT (RescaleSlope/RescaleIntercept: Hounsfield units for CT) -> "
    "the file's first WindowCenter/WindowWidth with DICOM's linear VOI function (PS3.3 "
    "C.11.2.1.2.1) to 0..255; a file without a window (or width < 1) is scaled min-max per "
    "image; MONOCHROME1 is inverted so that bright means high, as on screen; one frame a file"
)
_GREY_MODES = ("1", "L", "LA", "La")
_DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


@dataclass
class ImageFolder:
    """A decoded folder: images at their original size, in file order, and what to record."""

    classes: list[str]
    channels: int  # 1 or 3, by CHANNEL_RULE
    images: list[np.ndarray]  # each (H, W, channels) uint8
    labels: np.ndarray  # (N,) int64 indices into classes
    splits: list[str]  # per image: "all" (class-folder layout) or train/val/test
    files: list[dict]  # per image: path (relative to root), size [w, h], format, sha256
    summary: dict  # counts, sizes, content hash, rules: for the manifest


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"  # the DICOM file preamble
    except OSError:
        return False


def _is_image_file(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix in FOLDER_SUFFIXES or _has_dicom_preamble(path)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_images(folder: Path, ignored: list[str], root: Path) -> list[Path]:
    """Image files anywhere below a class folder (nested folders allowed), sorted by path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):  # ImageFolder's walk, hidden skipped
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if _visible(path) and _is_image_file(path):
                found.append(path)
            else:
                ignored.append(path.relative_to(root).as_posix())
    return sorted(found)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))


def scan_image_folder(root: Path) -> tuple[list[str], list[tuple[str, int, Path]], list[str]]:
    """The layout of ``root``: classes, (split, label, path) of every image, ignored files."""
    if not root.exists():
        raise GanstudyError(f"download.folder: {root} does not exist")
    if not root.is_dir():
        raise GanstudyError(f"download.folder: {root} is not a folder")
    expected = f"expected {root}/<class>/<images> or {root}/{{train,val,test}}/<class>/<images>"
    ignored: list[str] = []

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix()

    def no_loose_images(folder: Path) -> None:
        """Images must sit in a class folder; other files beside the class folders are ignored."""
        files = sorted(p for p in folder.iterdir() if not p.is_dir())
        if loose := [rel(p) for p in files if _visible(p) and _is_image_file(p)]:
            raise GanstudyError(
                f"{root}: {len(loose)} image file(s) outside a class folder (e.g. {loose[0]}); "
                f"{expected}"
            )
        ignored.extend(rel(p) for p in files if not (_visible(p) and _is_image_file(p)))

    no_loose_images(root)
    top = _subfolders(root)
    if not top:
        raise GanstudyError(f"{root}: no class folders; {expected}")
    split_names = [p.name for p in top if p.name in FOLDER_SPLITS]
    if split_names and len(split_names) != len(top):
        others = [p.name for p in top if p.name not in FOLDER_SPLITS]
        raise GanstudyError(
            f"{root}: mixes split folders ({', '.join(split_names)}) with other folders "
            f"({', '.join(others)}); {expected}"
        )
    if split_names:
        if "train" not in split_names or "test" not in split_names:
            raise GanstudyError(
                f"{root}: split folders need train/ and test/ (val/ is optional: preprocess "
                f"splits it off train); found {', '.join(f'{s}/' for s in split_names)}"
            )
        groups = {s: _subfolders(root / s) for s in FOLDER_SPLITS if s in split_names}
        for split in groups:
            no_loose_images(root / split)
    else:
        groups = {"all": top}
    for split, folders in groups.items():
        if not folders:
            raise GanstudyError(f"{root}/{split}: no class folders; {expected}")
    names = {split: [p.name for p in folders] for split, folders in groups.items()}
    classes = sorted(set().union(*names.values()))
    if differ := [
        f"{split}/ lacks {', '.join(sorted(set(classes) - set(n)))}"
        for split, n in names.items()
        if set(n) != set(classes)
    ]:
        raise GanstudyError(
            f"{root}: split folders hold different classes ({'; '.join(differ)}); every split "
            "needs the same class folders"
        )
    if len(classes) < 2:
        raise GanstudyError(
            f"{root}: one class ({classes[0]}); a study needs at least 2 class folders"
        )
    found, empty = [], []
    for split, folders in groups.items():
        for folder in folders:
            images = _class_images(folder, ignored, root)
            if not images:
                empty.append(folder.relative_to(root).as_posix())
            found += [(split, classes.index(folder.name), p) for p in images]
    if empty:
        raise GanstudyError(
            f"{root}: no images in {', '.join(f'{e}/' for e in empty)} (images are "
            f"{', '.join(FOLDER_SUFFIXES)}, or any DICOM file with the DICM preamble)"
        )
    return classes, found, ignored


def _min_max(values: np.ndarray) -> np.ndarray:
    """Any numeric array -> uint8 over its own range (a constant image -> 0)."""
    values = values.astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    return np.rint(scaled * 255.0).astype(np.uint8)


def dicom_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM's LINEAR VOI function (PS3.3 C.11.2.1.2.1) onto 0..255, as a viewer shows it."""
    lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    inside = (values - (center - 0.5)) / (width - 1 if width > 1 else 1.0) + 0.5
    y = np.where(values <= lo, 0.0, np.where(values > hi, 1.0, inside))
    return np.rint(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)


def _first(value: object) -> float:
    """A DICOM value that may hold several (several windows: the first is the default)."""
    from pydicom.multival import MultiValue

    return float(value[0] if isinstance(value, MultiValue | list | tuple) else value)


def _decode_dicom(path: Path) -> tuple[np.ndarray, str]:
    """A DICOM file -> (H, W) uint8 grey or (H, W, 3) uint8 colour, and how it was windowed."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError:  # its hint (force=True) is no advice for a user
        raise ValueError("not a DICOM file (no DICM preamble or File Meta header)") from None
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise ValueError(f"{ds.NumberOfFrames} frames; one image a file is supported")
    pixels = ds.pixel_array  # (H, W) or (H, W, 3); colour YBR comes back as RGB
    if pixels.ndim == 3:
        return (pixels if pixels.dtype == np.uint8 else _min_max(pixels)), "colour"
    values = apply_modality_lut(pixels, ds).astype(np.float64)  # slope/intercept applied
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None and _first(width) >= 1:
        grey, how = dicom_window(values, _first(center), _first(width)), "window"
    else:
        grey, how = _min_max(values), "min-max"
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":  # stored inverted: 0 is white
        grey = 255 - grey
    return grey, how


def _decode_pillow(path: Path) -> tuple[np.ndarray, str, str]:
    """A Pillow-readable file -> (H, W) uint8 grey or (H, W, 3) uint8, its format and mode."""
    with Image.open(path) as opened:
        fmt, mode = opened.format or "?", opened.mode
        if getattr(opened, "n_frames", 1) > 1:
            raise ValueError(f"{opened.n_frames} frames; one image a file is supported")
        image = ImageOps.exif_transpose(opened)  # as a viewer shows it; loads the pixels
        image.load()  # a truncated file fails here
    if mode in _GREY_MODES:
        return np.asarray(image.convert("L")), fmt, mode
    if mode in _DEEP_MODES:
        return _min_max(np.asarray(image)), fmt, mode
    return np.asarray(image.convert("RGB")), fmt, mode  # palette, RGBA, CMYK, YCbCr...


def _decode_one(path: Path) -> tuple[np.ndarray, dict]:
    if path.suffix.lower() not in _PILLOW_SUFFIXES:  # .dcm, .dicom, or the DICM preamble
        pixels, how = _decode_dicom(path)
        return pixels, {"format": "DICOM", "dicom": how}
    pixels, fmt, mode = _decode_pillow(path)
    return pixels, {"format": fmt, "mode": mode}


def _has_colour(pixels: np.ndarray) -> bool:
    """(H, W) or (H, W, 3): do the channels differ anywhere?"""
    if pixels.ndim == 2:
        return False
    return bool(((pixels[..., 0] != pixels[..., 1]) | (pixels[..., 1] != pixels[..., 2])).any())


def read_image_folder(root: str | Path) -> ImageFolder:
    """Decode every image of ``root`` (see the layout above); any bad image is one error."""
    root = Path(root).expanduser()
    classes, found, ignored = scan_image_folder(root)
    decoded, files, failures = [], [], []
    for _, _, path in found:
        rel = path.relative_to(root).as_posix()
        try:
            pixels, info = _decode_one(path)
        except Exception as err:  # noqa: BLE001 (Pillow and pydicom raise many kinds)
            reason = " ".join(str(err).split())
            reason = reason if len(reason) <= 100 else reason[:97] + "..."
            failures.append(f"{rel} ({type(err).__name__}: {reason})")
            continue
        decoded.append(pixels)
        height, width = pixels.shape[:2]
        files.append({"path": rel, "size": [width, height], **info, "sha256": file_digest(path)})
    if failures:
        raise GanstudyError(
            f"{root}: {len(failures)} of {len(found)} images cannot be read (none is skipped: "
            f"fix or remove them): {'; '.join(failures[:5])}"
            + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
        )
    colour = any(_has_colour(p) for p in decoded)
    channels = 3 if colour else 1
    images = []
    for pixels in decoded:  # (H, W) or (H, W, 3) -> (H, W, channels)
        grey = pixels if pixels.ndim == 2 else pixels[..., 0]
        images.append(
            (pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2))
            if colour
            else grey[..., None]
        )
    labels = np.array([label for _, label, _ in found], np.int64)
    splits = [split for split, _, _ in found]
    for entry, (split, label, _) in zip(files, found, strict=True):
        entry.update(split=split, label=label)
    summary = _folder_summary(root, classes, channels, files, ignored)
    return ImageFolder(classes, channels, images, labels, splits, files, summary)


def _folder_summary(
    root: Path, classes: list[str], channels: int, files: list[dict], ignored: list[str]
) -> dict:
    """What the manifest records about the source folder."""
    content = hashlib.sha256()
    for entry in sorted(files, key=lambda e: e["path"]):  # paths and bytes: renames count
        content.update(f"{entry['path']}\0{entry['sha256']}\n".encode())
    counts: dict[str, dict[str, int]] = {}
    for entry in files:
        per = counts.setdefault(entry["split"], dict.fromkeys(classes, 0))
        per[classes[entry["label"]]] += 1
    sizes: dict[str, int] = {}
    for entry in files:
        key = "x".join(str(v) for v in entry["size"])
        sizes[key] = sizes.get(key, 0) + 1
    formats_seen: dict[str, int] = {}
    for entry in files:
        formats_seen[entry["format"]] = formats_seen.get(entry["format"], 0) + 1
    dicom = {h: sum(e.get("dicom") == h for e in files) for h in ("window", "min-max", "colour")}
    return {
        "folder": str(root.resolve()),
        "layout": "split folders" if "all" not in counts else "class folders",
        "classes": classes,
        "class_order": "class folder names sorted (Python string order), as ImageFolder's",
        "n_images": len(files),
        "counts": counts,  # split ("all" without split folders) -> class -> images
        "sha256": content.hexdigest(),  # of the images' relative paths and bytes
        "original_sizes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),  # "WxH" -> images
        "formats": formats_seen,
        "channels": channels,
        "channel_rule": CHANNEL_RULE,
        "depth_rule": DEPTH_RULE,
        "dicom_rule": DICOM_RULE,
        "dicom_files": dicom if formats_seen.get("DICOM") else {},
        "unreadable": "fail: every unreadable image is named and nothing is skipped",
        "ignored_files": {"count": len(ignored), "examples": ignored[:10]},
        "resize": "to preprocess.image_size square, bilinear antialiased; non-square images are "
        "stretched (nothing cropped)",
    }
