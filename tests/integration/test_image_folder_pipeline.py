"""Dataset `folder` through every stage's command line: a small folder of PNG, JPEG and DICOM
class folders -> download -> preprocess -> augment -> reference -> train (AC-GAN) -> evaluate ->
downstream (classic and GAN arms) -> report."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import tiny_params
from tests.integration.test_stages import stage
from tests.unit.test_image_folder import dicom


def own_images(root: Path) -> Path:
    """3 classes x 20 images: a bright disc (PNG, two sizes), a dark ring (JPEG), noise (DICOM);
    20 a class: the reference stage's Inception Score of the test split needs 10 images. Each
    image's intensity differs: no image duplicates another, as in a dataset worth studying."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:20, :20]
    r = np.hypot(yy - 10, xx - 10)  # (20, 20)
    for i in range(20):
        disc = np.where(r < 5 + i % 3, 220 - i, 30).astype(np.uint8)
        path = root / "lesion" / f"{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(disc if i % 2 else disc[:18, :16]).save(path)
        ring = np.where(np.abs(r - 6 - i % 3) < 1.5, 20 + i, 200).astype(np.uint8)
        (root / "cyst").mkdir(exist_ok=True)
        Image.fromarray(ring).save(root / "cyst" / f"{i:02d}.jpg", quality=90)
        dicom(root / "normal" / f"{i:02d}.dcm", rng.integers(900, 1200, (20, 20)))
    return root


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("own-images")
    params = tiny_params()
    params["study"].update(name="own-images", variants=["acgan"], seeds=[0])
    params["download"].update(dataset="folder", folder=str(own_images(work / "images")))
    params["downstream"].update(seeds=[0], counts=[0, 6], steps=4, eval_every=2, batch_size=8)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    p = ["--params", str(work / "params.yaml")]
    proc, aug, ref = work / "processed", work / "augmented", work / "reference"
    stage("download")(["--out", str(work / "raw"), *p])
    stage("preprocess")(["--raw", str(work / "raw"), "--out", str(proc), *p])
    stage("augment")(["--processed", str(proc), "--out", str(aug), *p])
    ref_metrics = work / "reference.json"
    stage("reference")(
        ["--processed", str(proc), "--out", str(ref), "--metrics", str(ref_metrics), *p]
    )
    run = work / "models" / "acgan" / "0"
    stage("train")(["--variant", "acgan", "--seed", "0", "--data", str(aug), "--out", str(run), *p])
    metrics = work / "metrics" / "acgan" / "0.json"
    stage("evaluate")(["--run", str(run), "--reference", str(ref), "--out", str(metrics), *p])
    for arm in ("classic", "acgan"):
        stage("downstream")(
            ["--arm", arm, "--seed", "0", "--processed", str(proc), "--augmented", str(aug),
             "--out", str(work / "metrics" / "downstream" / arm / "0.json"), *p]
            + (["--run", str(run)] if arm != "classic" else [])
        )  # fmt: skip
    stage("report")(
        ["--metrics", str(work / "metrics"), "--models", str(work / "models"),
         "--reference-metrics", str(ref_metrics), "--out", str(work / "report"), *p]
    )  # fmt: skip
    return work


def test_every_stage_runs_on_a_folder_of_png_jpeg_and_dicom(work):
    manifest = json.loads((work / "processed" / "manifest.json").read_text())
    assert manifest["dataset"] == "folder" and manifest["classes"] == ["cyst", "lesion", "normal"]
    assert manifest["image_shape"] == [28, 28, 1]
    assert manifest["source"]["formats"] == {"JPEG": 20, "PNG": 20, "DICOM": 20}
    assert manifest["source"]["original_sizes"] == {"20x20": 50, "16x18": 10}
    metrics = json.loads((work / "metrics" / "acgan" / "0.json").read_text())
    assert any(k.startswith("fid_") and np.isfinite(v) for k, v in metrics.items())
    for arm in ("classic", "acgan"):
        assert (work / "metrics" / "downstream" / arm / "0.json").is_file()
    assert (work / "report" / "index.html").is_file()
