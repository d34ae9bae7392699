"""Dataset `folder` is a real DVC input (slow: the tiny pipeline 3 times, 5 min on 2 busy cores): an
image changed, added or removed shows in `dvc status` as the download stage's changed dep, and
`dvc repro` then re-runs download and everything after it."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import ROOT, tiny_params
from tests.integration.test_dvc_prefect import dvc, ran, sh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, Path]:
    """A fresh git + DVC copy of the project whose params point at a folder outside it."""
    base = tmp_path_factory.mktemp("folder-dvc")
    images = base / "images"
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        (images / name).mkdir(parents=True)
        for i in range(20):  # the reference stage's test-split Inception Score needs 10 images
            Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(
                images / name / f"{i:02d}.png"
            )
    proj = base / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("stages", "src", "pipelines", "studies", "data/images"):
        shutil.copytree(ROOT / folder, proj / folder, ignore=ignore)
    shutil.copy(ROOT / "dvc.yaml", proj / "dvc.yaml")
    params = tiny_params()
    params["study"].update(seeds=[0])
    params["download"].update(dataset="folder", folder=str(images))
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "init", "-q", cwd=proj)
    dvc("init", "-q", cwd=proj)
    dvc("config", "core.analytics", "false", cwd=proj)
    sh("git", "add", "-A", cwd=proj)
    sh("git", "commit", "-qm", "init", cwd=proj)
    return proj, images


def test_an_image_changed_added_or_removed_reruns_download_and_after(project):
    proj, images = project
    everything = ran(dvc("repro", cwd=proj))
    assert {"download", "preprocess", "augment", "reference", "report"} <= everything
    assert "up to date" in dvc("status", cwd=proj)
    image = images / "b" / "03.png"
    original = image.read_bytes()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(image)  # changed
    status = dvc("status", cwd=proj)
    assert status.splitlines()[0] == "download:" and f"modified:           {images}" in status
    assert ran(dvc("repro", cwd=proj)) == everything  # download and all that follows
    shutil.copy(images / "a" / "00.png", images / "a" / "new.png")  # added
    assert f"modified:           {images}" in dvc("status", cwd=proj)
    (images / "a" / "new.png").unlink()  # removed again: back to what dvc.lock holds
    image.write_bytes(original)
    dvc("repro", cwd=proj)
    (images / "c" / "19.png").unlink()  # removed
    assert f"modified:           {images}" in dvc("status", cwd=proj)
