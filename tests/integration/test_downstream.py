"""The augmentation study's downstream stage on tiny data: arms, counts, nesting, the fair
design (one step budget, the equal-size classic control, the quality gate), errors."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from ganstudy.config import DownstreamConfig
from ganstudy.errors import GanstudyError
from ganstudy.io import write_json
from ganstudy.study.augmentation import (
    as_rows,
    classic_pool,
    nested_order,
    quality_gate,
    run_arm,
)
from tests.conftest import tiny_params
from tests.integration.test_stages import stage

COUNTS = [0, 6, 18]
CLASSIC_COUNTS = [0, 6, 18, 24, 36]  # COUNTS and 18 + COUNTS: each GAN count's control
STEPS = 4


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Digits, 3 classes x 12 images, 2 classic copies each, a cgan and a dcgan trained briefly."""
    work = tmp_path_factory.mktemp("downstream")
    params = tiny_params()
    params["study"].update(name="downstream")  # its own MLflow experiment
    params["preprocess"].update(classes=[0, 1, 2])
    params["augment"].update(copies=2)
    params["downstream"].update(seeds=[0], counts=COUNTS, steps=STEPS, eval_every=2, batch_size=16)
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
    if run is not None:  # what evaluate would have written: the quality gate's per-class FIDs
        write_json(work / "fid.json", FIDS)
        args += ["--metrics", str(work / "fid.json")]
    stage("downstream")(args)
    return json.loads(out.read_text())


FIDS = {"fid_domain_60_test": 30.0, "fid_domain_60_test_classmean": 30.0}
FIDS |= {"fid_domain_60_test_class0": 20.0, "fid_domain_60_test_class1": 45.0}
FIDS |= {"fid_domain_60_test_class2": 25.0}


@pytest.fixture(scope="module")
def classic(work) -> dict:
    return downstream(work, "classic", work / "m" / "classic" / "0.json")


@pytest.fixture(scope="module")
def cgan(work) -> dict:
    return downstream(work, "cgan", work / "m" / "cgan" / "0.json", work / "models" / "cgan")


def test_classic_arm_adds_nested_classic_images(work, classic):
    record = classic
    assert record["counts"] == CLASSIC_COUNTS
    assert record["n_real"] == 36 and record["n_classic_base"] == 0
    sizes = [record["results"][str(c)]["n_train"] for c in CLASSIC_COUNTS]
    assert sizes == [36 + c for c in CLASSIC_COUNTS]
    for scores in record["results"].values():
        assert 0.0 <= scores["accuracy"] <= 1.0
        assert {"sensitivity_macro", "specificity_macro", "auc_macro", "best_step"} <= set(scores)
        assert {"sensitivity_class0", "specificity_class2", "auc_class1"} <= set(scores)
    assert (work / "m" / "classic" / "0_sources.png").is_file()
    rows = as_rows([record])
    assert [r["added"] for r in rows] == CLASSIC_COUNTS
    assert "quality" not in record and {r["gate_passed"] for r in rows} == {None}
    assert record["seconds"] > 0 and record["machine"].startswith("cpu, ")  # the page's time


def test_gan_arm_adds_synthetic_images_on_all_classic_ones(cgan):
    record = cgan
    assert record["n_classic_base"] == COUNTS[-1]
    sizes = [record["results"][str(c)]["n_train"] for c in COUNTS]
    assert sizes == [36 + COUNTS[-1] + c for c in COUNTS]
    assert [r["added"] for r in as_rows([record])] == [COUNTS[-1] + c for c in COUNTS]


def test_every_gan_count_has_an_equal_size_classic_control(classic, cgan):
    """'classic + c synthetic' vs 'classic + c more classic': same size, same step budget;
    at c = 0 the two training sets are the same images, so the two fits are the same."""
    for c in COUNTS:
        twin = classic["results"][str(COUNTS[-1] + c)]
        assert twin["n_train"] == cgan["results"][str(c)]["n_train"]
    assert cgan["results"]["0"] == classic["results"][str(COUNTS[-1])]
    steps = [r["steps"] for rec in (classic, cgan) for r in rec["results"].values()]
    assert steps == [STEPS] * (len(CLASSIC_COUNTS) + len(COUNTS))


def test_the_gan_arm_records_its_generators_per_class_fid(cgan):
    quality = cgan["quality"]
    assert quality["fid_class"] == {"0": 20.0, "1": 45.0, "2": 25.0} and quality["worst"] == 45.0
    assert quality["threshold"] is None and quality["passed"] is None  # no gate in params
    assert quality["metric"] == "fid_domain_60_test_class<k>"


def test_the_quality_gate_passes_and_fails_on_the_worst_class(work):
    cfg = DownstreamConfig(seeds=[0], counts=[0, 6], steps=2, eval_every=2, batch_size=16, lr=1e-3)
    run = work / "models" / "cgan"
    write_json(work / "fid.json", FIDS)
    gated = cfg.model_copy(update={"max_class_fid": 40.0})  # class 1's 45 fails it
    record = run_arm("cgan", 0, work / "proc", work / "aug", gated, run, None, work / "fid.json")
    assert record["quality"]["passed"] is False and record["quality"]["threshold"] == 40.0
    assert {r["gate_passed"] for r in as_rows([record])} == {False}
    for threshold, passed in ((50.0, True), (45.0, True), (44.9, False)):
        assert quality_gate(FIDS, threshold)["passed"] is passed
    with pytest.raises(GanstudyError, match="no evaluate metrics"):
        run_arm("cgan", 0, work / "proc", work / "aug", gated, run)
    assert quality_gate(FIDS | {"fid_domain_60_test_class1": float("nan")}, 99.0)["passed"] is False
    with pytest.raises(GanstudyError, match="per-class FIDs"):
        quality_gate({"fid_domain_60_test": 3.0}, 10.0)


def test_synthetic_images_are_8_bit_like_the_real_ones(work):
    from ganstudy.study.augmentation import synthetic_images

    images, labels = synthetic_images(work / "models" / "cgan", 30, 10, torch.device("cpu"))
    levels = (images + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4) and images.abs().max() <= 1
    assert torch.equal(torch.bincount(labels), torch.tensor([10, 10, 10]))


def test_same_seed_same_results(work):
    cfg = DownstreamConfig(seeds=[0], counts=[0, 6], steps=4, eval_every=2, batch_size=16, lr=1e-3)
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
    cfg = DownstreamConfig(seeds=[0], counts=[0, 6], steps=1, eval_every=1, batch_size=16, lr=1e-3)
    with pytest.raises(GanstudyError, match="unlabelled images"):
        run_arm("dcgan", 0, work / "proc", work / "aug", cfg, work / "models" / "dcgan")


def test_more_classic_images_than_made_is_one_clear_error(work):
    cfg = DownstreamConfig(seeds=[0], counts=[0, 40], steps=1, eval_every=1, batch_size=16, lr=1e-3)
    with pytest.raises(GanstudyError, match="raise augment.copies"):
        run_arm("classic", 0, work / "proc", work / "aug", cfg)


def test_counts_must_increase():
    with pytest.raises(ValueError, match="strictly increasing"):
        DownstreamConfig(counts=[0, 10, 10], steps=1, eval_every=1, batch_size=1, lr=1e-3)
