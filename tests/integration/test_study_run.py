"""Each paper-table study at its tiny size, the way a user runs it: `ganstudy study run`
(dvc exp run) in a throw-away copy of the project, one after another in the same workspace."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.test_dvc_prefect import ENV, dvc, sh

STUDIES = ("augmentation", "sgan", "variants")
pytestmark = pytest.mark.slow  # ~45 dvc stages: `make test-studies`, run by CI after `make test`


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """This project's code, studies and real params.yaml as a fresh git + DVC repository."""
    proj = tmp_path_factory.mktemp("studies")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("stages", "src", "pipelines", "studies", "data/images"):  # images: a dvc dep
        shutil.copytree(ROOT / folder, proj / folder, ignore=ignore)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, proj / name)
    sh("git", "init", "-q", cwd=proj)
    dvc("init", "-q", cwd=proj)
    dvc("config", "core.analytics", "false", cwd=proj)
    sh("git", "add", "-A", cwd=proj)
    sh("git", "commit", "-qm", "init", cwd=proj)
    return proj


def study_run(project: Path, name: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ganstudy.cli", "study", "run", name, "--size", "tiny"]
    return subprocess.run(cmd, cwd=project, env=ENV, capture_output=True, text=True)


@pytest.fixture(scope="module")
def pages(project: Path) -> dict[str, str]:
    """Run the three studies in order; each one's report page (Markdown)."""
    out = {}
    for name in STUDIES:
        result = study_run(project, name)
        assert result.returncode == 0, f"{name}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        out[name] = (project / "report" / f"{name}-tiny" / "index.md").read_text()
    return out


def test_augmentation_page_has_arms_curve_tests_and_paper(pages, project):
    page = pages["augmentation"]
    assert "real only" in page and "classic +24" in page
    assert "dcgan-perclass" in page and "acgan" in page
    assert "0.786" in page and "Frid-Adar" in page  # the published number, beside ours
    report = project / "report" / "augmentation-tiny"
    assert (report / "figures" / "augmentation_curve.png").is_file()
    record = json.loads((project / "metrics/augmentation-tiny/downstream/acgan/1.json").read_text())
    assert record["n_classic_base"] == 24 and set(record["results"]) == {"0", "12", "24"}
    assert "ganstudy study run augmentation --size tiny" in page  # how it was made
    # The fair design (issue 13): the equal-size controls, one step budget, the quality gate
    # (the tiny size's threshold fails every 4-iteration GAN: the arms are marked).
    classic = json.loads(
        (project / "metrics/augmentation-tiny/downstream/classic/1.json").read_text()
    )
    assert set(classic["results"]) == {"0", "12", "24", "36", "48"}
    assert classic["results"]["36"]["n_train"] == record["results"]["12"]["n_train"]
    steps = {r["steps"] for rec in (classic, record) for r in rec["results"].values()}
    assert steps == {4} and record["quality"]["passed"] is False
    assert "every classifier takes 4 optimizer steps" in page and "classic +48" in page
    assert "0/2 seeds passed ⚠" in page and "failed the quality gate" in page
    assert "FID class 0" in page and "sensitivity class 2" in page
    assert "acgan: classic +24, synthetic +24 vs classic +48" in page  # against its control
    assert record["n_val"] == 36  # validation capped at 12 a class, like the training split


def test_sgan_page_compares_with_the_supervised_baseline(pages, project):
    page = pages["sgan"]
    assert "head_accuracy_test" in page or "accuracy" in page
    assert "sgan-book-supervised" in page and "0.89" in page
    metrics = json.loads((project / "metrics/sgan-tiny/sgan-book/0.json").read_text())
    assert 0.0 <= metrics["head_accuracy_test"] <= 1.0


def publish_sgan(project: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ganstudy.cli", "study", "publish", "sgan", "--size", "tiny"]
    return subprocess.run(cmd, cwd=project, env=ENV, capture_output=True, text=True)


@pytest.fixture(scope="module")
def sgan_restored(pages, project: Path) -> Path:
    """The variants study ran after sgan: moving the workspace to its experiment removed sgan's
    run folders (DVC-cached outputs; the uncached metrics stay). Publishing says so in one
    line; running the study again restores them from its DVC experiment without retraining."""
    result = publish_sgan(project)
    assert result.returncode != 0 and "run folders lack timing.json" in result.stderr
    assert "ganstudy study run sgan --size tiny" in result.stderr
    assert not (project / "docs" / "results" / "sgan").exists()  # nothing half-written
    result = study_run(project, "sgan")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Running stage" not in result.stdout + result.stderr
    return project


def test_sgan_runs_log_the_validation_curve(sgan_restored):
    run = sgan_restored / "models/sgan-tiny/sgan-book/0"
    history = (run / "history.csv").read_text()
    assert "Head/accuracy_val" in history  # the validation curve lengths are chosen from
    assert json.loads((run / "timing.json").read_text())["iterations"] == 6


def test_sgan_results_page_is_made_by_one_command(sgan_restored):
    project = sgan_restored
    result = publish_sgan(project)
    assert result.returncode == 0, result.stderr[-2000:]
    results = project / "docs" / "results" / "sgan"
    page = (results / "index.md").read_text()
    assert "## Design" in page and "BatchNorm running statistics" in page  # the protocol
    assert "ganstudy study run sgan --size tiny" in page and "params digest" in page
    assert "git commit" in page and "machine" in page and "training time" in page
    assert "detectable (80% power)" in page and "0.89" in page  # ours beside the book's
    assert (results / "tiny" / "figures" / "validation.png").is_file()
    assert "length by the rule" in page and (results / "lengths.csv").is_file()


def test_variants_page_ranks_games_against_ns_gan(pages):
    page = pages["variants"]
    assert "dcgan" in page and "wgan-gp" in page
    assert "Kendall" in page and "26.5" in page  # rank stability; Lucic's NS GAN FID


def test_studies_do_not_leak_into_each_other(pages, project):
    """The variants study ran after the augmentation study had set downstream seeds and
    classes in params.yaml: none of that may remain."""
    assert not (project / "metrics" / "variants-tiny" / "downstream").exists()
    assert json.loads(dvc("status", "--json", cwd=project)) == {}


def test_a_study_comes_back_without_retraining(pages, project):
    """Running the first study again after the others restores its DVC experiment (outputs
    from the cache) and finds nothing to run; `ganstudy study report` rebuilds its page from
    the results on disk alone."""
    result = study_run(project, "augmentation")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Running stage" not in result.stdout + result.stderr
    report = project / "report" / "augmentation-tiny"
    shutil.rmtree(report)
    cmd = [
        sys.executable,
        "-m",
        "ganstudy.cli",
        "study",
        "report",
        "augmentation",
        "--size",
        "tiny",
    ]
    result = subprocess.run(cmd, cwd=project, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    tables = (report / "index.md").read_text().split("## How this report was made")[0]
    assert tables == pages["augmentation"].split("## How this report was made")[0]


def test_augmentation_results_page_times_its_per_class_generators(pages, project):
    """The augmentation study's dcgan-perclass runs keep one timing.json per class folder:
    publishing its page sums them (it refused the page before: "run folders lack timing.json")."""
    result = study_run(project, "augmentation")  # restores it if a later test moved away
    assert result.returncode == 0, result.stderr[-2000:]
    cmd = [sys.executable, "-m", "ganstudy.cli", "study", "publish", "augmentation"]
    result = subprocess.run(
        [*cmd, "--size", "tiny"], cwd=project, env=ENV, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    page = (project / "docs" / "results" / "augmentation" / "index.md").read_text()
    assert "training time" in page and "in 4 runs" in page  # 2 variants x 2 seeds
    assert "classic +24, synthetic +24 vs classic +48" in page
