"""The report's git revision: a run from a clean checkout is clean, though DVC rewrote
dvc.lock and the outputs git tracks; any other change is "with uncommitted changes"."""

import subprocess
from pathlib import Path

import pytest
import yaml

from ganstudy.study.provenance import dvc_outputs, git_revision

LOCK = {
    "schema": "2.0",
    "stages": {
        "evaluate@dcgan-0": {"outs": [{"path": "metrics/dcgan/0.json", "md5": "a"}]},
        "report": {"outs": [{"path": "report", "md5": "b.dir"}]},
    },
}


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    for path, text in {
        "dvc.lock": yaml.safe_dump(LOCK),
        "params.yaml": "train: {lr: 1}\n",
        "metrics/dcgan/0.json": "{}\n",
        "report/index.md": "old\n",
        "src/code.py": "x = 1\n",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def test_dvc_rewrites_are_not_uncommitted_changes(repo):
    commit = _git(repo, "rev-parse", "HEAD")
    assert git_revision(repo) == commit
    lock = {**LOCK, "stages": {**LOCK["stages"], "train": {"deps": [{"path": "x"}]}}}
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock))  # DVC's rewrite
    (repo / "metrics/dcgan/0.json").write_text('{"fid": 1}\n')  # an output git tracks
    (repo / "report/index.md").write_text("new\n")  # inside an output folder
    assert git_revision(repo) == commit


@pytest.mark.parametrize("edit", ["params.yaml", "src/code.py"])
def test_other_changes_are_uncommitted(repo, edit):
    (repo / "dvc.lock").write_text(yaml.safe_dump(LOCK) + "# rewritten\n")
    (repo / edit).write_text("changed\n")
    assert git_revision(repo).endswith(" with uncommitted changes")


def test_a_file_moved_into_an_output_folder_still_counts(repo):
    _git(repo, "mv", "src/code.py", "report/code.py")  # renamed into an output folder
    assert git_revision(repo).endswith(" with uncommitted changes")  # its source moved


def test_dvc_outputs_of_a_missing_or_broken_lock(tmp_path):
    assert dvc_outputs(tmp_path / "dvc.lock") == []
    (tmp_path / "dvc.lock").write_text("stages: [unclosed\n")
    assert dvc_outputs(tmp_path / "dvc.lock") == []
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(LOCK))
    assert dvc_outputs(tmp_path / "dvc.lock") == ["metrics/dcgan/0.json", "report"]


def test_not_a_git_checkout(tmp_path):
    assert git_revision(tmp_path) == "not a git checkout"
