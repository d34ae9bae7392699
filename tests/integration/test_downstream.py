"""The augmentation study's downstream stage on tiny data: arms, counts, nesting, errors."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from ganstudy.config import DownstreamConfig
from ganstudy.errors import GanstudyError
from ganstudy.study.augmentation import as_rows, classic_pool, nested_order, run_arm
from tests.conftest import tiny_params
from tests.integration.test_stages import stage

COUNTS = [0, 6, 18]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Digits, 3 classes x 12 images, 2 classic copies each, a cgan and a dcgan trained briefly."""
    work = tmp_path_factory.mktemp("downstream")
    params = tiny_params()
    params["study"].update(name="downstream")  # its own MLflow experiment
    params["preprocess"].update(classes=[0, 1, 2])
    params["augment"].update(copies=2)
    params["downstream"].update(seeds=[0], counts=COUNTS, epochs=2, batch_size=16)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    p = ["--params", str(work / "params.yaml")]
    stage("download")(["--out", str(work / "raw"), *p])
    stage("preprocess")(["--raw", str(work / "raw"), "--out", str(work / "proc"), *p])
    stage("augment")(["--processed", str(work / "proc"), "--out", str(work / "aug"), *p])
    for variant in ("cgan", "dcgan"):
        stage("train")(
            ["--variant", variant, "--seed", "0", "--data", str(work / "aug"),
             "--out", str(work / "models" / variant), *p]
        )  # fmt: skip
    return work


def downstream(work: Path, arm: str, out: Path, run: Path | None = None) -> dict:
    args = ["--arm", arm, "--seed", "0", "--processed", str(work / "proc")]
    args += ["--augmented", str(work / "aug"), "--out", str(out)]
    args += ["--params", str(work / "params.yaml")] + ([] if run is None else ["--run", str(run)])
    stage("downstream")(args)
    return json.loads(out.read_text())


def test_classic_arm_adds_nested_classic_images(work):
    record = downstream(work, "classic", work / "m" / "classic" / "0.json")
    assert record["counts"] == COUNTS and record["n_real"] == 36 and record["n_classic_base"] == 0
    sizes = [record["results"][str(c)]["n_train"] for c in COUNTS]
    assert sizes == [36 + c for c in COUNTS]
    for scores in record["results"].values():
        assert 0.0 <= scores["accuracy"] <= 1.0
        assert {"sensitivity_macro", "specificity_macro", "auc_macro", "best_epoch"} <= set(scores)
    assert (work / "m" / "classic" / "0_sources.png").is_file()
    rows = as_rows([record])
    assert [r["added"] for r in rows] == COUNTS


def test_gan_arm_adds_synthetic_images_on_all_classic_ones(work):
    record = downstream(work, "cgan", work / "m" / "cgan" / "0.json", work / "models" / "cgan")
    assert record["n_classic_base"] == COUNTS[-1]
    sizes = [record["results"][str(c)]["n_train"] for c in COUNTS]
    assert sizes == [36 + COUNTS[-1] + c for c in COUNTS]
    assert [r["added"] for r in as_rows([record])] == [COUNTS[-1] + c for c in COUNTS]


def test_synthetic_images_are_8_bit_like_the_real_ones(work):
    from ganstudy.study.augmentation import synthetic_images

    images, labels = synthetic_images(work / "models" / "cgan", 30, 10, torch.device("cpu"))
    levels = (images + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4) and images.abs().max() <= 1
    assert torch.equal(torch.bincount(labels), torch.tensor([10, 10, 10]))


def test_same_seed_same_results(work):
    cfg = DownstreamConfig(seeds=[0], counts=[0, 6], epochs=2, batch_size=16, lr=1e-3)
    a = run_arm("classic", 0, work / "proc", work / "aug", cfg)
    b = run_arm("classic", 0, work / "proc", work / "aug", cfg)
    assert a == b


def test_classic_pool_is_what_augment_added(work):
    real, extra = classic_pool(work / "proc", work / "aug")
    assert len(real[0]) == 36 and len(extra[0]) == 72
    assert torch.equal(torch.bincount(extra[1]), torch.tensor([24, 24, 24]))
    order = nested_order(72, 0)
    assert torch.equal(order, nested_order(72, 0)) and sorted(order.tolist()) == list(range(72))


def test_unlabelled_generator_is_refused(work):
    cfg = DownstreamConfig(seeds=[0], counts=[0, 6], epochs=1, batch_size=16, lr=1e-3)
    with pytest.raises(GanstudyError, match="unlabelled images"):
        run_arm("dcgan", 0, work / "proc", work / "aug", cfg, work / "models" / "dcgan")


def test_more_classic_images_than_made_is_one_clear_error(work):
    cfg = DownstreamConfig(seeds=[0], counts=[0, 100], epochs=1, batch_size=16, lr=1e-3)
    with pytest.raises(GanstudyError, match="raise augment.copies"):
        run_arm("classic", 0, work / "proc", work / "aug", cfg)


def test_counts_must_increase():
    with pytest.raises(ValueError, match="strictly increasing"):
        DownstreamConfig(counts=[0, 10, 10], epochs=1, batch_size=1, lr=1e-3)
