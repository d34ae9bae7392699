"""Every stage's command line, in order, on a tiny configuration; then what MLflow holds."""

import importlib.util
import json
from pathlib import Path

import mlflow
import mlflow.pytorch
import pytest
import torch
import yaml

from tests.conftest import ROOT, tiny_params


def stage(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Run download -> report with the shrunk params; return the work folder."""
    work = tmp_path_factory.mktemp("pipeline")
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params()))
    p = ["--params", str(params)]
    raw, proc, aug, ref = (work / d for d in ("raw", "processed", "augmented", "reference"))
    stage("download")(["--out", str(raw), *p])
    stage("preprocess")(["--raw", str(raw), "--out", str(proc), *p])
    stage("augment")(["--processed", str(proc), "--out", str(aug), *p])
    ref_metrics = work / "reference.json"
    stage("reference")(
        ["--processed", str(proc), "--out", str(ref), "--metrics", str(ref_metrics), *p]
    )
    for seed in (0, 1):
        run = work / "models" / "dcgan" / str(seed)
        stage("train")(
            ["--variant", "dcgan", "--seed", str(seed), "--data", str(aug), "--out", str(run), *p]
        )
        stage("evaluate")(
            [
                "--run",
                str(run),
                "--reference",
                str(ref),
                "--out",
                str(work / "metrics" / "dcgan" / f"{seed}.json"),
                *(["--processed", str(proc)] if seed == 0 else []),  # the picture is optional
                *p,
            ]
        )
    stage("report")(
        [
            "--metrics",
            str(work / "metrics"),
            "--models",
            str(work / "models"),
            "--reference-metrics",
            str(ref_metrics),
            "--out",
            str(work / "report"),
            *p,
        ]
    )
    return work


def test_outputs_exist(pipeline: Path):
    for path in (
        "raw/digits.npz",
        "processed/manifest.json",
        "augmented/train.npz",
        "reference/classifier.pt",
        "reference/stats_test.npz",
        "reference/feats_val.npy",
        "reference/feats_test.npy",
        "reference/feats_train.npy",
        "reference/backbone/backbone.json",
        "metrics/dcgan/0_memorisation.png",
        "models/dcgan/0/checkpoint.pt",
        "models/dcgan/0/samples.png",
        "models/dcgan/1/loss.png",
        "report/index.md",
        "report/index.html",
    ):
        assert (pipeline / path).is_file(), path


def test_metrics_carry_protocol_in_names(pipeline: Path):
    metrics = json.loads((pipeline / "metrics/dcgan/0.json").read_text())
    assert metrics["fid_domain_120_test"] > 0
    assert 1.0 <= metrics["is_domain_120_mean"] <= 10.0
    # KID's subsets clip to the 120 samples; an untrained generator is far from the real data.
    assert metrics["kid_domain_120_test_mean"] > 0 and metrics["kid_domain_120_test_std"] >= 0
    assert 0.0 <= metrics["precision_domain_120_test"] <= 1.0
    assert 0.0 <= metrics["recall_domain_120_test"] <= 1.0
    assert metrics["memorisation_domain_120_test_ratio"] > 0  # an untrained G copies nothing
    assert 0.0 <= metrics["memorisation_domain_120_test_close_fraction"] <= 1.0
    assert metrics["step"] == 4 and metrics["seed"] == 0


def test_report_has_table_with_ci_grids_and_curves(pipeline: Path):
    md = (pipeline / "report/index.md").read_text()
    assert "| dcgan | 0, 1 |" in md and " ± " in md
    assert "figures/dcgan_seed1_samples.png" in md and "figures/dcgan_loss.png" in md
    page = (pipeline / "report/index.html").read_text()
    # Self-contained: loss curves, 2 sample grids, and the memorisation picture of seed 0 (the
    # only evaluate call given the training images).
    assert page.count("data:image/png;base64,") == 4
    assert "figures/dcgan_seed0_memorisation.png" in md
    assert "src='figures" not in page


def test_mlflow_has_one_experiment_with_a_run_per_seed(pipeline: Path):
    experiment = mlflow.get_experiment_by_name("ganstudy/tiny")
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list")
    by_name = {r.info.run_name: r for r in runs}
    assert {"dcgan-seed0", "dcgan-seed1"} <= set(by_name)
    run = by_name["dcgan-seed0"]
    assert run.data.params["train.batch_size"] == "8"
    assert run.data.params["variant.game"] == "nonsaturating"
    assert run.data.tags["variant"] == "dcgan" and run.data.tags["seed"] == "0"
    assert {"fid_domain_120_test", "kid_domain_120_test_mean", "recall_domain_120_test"} <= set(
        run.data.metrics
    )
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "Loss/G")
    assert [m.step for m in history] == [1, 2, 3, 4]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    # memorisation.png: evaluate's picture (seed 0 is evaluated with the training images)
    assert {"samples.png", "loss.png", "samples", "memorisation.png"} <= artifacts
    logged = mlflow.MlflowClient().download_artifacts(run.info.run_id, "memorisation.png")
    assert Path(logged).read_bytes() == (pipeline / "metrics/dcgan/0_memorisation.png").read_bytes()
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_generator_is_an_mlflow_model_that_samples(pipeline: Path):
    experiment = mlflow.get_experiment_by_name("ganstudy/tiny")
    models = mlflow.search_logged_models([experiment.experiment_id], output_format="list")
    assert models
    G = mlflow.pytorch.load_model(models[0].model_uri)
    with torch.no_grad():
        images = G.eval()(torch.randn(3, G.z_dim))
    assert images.shape == (3, 1, 28, 28)


def _report(work: Path, out: str) -> str:
    args = ["--metrics", str(work / "metrics"), "--models", str(work / "models")]
    args += ["--reference-metrics", str(work / "reference.json"), "--out", str(work / out)]
    stage("report")([*args, "--params", str(work / "params.yaml")])
    return (work / out / "index.md").read_text()


def test_items_are_children_of_one_finished_parent(pipeline: Path):
    client = mlflow.MlflowClient()
    runs = [json.loads((pipeline / f"models/dcgan/{s}/run.json").read_text()) for s in (0, 1)]
    tags = [client.get_run(r["run_id"]).data.tags for r in runs]
    parent = client.get_run(tags[0]["mlflow.parentRunId"])
    assert tags[1]["mlflow.parentRunId"] == parent.info.run_id
    assert parent.info.status == "FINISHED"  # closed by the report stage
    assert parent.data.tags["ganstudy.role"] == "study"
    assert {t["git_commit"] for t in tags} == {parent.data.tags["git_commit"]}
    assert [t["dataset"] for t in tags] == ["digits", "digits"]
    # The study at a glance, without expanding: the table's means and the report page.
    fids = [json.loads((pipeline / f"metrics/dcgan/{s}.json").read_text()) for s in (0, 1)]
    mean = sum(f["fid_domain_120_test"] for f in fids) / 2
    assert parent.data.metrics["fid_domain_120_test/dcgan"] == pytest.approx(mean)
    page = client.download_artifacts(parent.info.run_id, "report/index.html")
    assert Path(page).read_bytes() == (pipeline / "report/index.html").read_bytes()


def test_report_registers_the_best_generator_as_champion(pipeline: Path):
    fids = {
        s: json.loads((pipeline / f"metrics/dcgan/{s}.json").read_text())["fid_domain_120_test"]
        for s in (0, 1)
    }
    best = min(fids, key=fids.get)
    best_run = json.loads((pipeline / f"models/dcgan/{best}/run.json").read_text())["run_id"]
    version = mlflow.MlflowClient().get_model_version_by_alias("ganstudy-tiny", "champion")
    assert version.run_id == best_run and version.tags["seed"] == str(best)
    G = mlflow.pytorch.load_model("models:/ganstudy-tiny@champion")
    with torch.no_grad():
        images = G.eval()(torch.randn(5, G.z_dim))
    assert images.shape == (5, 1, 28, 28) and images.abs().max() <= 1
    md = (pipeline / "report/index.md").read_text()
    assert f"models:/ganstudy-tiny@champion = ganstudy-tiny version {version.version}" in md


def test_an_unchanged_champion_gets_no_new_version(pipeline: Path):
    client = mlflow.MlflowClient()
    before = client.search_model_versions("name = 'ganstudy-tiny'")
    md = _report(pipeline, "report-again")
    assert len(client.search_model_versions("name = 'ganstudy-tiny'")) == len(before)
    assert "(unchanged)" in md


def test_stage_bad_input_exits_2_with_one_line(tmp_path, capsys):
    from ganstudy.cli import run_stage

    with pytest.raises(SystemExit) as exit_:
        run_stage(
            stage("train"),
            [
                "--variant",
                "nope",
                "--seed",
                "0",
                "--data",
                str(tmp_path),
                "--out",
                str(tmp_path / "out"),
                "--params",
                str(ROOT / "params.yaml"),
            ],
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown variant 'nope'") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_tracking_store_down_is_one_clear_error(tmp_path, monkeypatch, capsys):
    from ganstudy.cli import run_stage

    # Nothing listens on port 9 of the loopback: the stage must fail fast and say so.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params()))
    data = tmp_path / "data"
    stage("download")(["--out", str(tmp_path / "raw"), "--params", str(params)])
    stage("preprocess")(
        ["--raw", str(tmp_path / "raw"), "--out", str(data), "--params", str(params)]
    )
    with pytest.raises(SystemExit) as exit_:
        run_stage(
            stage("train"),
            [
                "--variant",
                "dcgan",
                "--seed",
                "0",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "run"),
                "--params",
                str(params),
            ],
        )
    assert exit_.value.code == 2
    assert "MLflow tracking at http://127.0.0.1:9 is unavailable" in capsys.readouterr().err
