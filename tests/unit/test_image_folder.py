"""Dataset `folder`: the user's own images as <root>/[split/]<class>/<images> (PNG, JPEG, TIFF,
DICOM), on small folders written here; every bad input is one error and writes nothing."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ganstudy.cli import main as cli_main
from ganstudy.config import DownloadConfig, PreprocessConfig
from ganstudy.data import formats
from ganstudy.data.arrays import load_split, read_manifest
from ganstudy.data.datasets import fetch_raw, load_raw
from ganstudy.data.preprocess import preprocess
from ganstudy.errors import GanstudyError
from tests.conftest import ROOT, tiny_params

CLASSES = ("owl", "Cat", "dog")  # sorted: Cat, dog, owl (Python string order, as ImageFolder)
PRE = PreprocessConfig(image_size=8, val_fraction=0.1, test_fraction=0.2, seed=0)


def png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def grey(seed: int, shape: tuple[int, int] = (12, 10)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)  # (H, W)


def class_folders(root: Path, n: int = 10, classes=CLASSES) -> Path:
    for k, name in enumerate(classes):
        for i in range(n):
            png(root / name / f"{i:02d}.png", grey(100 * k + i))
    return root


def dicom(
    path: Path,
    stored: np.ndarray,
    intercept: float = -1024.0,
    window: tuple[float, float] | None = (40.0, 400.0),
    photometric: str = "MONOCHROME2",
) -> Path:
    """An uncompressed single-frame CT image as a scanner writes one (12 of 16 bits used)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = stored.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def download(root: Path, out: Path) -> Path:
    return fetch_raw(DownloadConfig(dataset="folder", folder=str(root)), out)


def test_class_folders_run_download_and_preprocess_with_a_manifest(tmp_path):
    root = class_folders(tmp_path / "images")
    png(root / "owl" / "nested" / "big.png", grey(7, (20, 20)))  # another size, in a subfolder
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / ".DS_Store").write_bytes(b"\0")
    raw = download(root, tmp_path / "raw")
    assert json.loads((raw / "SOURCE.json").read_text())["dataset"] == "folder"
    splits = load_raw("folder", raw)
    assert list(splits) == ["all"] and len(splits["all"][1]) == 31
    assert splits["all"][0].dtype == object  # mixed sizes: one (H, W, 1) array per image
    preprocess("folder", raw, tmp_path / "processed", PRE)
    manifest = read_manifest(tmp_path / "processed")
    assert manifest["classes"] == ["Cat", "dog", "owl"]
    assert manifest["image_shape"] == [8, 8, 1]
    assert sum(s["n"] for s in manifest["splits"].values()) == 31
    assert manifest["split_origin"]["test"].startswith("stratified")
    source = manifest["source"]
    assert source["counts"] == {"all": {"Cat": 10, "dog": 10, "owl": 11}}
    assert source["original_sizes"] == {"10x12": 30, "20x20": 1}
    assert source["channels"] == 1 and source["formats"] == {"PNG": 31}
    assert source["ignored_files"]["count"] == 2 and len(source["sha256"]) == 64
    x, y = load_split(tmp_path / "processed", "train")
    assert x.shape[1:] == (8, 8, 1) and x.dtype == np.uint8 and set(y.tolist()) == {0, 1, 2}
    # Label k is the k-th sorted class: Cat's first image, resized, is in the data.
    cat0 = preprocess_resize(grey(100 * 1 + 0))  # "Cat" was written second (k=1 in CLASSES)
    parts = [load_split(tmp_path / "processed", s) for s in ("train", "val", "test")]
    all_x, all_y = (np.concatenate([part[i] for part in parts]) for i in (0, 1))
    assert any((img == cat0).all() and lab == 0 for img, lab in zip(all_x, all_y, strict=True))


def preprocess_resize(pixels: np.ndarray) -> np.ndarray:
    from ganstudy.data.preprocess import resize

    return resize(pixels[None, ..., None], 8)[0]  # (8, 8, 1)


def test_split_folders_are_the_official_splits(tmp_path):
    root = tmp_path / "images"
    class_folders(root / "train", n=10, classes=("a", "b"))
    class_folders(root / "test", n=3, classes=("a", "b"))
    raw = download(root, tmp_path / "raw")
    preprocess("folder", raw, tmp_path / "processed", PRE)
    manifest = read_manifest(tmp_path / "processed")
    assert manifest["split_origin"]["train"] == manifest["split_origin"]["test"] == "official"
    assert manifest["split_origin"]["val"].startswith("stratified")  # val/ absent: off train
    assert manifest["splits"]["test"]["per_class"] == [3, 3]
    assert manifest["source"]["layout"] == "split folders"
    assert manifest["source"]["counts"] == {"train": {"a": 10, "b": 10}, "test": {"a": 3, "b": 3}}


def test_grey_unless_some_image_has_colour_jpeg_and_16_bit_tiff(tmp_path):
    root = tmp_path / "images"
    png(root / "a" / "grey.png", grey(1))
    png(root / "a" / "rgb-but-grey.png", np.repeat(grey(2)[..., None], 3, axis=2))
    Image.fromarray(grey(3)).save(root / "a" / "photo.jpg", quality=95)
    deep = (np.arange(120, dtype=np.uint16).reshape(12, 10) * 300 + 1000).astype(np.uint16)
    (root / "b").mkdir()
    Image.fromarray(deep).save(root / "b" / "deep.tif")
    folder = formats.read_image_folder(root)
    assert folder.channels == 1 and [i.shape for i in folder.images] == [(12, 10, 1)] * 4
    assert {f["format"] for f in folder.files} == {"PNG", "JPEG", "TIFF"}
    tif = folder.images[[f["path"] for f in folder.files].index("b/deep.tif")]
    assert tif.min() == 0 and tif.max() == 255  # 16-bit: min-max per image
    colour = grey(4, (12, 10))[..., None] * np.array([1, 0, 1], np.uint8)  # (12, 10, 3)
    png(root / "b" / "colour.png", colour)
    folder = formats.read_image_folder(root)
    assert folder.channels == 3 and all(i.shape == (12, 10, 3) for i in folder.images)
    first = folder.images[[f["path"] for f in folder.files].index("a/grey.png")]
    assert (first == grey(1)[..., None]).all()  # a grey image repeated to 3 channels
    assert "RGB" in folder.summary["channel_rule"]


def test_dicom_rescale_window_monochrome1_and_a_uid_name(tmp_path):
    root = tmp_path / "images"
    stored = np.linspace(0, 2047, 12 * 10).reshape(12, 10).astype(np.uint16)  # HU -1024..1023
    dicom(root / "ct" / "slice.dcm", stored)
    uid_named = root / "xray" / "1.2.840.10008.9"  # named by UID: found by its DICM preamble
    dicom(uid_named, stored, intercept=0, window=None, photometric="MONOCHROME1")
    (root / "xray" / "notes.1").write_text("not an image, whatever its suffix")
    folder = formats.read_image_folder(root)
    hu = stored.astype(np.float64) - 1024.0  # slope 1, intercept -1024
    ct = folder.images[0][..., 0]
    assert (ct == formats.dicom_window(hu, 40.0, 400.0)).all()
    assert ct[hu <= -160].max() == 0 and ct[hu > 239].min() == 255  # soft-tissue window
    xray = folder.images[1][..., 0]  # no window: min-max; MONOCHROME1: inverted
    assert xray[0, 0] == 255 and xray[-1, -1] == 0
    assert folder.summary["formats"] == {"DICOM": 2}
    assert folder.summary["dicom_files"] == {"window": 1, "min-max": 1, "colour": 0}
    assert "RescaleSlope" in folder.summary["dicom_rule"]


def test_dicom_window_is_the_standard_linear_function():
    x = np.array([-1000.0, -160.0, -159.0, 39.5, 239.0, 239.5, 3000.0])
    y = formats.dicom_window(x, center=40.0, width=400.0)
    # PS3.3 C.11.2.1.2.1: x <= c - 0.5 - (w-1)/2 -> 0; x > c - 0.5 + (w-1)/2 -> max.
    assert y.tolist() == [0, 0, 1, 128, 255, 255, 255]


def test_the_content_hash_follows_the_images_not_other_files(tmp_path):
    root = class_folders(tmp_path / "images", n=3, classes=("a", "b"))
    first = formats.read_image_folder(root).summary["sha256"]
    (root / "a" / "readme.txt").write_text("x")
    assert formats.read_image_folder(root).summary["sha256"] == first
    png(root / "a" / "00.png", grey(999))  # one image changed
    assert formats.read_image_folder(root).summary["sha256"] != first


def truncated_png(root: Path) -> None:
    class_folders(root)
    data = (root / "dog" / "03.png").read_bytes()
    (root / "dog" / "03.png").write_bytes(data[: len(data) // 2])
    (root / "owl" / "ghost.dcm").write_bytes(b"not a dicom file")


def split_classes_differ(root: Path) -> None:
    class_folders(root / "train", classes=("a", "b", "c"))
    class_folders(root / "test", n=2, classes=("a", "b"))


BAD_INPUTS = {  # name: (how to make the folder, the message)
    "missing": (lambda root: None, r"download.folder: .*images does not exist$"),
    "a file": (lambda root: root.write_text("x"), r"download.folder: .*images is not a folder"),
    "empty": (lambda root: root.mkdir(), r"images: no class folders; expected .*/<class>/<images>"),
    "class without images": (
        lambda root: (class_folders(root), (root / "emu").mkdir(), (root / "emu/a.txt").touch()),
        r"images: no images in emu/ \(images are \.png, \.jpg",
    ),
    "truncated and unreadable": (
        truncated_png,
        r"images: 2 of 31 images cannot be read \(none is skipped: fix or remove them\): "
        r"dog/03\.png \(OSError: .*\); owl/ghost\.dcm \(ValueError: not a DICOM file",
    ),
    "one class": (
        lambda root: class_folders(root, classes=("only",)),
        r"images: one class \(only\); a study needs at least 2 class folders",
    ),
    "split classes differ": (
        split_classes_differ,
        r"images: split folders hold different classes \(test/ lacks c\); every split needs",
    ),
    "loose images": (
        lambda root: (class_folders(root), png(root / "stray.png", grey(0))),
        r"images: 1 image file\(s\) outside a class folder \(e\.g\. stray\.png\)",
    ),
    "splits and classes mixed": (
        lambda root: (class_folders(root / "train"), class_folders(root, classes=("extra",))),
        r"images: mixes split folders \(train\) with other folders \(extra\)",
    ),
    "no test split": (
        lambda root: class_folders(root / "train"),
        r"images: split folders need train/ and test/ .*; found train/$",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_error_and_writes_nothing(tmp_path, name):
    make, message = BAD_INPUTS[name]
    root = tmp_path / "images"
    make(root)
    out = tmp_path / "raw"
    out.mkdir()
    (out / "old.txt").write_text("the last good download")
    with pytest.raises(GanstudyError, match=message) as err:
        download(root, out)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".raw")) == []
    assert [p.name for p in out.iterdir()] == ["old.txt"]  # the last output is untouched


def test_download_stage_bad_folder_exits_2_with_one_line(tmp_path, capsys):
    import importlib.util

    from ganstudy.cli import run_stage

    params = tiny_params()
    params["download"].update(dataset="folder", folder=str(tmp_path / "nowhere"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    spec = importlib.util.spec_from_file_location("stage_download", ROOT / "stages/download.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--out", str(tmp_path / "raw"), "--params", str(tmp_path / "params.yaml")]
    with pytest.raises(SystemExit) as exit_:
        run_stage(module.main, argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: download.folder: {tmp_path / 'nowhere'} does not exist\n"
    assert not (tmp_path / "raw").exists()


def test_too_few_images_for_a_stratified_split_is_one_error(tmp_path):
    raw = download(class_folders(tmp_path / "images", n=2), tmp_path / "raw")
    with pytest.raises(GanstudyError, match=r"cannot split 0\.2 off 6 images .*\[2, 2, 2\]"):
        preprocess("folder", raw, tmp_path / "processed", PRE)
    assert not (tmp_path / "processed").exists()


def test_check_reads_the_folder_for_classes_and_channels(tmp_path, capsys):
    params = tiny_params()
    params["download"].update(dataset="folder", folder=str(class_folders(tmp_path / "images")))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_:
        cli_main(["check", "--params", str(tmp_path / "p.yaml")])
        raise SystemExit(0)
    assert exit_.value.code == 0 and "valid" in capsys.readouterr().out
    shutil.rmtree(tmp_path / "images" / "owl")
    shutil.rmtree(tmp_path / "images" / "dog")
    with pytest.raises(SystemExit) as exit_:
        cli_main(["check", "--params", str(tmp_path / "p.yaml")])
    assert exit_.value.code == 2 and "one class (Cat)" in capsys.readouterr().err


def test_the_placeholder_folder_exists_for_dvc():
    """dvc.yaml lists download.folder as a dep whatever the dataset: its default must exist."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert (ROOT / params["download"]["folder"]).is_dir()
    assert "${download.folder}" in (ROOT / "dvc.yaml").read_text()
