"""Every variant defined in params.yaml trains and evaluates through the stage command lines.

This is the promise of the registry: a study picks any entry of `variants` by changing only
params.yaml. Each variant runs on tiny data shaped for its architecture (the registry's example
image: its size, and two classes for two-domain architectures); presets' own batch sizes and
iterations are dropped so every run takes seconds.
"""

import json
from pathlib import Path

import pytest
import yaml

from ganstudy.models import ARCHITECTURES
from tests.conftest import ROOT, tiny_params
from tests.integration.test_stages import stage

VARIANTS = yaml.safe_load((ROOT / "params.yaml").read_text())["variants"]


def data_shape(variant: dict) -> tuple[int, int]:
    """(image size, number of classes) of the tiny data a variant runs on."""
    example = ARCHITECTURES.get(variant["arch"]).example
    return example.size, 2 if example.num_classes == 2 else 10


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Data and reference folders per data shape, made on first use."""
    made: dict[tuple[int, int], tuple[Path, Path]] = {}

    def get(shape: tuple[int, int]) -> tuple[Path, Path]:
        if shape not in made:
            work = tmp_path_factory.mktemp(f"data{shape[0]}x{shape[1]}")
            params = tiny_params()
            params["preprocess"].update(
                image_size=shape[0], classes=None if shape[1] == 10 else [0, 1]
            )
            params["variants"] = {
                name: {**v, "train": {}, **({"labelled": 20} if v.get("labelled") else {})}
                for name, v in VARIANTS.items()
            }  # seconds, not the sources' batch sizes and iterations; labels the tiny data has
            (work / "params.yaml").write_text(yaml.safe_dump(params))
            p = ["--params", str(work / "params.yaml")]
            raw, proc, aug, ref = (work / d for d in ("raw", "processed", "augmented", "ref"))
            stage("download")(["--out", str(raw), *p])
            stage("preprocess")(["--raw", str(raw), "--out", str(proc), *p])
            stage("augment")(["--processed", str(proc), "--out", str(aug), *p])
            metrics = work / "ref.json"
            stage("reference")(
                ["--processed", str(proc), "--out", str(ref), "--metrics", str(metrics), *p]
            )
            made[shape] = work, proc
        return made[shape]

    return get


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_trains_and_evaluates_from_params_alone(prepared, name):
    work, processed = prepared(data_shape(VARIANTS[name]))
    p = ["--params", str(work / "params.yaml")]
    run, out = work / "models" / name / "0", work / "metrics" / name / "0.json"
    stage("train")(
        ["--variant", name, "--seed", "0", "--data", str(work / "augmented"), "--out", str(run), *p]
    )
    stage("evaluate")(
        ["--run", str(run), "--reference", str(work / "ref"), "--out", str(out)]
        + ["--processed", str(processed), *p]
    )
    record = json.loads(out.read_text())
    assert record["step"] == 4  # tiny_params' iterations
    fid = record["fid_domain_120_test"]
    assert fid == fid and fid >= 0  # a number, not NaN
    assert (run / "samples.png").is_file() and out.with_name("0_memorisation.png").is_file()
    # A D with a class head of the image alone (SGAN, AC-GAN) is scored on the test split.
    if VARIANTS[name]["arch"] in {"sgan", "acgan"} and not VARIANTS[name].get("per_class"):
        assert 0.0 <= record["head_accuracy_test"] <= 1.0
    else:
        assert "head_accuracy_test" not in record


def test_a_per_class_variant_trains_evaluates_and_reports_through_the_stages(prepared, tmp_path):
    """``per_class: true`` (Frid-Adar et al. 2018: one DCGAN per class): a model per class of
    the 10 digits, sampled evenly by evaluate (so per-class FID is scored), and the report."""
    work, processed = prepared((28, 10))
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["study"].update(variants=["dcgan-perclass"], seeds=[0])
    params["variants"]["dcgan-perclass"] = {**VARIANTS["dcgan"], "train": {}, "per_class": True}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p = ["--params", str(tmp_path / "params.yaml")]
    run, out = tmp_path / "models" / "dcgan-perclass" / "0", tmp_path / "metrics" / "dcgan-perclass"
    stage("train")(
        ["--variant", "dcgan-perclass", "--seed", "0", "--data", str(work / "augmented")]
        + ["--out", str(run), *p]
    )
    stage("evaluate")(
        ["--run", str(run), "--reference", str(work / "ref"), "--out", str(out / "0.json")]
        + ["--processed", str(processed), *p]
    )
    record = json.loads((out / "0.json").read_text())
    assert record["step"] == 4 and record["seed"] == 0
    assert sorted(f.name for f in run.glob("class_*")) == [f"class_{k}" for k in range(10)]
    assert {f"fid_domain_120_test_class{k}" for k in range(10)} <= set(record)
    stage("report")(
        ["--metrics", str(tmp_path / "metrics"), "--models", str(tmp_path / "models")]
        + ["--reference-metrics", str(work / "ref.json"), "--out", str(tmp_path / "report"), *p]
    )
    assert (tmp_path / "report" / "figures" / "dcgan-perclass_loss.png").is_file()
    assert "dcgan-perclass" in (tmp_path / "report" / "index.md").read_text()
