"""The real download code, against files served on 127.0.0.1 (no internet in tests)."""

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from ganstudy.config import DownloadConfig
from ganstudy.data import datasets
from ganstudy.data.download import RemoteFile, fetch
from ganstudy.errors import GanstudyError
from tests.unit.test_data import write_idx


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www on a free loopback port; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}/", httpd
    httpd.shutdown()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_verifies_and_caches(tmp_path, server):
    www, url, httpd = server
    (www / "a.bin").write_bytes(b"x" * 100_000)
    remote = RemoteFile("a.bin", url + "a.bin", md5(www / "a.bin"))
    cache, out = tmp_path / "cache", tmp_path / "out"
    fetch([remote], out, cache, [], allow_download=True)
    assert (out / "a.bin").read_bytes() == (www / "a.bin").read_bytes()
    assert (cache / "a.bin").is_file()
    httpd.shutdown()  # the second fetch must not need the network
    (out / "a.bin").unlink()
    fetch([remote], out, cache, [], allow_download=True)
    assert (out / "a.bin").is_file()


def test_checksum_mismatch_leaves_nothing(tmp_path, server):
    www, url, _ = server
    (www / "a.bin").write_bytes(b"corrupted")
    remote = RemoteFile("a.bin", url + "a.bin", "0" * 32)
    with pytest.raises(GanstudyError, match="checksum mismatch"):
        fetch([remote], tmp_path / "out", tmp_path / "cache", [], allow_download=True)
    assert not list((tmp_path / "cache").glob("*"))
    assert not (tmp_path / "out" / "a.bin").exists()


def test_missing_remote_and_offline_errors_say_where_to_put_the_file(tmp_path, server):
    _, url, _ = server
    remote = RemoteFile("gone.bin", url + "gone.bin", "1" * 32)
    with pytest.raises(GanstudyError, match=r"could not download .*place gone.bin .* in .*cache"):
        fetch([remote], tmp_path / "out", tmp_path / "cache", [], allow_download=True)
    with pytest.raises(GanstudyError, match=r"not found offline; place it \(md5 1{32}"):
        fetch([remote], tmp_path / "out", tmp_path / "cache", [], allow_download=False)


def test_offline_copy_with_alternative_checksum_is_used(tmp_path):
    offline = tmp_path / "usr-share"
    offline.mkdir()
    (offline / "f.gz").write_bytes(b"debian copy")
    remote = RemoteFile("f.gz", "http://127.0.0.1:9/f.gz", "0" * 32, (md5(offline / "f.gz"),))
    fetch([remote], tmp_path / "out", tmp_path / "cache", [offline], allow_download=False)
    assert (tmp_path / "out" / "f.gz").read_bytes() == b"debian copy"


def idx_fixture(www: Path, n: int = 12) -> dict[str, str]:
    rng = np.random.default_rng(0)
    sums = {}
    for split in ("train", "test"):
        images, labels = datasets.IDX_NAMES[split]
        write_idx(www / images, rng.integers(0, 256, (n, 28, 28)))
        write_idx(www / labels, np.arange(n) % 10)
        sums[images], sums[labels] = md5(www / images), md5(www / labels)
    return sums


def test_idx_dataset_downloads_and_decodes(tmp_path, server, monkeypatch):
    www, url, _ = server
    spec = datasets._idx_dataset(
        "fixture-mnist", "fixture", tuple("0123456789"), url, idx_fixture(www)
    )
    monkeypatch.setattr(datasets, "DATASETS", datasets.Registry("dataset"))
    datasets.DATASETS.add(spec)
    datasets.fetch_raw(DownloadConfig(dataset="fixture-mnist"), tmp_path / "raw")
    splits = datasets.load_raw("fixture-mnist", tmp_path / "raw")
    assert splits["train"][0].shape == (12, 28, 28, 1) and splits["test"][1].tolist()[:3] == [
        0,
        1,
        2,
    ]
    assert (tmp_path / "raw" / "SOURCE.json").is_file()


def medmnist_npz(path: Path, n: int = 6) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(-1, 1).astype(np.uint8)
    np.savez(path, **arrays)


def test_medmnist_download_checks_md5(tmp_path, server, monkeypatch):
    www, url, _ = server
    medmnist_npz(www / "breastmnist.npz")
    info = datasets.MEDMNIST["datasets"]["breastmnist"]
    monkeypatch.setitem(datasets.MEDMNIST, "url", url + "{file}")
    monkeypatch.setitem(info["md5"], "28", md5(www / "breastmnist.npz"))
    datasets.fetch_raw(DownloadConfig(dataset="breastmnist"), tmp_path / "raw")
    splits = datasets.load_raw("breastmnist", tmp_path / "raw")
    assert splits["val"][0].shape == (6, 28, 28, 1) and splits["val"][1].tolist() == [0, 1] * 3
    with pytest.raises(GanstudyError, match="size 32 not published"):
        datasets.fetch_raw(DownloadConfig(dataset="breastmnist", size=32), tmp_path / "raw2")


def test_medmnist_user_supplied_npz(tmp_path):
    medmnist_npz(tmp_path / "mine.npz")
    cfg = DownloadConfig(dataset="pneumoniamnist", local_file=str(tmp_path / "mine.npz"))
    with pytest.warns(UserWarning, match="not the published"):
        datasets.fetch_raw(cfg, tmp_path / "raw")
    assert (tmp_path / "raw" / "pneumoniamnist.npz").is_file()
    np.savez(tmp_path / "broken.npz", train_images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(GanstudyError, match="missing train_images/train_labels"):
        datasets.fetch_raw(
            cfg.model_copy(update={"local_file": str(tmp_path / "broken.npz")}), tmp_path / "raw3"
        )
