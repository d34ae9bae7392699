"""The real DVC pipeline in a throw-away git repo, run by the Prefect flow and by `dvc`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, tiny_params

ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@localhost",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@localhost",
}


def sh(*cmd: str, cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def dvc(*args: str, cwd: Path) -> str:
    return sh(sys.executable, "-m", "dvc", *args, cwd=cwd)


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of this project with tiny params, as a fresh git + DVC repository."""
    proj = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("stages", "src", "pipelines", "studies", "data/images"):  # images: a dvc dep
        shutil.copytree(ROOT / folder, proj / folder, ignore=ignore)
    shutil.copy(ROOT / "dvc.yaml", proj / "dvc.yaml")
    (proj / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    sh("git", "init", "-q", cwd=proj)
    dvc("init", "-q", cwd=proj)
    dvc("config", "core.analytics", "false", cwd=proj)
    sh("git", "add", "-A", cwd=proj)
    sh("git", "commit", "-qm", "init", cwd=proj)
    return proj


@pytest.fixture(scope="module")
def flow_outcome(project: Path) -> dict[str, str]:
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.study import study

    with prefect_test_harness(server_startup_timeout=120):
        return study(project_dir=str(project))


def test_flow_runs_every_stage_of_dvc_yaml(flow_outcome, project):
    assert set(flow_outcome) == {
        "download",
        "preprocess",
        "augment",
        "reference",
        "train@dcgan-0",
        "train@dcgan-1",
        "evaluate@dcgan-0",
        "evaluate@dcgan-1",
        "report",
    }
    assert flow_outcome["download"] == "ran"
    assert (project / "report" / "index.html").is_file()
    assert json.loads(dvc("status", "--json", cwd=project)) == {}


def test_second_repro_runs_nothing(flow_outcome, project):
    out = dvc("repro", cwd=project)
    assert ran(out) == set()


def test_exp_run_reruns_only_train_evaluate_report(flow_outcome, project):
    sh("git", "add", "-A", cwd=project)
    sh("git", "commit", "-qm", "baseline", cwd=project)
    out = dvc("exp", "run", "-S", "train.iterations=6", "-n", "longer", cwd=project)
    assert ran(out) == {
        "train@dcgan-0",
        "train@dcgan-1",
        "evaluate@dcgan-0",
        "evaluate@dcgan-1",
        "report",
    }
    diff = json.loads(dvc("metrics", "diff", "--json", cwd=project))
    changed = {k for changes in diff.values() for k in changes}
    assert "fid_domain_120_test" in changed and "step" in changed
    shown = dvc("exp", "show", "--csv", cwd=project)
    assert "longer" in shown and "train.iterations" in shown
