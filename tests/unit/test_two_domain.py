"""Two-domain (CycleGAN) datasets: zip decoding, download, cache, errors, preprocessing.

The real download path runs against fixture zips served on 127.0.0.1 (no internet in tests).
"""

import hashlib
import io
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganstudy.cli import main as cli_main
from ganstudy.config import DownloadConfig, PreprocessConfig
from ganstudy.data import datasets, formats
from ganstudy.data.arrays import load_split, read_manifest
from ganstudy.data.preprocess import preprocess
from ganstudy.errors import GanstudyError
from tests.unit import test_download

server = test_download.server  # the loopback HTTP fixture

COUNTS = {"trainA": 6, "trainB": 5, "testA": 3, "testB": 2}


def jpeg(colour: tuple[int, int, int], size: int = 16, mode: str = "RGB") -> bytes:
    image = Image.new("RGB", (size, size), colour).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def domain_zip(path: Path, root: str = "apple2orange", counts: dict[str, int] = COUNTS) -> Path:
    """A CycleGAN-layout zip: A images reddish, B bluish, brightness rising with the index.

    Members are written in reverse name order (the reader must sort) and one A image is a
    greyscale JPEG (like a few in horse2zebra); a __MACOSX entry must be ignored.
    """
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{root}/", b"")
        for folder, n in counts.items():
            for i in reversed(range(n)):
                level = 120 + 20 * i
                green = 10 * list(counts).index(folder)  # no two members are byte-equal
                colour = (level, green, 30) if folder.endswith("A") else (30, green, level)
                mode = "L" if (folder, i) == ("trainA", 1) else "RGB"
                zf.writestr(f"{root}/{folder}/{i:03d}.jpg", jpeg(colour, mode=mode))
        zf.writestr(f"__MACOSX/{root}/trainA/._000.jpg", b"resource fork")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private download cache, so no test sees another's files."""
    monkeypatch.setenv("GANSTUDY_DATA_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "cyclegan"


def test_zip_decodes_to_official_splits_with_domain_labels(tmp_path):
    splits = formats.read_two_domain_zip(domain_zip(tmp_path / "a.zip"), "apple2orange")
    assert set(splits) == {"train", "test"}
    (x, y), yt = splits["train"], splits["test"][1]
    assert x.shape == (11, 16, 16, 3) and x.dtype == np.uint8
    assert y.tolist() == [0] * 6 + [1] * 5 and yt.tolist() == [0] * 3 + [1] * 2
    red, blue = x[..., 0].mean(axis=(1, 2)), x[..., 2].mean(axis=(1, 2))
    assert (red[y == 0] > blue[y == 0]).sum() == 5  # the greyscale one has equal channels
    assert (blue[y == 1] > red[y == 1] + 50).all()
    grey = x[1]  # trainA/001.jpg
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    # File-name order inside each folder: brightness rises with the index.
    assert np.all(np.diff(blue[y == 1]) > 10) and red[0] < red[2] < red[3]
    counts = formats.check_two_domain_zip(tmp_path / "a.zip", "apple2orange")
    assert counts == COUNTS


def corrupt_member(zip_path: Path, member: str, out: Path) -> Path:
    """Flip bytes inside one stored member's data, so only its CRC can notice."""
    data = bytearray(zip_path.read_bytes())
    with zipfile.ZipFile(zip_path) as zf:
        payload = zf.read(member)
    start = bytes(data).find(payload) + len(payload) // 2
    data[start : start + 4] = bytes(b ^ 0xFF for b in data[start : start + 4])
    out.write_bytes(bytes(data))
    return out


def test_bad_zips_are_one_clear_error(tmp_path):
    good = domain_zip(tmp_path / "good.zip")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for check in (formats.check_two_domain_zip, formats.read_two_domain_zip):
        with pytest.raises(GanstudyError, match="truncated.zip: not a valid zip"):
            check(truncated, "apple2orange")
        with pytest.raises(GanstudyError, match=r"no images in horse2zebra/trainA/, .*testB/"):
            check(good, "horse2zebra")  # the right layout under another dataset's name
    flipped = corrupt_member(good, "apple2orange/testB/001.jpg", tmp_path / "flipped.zip")
    with pytest.raises(GanstudyError, match="corrupt zip .*testB/001.jpg fails its CRC"):
        formats.check_two_domain_zip(flipped, "apple2orange")
    with pytest.raises(GanstudyError, match="cannot decode apple2orange/testB/001.jpg"):
        formats.read_two_domain_zip(flipped, "apple2orange")


def test_undecodable_or_mixed_size_images_are_one_clear_error(tmp_path):
    for name, payload, message in [
        ("junk", b"not a jpeg", "cannot decode apple2orange/testA/999.jpg"),
        ("big", jpeg((9, 9, 9), size=20), "testA/999.jpg is 20x20, .* is 16x16"),
    ]:
        path = domain_zip(tmp_path / f"{name}.zip")
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("apple2orange/testA/999.jpg", payload)
        assert formats.check_two_domain_zip(path, "apple2orange")["testA"] == 4  # CRCs are fine
        with pytest.raises(GanstudyError, match=message):
            formats.read_two_domain_zip(path, "apple2orange")


def test_download_falls_back_to_the_next_mirror_caches_and_records_sha256(
    tmp_path, server, home, monkeypatch
):
    www, url, httpd = server
    fixture = domain_zip(www / "apple2orange.zip")
    monkeypatch.setattr(datasets, "CYCLEGAN_URLS", (url + "gone/{file}", url + "{file}"))
    monkeypatch.setitem(datasets.CYCLEGAN_SHA256, "apple2orange", sha256(fixture))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recorded checksum matches: no warning
        datasets.fetch_raw(DownloadConfig(dataset="apple2orange"), tmp_path / "raw")
    assert (home / "apple2orange.zip").read_bytes() == fixture.read_bytes()
    source = json.loads((tmp_path / "raw" / "SOURCE.json").read_text())
    assert source["sha256"] == {"apple2orange.zip": sha256(fixture)}
    assert source["files"]["apple2orange.zip"] == hashlib.md5(fixture.read_bytes()).hexdigest()
    splits = datasets.load_raw("apple2orange", tmp_path / "raw")
    assert splits["train"][0].shape == (11, 16, 16, 3) and splits["test"][1].tolist()[-1] == 1
    httpd.shutdown()  # a second fetch, offline, must come from the cache
    datasets.fetch_raw(DownloadConfig(dataset="apple2orange", source="offline"), tmp_path / "r2")
    assert (tmp_path / "r2" / "apple2orange.zip").read_bytes() == fixture.read_bytes()


def test_corrupt_download_is_deleted_and_one_error(tmp_path, server, home, monkeypatch):
    www, url, _ = server
    good = domain_zip(tmp_path / "good.zip")
    (www / "apple2orange.zip").write_bytes(good.read_bytes()[:-200])  # cut short
    monkeypatch.setattr(datasets, "CYCLEGAN_URLS", (url + "{file}",))
    with pytest.raises(GanstudyError, match=r"apple2orange.zip gave a bad file: .*not a valid zip"):
        datasets.fetch_raw(DownloadConfig(dataset="apple2orange"), tmp_path / "raw")
    assert not list(home.glob("*")) and not (tmp_path / "raw" / "apple2orange.zip").exists()


def test_offline_and_unreachable_errors_say_where_to_put_the_zip(tmp_path, server, home):
    _, url, _ = server
    with pytest.raises(GanstudyError, match=r"horse2zebra.zip not found offline; place it .*"):
        datasets.fetch_raw(DownloadConfig(dataset="horse2zebra", source="offline"), tmp_path / "r")
    # Both mirrors unreachable (404 on the loopback server): one error naming both and the cache.
    urls = (url + "a/{file}", url + "b/{file}")
    with pytest.MonkeyPatch.context() as m:
        m.setattr(datasets, "CYCLEGAN_URLS", urls)
        with pytest.raises(GanstudyError) as err:
            datasets.fetch_raw(DownloadConfig(dataset="horse2zebra"), tmp_path / "r")
    message = str(err.value)
    assert message.count("could not download") == 2 and "\n" not in message
    assert message.endswith(f"To work offline, place horse2zebra.zip in {home}/")
    # A corrupt zip placed in the cache by hand is refused, not trusted.
    home.mkdir(parents=True)
    (home / "horse2zebra.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(GanstudyError, match="not a valid zip .*delete it to download again"):
        datasets.fetch_raw(DownloadConfig(dataset="horse2zebra"), tmp_path / "r")


def test_local_zip_is_checked_and_an_unrecorded_copy_warns(tmp_path):
    local = domain_zip(tmp_path / "mine.zip", root="horse2zebra")
    cfg = DownloadConfig(dataset="horse2zebra", local_file=str(local))
    with pytest.warns(UserWarning, match="not the horse2zebra.zip TensorFlow Datasets recorded"):
        datasets.fetch_raw(cfg, tmp_path / "raw")
    assert (tmp_path / "raw" / "horse2zebra.zip").read_bytes() == local.read_bytes()
    with pytest.raises(GanstudyError, match="no images in apple2orange/trainA/"):
        datasets.fetch_raw(cfg.model_copy(update={"dataset": "apple2orange"}), tmp_path / "r2")
    with pytest.raises(GanstudyError, match="local_file: .*nowhere.zip does not exist"):
        datasets.fetch_raw(
            cfg.model_copy(update={"local_file": str(tmp_path / "nowhere.zip")}), tmp_path / "r3"
        )


def test_preprocess_keeps_official_test_split_and_carves_validation(tmp_path):
    local = domain_zip(tmp_path / "a.zip")
    cfg = DownloadConfig(dataset="apple2orange", local_file=str(local))
    with pytest.warns(UserWarning):
        datasets.fetch_raw(cfg, tmp_path / "raw")
    pre = PreprocessConfig(image_size=8, val_fraction=0.3, test_fraction=0.2, seed=0)
    preprocess("apple2orange", tmp_path / "raw", tmp_path / "proc", pre)
    manifest = read_manifest(tmp_path / "proc")
    assert manifest["classes"] == ["apple", "orange"] and manifest["image_shape"] == [8, 8, 3]
    splits = manifest["splits"]
    assert splits["test"]["per_class"] == [3, 2]  # testA + testB, untouched by test_fraction
    assert splits["val"]["per_class"] == [2, 2]  # stratified from train (ceil(0.3 * 11) = 4)
    assert [a + b for a, b in zip(splits["train"]["per_class"], [2, 2], strict=True)] == [6, 5]
    x, y = load_split(tmp_path / "proc", "test")
    assert x.shape == (5, 8, 8, 3) and x.dtype == np.uint8
    assert (x[y == 0][..., 0].mean() > 100) and (x[y == 1][..., 2].mean() > 100)


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_sneaker_vs_ankle_boot_is_a_two_domain_pair(tmp_path):
    """The offline pair for CycleGAN: classes [7, 9] become labels 0 and 1, both present."""
    pre = PreprocessConfig(
        image_size=28, val_fraction=0.1, test_fraction=0.2, n_per_class=40, classes=[7, 9], seed=0
    )
    preprocess("fashion-mnist", FASHION, tmp_path / "proc", pre)  # same file names as raw/
    manifest = read_manifest(tmp_path / "proc")
    assert manifest["classes"] == ["Sneaker", "Ankle boot"]
    assert manifest["splits"]["train"]["per_class"] == [40, 40]
    assert manifest["splits"]["val"]["per_class"] == [600, 600]  # 10% of 6000 each
    x, y = load_split(tmp_path / "proc", "test")
    assert np.bincount(y).tolist() == [1000, 1000]
    raw_x = formats.read_idx(FASHION / "t10k-images-idx3-ubyte.gz")
    raw_y = formats.read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")
    assert np.array_equal(x[y == 0], raw_x[raw_y == 7]) and np.array_equal(
        x[y == 1], raw_x[raw_y == 9]
    )


def test_registry_entries_and_cli_listing(capsys):
    for name, classes in [
        ("apple2orange", ("apple", "orange")),
        ("horse2zebra", ("horse", "zebra")),
    ]:
        spec = datasets.DATASETS.get(name)
        assert spec.classes == classes and spec.channels == 3
        assert len(datasets.CYCLEGAN_SHA256[name]) == 64
    with pytest.raises(SystemExit) as exit_:
        cli_main(["datasets", "horse2zebra"])
        raise SystemExit(0)  # main returns normally on success
    assert exit_.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0]: line for line in lines[1:]}
    assert "apple=0 (A) vs orange=1 (B)" in listed["apple2orange"]
    assert "horse=0 (A) vs zebra=1 (B)" in listed["horse2zebra"]
